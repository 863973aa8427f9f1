"""The weight-only rows of the CPU benchmark (cpu.py ``--dtypes mxfp4,int4,int8``).

The experts hold fresh random codes and scales as a checkpoint stores them (gpt-oss's
MXFP4 with e8m0 scales per 32 k; AWQ-style int4 with f32 scales and i8 zero points per
128 k; int8 with one f32 scale per output row), scaled so the weights have about the
spread of N(0, 1/fan_in). The layer is ``moe_mlir.weight_only_ir.layer_ir`` with bf16
activations; the weights are packed once into the panels layout
(``moe_mlir.pack.quantized_to_panels``; ``nk`` keeps them as stored), whose kernel
decodes each weight vector once per stored row and block of routed rows. The oracle and the peers use the dequantized weights
(exact in f32 for MXFP4, rounded once to f32 for int4 and int8): numpy in f32 and torch
in bf16, dequantized once as a loader would (dequantize-then-bf16), not per call.
"""

from __future__ import annotations

import math

import numpy as np

from moe_mlir import pack
from moe_mlir import reference_lowbit as lb
from moe_mlir import weight_only_ir

#: The scale group along K of each format's rows (int8: one scale per row).
GROUP = {"mxfp4": 32, "int4": 128, "int8": None}
#: int4 rows carry zero points (the asymmetric AWQ/GPTQ form).
ZERO_POINTS = {"mxfp4": False, "int4": True, "int8": False}


def bytes_per_weight(fmt: str, K: int) -> float:
    """Stored bytes per weight, scales and zero points included."""
    if fmt == "mxfp4":
        return 0.5 + 1 / 32  # the codes, one e8m0 byte per 32
    if fmt == "int4":
        return 0.5 + (4 + 1) / GROUP["int4"]  # the codes, an f32 scale and an i8 zero
    return 1 + 4 / K  # int8: the codes, one f32 scale per row


def panel_width(H: int, I: int) -> int:
    """The panel width of both projections (w13's N = 2I, w2's N = H)."""
    return min(pack.quantized_panel_width(2 * I), pack.quantized_panel_width(H))


def layer_ir(fmt: str, H: int, E: int, I: int, k: int, layout: str = "panels") -> str:
    return weight_only_ir.layer_ir(None, H, E, I, k, fmt, group=GROUP[fmt] or 32,
                                   zero_points=ZERO_POINTS[fmt], dtype="bf16",
                                   layout=layout, panel_width=panel_width(H, I))


def to_layout(fmt: str, inputs, layout: str, P: int):
    """The kernel inputs of :func:`random_weights` in ``layout`` (nk: as they are)."""
    if layout == "nk":
        return inputs
    zeros = inputs[2] if len(inputs) > 2 else None
    packed = pack.quantized_to_panels(fmt, inputs[0], inputs[1], zeros, panel_width=P)
    return [t for t in packed if t is not None]


def random_weights(rng, fmt: str, E: int, N: int, K: int):
    """(kernel inputs [weights, scales(, zero points)], the dequantized weights as
    float32 [E, N, K]), one expert at a time so the largest shapes need no
    fp64 temporaries."""
    spread = 1 / math.sqrt(K)
    shape = weight_only_ir.scale_shape(fmt, E, N, K, GROUP[fmt] or K)
    deq = np.empty((E, N, K), dtype=np.float32)
    if fmt == "int8":
        q = rng.integers(-127, 128, size=(E, N, K), dtype=np.int8)
        scales = (spread / 73 * (0.8 + 0.4 * rng.random(shape))).astype(np.float32)
        for e in range(E):
            deq[e] = lb.dequantize_int8(q[e:e + 1], scales[e:e + 1])[0]
        return [q, scales], deq
    packed = rng.integers(0, 256, size=(E, N, K // 2), dtype=np.uint8)
    if fmt == "mxfp4":
        # Uniform e2m1 codes have a spread of about 2.93.
        center = 127 + round(math.log2(spread / 2.93))
        scales = rng.integers(center - 1, center + 2, size=shape).astype(np.uint8)
        for e in range(E):
            deq[e] = lb.dequantize_mxfp4(packed[e:e + 1], scales[e:e + 1])[0]
        return [packed.view(np.int8), scales], deq
    zeros = rng.integers(6, 10, size=shape).astype(np.int8)
    scales = (spread / 4.6 * (0.8 + 0.4 * rng.random(shape))).astype(np.float32)
    for e in range(E):
        deq[e] = lb.dequantize_int4(packed[e:e + 1], scales[e:e + 1], zeros[e:e + 1],
                                    GROUP["int4"])[0]
    return [packed.view(np.int8), scales, zeros], deq


def kernel_arguments(router_storage, w13_inputs, w2_inputs):
    """The layer's weight arguments in the order of ``layer_ir``'s signature."""
    E, H = router_storage.shape
    args = [router_storage.reshape(1, E, H), w13_inputs[0], w2_inputs[0], w13_inputs[1],
            w2_inputs[1]]
    if len(w13_inputs) > 2:
        args += [w13_inputs[2], w2_inputs[2]]
    return args
