"""Tests of the numpy reference against independent transcriptions and hand-worked cases."""

import math

import numpy as np
import pytest

from moe_mlir import dtypes
from moe_mlir import reference as ref


def _rng(seed):
    return np.random.default_rng(seed)


def _np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _topk(x, k):
    """torch.topk(x, k, dim=-1) (sorted) for inputs without ties."""
    idx = np.argsort(-x, axis=-1)[..., :k]
    return np.take_along_axis(x, idx, axis=-1), idx


# ----------------------------------------------------------------------------------------
# Ranking rule
# ----------------------------------------------------------------------------------------


def test_rank_order_ties_go_to_lower_index():
    assert ref.rank_order([1.0, 3.0, 3.0, 2.0, 3.0]).tolist() == [1, 2, 4, 3, 0]


def test_rank_order_nan_below_minus_inf():
    s = [np.nan, -np.inf, 0.0, np.nan, np.inf, -1.0]
    assert ref.rank_order(s).tolist() == [4, 2, 5, 1, 0, 3]


def test_rank_order_signed_zeros_tie():
    assert ref.rank_order([-0.0, 0.0, -0.0]).tolist() == [0, 1, 2]


def test_rank_order_rowwise():
    s = np.array([[0.0, 1.0, 1.0], [np.nan, 5.0, -np.inf]])
    assert ref.rank_order(s).tolist() == [[1, 2, 0], [1, 2, 0]]


# ----------------------------------------------------------------------------------------
# Routing vs model transcriptions
# ----------------------------------------------------------------------------------------


def _hf_mixtral_route(logits, top_k, norm):
    """transformers MixtralSparseMoeBlock / Qwen3MoeSparseMoeBlock / OlmoeSparseMoeBlock."""
    routing_weights = _np_softmax(logits)
    routing_weights, selected_experts = _topk(routing_weights, top_k)
    if norm:
        routing_weights = routing_weights / routing_weights.sum(axis=-1, keepdims=True)
    return routing_weights, selected_experts


@pytest.mark.parametrize("name", ["mixtral", "qwen3", "olmoe", "switch"])
def test_softmax_recipes_match_hf(name):
    logits = _rng(1).standard_normal((37, 16))
    recipe = ref.MODEL_RECIPES[name]
    w, ids = ref.route(logits, **recipe)
    ew, eids = _hf_mixtral_route(logits, recipe["k"], recipe.get("renormalize", False))
    assert ids.dtype == np.int32 and ids.shape == (37, recipe["k"])
    np.testing.assert_array_equal(ids, eids)
    np.testing.assert_allclose(w, ew, rtol=1e-14, atol=0)


def test_olmoe_weights_not_renormalized():
    w, _ = ref.route(_rng(2).standard_normal((5, 16)), **ref.MODEL_RECIPES["olmoe"])
    assert np.all(w.sum(axis=1) < 1.0 - 1e-6)


