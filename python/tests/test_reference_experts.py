"""Tests of the numpy reference's dispatch, permute, GLU, grouped matmul and combine against
hand-worked cases."""

import math

import numpy as np
import pytest
from reference_transcriptions import seeded

from moe_mlir import reference as ref

# ----------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------

# Selections (flat index: expert): 0:0 1:1 2:0 3:2 4:1 5:0 6:0 7:1
IDS = np.array([[0, 1], [0, 2], [1, 0], [0, 1]])
WEIGHTS = np.array([[0.6, 0.4], [0.7, 0.3], [0.5, 0.5], [0.9, 0.1]])


def test_dispatch_unlimited_is_stable():
    rows, offsets = ref.dispatch(IDS, num_experts=3)
    assert rows.dtype == np.int32 and offsets.dtype == np.int32
    assert rows.tolist() == [0, 2, 5, 6, 1, 4, 7, 3]
    assert offsets.tolist() == [0, 4, 7, 8]


def test_dispatch_position_policy():
    rows, offsets = ref.dispatch(IDS, num_experts=3, capacity=2)
    # Expert 0 sees first choices of t0, t1, t3 before t2's second choice: keeps t0, t1.
    # Expert 1: t2's first choice, then t0's second choice.
    assert rows.tolist() == [0, 2, 1, 4, 3, -1, -1, -1]
    assert offsets.tolist() == [0, 2, 4, 5]


def test_dispatch_score_policy():
    rows, offsets = ref.dispatch(IDS, WEIGHTS, num_experts=3, capacity=2, drop_policy="score")
    assert rows.tolist() == [2, 6, 1, 4, 3, -1, -1, -1]
    assert offsets.tolist() == [0, 2, 4, 5]


def test_dispatch_score_ties_lower_token_then_slot():
    ids = np.array([[1, 0], [0, 0], [0, 1]])
    w = np.full((3, 2), 0.5)
    rows, offsets = ref.dispatch(ids, w, num_experts=2, capacity=2, drop_policy="score")
    # Expert 0 candidates: s1 (t0), s2 (t1 j0), s3 (t1 j1), s4 (t2). Keep s1, s2.
    assert rows[: offsets[-1]].tolist() == [1, 2, 0, 5]
    assert offsets.tolist() == [0, 2, 4]


def test_dispatch_capacity_factor():
    # ceil(0.75 * 4 * 2 / 3) = 2, the same as capacity=2.
    a = ref.dispatch(IDS, num_experts=3, capacity_factor=0.75)
    b = ref.dispatch(IDS, num_experts=3, capacity=2)
    assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
    # ceil(0.8 * 8 / 3) = ceil(2.133) = 3.
    rows, offsets = ref.dispatch(IDS, num_experts=3, capacity_factor=0.8)
    assert offsets.tolist() == [0, 3, 6, 7]
    assert rows.tolist() == [0, 2, 6, 1, 4, 7, 3, -1]


def test_dispatch_expert_map_and_invalid_ids():
    ids = np.array([[0, 1], [0, 2], [1, 0], [0, -1]])
    rows, offsets = ref.dispatch(ids, num_experts=3, expert_map=[1, -1, 0], num_local_experts=2)
    assert rows.tolist() == [3, 0, 2, 5, 6, -1, -1, -1]
    assert offsets.tolist() == [0, 1, 5]
    rows, offsets = ref.dispatch(np.array([[3, 0]]), num_experts=3)
    assert rows.tolist() == [1, -1] and offsets.tolist() == [0, 1, 1, 1]


def test_dispatch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="weights"):
        ref.dispatch(IDS, num_experts=3, capacity=1, drop_policy="score")
    with pytest.raises(ValueError):
        ref.dispatch(IDS, num_experts=3, capacity=1, capacity_factor=1.0)
    with pytest.raises(ValueError, match="expert_map"):
        ref.dispatch(IDS, num_experts=3, expert_map=[0, 1, 2], num_local_experts=2)


# ----------------------------------------------------------------------------------------
# Permute, GLU, grouped matmul, combine
# ----------------------------------------------------------------------------------------


def test_permute_combine_round_trip():
    rng = seeded(7)
    x = rng.standard_normal((6, 5))
    rows = rng.permutation(6).astype(np.int32)
    xs = ref.permute(x, rows, 1)
    np.testing.assert_array_equal(xs, x[rows])
    np.testing.assert_array_equal(ref.combine(xs, rows, np.ones((6, 1))), x)


