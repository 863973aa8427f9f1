"""Where the time of one compiled expert-half call goes, kernel by kernel.

Runs on a GPU machine over the artifacts of ``gpu_artifacts.py`` (ctypes, no
MLIR there). For each shape and token count it calls the layer under
torch.profiler and prints each kernel's mean device time per call, with the
GEMMs' rate in TFLOP/s (2 * rows * N * K over the kernel's time), so the
kernel that limits a point of the ``gpu.py`` table can be read off.

    python3 python/benchmarks/gpu_kernels.py [--shapes qwen3-30b-a3b ...] [--tokens 4096 ...]
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu"))

import gpu_peers  # noqa: E402

SHAPES = ("mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3")
TOKENS = (1, 512, 4096)
CALLS = 10


def kernel_times(module, operands, y, workspace) -> dict[str, float]:
    """Mean device microseconds per call of each kernel, by name."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        module.call("experts", operands, [y], workspace=workspace)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            module.call("experts", operands, [y], workspace=workspace)
        torch.cuda.synchronize()
    totals: dict[str, float] = collections.defaultdict(float)
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name] += event.device_time
    return {name: us / CALLS for name, us in totals.items()}


def main() -> None:
    import torch

    from moe_mlir.gpu import GpuModule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    parser.add_argument("--tokens", nargs="*", type=int, default=list(TOKENS))
    args = parser.parse_args()
    entries = gpu_peers.artifact_entries(ARTIFACTS)
    lines = []
    for name in args.shapes:
        entry = entries[name]
        H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
        module = GpuModule(ARTIFACTS / entry["library"])
        for T in args.tokens:
            inputs, operands, y, workspace = gpu_peers.experts_call(module, entry, T, seed=T)
            times = kernel_times(module, operands, y, workspace)
            # The gate/up GEMM is the first grouped matmul launched, the down
            # projection the second (a "_0" suffix on the second kernel).
            flops = {"gate/up": 2 * T * k * 2 * I * H, "down": 2 * T * k * H * I}
            total = sum(times.values())
            lines.append(f"{name} T={T}: {total:.1f} us of kernels per call")
            for kernel, us in sorted(times.items(), key=lambda kv: -kv[1]):
                rate = ""
                if "grouped_matmul" in kernel:
                    which = "down" if kernel.endswith("_0") else "gate/up"
                    rate = f"  {which} {flops[which] / (us * 1e-6) / 1e12:6.1f} TFLOP/s"
                lines.append(f"  {kernel:40s} {us:9.1f} us{rate}")
            print("\n".join(lines[-len(times) - 1:]), flush=True)
            del inputs, operands, y
            torch.cuda.empty_cache()
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
