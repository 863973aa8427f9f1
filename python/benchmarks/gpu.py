"""GPU benchmark of the compiled expert half of a MoE layer (BENCHMARKS.md grid).

Runs on a GPU machine over artifacts built here by
``python3 python/benchmarks/gpu_artifacts.py`` (ctypes; no MLIR there). For each
shape and token count: fresh inputs with near-uniform routing, our output
checked against a torch fp32 reference, then median times (triton do_bench,
which flushes L2 before each run) of ours and of the peers, measured in the
same run as the ceilings: the read-only rate (torch reductions over 2 GiB,
which bounds the weights' bytes), the device copy (bytes read + written,
which bounds the activations') and the bf16 matmul rate. Routing is excluded
everywhere, as in the peer table of BENCHMARKS.md: ours runs dispatch, both
grouped GEMMs and the combine.
At decode sizes ours and the torch._grouped_mm pipeline are also timed as a
replayed CUDA graph ("graph ms"), as decode loops run them.

    python3 python/benchmarks/gpu.py [--shapes qwen3-30b-a3b ...] [--tokens 1 32 ...]

With ``--fp8``, the FP8 rows instead (gpu_fp8.py: block-scaled e4m3 weights,
checked against the FP8 oracle, beside our bf16 layer and torch's FP8 and
dequantizing peers; the floor at FP8 bytes and the FP8 matmul rate measured
in the same run).

With ``--weight-only [mxfp4 int4 int8]``, the weight-only rows instead
(gpu_weight_only.py: the ``<shape>@<format>`` layers beside our bf16 layer and
dequantize-then-torch._grouped_mm; the floor at the quantized bytes, scales and
zero points included).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu"))

import gpu_peers  # noqa: E402
from moe_mlir import roofline  # noqa: E402

SHAPES = ("mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3")
#: Decode sizes are also timed as a replayed CUDA graph of the call, as decode
#: loops run them: the host's cost of issuing the launches is left out.
GRAPH_MAX_TOKENS = 32
TOKENS = (1, 32, 512, 4096, 16384)
#: The eager loop launches a few kernels per expert hit and syncs on the host;
#: past this many routed rows it only measures the Python loop.
EAGER_MAX_ROWS = 40000


def captured(fn):
    """``fn`` captured once in a CUDA graph (after a warm-up call); returns
    the graph's replay."""
    import torch

    stream = torch.cuda.Stream()
    # fn's inputs were made on the current stream.
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        fn()
        stream.synchronize()
        with torch.cuda.graph(graph, stream=stream):
            fn()
    return graph.replay


