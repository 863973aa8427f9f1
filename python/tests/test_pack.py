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