def _hf_deepseek_v3_route(logits, bias, top_k, n_group, topk_group, scale):
    """transformers DeepseekV3TopkRouter.get_topk_indices + DeepseekV3MoE.route_tokens_to_experts.

    HF masks the dropped groups with 0.0; the contract says -inf. The two agree whenever the
    kept scores are positive, which the test data guarantees, but -inf is used here as well.
    """
    T, E = logits.shape
    scores = _np_sigmoid(logits)
    scores_for_choice = scores + bias[None, :]
    group_scores = _topk(scores_for_choice.reshape(T, n_group, E // n_group), 2)[0].sum(axis=-1)
    group_idx = _topk(group_scores, topk_group)[1]
    group_mask = np.zeros_like(group_scores)
    np.put_along_axis(group_mask, group_idx, 1.0, axis=1)
    score_mask = np.repeat(group_mask[:, :, None], E // n_group, axis=2).reshape(T, E)
    tmp_scores = np.where(score_mask.astype(bool), scores_for_choice, -np.inf)
    topk_indices = _topk(tmp_scores, top_k)[1]
    topk_weights = np.take_along_axis(scores, topk_indices, axis=1)
    topk_weights = topk_weights / (topk_weights.sum(axis=-1, keepdims=True) + 1e-20)
    return topk_weights * scale, topk_indices


def test_deepseek_v3_matches_hf():
    rng = _rng(3)
    logits = rng.standard_normal((29, 64)) * 2.0
    bias = rng.standard_normal(64) * 0.5
    recipe = ref.MODEL_RECIPES["deepseek_v3"]
    assert "deepseek_v3" in ref.MODEL_REQUIRES_BIAS
    w, ids = ref.route(logits, bias, **recipe)
    ew, eids = _hf_deepseek_v3_route(logits, bias, 8, 8, 4, 2.5)
    np.testing.assert_array_equal(ids, eids)
    np.testing.assert_allclose(w, ew, rtol=1e-14, atol=0)
    np.testing.assert_allclose(w.sum(axis=1), 2.5, rtol=1e-14)


def test_deepseek_v3_bias_changes_choice_not_weights():
    rng = _rng(4)
    logits = rng.standard_normal((16, 64))
    bias = rng.standard_normal(64)
    recipe = ref.MODEL_RECIPES["deepseek_v3"]
    w0, ids0 = ref.route(logits, np.zeros(64), **recipe)
    w1, ids1 = ref.route(logits, bias, **recipe)
    assert not np.array_equal(ids0, ids1)
    # Weights are the (renormalized) sigmoids of the chosen logits, bias-free.
    p = np.take_along_axis(_np_sigmoid(logits), ids1.astype(np.int64), axis=1)
    np.testing.assert_allclose(w1, 2.5 * p / p.sum(axis=1, keepdims=True), rtol=1e-14)


def test_group_masking_uses_minus_inf_not_zero():
    # Kept groups hold only negative scores; masking with 0 would pick a dropped expert.
    logits = np.array([[-1.0, -2.0, -5.0, -6.0]])
    w, ids = ref.route(logits, k=2, scoring="none", n_group=2, topk_group=1)
    assert ids.tolist() == [[0, 1]]
    np.testing.assert_array_equal(w, [[-1.0, -2.0]])


def test_group_score_max_vs_sum_top2():
    # Group 0 = {10, 0}: max 10, sum 10. Group 1 = {6, 6}: max 6, sum 12.
    logits = np.array([[10.0, 0.0, 6.0, 6.0]])
    _, ids_sum = ref.route(logits, k=1, scoring="none", n_group=2, topk_group=1)
    _, ids_max = ref.route(logits, k=1, scoring="none", n_group=2, topk_group=1, group_score="max")
    assert ids_sum.tolist() == [[2]]
    assert ids_max.tolist() == [[0]]


def test_group_ties_go_to_lower_group():
    logits = np.array([[1.0, 2.0, 2.0, 1.0, 0.0, 3.0]])
    # Group scores: 3, 3, 3 -> keep groups 0 and 1.
    _, ids = ref.route(logits, k=4, scoring="none", n_group=3, topk_group=2)
    assert ids.tolist() == [[1, 2, 0, 3]]


def test_gpt_oss_matches_hf():
    """transformers GptOssTopKRouter: topk of the logits, then softmax over those values."""
    logits = _rng(5).standard_normal((21, 32))
    w, ids = ref.route(logits, **ref.MODEL_RECIPES["gpt_oss"])
    top_value, top_idx = _topk(logits, 4)
    np.testing.assert_array_equal(ids, top_idx)
    np.testing.assert_allclose(w, _np_softmax(top_value), rtol=1e-14)


def test_softmax_topk_selection_uses_logits_plus_bias():
    logits = np.array([[0.0, 1.0, 2.0]])
    w, ids = ref.route(logits, np.array([5.0, 0.0, 0.0]), k=2, scoring="softmax_topk")
    assert ids.tolist() == [[0, 2]]
    np.testing.assert_allclose(w, [[1 / (1 + math.e**2), math.e**2 / (1 + math.e**2)]], rtol=1e-14)


def test_route_ties_and_nan():
    _, ids = ref.route(np.zeros((2, 5)), k=3)
    assert ids.tolist() == [[0, 1, 2], [0, 1, 2]]
    w, ids = ref.route(np.array([[np.nan, 1.0, -np.inf, 0.0]]), k=4, scoring="none")
    assert ids.tolist() == [[1, 3, 2, 0]]


def test_route_renorm_epsilon_and_scale():
    logits = np.array([[0.0, 0.0, -np.inf]])
    w, ids = ref.route(logits, k=2, scoring="sigmoid", renormalize=True, renorm_epsilon=1.0, scale=3.0)
    assert ids.tolist() == [[0, 1]]
    np.testing.assert_allclose(w, [[3.0 * 0.5 / 2.0, 3.0 * 0.5 / 2.0]], rtol=1e-15)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(k=0),
        dict(k=9),
        dict(k=2, n_group=3),
        dict(k=2, n_group=2, topk_group=3),
        dict(k=5, n_group=2, topk_group=1),
        dict(k=2, scoring="softmax2"),
        dict(k=2, second_expert_policy="random"),
        dict(k=3, renormalize=True, second_expert_policy="random"),
        dict(k=1, n_group=8, topk_group=1),
    ],
)
def test_route_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ref.route(np.zeros((2, 8)), **kwargs)


def test_route_rejects_bad_bias_shape():
    with pytest.raises(ValueError, match="bias"):
        ref.route(np.zeros((2, 8)), np.zeros(7), k=2)


# ----------------------------------------------------------------------------------------
# GShard random second expert
# ----------------------------------------------------------------------------------------


def test_gshard_uniform_is_splitmix64():
    # SplitMix64 seeded with 0 yields 0xE220A8397B1DCDAF then 0x6E789E6AA1B965F4.
    assert ref.gshard_uniform(0, 0) == 0xE220A8 / 2**24
    assert ref.gshard_uniform(0, 1) == 0x6E789E / 2**24


def test_gshard_uniform_range_and_f32_exact():
    u = np.array([ref.gshard_uniform(s, t) for s in (0, 7, 2**63 + 5) for t in range(200)])
    assert np.all((u >= 0) & (u < 1))
    np.testing.assert_array_equal(u.astype(np.float32).astype(np.float64), u)
    assert len(np.unique(u)) > 590


def test_gshard_uniform_matches_uint64_numpy():
    seed, t = np.uint64(12345), np.arange(50, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seed + (t + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    expected = (z >> np.uint64(40)).astype(np.float64) / 2**24
    np.testing.assert_array_equal([ref.gshard_uniform(12345, i) for i in range(50)], expected)


def test_random_second_expert_policy():
    logits = _rng(6).standard_normal((64, 8))
    kw = dict(k=2, renormalize=True, scale=2.0)
    w_all, ids_all = ref.route(logits, **kw)
    w, ids = ref.route(logits, **kw, second_expert_policy="random", seed=99)
    u = np.array([ref.gshard_uniform(99, t) for t in range(64)])
    keep = u < 2 * (w_all[:, 1] / 2.0)
    assert 0 < keep.sum() < 64
    np.testing.assert_array_equal(ids[:, 0], ids_all[:, 0])
    np.testing.assert_array_equal(w[:, 0], w_all[:, 0])
    np.testing.assert_array_equal(ids[:, 1], np.where(keep, ids_all[:, 1], -1))
    np.testing.assert_array_equal(w[:, 1], np.where(keep, w_all[:, 1], 0.0))


# ----------------------------------------------------------------------------------------
# Expert choice
# ----------------------------------------------------------------------------------------


def test_expert_choice_hand_example():
    # p rows: [.5 .5], [.75 .25], [.2 .8]
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, math.log(4.0)]])
    w, rows, offsets = ref.expert_choice(logits, capacity=2)
    assert rows.dtype == np.int32 and offsets.dtype == np.int32
    assert rows.tolist() == [0, 2, 1, 5]
    assert offsets.tolist() == [0, 2, 4]
    np.testing.assert_allclose(w, [[0.5, 0.5], [0.75, 0.0], [0.0, 0.8]], rtol=1e-15)


