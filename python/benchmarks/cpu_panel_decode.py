"""The decodings of 4-bit panels on the CPU, timed against each other in one run.

The same layer (cpu_weight_only's MXFP4 or int4 experts, bf16 activations) is built
three ways:

- ``P=32 f32``: 32-wide panels, whose rows keep byte c for column c (the byte-lane
  decoding ``*_panel_bf16_table_dot``: each byte widened to a 32-bit lane, its nibbles
  moved into the lane's two words, then the table), and the f32 GLU output, whose down
  projection takes the f32 tables (``*_panel_table_permute``): the kernels before the
  word order;
- ``P=64 f32``: 64-wide panels in the word order (``*_panel_bf16_word_table_dot``: the
  row's words shifted and looked up as they are), the f32 GLU output;
- ``P=64 bf16``: the same with the bf16 GLU output (``bf16-weight-only-glu``, what
  ``moe-lower-to-cpu-pipeline`` builds from a ``moe.layer``), so the down projection
  takes the word-order decoding too.

All are checked against the fp64 oracle, then timed in alternation, so a change of the
machine's load hits every side alike: each round times one call of each (cold, the
caches evicted as in cpu.py; then warm, right after), and the table gives the medians
and each side's speedup over the first.

    python3 python/benchmarks/cpu_panel_decode.py [--shapes qwen3-30b-a3b] \\
        [--dtypes mxfp4,int4] [--tokens 1,16] [--rounds 41]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu as bench  # noqa: E402
import cpu_weight_only  # noqa: E402
from moe_mlir import cpu, weight_only_ir  # noqa: E402

#: The sides: (name, panel width, the GLU output's dtype).
SIDES = (("P=32 f32", 32, "f32"), ("P=64 f32", 64, "f32"), ("P=64 bf16", 64, "bf16"))


def build(fmt, H, E, I, k, P, glu_dtype, workdir):
    ir = weight_only_ir.layer_ir(None, H, E, I, k, fmt,
                                 group=cpu_weight_only.GROUP[fmt] or 32,
                                 zero_points=cpu_weight_only.ZERO_POINTS[fmt],
                                 dtype="bf16", layout="panels", panel_width=P,
                                 glu_dtype=glu_dtype)
    return cpu.compile_module(ir, workdir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="qwen3-30b-a3b")
    parser.add_argument("--dtypes", default="mxfp4,int4")
    parser.add_argument("--tokens", default="1,16")
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            H, I, E, k, _ = bench.SHAPES[name]
            for fmt in args.dtypes.split(","):
                if fmt not in ("mxfp4", "int4"):
                    raise SystemExit(f"unknown 4-bit dtype {fmt!r}: mxfp4 or int4")
                q13, w13 = cpu_weight_only.random_weights(rng, fmt, E, 2 * I, H)
                q2, w2 = cpu_weight_only.random_weights(rng, fmt, E, H, I)
                router = bench.random_weights(rng, (E, H), H, "bf16")
                calls = []
                for side, P, glu_dtype in SIDES:
                    module = build(fmt, H, E, I, k, P, glu_dtype,
                                   Path(tmp) / f"{name}-{fmt}-{P}-{glu_dtype}")
                    packed = [cpu_weight_only.to_layout(fmt, q, "panels", P)
                              for q in (q13, q2)]
                    calls.append((side, module, cpu_weight_only.kernel_arguments(
                        cpu.to_storage(router, "bf16"), *packed)))
                for T in (int(t) for t in args.tokens.split(",")):
                    x, want, clear = bench.routed_tokens(rng, T, H, router, w13, w2, k)
                    xs = cpu.to_storage(x, "bf16")
                    spec = [cpu.TensorSpec((T, H), "bf16")]
                    fns = []
                    for side, module, weights in calls:
                        fn = (lambda m=module, w=weights:
                              m.call("layer", [xs] + w, spec))
                        bench.check_output(cpu.from_storage(fn()[0], "bf16"), want, clear,
                                           f"{name} {fmt} T={T} {side}")
                        fns.append(fn)
                    cold, warm = bench.alternating_medians(fns, args.rounds)
                    rows.append((name, fmt, T, cold, warm))
                    print(f"  {name} {fmt} T={T}: cold "
                          + " / ".join(f"{c:.3f}" for c in cold) + " ms", flush=True)
    print(f"medians of {args.rounds} alternating rounds, ms; x = the first side's time over "
          "this side's")
    header = f"{'shape':14} {'dtype':6} {'T':>4}"
    for kind in ("cold", "warm"):
        for side, _, _ in SIDES:
            header += f" {kind + ' ' + side:>15}" + ("" if side == SIDES[0][0] else f" {'x':>5}")
    print(header)
    for name, fmt, T, cold, warm in rows:
        line = f"{name:14} {fmt:6} {T:4d}"
        for times in (cold, warm):
            for i, t in enumerate(times):
                line += f" {t:15.3f}" + ("" if i == 0 else f" {times[0] / t:5.2f}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
