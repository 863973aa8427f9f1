"""What ``CompiledModule.call`` adds to a layer's compiled code on the CPU.

One MXFP4 layer (cpu_weight_only's experts in 64-wide panels, bf16 activations) is
compiled once and called two ways, in alternation, warm (the same call just before):

- ``call``: ``CompiledModule.call``, what cpu.py times and a user calls: the argument
  checks, the ``__check_sizes`` and ``__result_sizes`` helpers, the result's
  allocation and the descriptors;
- ``entry``: the layer's ``_mlir_ciface_`` entry point alone, on descriptors built
  once, into the same result buffer.

The difference is the Python call path's cost per call, which the decode floor does
not count. Checked against the fp64 oracle first.

    python3 python/benchmarks/cpu_call_overhead.py [--shapes qwen3-30b-a3b] \\
        [--tokens 1,16] [--rounds 2001]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu as bench  # noqa: E402
import cpu_layers  # noqa: E402
from moe_mlir import cpu  # noqa: E402

FORMAT = "mxfp4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="qwen3-30b-a3b")
    parser.add_argument("--tokens", default="1,16")
    parser.add_argument("--rounds", type=int, default=2001)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            if name not in bench.SHAPES:
                raise SystemExit(f"unknown shape {name!r}: one of {', '.join(bench.SHAPES)}")
            lay = cpu_layers.layer(name, FORMAT, rng)
            module = cpu.compile_module(lay.ir, Path(tmp) / name)
            for T in (int(t) for t in args.tokens.split(",")):
                inputs, spec, want, clear = lay.tokens(rng, T)

                def through_call():
                    return module.call("layer", inputs, spec)[0]

                out = spec[0].allocate()
                descriptors = [cpu._descriptor(a) for a in inputs + [out]]
                addresses = [ctypes.addressof(d) for d in descriptors]
                entry = module._lib["_mlir_ciface_layer"]
                entry.restype = None
                entry.argtypes = [ctypes.c_void_p] * len(addresses)

                def entry_alone():
                    entry(*addresses)
                    return out

                for side, fn in (("call", through_call), ("entry", entry_alone)):
                    lay.check(fn(), want, clear, f"{name} T={T} {side}")
                _, warm = bench.alternating_medians((through_call, entry_alone), args.rounds,
                                                    cold=False)
                call_us, entry_us = (ms * 1e3 for ms in warm)
                rows.append((name, T, call_us, entry_us))
    print(f"{FORMAT}, warm, medians of {args.rounds} alternating rounds, us")
    print(f"{'shape':14} {'T':>4} {'call':>9} {'entry':>9} {'call - entry':>13}")
    for name, T, call_us, entry_us in rows:
        print(f"{name:14} {T:4d} {call_us:9.1f} {entry_us:9.1f} {call_us - entry_us:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
