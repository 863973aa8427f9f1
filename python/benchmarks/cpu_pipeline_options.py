"""cpu.py's f32 or bf16 layer compiled under several settings of the CPU pipeline's
options, timed in one run.

Each setting is a space-separated list of moe-lower-to-cpu-pipeline options
("default" for none), e.g. the register blocks of the kernel over panels:

    python3 python/benchmarks/cpu_pipeline_options.py --shape olmoe-1b-7b --dtype bf16 \\
        --tokens 128,512 default "panel-row-block=12 panel-column-block=1" \\
        "panel-row-block=8 panel-column-block=1"

Every compiled layer is checked against the fp64 oracle, then the settings are
called in alternation (cpu.py's ``alternating_medians``: one cold call, the caches
evicted before it, then one warm call per setting and round), so a change of the
machine's load hits every setting alike. The table gives the medians in ms and the
math rate of the warm calls (the layer's FLOPs, ``moe_mlir.roofline``, over the
time), with OMP_NUM_THREADS threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu as bench  # noqa: E402
import cpu_layers  # noqa: E402
from moe_mlir import cpu, roofline  # noqa: E402

import numpy as np  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+",
                        help='moe-lower-to-cpu-pipeline options, or "default"')
    parser.add_argument("--shape", default="olmoe-1b-7b", choices=list(bench.SHAPES))
    parser.add_argument("--dtype", default="bf16",
                        choices=list(cpu_layers.FLOAT_LAYOUTS))
    parser.add_argument("--tokens", default="128")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    H, I, E, k, _ = bench.SHAPES[args.shape]
    rng = np.random.default_rng(0)
    lay = cpu_layers.layer(args.shape, args.dtype, rng)
    pipelines = [cpu.DEFAULT_PIPELINE if s == "default" else f"{cpu.DEFAULT_PIPELINE}={s}"
                 for s in args.settings]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        modules = []
        for i, pipeline in enumerate(pipelines):
            try:
                modules.append(cpu.compile_module(lay.ir, Path(tmp) / str(i),
                                                  pipeline=pipeline))
            except cpu.CompileError as error:
                raise SystemExit(f"setting {args.settings[i]!r}: {error}") from None
        labels = [f"{args.dtype} {setting!r}" for setting in args.settings]
        for T in (int(t) for t in args.tokens.split(",")):
            cold, warm = cpu_layers.checked_medians(lay, modules, labels, rng, T, args.rounds)
            rows.append((T, cold, warm, roofline.layer_flops(T, H, I, k)))
            print(f"  T={T} done", flush=True)
    print(f"{args.shape} {args.dtype}: medians of {args.rounds} alternating rounds, ms; "
          "GFLOP/s of the warm calls")
    width = max(len(s) for s in args.settings)
    print(f"{'T':>5}  {'setting':{width}}  {'cold':>9}  {'warm':>9}  {'GFLOP/s':>8}")
    for T, cold, warm, flops in rows:
        for setting, c, w in zip(args.settings, cold, warm):
            print(f"{T:5d}  {setting:{width}}  {c:9.3f}  {w:9.3f}  {flops / w / 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
