"""Where the FP8 prefill kernels' error comes from (docs/quantization.md,
"Checked on the GPU"), on a machine with a GPU and artifacts/gpu from
utils/build-gpu-artifacts.sh:

    python3 python/benchmarks/gpu_fp8_accuracy.py

Two parts, each printing its statistics:

1. The experts entries of test_fp8_gpu.py (moe-compile's CUDA artifacts,
   the pipeline's default kernels) against the fp64 oracle: the error's max
   and root mean square (both relative to the output's), the least-squares
   slope of y on the oracle (a scaled output shows as a slope off 1), the
   max / rms ratio (a heavy tail), whether two calls are bitwise equal, and
   the error per group of 16 tokens and per group of 64 columns (a tile or
   a column block taking wrong data shows as one group off the others).
2. The benchmark shapes' FP8 halves (`<shape>@fp8`, `wgmma_fp8` at
   prefill, and `<shape>@fp8@wgmma-fp8=false`, `mma_sync_fp8`) on the same
   inputs against the torch FP8 oracle, plain and with tokens scaled by
   2^(t % 8 - 4) or K blocks of x by 2^(b % 5 - 2): each token's own error
   (max over the token / max of its reference). A row or K block that took
   another one's activation scale would be off by a factor of 2 or more.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))
sys.path.insert(0, str(ROOT / "test" / "Integration" / "GPU"))

#: Part 1: (experts entry, tokens, routing).
EXPERTS_CASES = (("qwen3_fp8_experts", 33, "one expert"),
                 ("qwen3_fp8_experts", 1024, "one expert"),
                 ("qwen3_fp8_experts", 1024, "random"),
                 ("ragged_fp8_experts", 1024, "random"),
                 ("odd_fp8_experts", 1024, "one expert"))
#: Part 2: (benchmark shape, tokens).
SHAPES = (("qwen3-30b-a3b", 4096), ("mixtral-8x7b", 2048))


def experts_statistics(name, tokens, routing):
    import test_fp8_gpu as t
    from test_fp8_gpu import torch

    layer = t.load(name)
    spec = layer.manifest["layer"]
    k, E = spec["k"], spec["experts"]
    tensors, _ = t.draw(layer, tokens, seed=100 + tokens)
    x = t.as64(tensors["x"])
    rng = np.random.default_rng(tokens)
    weights = rng.random((tokens, k)).astype(np.float32)
    ids = (np.full((tokens, k), E - 1, dtype=np.int32) if routing == "one expert" else
           np.stack([rng.choice(E, k, replace=False) for _ in range(tokens)]).astype(np.int32))
    named = dict(tensors, topk_ids=torch.from_numpy(ids), topk_weights=torch.from_numpy(weights))
    args = [named[a["name"]].cuda() for a in layer.inputs]
    y = t.poisoned_call(layer, args, tokens).float().cpu().numpy().astype(np.float64)
    again = t.poisoned_call(layer, args, tokens).float().cpu().numpy().astype(np.float64)
    ref = t.experts_oracle(layer, tensors, x, ids, weights)
    err = y - ref
    rms = np.sqrt((err ** 2).mean())
    ref_rms = np.sqrt((ref ** 2).mean())
    print(f"== {name} T={tokens} {routing}: max {np.abs(err).max() / np.abs(ref).max():.2e} "
          f"rms {rms / ref_rms:.2e} slope {np.sum(y * ref) / np.sum(ref * ref):.5f} "
          f"max/rms {np.abs(err).max() / rms:.1f} "
          f"bitwise repeatable {bool(np.array_equal(y, again))}")
    per_token = np.sqrt((err ** 2).mean(axis=1)) / ref_rms
    per_column = np.sqrt((err ** 2).mean(axis=0)) / ref_rms
    groups = max(1, tokens // 16)
    print("  rms per 16 tokens (first 24):",
          np.round(per_token[:groups * 16].reshape(groups, 16).mean(1)[:24], 4).tolist())
    print("  rms per 64 columns:",
          np.round([per_column[c:c + 64].mean() for c in range(0, len(per_column), 64)], 4).tolist())
    print("  worst tokens (token, rms):",
          [(int(i), round(float(per_token[i]), 4)) for i in np.argsort(per_token)[-6:]])


def scaled_inputs_statistics(shape, tokens):
    import torch

    import gpu_peers
    from moe_mlir import torch_reference_fp8 as fp8
    from moe_mlir.gpu import GpuModule

    from device_artifacts import ARTIFACTS as directory

    entries = gpu_peers.artifact_entries(directory)
    kernels = {"wgmma_fp8": f"{shape}@fp8", "mma_sync_fp8": f"{shape}@fp8@wgmma-fp8=false"}
    modules = {label: GpuModule(directory / entries[name]["library"])
               for label, name in kernels.items()}
    entry = entries[kernels["wgmma_fp8"]]
    H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
    block = tuple(entry["block"])
    inputs = gpu_peers.make_inputs(tokens, H, I, E, k, seed=7)
    w13, s13 = fp8.quantize_weights(inputs.pop("w13"), block)
    w2, s2 = fp8.quantize_weights(inputs.pop("w2"), block)
    torch.cuda.empty_cache()
    ids, weights, x = inputs["ids"], inputs["weights"], inputs["x"]
    t = torch.arange(tokens, device="cuda")
    h = torch.arange(H, device="cuda")
    cases = (("plain", x),
             ("tokens x 2^(t % 8 - 4)",
              (x.float() * torch.exp2((t % 8 - 4).float())[:, None]).bfloat16()),
             ("K blocks x 2^(b % 5 - 2)",
              (x.float() * torch.exp2(((h // block[1]) % 5 - 2).float())[None, :]).bfloat16()))

    def call(module, operands):
        y = torch.full_like(operands[0], float("nan"))
        module.call("experts", operands, [y], workspace=module.workspace("experts", operands))
        torch.cuda.synchronize()
        return y.float()

    def per_token(y, ref):
        return (y - ref).abs().amax(1) / ref.abs().amax(1).clamp_min(1e-30)

    for label, scaled in cases:
        operands = [scaled.contiguous(), w13, w2, ids, weights, s13, s2]
        ref = fp8.reference_fp8(scaled, w13, w2, ids, weights, s13, s2, block)
        ys = {kernel: call(module, operands) for kernel, module in modules.items()}
        print(f"== {shape} T={tokens} {label}: each token's error (max / 99.9% / median)")
        for kernel, y in ys.items():
            e = per_token(y, ref)
            print(f"  {kernel:12s} against the torch oracle: {e.max().item():.2e} / "
                  f"{e.quantile(0.999).item():.2e} / {e.median().item():.2e}")
        e = per_token(ys["wgmma_fp8"], ys["mma_sync_fp8"])
        print(f"  wgmma_fp8 against mma_sync_fp8:   {e.max().item():.2e} / "
              f"{e.quantile(0.999).item():.2e} / {e.median().item():.2e}")
    del modules
    torch.cuda.empty_cache()


def main():
    from device_artifacts import torch

    if torch is None or not torch.cuda.is_available():
        raise SystemExit("gpu_fp8_accuracy: needs torch with a CUDA GPU and artifacts/gpu")
    for case in EXPERTS_CASES:
        experts_statistics(*case)
    for case in SHAPES:
        scaled_inputs_statistics(*case)


if __name__ == "__main__":
    main()
