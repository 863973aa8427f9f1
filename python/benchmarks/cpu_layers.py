"""cpu.py's layers, built and called by the CPU comparison scripts
(cpu_compare_builds.py, cpu_pipeline_options.py, cpu_call_overhead.py): one shape
and dtype's IR and packed weights, fresh tokens with the oracle's output, and the
check and the alternating timing of several compiled versions of it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu as bench  # noqa: E402
import cpu_weight_only  # noqa: E402
from moe_mlir import cpu, irgen, pack  # noqa: E402

#: The float dtypes and the layout cpu.py packs their experts in.
FLOAT_LAYOUTS = {"f32": "panels", "bf16": "panels_vnni"}


@dataclass
class Layer:
    """One layer as cpu.py runs it: its IR, the kernel's weight arguments (router
    first), the activations' dtype, and the float32 values of the experts' weights
    w13, w2 and of the router for the oracle."""

    shape: str
    ir: str
    weights: list
    act: str
    w13: np.ndarray
    w2: np.ndarray
    router: np.ndarray

    def tokens(self, rng, T: int):
        """Fresh tokens (cpu.py's ``routed_tokens``): the call's inputs and result
        spec, the oracle's output and the tokens it compares."""
        H, _, _, k, _ = bench.SHAPES[self.shape]
        x, want, clear = bench.routed_tokens(rng, T, H, self.router, self.w13, self.w2, k)
        inputs = [cpu.to_storage(x, self.act)] + self.weights
        return inputs, [cpu.TensorSpec((T, H), self.act)], want, clear

    def check(self, got, want, clear, label: str) -> None:
        """Exits unless the stored output ``got`` matches the oracle: to f32 rounding
        for f32 layers, to 1e-2 where the activations are bf16."""
        bench.check_output(cpu.from_storage(got, self.act), want, clear, label,
                           1e-5 if self.act == "f32" else 1e-2)


def layer(name: str, fmt: str, rng) -> Layer:
    """cpu.py's layer of ``fmt`` (f32, bf16 or a weight-only format) for shape
    ``name``, with random weights."""
    H, I, E, k, _ = bench.SHAPES[name]
    act = fmt if fmt in FLOAT_LAYOUTS else "bf16"
    router = bench.random_weights(rng, (E, H), H, act)
    if fmt in FLOAT_LAYOUTS:
        layout = FLOAT_LAYOUTS[fmt]
        ir = irgen.layer_ir(None, H, E, I, k, dtype=fmt, name="layer", weight_layout=layout,
                            scoring="softmax", panel_width=pack.PANEL_WIDTH, renormalize=True)
        w13 = bench.random_weights(rng, (E, 2 * I, H), H, fmt)
        w2 = bench.random_weights(rng, (E, H, I), I, fmt)
        weights = [cpu.to_storage(router, fmt)] + [
            bench.storage_per_expert(w, fmt, layout) for w in (w13, w2)]
        return Layer(name, ir, weights, act, w13, w2, router)
    P = cpu_weight_only.panel_width(H, I)
    ir = cpu_weight_only.layer_ir(fmt, H, E, I, k, "panels")
    q13, w13 = cpu_weight_only.random_weights(rng, fmt, E, 2 * I, H)
    q2, w2 = cpu_weight_only.random_weights(rng, fmt, E, H, I)
    weights = cpu_weight_only.kernel_arguments(
        cpu.to_storage(router, "bf16"),
        *[cpu_weight_only.to_layout(fmt, q, "panels", P) for q in (q13, q2)])
    return Layer(name, ir, weights, act, w13, w2, router)


def checked_medians(lay: Layer, modules, labels, rng, T: int, rounds: int):
    """``lay`` compiled as each of ``modules`` (named by ``labels``), called on the
    same fresh T tokens: each checked against the oracle, then timed in alternation
    (cpu.py's ``alternating_medians``). Returns the (cold, warm) medians in ms."""
    inputs, spec, want, clear = lay.tokens(rng, T)
    fns = [lambda m=m: m.call("layer", inputs, spec)[0] for m in modules]
    for label, fn in zip(labels, fns):
        lay.check(fn(), want, clear, f"{lay.shape} T={T} {label}")
    return bench.alternating_medians(fns, rounds)
