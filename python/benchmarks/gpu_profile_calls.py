"""Calls compiled expert halves a few times each and nothing else, so that a
profiler run over this process sees only their kernels: Nsight Compute reads
the hardware counters of their grouped matmuls, e.g.

    ncu --clock-control none --kernel-name regex:moe_grouped_matmul \\
        --section SpeedOfLight --section WarpStateStats \\
        python3 python/benchmarks/gpu_profile_calls.py --calls 1 --fp8 \\
        --shapes mixtral-8x7b qwen3-30b-a3b --tokens 1

(`bash utils/run-gpu-checks.sh profile` runs that; ncu flushes the caches
before each kernel it profiles, so one call per shape is enough). Each shape
and token count gets fresh random inputs (gpu_peers.make_inputs), FP8
weights quantized from them with --fp8, and `--calls` calls, synchronized
after each.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))

import gpu_peers  # noqa: E402
from gpu_kernel_times import ARTIFACTS, artifact_entry, fp8_operands  # noqa: E402


def main() -> None:
    import torch

    from moe_mlir.gpu import GpuModule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", required=True,
                        help="artifact names; with --fp8, <shape>[@<options>] of the FP8 ones")
    parser.add_argument("--tokens", nargs="+", type=int, default=[1])
    parser.add_argument("--fp8", action="store_true")
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    if args.calls < 1:
        raise SystemExit("--calls must be at least 1")

    entries = gpu_peers.artifact_entries(ARTIFACTS)
    for name in args.shapes:
        name, entry = artifact_entry(entries, name, args.fp8)
        module = GpuModule(ARTIFACTS / entry["library"])
        for T in args.tokens:
            inputs, operands, y, workspace = gpu_peers.experts_call(module, entry, T, seed=T)
            if args.fp8:
                operands, workspace = fp8_operands(module, entry, inputs)
            for _ in range(args.calls):
                module.call("experts", operands, [y], workspace=workspace)
                torch.cuda.synchronize()
            print(f"{name} T={T}: {args.calls} calls", flush=True)
            del inputs, operands, y, workspace
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
