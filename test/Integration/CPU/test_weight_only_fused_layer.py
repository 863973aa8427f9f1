"""A whole layer with weight-only experts (``moe_mlir.weight_only_ir``: routing, the
gathered gate/up matmul with the SiLU GLU epilogue, the down matmul with the routing
weights as row scale, the combine) against the fp64 oracle on the dequantized weights
(``moe_mlir.reference_lowbit``), bf16 activations as gpt-oss's; the weights in the nk
layout as stored, or packed into panels (``pack.quantized_to_panels``: the panels
kernel with its GLU epilogue, gather and row scale)."""

import ml_dtypes
import numpy as np
import pytest

from harness import assert_close
from moe_mlir import cpu, pack
from moe_mlir import reference as ref
from moe_mlir import reference_lowbit as lb
from moe_mlir import weight_only_ir

H, I, E, K_TOP = 96, 64, 6, 2


def _weights(rng, fmt, N, K, group, zero_points):
    """(kernel inputs: weights, scales[, zero points]; fp64 weights [E, N, K])."""
    shape = weight_only_ir.scale_shape(fmt, E, N, K, group)
    if fmt == "mxfp4":
        blocks = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        scales = rng.integers(121, 125, size=shape).astype(np.uint8)
        return [blocks.view(np.int8), scales], lb.dequantize_mxfp4(blocks, scales)
    if fmt == "int4":
        packed = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        scales = (rng.random(shape) * 0.02 + 0.01).astype(np.float32)
        zeros = rng.integers(0, 16, size=shape).astype(np.int8) if zero_points else None
        inputs = [packed.view(np.int8), scales] + ([zeros] if zero_points else [])
        return inputs, lb.dequantize_int4(packed, scales, zeros, group)
    q = rng.integers(-127, 128, size=(E, N, K)).astype(np.int8)
    scales = (rng.random(shape) * 0.002 + 1e-3).astype(np.float32)
    return [q, scales], lb.dequantize_int8(q, scales)


def _oracle(x, router, W13, W2):
    """y, and the tokens whose top-k is not decided by a near-tie (left out)."""
    logits = x @ router.T
    weights, ids = ref.route(logits, k=K_TOP, scoring="softmax", renormalize=True)
    y = np.zeros_like(x)
    for e in np.unique(ids):
        tok, slot = np.nonzero(ids == e)
        a = ref.glu(x[tok] @ W13[e].T)
        y[tok] += weights[tok, slot, None] * (a @ W2[e].T)
    ordered = -np.sort(-logits, axis=1)
    clear = ordered[:, K_TOP - 1] - ordered[:, K_TOP] > 1e-3
    return y, clear


CASES = [("mxfp4", 32, False), ("int4", 32, True), ("int4", 64, False), ("int8", 0, False)]


@pytest.mark.parametrize("fmt,group,zero_points", CASES,
                         ids=[f"{c[0]}_g{c[1]}{'_asym' if c[2] else ''}" for c in CASES])
@pytest.mark.parametrize("layout", ["nk", "panels"])
@pytest.mark.parametrize("T", [1, 7, 300])
def test_weight_only_layer(compile_ir, rng, fmt, group, zero_points, T, layout):
    P = min(pack.quantized_panel_width(2 * I), pack.quantized_panel_width(H))
    ir = weight_only_ir.layer_ir(None, H, E, I, K_TOP, fmt, group=group or 32,
                                 zero_points=zero_points, layout=layout, panel_width=P)
    module = compile_ir(ir)
    x = rng.standard_normal((T, H)).astype(ml_dtypes.bfloat16)
    router = (rng.standard_normal((E, H)) / 4).astype(ml_dtypes.bfloat16)
    w13, W13 = _weights(rng, fmt, 2 * I, H, group, zero_points)
    w2, W2 = _weights(rng, fmt, H, I, group, zero_points)
    if layout == "panels":
        w13, w2 = ([t for t in pack.quantized_to_panels(fmt, *w, *([None] * (3 - len(w))),
                                                        panel_width=P) if t is not None]
                   for w in (w13, w2))
    inputs = [x, router.reshape(1, E, H), w13[0], w2[0], w13[1], w2[1]]
    if zero_points:
        inputs += [w13[2], w2[2]]
    (y,) = module.call("layer", inputs, [cpu.TensorSpec((T, H), "bf16")], poison=True)
    want, clear = _oracle(x.astype(np.float64), router.astype(np.float64), W13, W2)
    got = cpu.from_storage(y, "bf16").astype(np.float64)
    assert clear.any()
    assert_close(got[clear], want[clear], "bf16", f"{fmt} layer T={T}")
