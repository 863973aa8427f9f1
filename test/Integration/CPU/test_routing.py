"""moe.route, moe.expert_choice, moe.aux_loss and moe.z_loss compiled for the CPU."""

import numpy as np
import pytest

from harness import assert_close, assert_equal, call, draw_robust, normal, routing_is_robust
from moe_mlir import irgen
from moe_mlir import reference as ref

# (id, T, E, k, with bias, routing attributes)
ROUTE_CASES = [
    ("softmax", 16, 8, 2, False, dict()),
    ("softmax_renormalize", 16, 8, 2, False, dict(renormalize=True)),
    ("softmax_bias", 16, 8, 3, True, dict()),
    ("sigmoid", 16, 8, 2, False, dict(scoring="sigmoid")),
    ("sigmoid_renormalize", 16, 8, 4, False, dict(scoring="sigmoid", renormalize=True)),
    ("sigmoid_bias_renormalize", 16, 8, 2, True, dict(scoring="sigmoid", renormalize=True)),
    ("softmax_topk", 16, 16, 4, False, dict(scoring="softmax_topk")),
    ("softmax_topk_bias", 16, 8, 2, True, dict(scoring="softmax_topk")),
    ("none", 16, 8, 3, False, dict(scoring="none")),
    ("none_bias_scale", 16, 8, 2, True, dict(scoring="none", scale=-1.5)),
    ("renorm_epsilon", 16, 8, 2, False, dict(renormalize=True, renorm_epsilon=0.25)),
    ("renorm_epsilon_tiny_scale", 16, 8, 4, True,
     dict(scoring="sigmoid", renormalize=True, renorm_epsilon=1e-20, scale=2.5)),
    ("scale", 16, 8, 2, False, dict(scale=0.375)),
    ("groups_sum_top2", 16, 16, 4, True,
     dict(scoring="sigmoid", n_group=4, topk_group=2, group_score="sum_top2")),
    ("groups_max", 16, 16, 3, False, dict(n_group=4, topk_group=2, group_score="max")),
    ("groups_max_fill_kept_groups", 16, 16, 4, False,
     dict(scoring="sigmoid", n_group=8, topk_group=2, group_score="max", renormalize=True)),
    ("groups_negative_scores", 16, 8, 3, False,
     dict(scoring="none", n_group=4, topk_group=2)),
    ("deepseek_v3", 24, 32, 8, True, dict(ref.MODEL_RECIPES["deepseek_v3"], k=None)),
    ("gshard_seed0", 32, 8, 2, False,
     dict(renormalize=True, second_expert_policy="random", seed=0)),
    ("gshard_seed7_scale", 32, 8, 2, False,
     dict(renormalize=True, second_expert_policy="random", seed=7, scale=2.0)),
    ("gshard_big_seed", 32, 8, 2, True,
     dict(renormalize=True, second_expert_policy="random", seed=(1 << 40) + 12345)),
    ("k_equals_E", 8, 4, 4, False, dict(renormalize=True)),
    ("k_equals_E_sigmoid_bias", 8, 4, 4, True, dict(scoring="sigmoid")),
    ("one_token", 1, 8, 2, False, dict(renormalize=True)),
    ("one_token_deepseek", 1, 32, 8, True, dict(ref.MODEL_RECIPES["deepseek_v3"], k=None)),
    ("odd_sizes", 13, 5, 3, True, dict(scoring="sigmoid", renormalize=True)),
    ("one_expert", 8, 1, 1, False, dict()),
]


def _route_attrs(attrs):
    return {name: value for name, value in attrs.items() if value is not None}


def _logits(rng, T, E, attrs):
    logits = normal(rng, (T, E))
    if attrs.get("n_group", 1) > 1 and attrs.get("scoring") == "none":
        # All scores negative: masking a group to 0 instead of -inf would change the ids.
        logits = logits - np.float32(5.0)
    return logits


