#!/usr/bin/env bash
# Configures (once) and builds MoE-MLIR with clang-22, lld, ninja and ccache.
# Usage: utils/build.sh [build-dir]   (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
llvm=/usr/lib/llvm-22

if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$llvm/bin/clang" \
    -DCMAKE_CXX_COMPILER="$llvm/bin/clang++" \
    -DMOE_MLIR_CCACHE=ON \
    -DLLVM_USE_LINKER=lld \
    -DMLIR_DIR="$llvm/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$llvm/bin/lit"
fi
# Two jobs: the MLIR-heavy translation units need about 2 GiB each.
ninja -C "$build" -j "${MOE_MLIR_JOBS:-2}" all moe-doc
