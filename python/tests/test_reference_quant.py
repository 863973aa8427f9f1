"""The FP8 oracle (moe_mlir.reference_quant) against hand-computed values."""

import ml_dtypes
import numpy as np
import pytest

from moe_mlir import reference as ref
from moe_mlir import reference_quant as rq


def test_e4m3_values_are_exact():
    codes = np.arange(256, dtype=np.uint8)
    values = rq.e4m3_values(codes)
    assert values[0x01] == 2.0 ** -9  # smallest subnormal
    assert values[0x08] == 2.0 ** -6  # smallest normal
    assert values[0x7E] == 448.0 and values[0xFE] == -448.0
    assert np.isnan(values[0x7F]) and np.isnan(values[0xFF])
    assert values[0x38] == 1.0


def test_dequantize_uses_the_block_of_each_element():
    # N = 3, K = 5, block [2, 3]: scales [1, 2, 2]; the last block on both sides ragged.
    w = np.ones((1, 3, 5), dtype=ml_dtypes.float8_e4m3fn)
    s = np.array([[[1.0, 2.0], [4.0, 8.0]]], dtype=np.float32)
    got = rq.dequantize_weights(w, s, (2, 3))
    want = np.array([[1, 1, 1, 2, 2], [1, 1, 1, 2, 2], [4, 4, 4, 8, 8]], dtype=np.float64)
    np.testing.assert_array_equal(got[0], want)
    with pytest.raises(ValueError, match=r"scales must be float32 \(1, 2, 2\)"):
        rq.dequantize_weights(w, s[:, :1], (2, 3))


def test_dynamic_activation_quantization():
    # Groups of 2 over K = 5: [3, -1], [0, 0] (all zero: scale 1, never NaN), [0.5].
    a = np.array([[3.0, -1.0, 0.0, 0.0, 0.5]])
    got = rq.quantize_activations(a, 2)
    s = np.float32(3.0) / np.float32(448.0)
    q = (np.float32(-1.0) / s).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    assert got[0, 0] == 448.0 * np.float64(s)  # the group's amax maps to 448
    assert got[0, 1] == q * np.float64(s)
    assert got[0, 2] == 0.0 and got[0, 3] == 0.0
    # A one-element group maps to 448 times its f32 scale (not exactly 0.5 again).
    assert got[0, 4] == 448.0 * np.float64(np.float32(0.5) / np.float32(448.0))
    assert not np.any(np.isnan(got))


def test_static_activation_quantization_clamps():
    got = rq.quantize_activations(np.array([[1000.0, 1.0]]), 128, "static", [1.0])
    np.testing.assert_array_equal(got, [[448.0, 1.0]])


def test_round_ties_to_even():
    # 17 lies halfway between the e4m3 values 16 and 18: ties to even gives 16.
    got = rq.quantize_activations(np.array([[17.0]]), 1, "static", [1.0])
    assert got[0, 0] == 16.0


def test_quantize_weights_round_trip_and_grouped_matmul():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 40, 24))
    q, s = rq.quantize_weights(w, (16, 16))
    assert s.shape == (3, 3, 2) and q.dtype == ml_dtypes.float8_e4m3fn
    deq = rq.dequantize_weights(q, s, (16, 16))
    assert np.max(np.abs(deq - w)) <= np.max(np.abs(w)) / 16  # 3 mantissa bits
    x = rng.standard_normal((7, 24))
    offsets = np.array([0, 2, 2, 7])
    got = ref.grouped_matmul(x, q, offsets, weight_quant=dict(block=(16, 16)), rhs_scales=s)
    xq = rq.quantize_activations(x, 16)
    want = np.concatenate([xq[0:2] @ deq[0].T, xq[2:7] @ deq[2].T])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_numpy_forms_match_ml_dtypes():
    """Without ml_dtypes (a GPU machine with torch and numpy only) the oracle decodes
    bytes with its table and rounds with numpy: the same values as ml_dtypes."""
    codes = np.arange(256, dtype=np.uint8)
    want = codes.view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    np.testing.assert_array_equal(rq.E4M3_TABLE, want)  # NaN where ml_dtypes has NaN
    rng = np.random.default_rng()
    finite = want[np.isfinite(want)]
    midpoints = (np.sort(np.unique(finite))[1:] + np.sort(np.unique(finite))[:-1]) / 2
    y = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-4, 3, 20000),
                        finite, midpoints, [0.0, -0.0, 448.0, -448.0]]).astype(np.float32)
    y = np.clip(y, -448, 448)
    np.testing.assert_array_equal(
        rq._round_e4m3(y), y.astype(ml_dtypes.float8_e4m3fn).astype(np.float64))
