"""The weight layouts of moe_mlir.pack against their element formulas."""

import numpy as np
import pytest

from moe_mlir import pack

#: Where Linear element (e, n, k) lands in each packed layout, P = 16.
ELEMENT_INDEX = {
    "kn": lambda e, n, k: (e, k, n),
    "panels": lambda e, n, k: (e, n // 16, k, n % 16),
    "panels_vnni": lambda e, n, k: (e, n // 16, k // 2, 2 * (n % 16) + k % 2),
}


@pytest.mark.parametrize("layout", sorted(ELEMENT_INDEX))
def test_every_element_lands_where_the_layout_says(layout):
    E, N, K = 3, 48, 10
    w = np.random.default_rng(7).standard_normal((E, N, K)).astype(np.float32)
    packed = pack.to_layout(w, layout)
    assert packed.shape == pack.weight_shape(E, N, K, layout)
    for e in range(E):
        for n in range(N):
            for k in range(K):
                assert packed[ELEMENT_INDEX[layout](e, n, k)] == w[e, n, k]
    np.testing.assert_array_equal(pack.from_layout(packed, layout), w)


def test_bf16_bits_pack_like_floats():
    bits = np.arange(2 * 32 * 4, dtype=np.uint16).reshape(2, 32, 4)
    packed = pack.to_layout(bits, "panels_vnni")
    assert packed.dtype == np.uint16
    np.testing.assert_array_equal(pack.from_layout(packed, "panels_vnni"), bits)


@pytest.mark.parametrize("N,K,message", [(40, 8, "multiple of the panel width"),
                                          (32, 9, "K = 9 to be even")])
def test_shapes_the_vnni_layout_cannot_hold(N, K, message):
    with pytest.raises(ValueError, match=message):
        pack.weight_shape(1, N, K, "panels_vnni")


@pytest.mark.parametrize("N,P", [(128, 64), (96, 32), (48, 16)])
def test_quantized_panels_hold_the_stored_bytes(N, P):
    """Weights, scales and zero points of the weight-only formats go into panels of the
    widest width that divides N, element [e, n // P, j, n % P] = stored [e, n, j] (for
    4-bit codes in 64-wide panels, their nibbles in the word order: below); FP8's block
    scales stay as they are."""
    rng = np.random.default_rng(0)
    E, Ks, G = 3, 20, 4
    w = rng.integers(-128, 128, size=(E, N, Ks)).astype(np.int8)
    s = rng.random((E, N, G)).astype(np.float32)
    z = rng.integers(0, 16, size=(E, N, G)).astype(np.int8)
    assert pack.quantized_panel_width(N) == P
    wp, sp, zp = pack.quantized_to_panels("int4", w, s, z)
    assert wp.shape == (E, N // P, Ks, P) and sp.shape == zp.shape == (E, N // P, G, P)
    e, n, j, g = 2, N - 3, Ks - 1, G - 2
    if P == 64:
        assert pack.nibbles_from_word_order(wp)[e, n // P, j, n % P] == w[e, n, j]
    else:
        assert wp[e, n // P, j, n % P] == w[e, n, j]
    assert np.array_equal(pack.quantized_from_panels("int4", wp), w)
    assert sp[e, n // P, g, n % P] == s[e, n, g] and zp[e, n // P, g, n % P] == z[e, n, g]
    w8, _, _ = pack.quantized_to_panels("int8", w, s)
    assert w8[e, n // P, j, n % P] == w[e, n, j]
    fp8, block_scales, none = pack.quantized_to_panels("fp8_e4m3", w.view(np.uint8), s)
    assert fp8.shape == (E, N // P, Ks, P) and block_scales is s and none is None


def test_word_order_puts_each_block_of_16_columns_in_its_own_nibble():
    """In a 64-wide panel of 4-bit codes, column 16 b + d's weight k = 2j + h is nibble
    b % 2 of byte 4 d + 2 h + b // 2 of row j: read as little-endian words, word 2 d + h
    holds weight k of columns d, 16 + d, 32 + d, 48 + d in bits 0-3, 4-7, 8-11, 12-15."""
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 16, size=(2, 128, 6, 2))  # [E, N, j, h]
    stored = (codes[..., 0] | codes[..., 1] << 4).astype(np.uint8).view(np.int8)
    wp, _, _ = pack.quantized_to_panels("mxfp4", stored, np.zeros((2, 128, 1), np.uint8))
    assert wp.shape == (2, 2, 6, 64)
    words = wp.view(np.uint8).view("<u2")  # [E, N / 64, j, 32]
    for e, n, j, h in [(0, 0, 0, 0), (1, 127, 5, 1), (0, 77, 3, 1), (1, 40, 2, 0)]:
        b, d = (n % 64) // 16, n % 16
        byte = wp.view(np.uint8)[e, n // 64, j, 4 * d + 2 * h + b // 2]
        assert (byte >> 4 * (b % 2)) & 15 == codes[e, n, j, h]
        assert (words[e, n // 64, j, 2 * d + h] >> 4 * b) & 15 == codes[e, n, j, h]
    assert np.array_equal(pack.quantized_from_panels("mxfp4", wp), stored)
    # 32-wide panels keep byte c for column c.
    w32, _, _ = pack.quantized_to_panels("mxfp4", stored, np.zeros((2, 128, 1), np.uint8),
                                         panel_width=32)
    assert np.array_equal(pack.from_layout(w32, "panels"), stored)
    with pytest.raises(ValueError, match="64 bytes"):
        pack.nibbles_to_word_order(np.zeros((2, 32), np.int8))


def test_quantized_panels_refuse_what_they_cannot_hold():
    w = np.zeros((2, 40, 8), np.int8)
    with pytest.raises(ValueError, match="N = 40 to be a multiple of 16"):
        pack.quantized_to_panels("mxfp4", w, np.zeros((2, 40, 1), np.uint8))
    w = np.zeros((2, 32, 8), np.int8)
    with pytest.raises(ValueError, match=r"scales must be \[E, N, G\]"):
        pack.quantized_to_panels("int8", w, np.zeros((2, 16, 1), np.float32))
    with pytest.raises(ValueError, match="unknown quantized format"):
        pack.quantized_to_panels("int2", w, np.zeros((2, 32, 1), np.float32))