def test_expert_choice_capacity_clamped_and_ties():
    w, rows, offsets = ref.expert_choice(np.zeros((3, 2)), capacity=5)
    assert rows.tolist() == [0, 2, 4, 1, 3, 5]
    assert offsets.tolist() == [0, 3, 6]
    _, rows, _ = ref.expert_choice(np.zeros((4, 2)), capacity=2)
    assert rows.tolist() == [0, 2, 1, 3]


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
    rng = _rng(7)
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
    h = _rng(8).standard_normal((4, 6))
    gate, up = h[:, :3], h[:, 3:]
    inter = np.empty_like(h)
    inter[:, 0::2], inter[:, 1::2] = gate, up
    np.testing.assert_array_equal(ref.glu(inter, act, "interleaved"), ref.glu(h, act, "concatenated"))
    assert not np.allclose(ref.glu(inter, act, "concatenated"), ref.glu(h, act, "concatenated"))


def test_grouped_matmul_ranges_and_layouts():
    rng = _rng(9)
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
    rng = _rng(10)
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


# ----------------------------------------------------------------------------------------
# Training-side values
# ----------------------------------------------------------------------------------------


def test_aux_loss_by_hand():
    logits = np.zeros((2, 2))
    assert ref.aux_loss(logits, [[0], [0]]) == pytest.approx(1.0, rel=1e-15)
    assert ref.aux_loss(logits, [[0], [1]]) == pytest.approx(0.5 * 2 * 0.5 + 0.5 * 2 * 0.5, rel=1e-15)
    # p rows [.75 .25], [.25 .75] -> P = [.5 .5]; f = [1/2, 0] with the -1 not counted.
    logits = np.array([[math.log(3.0), 0.0], [0.0, math.log(3.0)]])
    assert ref.aux_loss(logits, [[0], [-1]]) == pytest.approx(2 * 0.5 * 0.5, rel=1e-15)


