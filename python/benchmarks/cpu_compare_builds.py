"""cpu.py's layers compiled by two builds of the compiler, timed in one run.

A kernel change on the CPU is judged against the build before it on the same machine
in the same minutes: the layer cpu.py runs for each shape and dtype (f32 experts in
panels, bf16 in panels_vnni, the weight-only formats as cpu_weight_only packs them,
with bf16 activations) is compiled by the baseline build's moe-opt
and by this one's, both are checked against the fp64 oracle, then called in
alternation, so a change of the machine's load hits both sides alike: each round
times one call of each, cold (the caches evicted as in cpu.py), then warm (right
after). The table gives the medians and the baseline's time over this build's.

A baseline build of another commit (a worktree under build-baseline/, built by
utils/build.sh, ccache serving what did not change):

    git worktree add --detach build-baseline/base <commit>
    bash build-baseline/base/utils/build.sh build-baseline/base/build
    python3 python/benchmarks/cpu_compare_builds.py build-baseline/base/build \\
        [--shapes qwen3-30b-a3b] [--dtypes mxfp4,int4] [--tokens 1,16] [--rounds 41]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu as bench  # noqa: E402
import cpu_layers  # noqa: E402
from moe_mlir import cpu  # noqa: E402


def compile_with(build: Path | None, ir: str, workdir: Path) -> cpu.CompiledModule:
    """``ir`` compiled by the tools of ``build`` (None: this build)."""
    saved = os.environ.get("MOE_MLIR_BUILD_DIR")
    try:
        if build is not None:
            os.environ["MOE_MLIR_BUILD_DIR"] = str(build)
        return cpu.compile_module(ir, workdir)
    finally:
        if saved is None:
            os.environ.pop("MOE_MLIR_BUILD_DIR", None)
        else:
            os.environ["MOE_MLIR_BUILD_DIR"] = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="the baseline build folder (bin/moe-opt)")
    parser.add_argument("--shapes", default="qwen3-30b-a3b")
    parser.add_argument("--dtypes", default="mxfp4,int4")
    parser.add_argument("--tokens", default="1,16")
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    if not (args.baseline / "bin" / "moe-opt").exists():
        raise SystemExit(f"{args.baseline}/bin/moe-opt not found: build the baseline first")
    known = [*cpu_layers.FLOAT_LAYOUTS, *bench.WEIGHT_ONLY]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            if name not in bench.SHAPES:
                raise SystemExit(f"unknown shape {name!r}: one of {', '.join(bench.SHAPES)}")
            for fmt in args.dtypes.split(","):
                if fmt not in known:
                    raise SystemExit(f"unknown dtype {fmt!r}: one of {', '.join(known)}")
                lay = cpu_layers.layer(name, fmt, rng)
                modules = [compile_with(build, lay.ir, Path(tmp) / f"{name}-{fmt}-{side}")
                           for side, build in (("baseline", args.baseline), ("this", None))]
                for T in (int(t) for t in args.tokens.split(",")):
                    cold, warm = cpu_layers.checked_medians(
                        lay, modules, (f"{fmt} baseline", f"{fmt} this"), rng, T, args.rounds)
                    rows.append((name, fmt, T, cold, warm))
                    print(f"  {name} {fmt} T={T}: cold {cold[0]:.3f} / {cold[1]:.3f} ms",
                          flush=True)
    print(f"medians of {args.rounds} alternating rounds, ms; x = the baseline's time over "
          "this build's")
    print(f"{'shape':14} {'dtype':6} {'T':>4} {'cold base':>10} {'cold this':>10} {'x':>5} "
          f"{'warm base':>10} {'warm this':>10} {'x':>5}")
    for name, fmt, T, cold, warm in rows:
        print(f"{name:14} {fmt:6} {T:4d} {cold[0]:10.3f} {cold[1]:10.3f} "
              f"{cold[0] / cold[1]:5.2f} {warm[0]:10.3f} {warm[1]:10.3f} "
              f"{warm[0] / warm[1]:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