def main() -> None:
    import torch

    from moe_mlir.gpu import GpuModule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    parser.add_argument("--tokens", nargs="*", type=int, default=list(TOKENS))
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--fp8", action="store_true",
                        help="the FP8 rows (the <shape>@fp8 artifacts) instead of bf16")
    parser.add_argument("--weight-only", nargs="*", metavar="FORMAT",
                        help="the weight-only rows (the <shape>@<format> artifacts) of "
                             "these formats (all without a list) instead of bf16")
    args = parser.parse_args()

    entries = gpu_peers.artifact_entries(ARTIFACTS)
    ceilings = gpu_peers.measure_ceilings()
    if args.fp8:
        return main_fp8(args, entries, ceilings)
    if args.weight_only is not None:
        return main_weight_only(args, entries, ceilings)
    print(f"device {torch.cuda.get_device_name()}  {describe_ceilings(ceilings)}", flush=True)
    rows = []
    for name in args.shapes:
        entry = entries[name]
        H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
        module = GpuModule(ARTIFACTS / entry["library"])
        for T in args.tokens:
            inputs, operands, y, workspace = gpu_peers.experts_call(
                module, entry, T, seed=int(time.time()) % 100000, poison=True)
            module.call("experts", operands, [y], workspace=workspace)
            torch.cuda.synchronize()
            ref = gpu_peers.reference_fp32(*operands)
            error = gpu_peers.relative_error(y, ref)
            del ref
            ours = gpu_peers.time_ms(
                lambda: module.call("experts", operands, [y], workspace=workspace))
            graph = None
            if T <= GRAPH_MAX_TOKENS:
                graph = gpu_peers.time_ms(captured(
                    lambda: module.call("experts", operands, [y], workspace=workspace)))
            eager = None
            if T * k <= EAGER_MAX_ROWS:
                eager = gpu_peers.time_ms(lambda: gpu_peers.eager_loop(*operands))
            grouped = grouped_graph = None
            if gpu_peers.grouped_mm_pipeline(*operands) is not None:
                grouped = gpu_peers.time_ms(lambda: gpu_peers.grouped_mm_pipeline(*operands))
                if T <= GRAPH_MAX_TOKENS:
                    grouped_graph = gpu_peers.time_ms(captured(
                        lambda: gpu_peers.grouped_mm_pipeline(*operands)))
            hit = gpu_peers.experts_hit(inputs["ids"])
            floor = gpu_peers.floor_ms(T, H, I, k, hit, ceilings)
            row = dict(shape=name, T=T, hit=hit, floor=floor, ours=ours,
                       fraction=floor / ours, graph=graph,
                       graph_fraction=(floor / graph) if graph else None,
                       eager=eager, grouped_mm=grouped, grouped_mm_graph=grouped_graph,
                       vs_grouped=(grouped / ours) if grouped else None, rel_err=error)
            rows.append(row)
            print(gpu_peers.format_table([row], COLUMNS).splitlines()[-1], flush=True)
            del inputs, operands, y
            torch.cuda.empty_cache()
        del module
    if grouped_error := gpu_peers.grouped_mm_error():
        print(f"torch._grouped_mm peer unavailable: {grouped_error}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(
            benchmark="gpu", device=torch.cuda.get_device_name(), ceilings=ceilings,
            rows=rows)))
    print()
    print(f"ceilings: {describe_ceilings(ceilings)}; times in ms (median)")
    if above := roofline.above_floor(rows) + roofline.above_floor(rows, "graph_fraction"):
        print("above 1.0 of the floor (a ceiling understates this card): "
              + ", ".join(f"{r['shape']} T={r['T']}" for r in above))
    print(gpu_peers.format_table(rows, COLUMNS))


def main_fp8(args, entries: dict, ceilings: dict) -> None:
    """The FP8 rows: each shape's <shape>@fp8 layer beside its bf16 one."""
    import torch

    import gpu_fp8
    from moe_mlir.gpu import GpuModule

    ceilings["fp8_tflops"], ceilings["fp8_variants_tflops"] = gpu_fp8.measure_fp8_tflops()
    if ceilings["fp8_tflops"] is None:
        raise SystemExit(f"no FP8 matmul ceiling: {ceilings['fp8_variants_tflops']}")
    print(f"device {torch.cuda.get_device_name()}  {describe_ceilings(ceilings)}", flush=True)
    rows = []
    for name in args.shapes:
        # "<shape>@<options>": the FP8 half built under those kernel options
        # (gpu_artifacts.FP8_VARIANTS), beside the shape's default bf16 one.
        shape, _, options = name.partition("@")
        fp8_name = f"{shape}@fp8" + (f"@{options}" if options else "")
        fp8_entry = entries.get(fp8_name)
        if fp8_entry is None or shape not in entries:
            raise SystemExit(f"no {fp8_name} artifact in {ARTIFACTS} "
                             "(bash utils/build-gpu-artifacts.sh)")
        fp8_module = GpuModule(ARTIFACTS / fp8_entry["library"])
        bf16_module = GpuModule(ARTIFACTS / entries[shape]["library"])
        for T in args.tokens:
            row = gpu_fp8.point(name, T, fp8_entry, fp8_module, bf16_module, ceilings)
            rows.append(row)
            print(gpu_peers.format_table([row], gpu_fp8.COLUMNS).splitlines()[-1], flush=True)
            if not row["rel_err"] <= gpu_fp8.FP8_BOUND:
                print(f"  {name} T={T}: error {row['rel_err']:.2e} against the FP8 oracle "
                      f"is above {gpu_fp8.FP8_BOUND}", flush=True)
            torch.cuda.empty_cache()
        del fp8_module, bf16_module
    for peer, why in gpu_peers.peer_errors().items():
        print(f"{peer} peer unavailable: {why}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(
            benchmark="gpu-fp8", device=torch.cuda.get_device_name(), ceilings=ceilings,
            rows=rows)))
    print()
    print(f"ceilings: {describe_ceilings(ceilings)}; times in ms (median); "
          "errors: max |y - ref| / max |ref| against the FP8 oracle")
    if above := roofline.above_floor(rows):
        print("above 1.0 of the floor (a ceiling understates this card): "
              + ", ".join(f"{r['shape']} T={r['T']}" for r in above))
    print(gpu_peers.format_table(rows, gpu_fp8.COLUMNS))


