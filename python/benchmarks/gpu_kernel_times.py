"""Where a compiled expert half spends its time on the GPU, kernel by kernel.

Runs on a GPU machine over the artifacts of ``gpu_artifacts.py``. For each
shape and token count, the ``experts`` call is captured in a CUDA graph and
replayed under torch's profiler (CUPTI) with L2 overwritten before each
replay. Each of the call's kernels is listed with its mean device time per
call, and each grouped matmul with the weights it must at least read (those
of the experts hit) and the rate that gives, beside the read-only rate
measured in the same run. The graph's time per call without the profiler
heads each table, so the gaps between kernels show as its difference from
the kernels' sum. Under programmatic dependent launch (``pdl=true``,
sm_90) a kernel starts before the one ahead has finished and waits for it,
so its time includes that wait and the kernels' times overlap: per-kernel
times are those of the default artifacts (stream order), and the gain of
pdl is the difference of the graph times of ``<shape>`` and
``<shape>@pdl=true``. With ``--fp8`` the ``<shape>@fp8[@<options>]``
artifacts run instead, on weights quantized as a checkpoint stores them, and
the weights counted are the e4m3 bytes plus their block scales.

    python3 python/benchmarks/gpu_kernel_times.py [--fp8] [--shapes ...] [--tokens 1 32]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu"))

import gpu_peers  # noqa: E402
from gpu import captured  # noqa: E402

REPLAYS = 50


def kernel_times(replay) -> dict[str, tuple[float, int]]:
    """Mean device time in ms per replay of each kernel name, and how many
    launches of it one replay makes. L2 is overwritten before each replay
    (as do_bench does), so every replay reads its weights from memory."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    flush = torch.empty(256 * 1024 * 1024, dtype=torch.int8, device="cuda")
    for _ in range(5):
        replay()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(REPLAYS):
            flush.zero_()
            replay()
        torch.cuda.synchronize()
    total = defaultdict(float)
    count = defaultdict(int)
    for event in prof.events():
        if event.device_type.name != "CUDA" or not event.name.startswith("moe_"):
            continue
        total[event.name] += event.device_time_total / 1000.0
        count[event.name] += 1
    return {name: (total[name] / REPLAYS, count[name] // REPLAYS) for name in total}


def artifact_entry(entries: dict, name: str, fp8: bool) -> tuple[str, dict]:
    """The artifact ``name`` names, and its index entry: with ``fp8``, the
    FP8 half ``<shape>@fp8[@<options>]`` of ``<shape>[@<options>]``."""
    if fp8:
        shape, _, options = name.partition("@")
        name = f"{shape}@fp8" + (f"@{options}" if options else "")
    if name not in entries:
        raise SystemExit(f"no {name} artifact in {ARTIFACTS}")
    return name, entries[name]


def fp8_operands(module, entry: dict, inputs: dict) -> tuple[list, object]:
    """The FP8 ``experts`` operands for ``inputs``: its bf16 weights quantized
    to e4m3 with block scales, and the workspace they need."""
    from moe_mlir import torch_reference_fp8 as fp8

    block = tuple(entry["block"])
    w13, s13 = fp8.quantize_weights(inputs["w13"], block)
    w2, s2 = fp8.quantize_weights(inputs["w2"], block)
    operands = [inputs["x"], w13, w2, inputs["ids"], inputs["weights"], s13, s2]
    return operands, module.workspace("experts", operands)


def main() -> None:
    import torch

    from moe_mlir.gpu import GpuModule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*",
                        default=["qwen3-30b-a3b", "mixtral-8x7b", "deepseek-v3"])
    parser.add_argument("--tokens", nargs="*", type=int, default=[1, 32])
    parser.add_argument("--fp8", action="store_true",
                        help="the <shape>@fp8 artifacts; a shape may carry @<options>")
    args = parser.parse_args()

    entries = gpu_peers.artifact_entries(ARTIFACTS)
    ceilings = gpu_peers.measure_ceilings()
    read = ceilings["read_tbps"]
    print(f"device {torch.cuda.get_device_name()}  read {read:.2f} TB/s")
    for name in args.shapes:
        name, entry = artifact_entry(entries, name, args.fp8)
        H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
        module = GpuModule(ARTIFACTS / entry["library"])
        for T in args.tokens:
            inputs, operands, y, workspace = gpu_peers.experts_call(
                module, entry, T, seed=int(time.time()) % 100000)
            if args.fp8:
                operands, workspace = fp8_operands(module, entry, inputs)
            replay = captured(
                lambda: module.call("experts", operands, [y], workspace=workspace))
            graph_ms = gpu_peers.time_ms(replay)
            hit = gpu_peers.experts_hit(inputs["ids"])
            itemsize = operands[1].element_size()
            weight_bytes = {"gate/up": hit * 2 * I * H * itemsize,
                            "down": hit * H * I * itemsize}
            if args.fp8:
                # Each expert hit also reads its block scales (f32).
                weight_bytes["gate/up"] += hit * operands[5][0].numel() * 4
                weight_bytes["down"] += hit * operands[6][0].numel() * 4
            times = kernel_times(replay)
            print(f"\n{name} T={T} experts hit {hit}: graph {graph_ms * 1000:.1f} us per "
                  f"call, kernels {sum(t for t, _ in times.values()) * 1000:.1f} us, floor "
                  f"{(sum(weight_bytes.values()) / (read * 1e12)) * 1e6:.1f} us")
            print(f"  {'kernel':44s} {'launches':>8s} {'us':>8s} {'weights MB':>10s} {'TB/s':>6s}")
            matmuls = [n for n in times if n.startswith("moe_grouped_matmul")]
            for kernel, (ms, launches) in sorted(times.items(), key=lambda kv: -kv[1][0]):
                moved = rate = ""
                if kernel in matmuls and len(matmuls) == 2:
                    # Launch order: the gate/up projection's kernel first.
                    which = "gate/up" if kernel == matmuls[0] else "down"
                    moved = f"{weight_bytes[which] / 1e6:.1f}"
                    rate = f"{weight_bytes[which] / (ms * 1e-3) / 1e12:.2f}"
                print(f"  {kernel:44s} {launches:8d} {ms * 1000:8.1f} {moved:>10s} {rate:>6s}")
            del inputs, operands, y
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
