"""The oracle of the weight-only formats (mxfp4, int4, int8): packing and exact values."""

import math

import ml_dtypes
import numpy as np
import pytest

from moe_mlir import reference_lowbit as lb


@pytest.fixture
def rng():
    """Fresh random inputs on every run; the seed is printed so a failure can be replayed."""
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"seed = {seed}")
    return np.random.default_rng(seed)


def test_nibble_order_low_nibble_is_even_k():
    packed = np.array([[[0x21, 0xF0]]], dtype=np.uint8)
    assert lb.unpack_nibbles(packed).tolist() == [[[1, 2, 0, 15]]]
    assert lb.pack_nibbles(np.array([1, 2, 0, 15])).tolist() == [0x21, 0xF0]


def test_pack_unpack_round_trip(rng):
    codes = rng.integers(0, 16, size=(3, 5, 64))
    assert np.array_equal(lb.unpack_nibbles(lb.pack_nibbles(codes)), codes)


def test_pack_refuses_odd_k_and_out_of_range():
    with pytest.raises(ValueError, match="odd"):
        lb.pack_nibbles(np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        lb.pack_nibbles(np.array([0, 16]))


def test_e2m1_values_match_ml_dtypes():
    want = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn)
    # ml_dtypes reads one code per byte (the low nibble).
    got = lb.e2m1_values(np.arange(16))
    assert np.array_equal(got, want.astype(np.float64))
    assert np.array_equal(np.signbit(got), np.arange(16) >= 8)  # -0.0 for code 8


def test_e8m0_extremes():
    s = np.array([0, 1, 127, 128, 254, 255], dtype=np.uint8)
    got = lb.e8m0_values(s)
    assert got[0] == math.ldexp(1.0, -127)
    assert got[1] == math.ldexp(1.0, -126)
    assert got[2] == 1.0 and got[3] == 2.0
    assert got[4] == math.ldexp(1.0, 127)
    assert math.isnan(got[5])
    want = s.view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    assert np.array_equal(got[:5], want[:5])


def test_mxfp4_dequantize_and_gpt_oss_layout(rng):
    E, N, K = 2, 3, 64
    codes = rng.integers(0, 16, size=(E, N, K))
    scales = rng.integers(100, 140, size=(E, N, K // 32)).astype(np.uint8)
    blocks = lb.pack_nibbles(codes)
    w = lb.dequantize_mxfp4(blocks, scales)
    e, n, k = 1, 2, 37
    assert w[e, n, k] == lb.E2M1_VALUES[codes[e, n, k]] * 2.0 ** (int(scales[e, n, 1]) - 127)
    gpt_oss = blocks.reshape(E, N, K // 32, 16)
    assert np.array_equal(lb.dequantize_mxfp4(gpt_oss, scales), w)
    with pytest.raises(ValueError, match="scales"):
        lb.dequantize_mxfp4(blocks, scales[:, :, :1])


def test_int4_zero_points_and_symmetric(rng):
    E, N, K, g = 2, 3, 96, 64  # K = 1.5 groups: the last group is partial
    codes = rng.integers(0, 16, size=(E, N, K))
    scales = rng.standard_normal((E, N, 2)).astype(np.float32)
    zeros = rng.integers(0, 16, size=(E, N, 2))
    packed = lb.pack_nibbles(codes)
    w = lb.dequantize_int4(packed, scales, zeros, group=g)
    assert w[1, 2, 70] == (codes[1, 2, 70] - zeros[1, 2, 1]) * np.float64(scales[1, 2, 1])
    sym = lb.dequantize_int4(packed, scales, None, group=g)
    assert sym[0, 1, 5] == (codes[0, 1, 5] - 8) * np.float64(scales[0, 1, 0])
    zero_scale = np.zeros_like(scales)
    assert not lb.dequantize_int4(packed, zero_scale, zeros, group=g).any()
    with pytest.raises(ValueError, match="group size"):
        lb.dequantize_int4(packed, scales, zeros, group=48)
    with pytest.raises(ValueError, match="zero points must be in"):
        lb.dequantize_int4(packed, scales, zeros + 16, group=g)


def test_int8_per_channel(rng):
    q = rng.integers(-127, 128, size=(2, 4, 10)).astype(np.int8)
    s = rng.random((2, 4, 1)).astype(np.float32)
    w = lb.dequantize_int8(q, s)
    assert w[1, 3, 9] == int(q[1, 3, 9]) * np.float64(s[1, 3, 0])
    q[0, 0, 0] = -128
    with pytest.raises(ValueError, match="-127"):
        lb.dequantize_int8(q, s)