def _run_route(compile_ir, rng, T, E, k, with_bias, attrs, dynamic=False, tokens=None):
    attrs = _route_attrs(attrs)
    module = compile_ir(irgen.route_ir(None if dynamic else T, E, k, bias=with_bias, **attrs))
    for t in tokens or [T]:
        def draw():
            bias = normal(rng, (E,), scale=0.5) if with_bias else None
            return _logits(rng, t, E, attrs), bias

        logits, bias = draw_robust(
            rng, draw, lambda xs: routing_is_robust(rng, xs[0], xs[1], dict(k=k, **attrs)),
            "route")
        inputs = [logits] + ([bias] if with_bias else [])
        w, ids = call(module, "route", inputs, [((t, k), "f32"), ((t, k), "i32")])
        want_w, want_ids = ref.route(logits, bias, k=k, **attrs)
        what = f"route T={t} E={E} k={k} bias={with_bias} {attrs}"
        assert_equal(ids, want_ids, f"{what}: ids")
        assert_close(w, want_w, "f32", f"{what}: weights")


@pytest.mark.parametrize("case", ROUTE_CASES, ids=[c[0] for c in ROUTE_CASES])
def test_route(compile_ir, rng, case):
    _, T, E, k, with_bias, attrs = case
    _run_route(compile_ir, rng, T, E, k, with_bias, attrs)


@pytest.mark.parametrize("case", [c for c in ROUTE_CASES if c[0] in (
    "softmax_renormalize", "sigmoid_bias_renormalize", "softmax_topk", "deepseek_v3",
    "gshard_seed7_scale", "groups_max")], ids=lambda c: c[0])
def test_route_dynamic_tokens(compile_ir, rng, case):
    """One module with a `?` token dimension, run with several token counts."""
    _, _, E, k, with_bias, attrs = case
    _run_route(compile_ir, rng, None, E, k, with_bias, attrs, dynamic=True,
               tokens=[1, 5, 16, 37])


@pytest.mark.parametrize("scoring", ["none", "softmax"])
def test_route_ties_go_to_lower_expert(compile_ir, rng, scoring):
    """Integer logits tie often; equal logits give bitwise equal scores on both sides."""
    T, E, k = 32, 8, 3
    logits = rng.integers(-2, 3, size=(T, E)).astype(np.float32)
    module = compile_ir(irgen.route_ir(T, E, k, scoring=scoring))
    w, ids = call(module, "route", [logits], [((T, k), "f32"), ((T, k), "i32")])
    want_w, want_ids = ref.route(logits, k=k, scoring=scoring)
    assert_equal(ids, want_ids, f"route {scoring} with ties: ids")
    assert_close(w, want_w, "f32", f"route {scoring} with ties: weights")


def test_route_group_ties_go_to_lower_group(compile_ir, rng):
    T, E, k = 32, 16, 2
    logits = rng.integers(0, 4, size=(T, E)).astype(np.float32)
    attrs = dict(scoring="none", n_group=4, topk_group=1, group_score="sum_top2")
    module = compile_ir(irgen.route_ir(T, E, k, **attrs))
    w, ids = call(module, "route", [logits], [((T, k), "f32"), ((T, k), "i32")])
    want_w, want_ids = ref.route(logits, k=k, **attrs)
    assert_equal(ids, want_ids, "route group ties: ids")
    assert_close(w, want_w, "f32", "route group ties: weights")


def test_route_nan_ranks_below_minus_infinity(compile_ir, rng):
    """With k = E every expert is chosen, so the slot order shows the whole ranking."""
    T, E = 6, 6
    logits = normal(rng, (T, E))
    for t in range(T):
        cols = rng.permutation(E)
        logits[t, cols[0]] = np.nan
        logits[t, cols[1]] = -np.inf
        logits[t, cols[2]] = np.inf if t % 2 else -np.inf
    module = compile_ir(irgen.route_ir(T, E, E, scoring="none"))
    w, ids = call(module, "route", [logits], [((T, E), "f32"), ((T, E), "i32")])
    want_w, want_ids = ref.route(logits, k=E, scoring="none")
    assert_equal(ids, want_ids, "route with NaN and infinities: ids")
    assert_close(w, want_w, "f32", "route with NaN and infinities: weights")


