"""Tests of the numpy reference's routing (ranking, model recipes against their Hugging Face
transcriptions, GShard's random second expert, expert choice) and training-side values."""

import math

import numpy as np
import pytest
from reference_transcriptions import hf_deepseek_v3_route, np_sigmoid, np_softmax, seeded, topk

from moe_mlir import reference as ref

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
    routing_weights = np_softmax(logits)
    routing_weights, selected_experts = topk(routing_weights, top_k)
    if norm:
        routing_weights = routing_weights / routing_weights.sum(axis=-1, keepdims=True)
    return routing_weights, selected_experts


@pytest.mark.parametrize("name", ["mixtral", "qwen3", "olmoe", "switch"])
def test_softmax_recipes_match_hf(name):
    logits = seeded(1).standard_normal((37, 16))
    recipe = ref.MODEL_RECIPES[name]
    w, ids = ref.route(logits, **recipe)
    ew, eids = _hf_mixtral_route(logits, recipe["k"], recipe.get("renormalize", False))
    assert ids.dtype == np.int32 and ids.shape == (37, recipe["k"])
    np.testing.assert_array_equal(ids, eids)
    np.testing.assert_allclose(w, ew, rtol=1e-14, atol=0)


def test_olmoe_weights_not_renormalized():
    w, _ = ref.route(seeded(2).standard_normal((5, 16)), **ref.MODEL_RECIPES["olmoe"])
    assert np.all(w.sum(axis=1) < 1.0 - 1e-6)


def test_deepseek_v3_matches_hf():
    rng = seeded(3)
    logits = rng.standard_normal((29, 64)) * 2.0
    bias = rng.standard_normal(64) * 0.5
    recipe = ref.MODEL_RECIPES["deepseek_v3"]
    assert "deepseek_v3" in ref.MODEL_REQUIRES_BIAS
    w, ids = ref.route(logits, bias, **recipe)
    ew, eids = hf_deepseek_v3_route(logits, bias, 8, 8, 4, 2.5)
    np.testing.assert_array_equal(ids, eids)
    np.testing.assert_allclose(w, ew, rtol=1e-14, atol=0)
    np.testing.assert_allclose(w.sum(axis=1), 2.5, rtol=1e-14)


def test_deepseek_v3_bias_changes_choice_not_weights():
    rng = seeded(4)
    logits = rng.standard_normal((16, 64))
    bias = rng.standard_normal(64)
    recipe = ref.MODEL_RECIPES["deepseek_v3"]
    w0, ids0 = ref.route(logits, np.zeros(64), **recipe)
    w1, ids1 = ref.route(logits, bias, **recipe)
    assert not np.array_equal(ids0, ids1)
    # Weights are the (renormalized) sigmoids of the chosen logits, bias-free.
    p = np.take_along_axis(np_sigmoid(logits), ids1.astype(np.int64), axis=1)
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
    logits = seeded(5).standard_normal((21, 32))
    w, ids = ref.route(logits, **ref.MODEL_RECIPES["gpt_oss"])
    top_value, top_idx = topk(logits, 4)
    np.testing.assert_array_equal(ids, top_idx)
    np.testing.assert_allclose(w, np_softmax(top_value), rtol=1e-14)


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
    logits = seeded(6).standard_normal((64, 8))
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
