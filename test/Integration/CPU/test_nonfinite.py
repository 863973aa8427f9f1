"""Non-finite values: where the exact result overflows f32, the kernels give +-inf as
IEEE arithmetic on the exact intermediate values would, never NaN (docs/testing.md).

Two steps used to turn an overflow into NaN: a softmax over logits of which the largest
is +inf (exp(inf - inf)), and a selection whose routing weight underflowed to 0 times an
expert output that overflowed (0 * inf). The oracle computes in fp64, where neither
overflows, so its result rounded to f32 is the exact one.
"""

import numpy as np
import pytest

from harness import assert_close, call
from moe_mlir import cpu, irgen
from moe_mlir import reference as ref

# Token 0: its logits for experts 0 and 2 overflow f32 (+-4e40); token 1 is ordinary.
T, H, E, I = 2, 4, 4, 2


def overflowing_inputs():
    x = np.full((T, H), 1e20, np.float32)
    x[1] = 1.0
    router = np.array([[1e20] * H, [1.0] * H, [-1e20] * H, [2.0] * H], np.float32)
    w13 = np.full((E, 2 * I, H), 0.1, np.float32)
    w2 = np.full((E, H, I), 1.0, np.float32)
    return x, router, w13, w2


@pytest.mark.parametrize("scoring", ["softmax", "softmax_topk", "sigmoid"])
@pytest.mark.parametrize("k", [1, 2])
def test_layer_overflow_reads_inf(compile_ir, pipeline, scoring, k):
    """Token 0's expert outputs overflow f32 (the exact y is about 1e39): the row reads
    +inf, as the exact result rounded to f32; token 1 is finite. With k = 2 the second
    expert's softmax weight underflows to 0 and must add nothing."""
    attrs = dict(k=k, scoring=scoring, renormalize=True)
    module = compile_ir(irgen.layer_ir(None, H, E, I, **attrs), pipeline)
    x, router, w13, w2 = overflowing_inputs()
    (y,) = call(module, "layer", [x, router, w13, w2], [((T, H), "f32")])
    with np.errstate(over="ignore"):
        want = ref.layer(x, router, w13, w2, **attrs).astype(np.float32)
    assert np.all(np.isposinf(want[0])) and np.all(np.isfinite(want[1]))
    assert not np.any(np.isnan(y)), f"NaN in {y}"
    assert_close(y, want, "f32", f"layer {attrs} pipeline={pipeline}")


@pytest.mark.parametrize("scoring", ["softmax", "softmax_topk"])
def test_route_infinite_logits(compile_ir, scoring):
    """A +inf logit takes all the weight (the limit of the exact softmax), a -inf logit
    none; a row of -inf logits is uniform."""
    module = compile_ir(irgen.route_ir(None, 4, 2, scoring=scoring))
    logits = np.array([[1.0, np.inf, 2.0, -np.inf],
                       [-np.inf, -np.inf, -np.inf, -np.inf]], np.float32)
    weights, ids = call(module, "route", [logits], [((2, 2), "f32"), ((2, 2), "i32")])
    if scoring == "softmax":
        # Selected by probability: the others' are all 0, a tie won by expert 0.
        want_ids, want = [[1, 0], [0, 1]], [[1.0, 0.0], [0.25, 0.25]]
    else:
        # Selected by logit, then a softmax over the two picks.
        want_ids, want = [[1, 2], [0, 1]], [[1.0, 0.0], [0.5, 0.5]]
    assert ids.tolist() == want_ids
    np.testing.assert_array_equal(weights, np.array(want, np.float32))


def test_z_loss_infinite_logit(compile_ir):
    """logsumexp of a row holding +inf is +inf, so the z-loss is +inf, not NaN."""
    module = compile_ir(irgen.z_loss_ir(None, 4))
    logits = np.array([[1.0, np.inf, 2.0, 0.0], [0.5, 1.0, 2.0, 0.0]], np.float32)
    (loss,) = call(module, "z_loss", [logits], [((), "f32")])
    assert np.isposinf(loss)
    finite = np.array([[0.5, 1.0, 2.0, 0.0]], np.float32)
    (loss,) = call(module, "z_loss", [finite], [((), "f32")])
    assert_close(loss, ref.z_loss(finite), "f32", "z_loss")
