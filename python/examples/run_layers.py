"""The main job: compile two example MoE layers for the CPU, run them on
random inputs, check them against the numpy fp64 oracle, and time them.

Run from the repository root after building: ``python3 python/examples/run_layers.py``
(``utils/run-example.sh`` installs, builds and runs it).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from moe_mlir import cpu, reference  # noqa: E402

# Shapes and routing of each example; they match the .mlir files beside this script.
LAYERS = {
    "mixtral_small": dict(H=128, I=224, E=8, k=2, bias=False, shared=None,
                          route=dict(k=2, scoring="softmax", renormalize=True)),
    "deepseek_v3_small": dict(H=64, I=32, E=32, k=8, bias=True, shared=64,
                              route=dict(k=8, scoring="sigmoid", n_group=8, topk_group=4,
                                         group_score="sum_top2", renormalize=True,
                                         renorm_epsilon=1e-20, scale=2.5)),
}


def make_inputs(spec, tokens, rng):
    H, I, E = spec["H"], spec["I"], spec["E"]
    f32 = np.float32
    x = rng.standard_normal((tokens, H)).astype(f32)
    router = (rng.standard_normal((E, H)) / np.sqrt(H)).astype(f32)
    w13 = (rng.standard_normal((E, 2 * I, H)) / np.sqrt(H)).astype(f32)
    w2 = (rng.standard_normal((E, H, I)) / np.sqrt(I)).astype(f32)
    args = [x, router]
    kwargs = {}
    if spec["bias"]:
        bias = (0.1 * rng.standard_normal(E)).astype(f32)
        args.append(bias)
        kwargs["bias"] = bias
    args += [w13, w2]
    if spec["shared"]:
        Is = spec["shared"]
        shared_w13 = (rng.standard_normal((2 * Is, H)) / np.sqrt(H)).astype(f32)
        shared_w2 = (rng.standard_normal((H, Is)) / np.sqrt(Is)).astype(f32)
        args += [shared_w13, shared_w2]
        kwargs.update(shared_w13=shared_w13, shared_w2=shared_w2)
    return args, (x, router, w13, w2), kwargs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None,
                        help="input seed (default: fresh)")
    opts = parser.parse_args()
    seed = opts.seed if opts.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    rng = np.random.default_rng(seed)
    print(f"seed {seed}, T = {opts.tokens}")

    rows = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="moe-example-") as tmp:
        for name, spec in LAYERS.items():
            ir = (HERE / f"{name}.mlir").read_text()
            start = time.perf_counter()
            module = cpu.compile_module(ir, tmp)
            compile_s = time.perf_counter() - start

            args, (x, router, w13, w2), kwargs = make_inputs(spec, opts.tokens, rng)
            result = [cpu.TensorSpec((opts.tokens, spec["H"]), "f32")]
            times = []
            for _ in range(opts.repeats):
                start = time.perf_counter()
                (y,) = module.call(name, args, result)
                times.append(time.perf_counter() - start)

            y_ref = reference.layer(x, router, w13, w2, **kwargs, **spec["route"])
            error = float(np.abs(y - y_ref).max() / np.abs(y_ref).max())

            # The compiled routing on the layer's logits against the oracle's.
            logits = x @ router.T
            route_args = [logits] + ([kwargs["bias"]] if spec["bias"] else [])
            k = spec["k"]
            _, ids = module.call(f"{name}_route", route_args,
                                 [cpu.TensorSpec((opts.tokens, k), "f32"),
                                  cpu.TensorSpec((opts.tokens, k), "i32")])
            _, ids_ref = reference.route(logits, kwargs.get("bias"), **spec["route"])
            ids_match = float(np.mean(ids == ids_ref))
            passed = error <= 1e-5 and ids_match == 1.0
            ok &= passed
            rows.append((name, opts.tokens, error, ids_match, compile_s,
                         float(np.median(times)) * 1e3, "ok" if passed else "FAIL"))

    print()
    print(f"{'layer':<20} {'T':>5} {'max rel err':>12} {'ids agree':>10} "
          f"{'compile s':>10} {'run ms':>9}  check")
    for name, t, err, ids, comp, run, verdict in rows:
        print(f"{name:<20} {t:>5} {err:>12.2e} {ids:>10.3f} {comp:>10.2f} {run:>9.2f}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
