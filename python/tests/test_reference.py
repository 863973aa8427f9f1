"""Tests of the numpy reference's whole layer against a dense per-token loop (the ops'
tests: test_reference_routing.py, test_reference_experts.py)."""

import math

import numpy as np
from reference_transcriptions import hf_deepseek_v3_route, np_softmax, seeded

from moe_mlir import dtypes
from moe_mlir import reference as ref

# ----------------------------------------------------------------------------------------
# Whole layer vs a dense per-token loop
# ----------------------------------------------------------------------------------------


def _silu_expert(x_t, w13_e, w2_e):
    I = w13_e.shape[0] // 2
    gate, up = w13_e[:I] @ x_t, w13_e[I:] @ x_t
    return w2_e @ (gate / (1 + np.exp(-gate)) * up)


def _gpt_oss_expert(x_t, w13_e, w2_e, alpha=1.702, limit=7.0):
    """transformers GptOssExperts for one token (interleaved gate/up, clamped)."""
    gate_up = w13_e @ x_t
    gate, up = gate_up[::2], gate_up[1::2]
    gate = np.minimum(gate, limit)
    up = np.clip(up, -limit, limit)
    return w2_e @ ((up + 1) * gate / (1 + np.exp(-alpha * gate)))


def _weights(rng, T, H, E, I):
    return (
        rng.standard_normal((T, H)),
        rng.standard_normal((E, H)),
        rng.standard_normal((E, 2 * I, H)) / math.sqrt(H),
        rng.standard_normal((E, H, I)) / math.sqrt(I),
    )


def test_layer_mixtral_with_shared_expert_vs_dense_loop():
    rng = seeded(11)
    T, H, E, I, Is = 9, 6, 4, 5, 3
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    sw13 = rng.standard_normal((2 * Is, H))
    sw2 = rng.standard_normal((H, Is))
    sgate = rng.standard_normal((1, H))
    y = ref.layer(x, router, w13, w2, shared_w13=sw13, shared_w2=sw2, shared_gate=sgate,
                  **ref.MODEL_RECIPES["mixtral"])
    expected = np.zeros((T, H))
    for t in range(T):
        p = np_softmax(x[t] @ router.T)
        top = np.argsort(-p)[:2]
        for e in top:
            expected[t] += p[e] / p[top].sum() * _silu_expert(x[t], w13[e], w2[e])
        g = 1 / (1 + np.exp(-(sgate[0] @ x[t])))
        expected[t] += g * _silu_expert(x[t], sw13, sw2)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_gpt_oss_vs_dense_loop():
    rng = seeded(12)
    T, H, E, I = 7, 8, 8, 4
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    x *= 3.0  # large enough that the swiglu clamp is exercised
    y = ref.layer(x, router, w13, w2, **ref.MODEL_RECIPES["gpt_oss"], **ref.MODEL_FFN["gpt_oss"])
    expected = np.zeros((T, H))
    clamped = False
    for t in range(T):
        logits = router @ x[t]
        top = np.argsort(-logits)[:4]
        w = np_softmax(logits[top])
        for e, we in zip(top, w):
            clamped |= bool(np.any(np.abs(w13[e] @ x[t]) > 7.0))
            expected[t] += we * _gpt_oss_expert(x[t], w13[e], w2[e])
    assert clamped
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_with_capacity_drops_like_gshard_counters():
    rng = seeded(13)
    T, H, E, I, k = 12, 4, 3, 3, 2
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    y, weights, ids = ref.layer_with_routing(
        x, router, w13, w2, k=k, renormalize=True, capacity_factor=0.75
    )
    C = math.ceil(0.75 * T * k / E)
    count = np.zeros(E, dtype=int)
    expected = np.zeros((T, H))
    dropped = 0
    for j in range(k):
        for t in range(T):
            e = ids[t, j]
            if count[e] < C:
                count[e] += 1
                expected[t] += weights[t, j] * _silu_expert(x[t], w13[e], w2[e])
            else:
                dropped += 1
    assert dropped > 0
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_deepseek_v3_vs_dense_loop():
    rng = seeded(14)
    T, H, E, I = 6, 8, 16, 3
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    bias = rng.standard_normal(E) * 0.1
    recipe = dict(ref.MODEL_RECIPES["deepseek_v3"], n_group=4, topk_group=2, k=4)
    y, weights, ids = ref.layer_with_routing(x, router, w13, w2, bias=bias, **recipe)
    ew, eids = hf_deepseek_v3_route(x @ router.T, bias, 4, 4, 2, 2.5)
    np.testing.assert_array_equal(ids, eids)
    expected = np.zeros((T, H))
    for t in range(T):
        for e, we in zip(eids[t], ew[t]):
            expected[t] += we * _silu_expert(x[t], w13[e], w2[e])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_random_policy_drops_contribution():
    rng = seeded(15)
    T, H, E, I = 32, 4, 4, 3
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    y, weights, ids = ref.layer_with_routing(
        x, router, w13, w2, k=2, renormalize=True, second_expert_policy="random", seed=3
    )
    assert np.any(ids[:, 1] == -1)
    expected = np.zeros((T, H))
    for t in range(T):
        for e, we in zip(ids[t], weights[t]):
            if e >= 0:
                expected[t] += we * _silu_expert(x[t], w13[e], w2[e])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_single_token_all_on_one_expert():
    rng = seeded(16)
    T, H, E, I = 1, 4, 5, 2
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    y, weights, ids = ref.layer_with_routing(x, router, w13, w2, k=1)
    e = ids[0, 0]
    np.testing.assert_allclose(y[0], weights[0, 0] * _silu_expert(x[0], w13[e], w2[e]), rtol=1e-13)


# ----------------------------------------------------------------------------------------
# bf16
# ----------------------------------------------------------------------------------------


def test_bf16_rounding_by_hand():
    vals = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -2.0, 0.0, np.inf], dtype=np.float32)
    bits = dtypes.f32_to_bf16_bits(vals)
    assert bits.dtype == np.uint16
    assert bits.tolist() == [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC000, 0x0000, 0x7F80]
    # The largest finite float32 rounds up to infinity in bf16.
    assert dtypes.f32_to_bf16_bits(np.float32(3.4028235e38)) == 0x7F80


def test_bf16_nan_preserved():
    nan_low_payload = np.array([0x7F800001, 0xFFFFFFFF], dtype=np.uint32).view(np.float32)
    out = dtypes.bf16_bits_to_f32(dtypes.f32_to_bf16_bits(nan_low_payload))
    assert np.all(np.isnan(out))
    assert np.signbit(out).tolist() == [False, True]


def test_bf16_round_trip_all_patterns():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    f = dtypes.bf16_bits_to_f32(bits)
    assert f.dtype == np.float32
    back = dtypes.f32_to_bf16_bits(f)
    not_nan = ~np.isnan(f)
    np.testing.assert_array_equal(back[not_nan], bits[not_nan])
    assert np.all(np.isnan(dtypes.bf16_bits_to_f32(back[~not_nan])))


def test_round_to_bf16_is_nearest():
    x = seeded(17).standard_normal(1000).astype(np.float32)
    r = dtypes.round_to_bf16(x)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(dtypes.round_to_bf16(r), r)
    # Within half a bf16 ulp (2^-8 relative to the exponent's leading bit).
    assert np.all(np.abs(r - x) <= np.abs(x) * 2.0**-8)
    assert np.any(r != x)