def test_permute_invalid_rows_are_zero_and_combine_skips_them():
    x = np.arange(6.0).reshape(3, 2) + 1.0
    rows = np.array([5, -1, 0, 6, 2])
    xs = ref.permute(x, rows, 2)
    np.testing.assert_array_equal(xs, [[5, 6], [0, 0], [1, 2], [0, 0], [3, 4]])
    w = np.array([[1.0, 10.0], [100.0, 1000.0], [1e4, 1e5]])
    out = ref.combine(xs, rows, w)
    # Rows of selections: s0 -> r2, s2 -> r4, s5 -> r0; s1, s3, s4 have none.
    np.testing.assert_array_equal(out, [[1, 2], [300, 400], [5e5, 6e5]])


def test_combine_rejects_duplicate_rows():
    with pytest.raises(ValueError, match="twice"):
        ref.combine(np.zeros((2, 1)), np.array([0, 0]), np.ones((1, 1)))


def test_glu_activations_by_hand():
    h = np.array([[1.0, -2.0, 3.0, 0.5]])  # gate [1, -2], up [3, 0.5]
    sig = lambda v: 1 / (1 + math.exp(-v))
    np.testing.assert_allclose(ref.glu(h, "silu"), [[1 * sig(1) * 3, -2 * sig(-2) * 0.5]], rtol=1e-15)
    np.testing.assert_allclose(ref.glu(h, "relu"), [[3.0, 0.0]], rtol=0)
    np.testing.assert_allclose(ref.glu(h, "gelu")[0, 0], 0.8413447460685429 * 3, rtol=1e-14)
    np.testing.assert_allclose(ref.glu(h, "gelu_tanh")[0, 0], 0.8411919906082768 * 3, rtol=1e-14)
    clamp = np.array([[10.0, -10.0]])
    np.testing.assert_allclose(
        ref.glu(clamp, "swiglu_oai"), [[7 * sig(1.702 * 7) * (-7 + 1)]], rtol=1e-15
    )
    np.testing.assert_allclose(
        ref.glu(clamp, "swiglu_oai", alpha=1.0, limit=20.0), [[10 * sig(10) * (-10 + 1)]], rtol=1e-15
    )


@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_glu_interleaved_layout(act):
    h = seeded(8).standard_normal((4, 6))
    gate, up = h[:, :3], h[:, 3:]
    inter = np.empty_like(h)
    inter[:, 0::2], inter[:, 1::2] = gate, up
    np.testing.assert_array_equal(ref.glu(inter, act, "interleaved"), ref.glu(h, act, "concatenated"))
    assert not np.allclose(ref.glu(inter, act, "concatenated"), ref.glu(h, act, "concatenated"))


def test_grouped_matmul_ranges_and_layouts():
    rng = seeded(9)
    lhs = rng.standard_normal((7, 4))
    rhs = rng.standard_normal((3, 5, 4))
    offsets = np.array([1, 3, 3, 6])  # row 0 and row 6 are in no range; expert 1 is empty
    out = ref.grouped_matmul(lhs, rhs, offsets)
    expected = np.zeros((7, 5))
    expected[1:3] = lhs[1:3] @ rhs[0].T
    expected[3:6] = lhs[3:6] @ rhs[2].T
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    assert np.all(out[0] == 0) and np.all(out[6] == 0)
    out_kn = ref.grouped_matmul(lhs, np.transpose(rhs, (0, 2, 1)), offsets, rhs_layout="kn")
    np.testing.assert_array_equal(out_kn, out)


def test_grouped_matmul_fused_equals_unfused():
    rng = seeded(10)
    T, k, H, I, E = 5, 2, 4, 3, 3
    x = rng.standard_normal((T, H))
    w13 = rng.standard_normal((E, 2 * I, H))
    weights, ids = ref.route(rng.standard_normal((T, E)), k=k, renormalize=True)
    rows, offsets = ref.dispatch(ids, num_experts=E, capacity=3)
    assert offsets[-1] < T * k  # some selections dropped, so rows has -1 padding
    unfused = ref.glu(ref.grouped_matmul(ref.permute(x, rows, k), w13, offsets), "gelu_tanh")
    valid = rows >= 0
    unfused = np.where(valid[:, None], unfused * weights.reshape(-1)[np.where(valid, rows, 0)][:, None], 0)
    fused = ref.grouped_matmul(
        x, w13, offsets, rows=rows, gather=True, k=k, row_scale=weights, epilogue="gelu_tanh"
    )
    assert fused.shape == (T * k, I)
    np.testing.assert_allclose(fused, unfused, rtol=1e-14, atol=1e-15)
    assert np.abs(fused[: offsets[-1]]).min() > 0


def test_grouped_matmul_rejects_bad_offsets():
    with pytest.raises(ValueError, match="offsets"):
        ref.grouped_matmul(np.zeros((3, 2)), np.zeros((2, 4, 2)), [0, 2, 4])
    with pytest.raises(ValueError, match="offsets"):
        ref.grouped_matmul(np.zeros((3, 2)), np.zeros((2, 4, 2)), [0, 2, 1])