def main_weight_only(args, entries: dict, ceilings: dict) -> None:
    """The weight-only rows: each shape's <shape>@<format> layers beside its bf16
    one."""
    import torch

    import gpu_weight_only
    from moe_mlir.gpu import GpuModule

    formats = args.weight_only or list(gpu_weight_only.FORMATS)
    unknown = [f for f in formats if f not in gpu_weight_only.FORMATS]
    if unknown:
        raise SystemExit(f"unknown weight-only formats {unknown}; known: "
                         f"{', '.join(gpu_weight_only.FORMATS)}")
    print(f"device {torch.cuda.get_device_name()}  {describe_ceilings(ceilings)}", flush=True)
    rows = []
    for name in args.shapes:
        bf16_module = GpuModule(ARTIFACTS / entries[name]["library"])
        for fmt in formats:
            entry = entries.get(f"{name}@{fmt}")
            if entry is None:
                raise SystemExit(f"no {name}@{fmt} artifact in {ARTIFACTS} "
                                 "(bash utils/build-gpu-artifacts.sh)")
            module = GpuModule(ARTIFACTS / entry["library"])
            for T in args.tokens:
                row = gpu_weight_only.point(name, T, entry, module, bf16_module, ceilings)
                rows.append(row)
                print(gpu_peers.format_table([row], gpu_weight_only.COLUMNS).splitlines()[-1],
                      flush=True)
                if not row["rel_err"] <= gpu_weight_only.BOUND:
                    print(f"  {name}@{fmt} T={T}: error {row['rel_err']:.2e} is above "
                          f"{gpu_weight_only.BOUND}", flush=True)
                torch.cuda.empty_cache()
            del module
        del bf16_module
    for peer, why in gpu_peers.peer_errors().items():
        print(f"{peer} peer unavailable: {why}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(
            benchmark="gpu-weight-only", device=torch.cuda.get_device_name(),
            ceilings=ceilings, rows=rows)))
    print()
    print(f"ceilings: {describe_ceilings(ceilings)}; times in ms (median); floors at the "
          "quantized bytes; errors: max |y - ref| / max |ref| against fp32 on the "
          "dequantized weights")
    if above := roofline.above_floor(rows):
        print("above 1.0 of the floor (a ceiling understates this card): "
              + ", ".join(f"{r['shape']} T={r['T']}" for r in above))
    print(gpu_peers.format_table(rows, gpu_weight_only.COLUMNS))


def describe_ceilings(ceilings: dict) -> str:
    reads = ", ".join(f"{name} {tbps:.2f}"
                      for name, tbps in ceilings["read_variants_tbps"].items())
    return (f"read {ceilings['read_tbps']:.2f} TB/s (the weights'; best of {reads}), "
            f"copy {ceilings['copy_tbps']:.2f} TB/s (read + write; the activations'), "
            f"bf16 matmul {ceilings['bf16_tflops']:.0f} TFLOP/s"
            + (f", FP8 matmul {ceilings['fp8_tflops']:.0f} TFLOP/s (torch._scaled_mm)"
               if ceilings.get("fp8_tflops") else ""))


COLUMNS = [("shape", "shape"), ("T", "T"), ("hit", "hit"), ("floor", "floor ms"),
           ("ours", "ours ms"), ("fraction", "of floor"), ("graph", "graph ms"),
           ("graph_fraction", "graph of floor"), ("eager", "eager ms"),
           ("grouped_mm", "grouped_mm ms"), ("grouped_mm_graph", "grouped_mm graph ms"),
           ("vs_grouped", "x vs grouped_mm"),
           ("rel_err", "rel err")]


if __name__ == "__main__":
    main()
