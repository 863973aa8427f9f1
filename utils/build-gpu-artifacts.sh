#!/usr/bin/env bash
# Builds the GPU artifacts the device-side tests load (no GPU needed here):
# the CUDA runtime and test kernels compiled to sm_90a fatbins (machine code
# plus PTX) with host code linked into shared libraries, and moe-compile's
# CUDA artifacts of the model-family configs. They land in
# artifacts/gpu/, which the device machine receives as a carried folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
llvm=/usr/lib/llvm-22
out="$root/artifacts/gpu"
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
rm -rf "$out"
mkdir -p "$out"
cp "$root/build/lib/libmoe_cuda_runtime.so" "$out/"

chip=${MOE_GPU_CHIP:-sm_90a}
features=${MOE_GPU_FEATURES:-+ptx80}
for input in "$root"/test/Integration/GPU/Inputs/*.mlir; do
  name=$(basename "$input" .mlir)
  "$llvm/bin/mlir-opt" "$input" --pass-pipeline="builtin.module(gpu-lower-to-nvvm-pipeline{cubin-chip=$chip cubin-features=$features cubin-format=fatbin})" \
    -o "$out/$name.llvm.mlir"
  "$llvm/bin/mlir-translate" --mlir-to-llvmir "$out/$name.llvm.mlir" -o "$out/$name.ll"
  "$llvm/bin/clang" -O2 -shared -fPIC -Wno-override-module "$out/$name.ll" \
    -o "$out/lib$name.so" -L"$out" -lmoe_cuda_runtime -Wl,-rpath,'$ORIGIN'
  rm "$out/$name.llvm.mlir" "$out/$name.ll"
done

# moe-compile's CUDA artifacts (C ABI, kernels and runtime linked in), one
# config.json per model family.
for config in "$root"/test/Integration/GPU/Inputs/configs/*.json; do
  "$root/build/bin/moe-compile" --target=cuda "$config" \
    --name="$(basename "$config" .json)" --emit=so,header,manifest -o "$out/aot"
done

# gpt-oss beside its family config: the checkpoint's own weight layout (kn),
# the pre-routed entry, sizes that are no multiples of the tiles, and a wide H.
gpt_oss="$root/test/Integration/GPU/Inputs/configs/gpt_oss.json"
odd="$root/test/Integration/GPU/Inputs/gpt_oss/gpt_oss_odd.json"
"$root/build/bin/moe-compile" --target=cuda "$gpt_oss" --layer=weight_layout=kn \
  --name=gpt_oss_kn --emit=so,header,manifest -o "$out/aot"
"$root/build/bin/moe-compile" --target=cuda "$gpt_oss" --entry=experts \
  --name=gpt_oss_experts --emit=so,header,manifest -o "$out/aot"
"$root/build/bin/moe-compile" --target=cuda "$odd" --name=gpt_oss_odd \
  --emit=so,header,manifest -o "$out/aot"
"$root/build/bin/moe-compile" --target=cuda "$odd" --entry=experts \
  --name=gpt_oss_odd_experts --emit=so,header,manifest -o "$out/aot"
# H = 1024: the decode kernel splits K over its warps (small-split-k-from), for
# the router and the gate/up projection, so the bias goes in after the split sums.
"$root/build/bin/moe-compile" --target=cuda \
  "$root/test/Integration/GPU/Inputs/gpt_oss/gpt_oss_wide.json" --name=gpt_oss_wide \
  --emit=so,header,manifest -o "$out/aot"

# FP8 layers (test_fp8_gpu.py): a DeepSeek-like layer with [128, 128] blocks,
# Qwen3-like ones with block and with per-tensor scales (static activations),
# and odd sizes whose K and N blocks are ragged (H = 200 with [128, 128] and
# [32, 32] blocks, H = 336 and I = 128 with [128, 128] blocks); the experts
# entries of four of them. moe-compile builds them with +ptx84, which the
# e4m3 mma.sync needs.
for config in "$root"/test/Integration/GPU/Inputs/fp8/*.json; do
  name=$(basename "$config" .json)
  "$root/build/bin/moe-compile" --target=cuda "$config" --name="$name" \
    --emit=so,header,manifest -o "$out/aot"
done
for name in qwen3_fp8 odd_fp8 odd32_fp8 ragged_fp8; do
  "$root/build/bin/moe-compile" --target=cuda \
    "$root/test/Integration/GPU/Inputs/fp8/$name.json" --entry=experts \
    --name="${name}_experts" --emit=so,header,manifest -o "$out/aot"
done

# The lowered moe kernels: benchmark shapes, edge shapes, routing and whole
# layers, with index.json and ptxas's resource report.
# Extra arguments (e.g. --variant small-split-k=1) go to gpu_artifacts.py.
python3 "$root/python/benchmarks/gpu_artifacts.py" --out "$out" "$@"

# The layers of the Hugging Face drop-in's GPU test (test_hf_dropin_gpu.py):
# the CUDA layers that moe_mlir.hf.patch finds for its small models of each
# family, f32 and bf16, so the GPU machine needs no moe-compile.
python3 "$root/python/tests/hf_models.py" --artifacts "$out/hf" --target cuda --chip "$chip"