def test_z_loss_by_hand_and_stable():
    assert ref.z_loss([[0.0, 0.0]]) == pytest.approx(math.log(2.0) ** 2, rel=1e-15)
    z = ref.z_loss([[1000.0, 1000.0], [0.0, math.log(3.0)]])
    assert z == pytest.approx(((1000 + math.log(2)) ** 2 + math.log(4) ** 2) / 2, rel=1e-15)


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
    rng = _rng(11)
    T, H, E, I, Is = 9, 6, 4, 5, 3
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    sw13 = rng.standard_normal((2 * Is, H))
    sw2 = rng.standard_normal((H, Is))
    sgate = rng.standard_normal((1, H))
    y = ref.layer(x, router, w13, w2, shared_w13=sw13, shared_w2=sw2, shared_gate=sgate,
                  **ref.MODEL_RECIPES["mixtral"])
    expected = np.zeros((T, H))
    for t in range(T):
        p = _np_softmax(x[t] @ router.T)
        top = np.argsort(-p)[:2]
        for e in top:
            expected[t] += p[e] / p[top].sum() * _silu_expert(x[t], w13[e], w2[e])
        g = 1 / (1 + np.exp(-(sgate[0] @ x[t])))
        expected[t] += g * _silu_expert(x[t], sw13, sw2)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_gpt_oss_vs_dense_loop():
    rng = _rng(12)
    T, H, E, I = 7, 8, 8, 4
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    x *= 3.0  # large enough that the swiglu clamp is exercised
    y = ref.layer(x, router, w13, w2, **ref.MODEL_RECIPES["gpt_oss"], **ref.MODEL_FFN["gpt_oss"])
    expected = np.zeros((T, H))
    clamped = False
    for t in range(T):
        logits = router @ x[t]
        top = np.argsort(-logits)[:4]
        w = _np_softmax(logits[top])
        for e, we in zip(top, w):
            clamped |= bool(np.any(np.abs(w13[e] @ x[t]) > 7.0))
            expected[t] += we * _gpt_oss_expert(x[t], w13[e], w2[e])
    assert clamped
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_with_capacity_drops_like_gshard_counters():
    rng = _rng(13)
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
    rng = _rng(14)
    T, H, E, I = 6, 8, 16, 3
    x, router, w13, w2 = _weights(rng, T, H, E, I)
    bias = rng.standard_normal(E) * 0.1
    recipe = dict(ref.MODEL_RECIPES["deepseek_v3"], n_group=4, topk_group=2, k=4)
    y, weights, ids = ref.layer_with_routing(x, router, w13, w2, bias=bias, **recipe)
    ew, eids = _hf_deepseek_v3_route(x @ router.T, bias, 4, 4, 2, 2.5)
    np.testing.assert_array_equal(ids, eids)
    expected = np.zeros((T, H))
    for t in range(T):
        for e, we in zip(eids[t], ew[t]):
            expected[t] += we * _silu_expert(x[t], w13[e], w2[e])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layer_random_policy_drops_contribution():
    rng = _rng(15)
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
    rng = _rng(16)
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
    x = _rng(17).standard_normal(1000).astype(np.float32)
    r = dtypes.round_to_bf16(x)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(dtypes.round_to_bf16(r), r)
    # Within half a bf16 ulp (2^-8 relative to the exponent's leading bit).
    assert np.all(np.abs(r - x) <= np.abs(x) * 2.0**-8)
    assert np.any(r != x)