# ----------------------------------------------------------------------------------------
# Expert choice
# ----------------------------------------------------------------------------------------


def _ec_robust(rng, logits, capacity):
    base = ref.expert_choice(logits, capacity=capacity)[1]
    delta = 1e-5 * max(1.0, float(np.max(np.abs(logits))))
    for _ in range(3):
        noisy = logits + rng.uniform(-delta, delta, logits.shape)
        if not np.array_equal(ref.expert_choice(noisy, capacity=capacity)[1], base):
            return False
    return True


def _run_expert_choice(compile_ir, rng, T, E, capacity, dynamic=False, tokens=None):
    module = compile_ir(irgen.expert_choice_ir(None if dynamic else T, E, capacity))
    for t in tokens or [T]:
        logits = draw_robust(rng, lambda: normal(rng, (t, E)),
                             lambda x: _ec_robust(rng, x, capacity), "expert_choice")
        C = min(capacity, t)
        w, rows, offsets = call(module, "expert_choice", [logits],
                                [((t, E), "f32"), ((E * C,), "i32"), ((E + 1,), "i32")])
        want_w, want_rows, want_offsets = ref.expert_choice(logits, capacity=capacity)
        what = f"expert_choice T={t} E={E} capacity={capacity}"
        assert_equal(rows, want_rows, f"{what}: rows")
        assert_equal(offsets, want_offsets, f"{what}: offsets")
        assert_close(w, want_w, "f32", f"{what}: weights")


@pytest.mark.parametrize("T,E,capacity", [(16, 8, 4), (16, 8, 16), (5, 8, 8), (1, 4, 2),
                                          (13, 5, 3), (64, 16, 9)])
def test_expert_choice(compile_ir, rng, T, E, capacity):
    _run_expert_choice(compile_ir, rng, T, E, capacity)


def test_expert_choice_dynamic_tokens(compile_ir, rng):
    _run_expert_choice(compile_ir, rng, None, 8, 6, dynamic=True, tokens=[1, 4, 6, 7, 30])


# ----------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("T,E,k,drop,dynamic", [
    (16, 8, 2, 0.0, False), (32, 8, 2, 0.3, False), (1, 4, 1, 0.0, False),
    (13, 5, 3, 0.2, False), (None, 8, 2, 0.2, True)])
def test_aux_loss(compile_ir, rng, T, E, k, drop, dynamic):
    module = compile_ir(irgen.aux_loss_ir(T, E, k))
    for t in [1, 9, 40] if dynamic else [T]:
        logits = normal(rng, (t, E))
        _, ids = ref.route(logits, k=k)
        ids[rng.random(ids.shape) < drop] = -1
        (loss,) = call(module, "aux_loss", [logits, ids], [((), "f32")])
        assert_close(loss, ref.aux_loss(logits, ids), "f32",
                     f"aux_loss T={t} E={E} k={k} with {int((ids < 0).sum())} dropped ids")


@pytest.mark.parametrize("T,E,scale,dynamic", [
    (16, 8, 1.0, False), (16, 8, 30.0, False), (1, 4, 1.0, False), (13, 5, 3.0, False),
    (None, 8, 2.0, True)])
def test_z_loss(compile_ir, rng, T, E, scale, dynamic):
    """scale 30 makes exp(logit) overflow f32 unless logsumexp subtracts the max."""
    module = compile_ir(irgen.z_loss_ir(T, E))
    for t in [1, 9, 40] if dynamic else [T]:
        logits = normal(rng, (t, E), scale=scale)
        (loss,) = call(module, "z_loss", [logits], [((), "f32")])
        assert_close(loss, ref.z_loss(logits), "f32", f"z_loss T={t} E={E} scale={scale}")
