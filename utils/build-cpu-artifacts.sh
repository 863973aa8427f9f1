#!/usr/bin/env bash
# Builds CPU artifacts with moe-compile for machines that have no LLVM (the
# GPU machine runs the PyTorch op tests on them): a small Mixtral-like layer
# and its experts entry, with the libomp they link, in artifacts/cpu/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/artifacts/cpu"
mkdir -p "$out"
"$root/build/bin/moe-compile" \
  --layer=hidden=64,intermediate=48,experts=8,k=2,renormalize \
  --name=torch_mixtral --chip=x86-64-v3 --emit=so,header,manifest -o "$out"
# The experts entry of the same sizes (test_torch_op_experts.py).
"$root/build/bin/moe-compile" \
  --layer=hidden=64,intermediate=48,experts=8,k=2 --entry=experts \
  --name=torch_experts --chip=x86-64-v3 --emit=so,header,manifest -o "$out"
cp -L /usr/lib/llvm-22/lib/libomp.so.5 "$out/"
ls -l "$out"
