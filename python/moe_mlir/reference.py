"""Reference semantics of every ``moe`` dialect op, in numpy float64.

This module is the oracle that compiled kernels are checked against. It favours being
obviously correct over being fast: each function is a direct transcription of the
semantics contract (DESIGN.md section 3), computed in float64.

Notation: T tokens, H hidden size, E experts, k experts per token, I expert intermediate
size, M routed rows. A *selection* (t, j) is token t's j-th chosen expert; its flat index
is ``t * k + j``.

Ranking rule, shared by every op that picks "the best" items by a score: higher score
first, ties go to the lower index, and NaN ranks below -inf (NaN is the worst score).
"""

import numpy as np

# The ops' oracles live by concern in reference_routing and reference_experts, and
# what they share in reference_common; this module gathers them under one name.
from .reference_common import (ACTIVATIONS, DROP_POLICIES, GLU_LAYOUTS, GROUP_SCORES,  # noqa: F401
                               RHS_LAYOUTS, SCORINGS, SECOND_EXPERT_POLICIES, _f64, _sigmoid)
from .reference_experts import combine, dispatch, glu, grouped_matmul, permute  # noqa: F401
from .reference_quant import dequantize_weights, quantize_activations  # noqa: F401
from .reference_routing import (aux_loss, expert_choice, gshard_uniform,  # noqa: F401
                                rank_order, route, z_loss)

__all__ = [
    "rank_order",
    "gshard_uniform",
    "route",
    "expert_choice",
    "dispatch",
    "permute",
    "glu",
    "grouped_matmul",
    "combine",
    "aux_loss",
    "z_loss",
    "layer",
    "layer_with_routing",
    "MODEL_RECIPES",
    "MODEL_FFN",
    "MODEL_REQUIRES_BIAS",
    "SCORINGS",
    "GROUP_SCORES",
    "SECOND_EXPERT_POLICIES",
    "DROP_POLICIES",
    "ACTIVATIONS",
    "GLU_LAYOUTS",
    "RHS_LAYOUTS",
]


# ----------------------------------------------------------------------------------------
# Whole layer
# ----------------------------------------------------------------------------------------


def layer_with_routing(
    x,
    router,
    w13,
    w2,
    *,
    bias=None,
    router_bias=None,
    w13_bias=None,
    w2_bias=None,
    shared_w13=None,
    shared_w2=None,
    shared_gate=None,
    activation="silu",
    glu_layout="concatenated",
    alpha=1.702,
    limit=7.0,
    capacity=None,
    capacity_factor=None,
    drop_policy="position",
    weight_quant=None,
    w13_scales=None,
    w2_scales=None,
    w13_input_scale=None,
    w2_input_scale=None,
    **route_kwargs,
):
    """A whole MoE layer (``moe.layer``), also returning the routing decision.

    x [T, H], router [E, H], w13 [E, 2I, H] (gate and up), w2 [E, H, I]; optional shared
    expert shared_w13 [2Is, H], shared_w2 [H, Is] and sigmoid gate shared_gate [1, H].
    ``route_kwargs`` go to :func:`route` (k, scoring, ...). The shared expert uses the same
    activation, GLU layout, alpha and limit as the routed experts.

    ``bias`` [E] is the selection bias of :func:`route`. gpt-oss's Linear biases:
    ``router_bias`` [E] is added to the logits; ``w13_bias`` [E, 2I] (in the
    ``glu_layout`` order) and ``w2_bias`` [E, H] to the two projections, before the
    activation and before the routing weight (:func:`grouped_matmul`'s ``bias``).

    FP8 experts: ``weight_quant`` (see :func:`grouped_matmul`) with w13 and w2 in
    float8_e4m3fn and their scales ``w13_scales`` [E, ceil(2I / bn), ceil(H / bk)] and
    ``w2_scales`` [E, ceil(H / bn), ceil(I / bk)]; both matmuls quantize their inputs (x,
    and the GLU output), with ``w13_input_scale`` and ``w2_input_scale`` for ``static``.
    The expert biases are added in f64 after the quantized product.

    Computes logits = x @ router.T (+ router_bias), routes, dispatches (with the capacity
    arguments), permutes, runs the two grouped matmuls around the GLU and combines; then adds
    glu(x @ shared_w13.T) @ shared_w2.T, times sigmoid(x @ shared_gate.T) when gated.

    Returns:
      (y [T, H], weights [T, k], ids [T, k]).
    """
    x = _f64(x, "x", ndim=2)
    router = _f64(router, "router", ndim=2)
    if weight_quant is not None:
        w13 = dequantize_weights(w13, w13_scales, weight_quant["block"])
        w2 = dequantize_weights(w2, w2_scales, weight_quant["block"])
    w13 = _f64(w13, "w13", ndim=3)
    w2 = _f64(w2, "w2", ndim=3)
    T, H = x.shape
    E = router.shape[0]
    if router.shape != (E, H):
        raise ValueError(f"router must have shape (E, {H}), got {router.shape}")
    if w13.shape[0] != E or w13.shape[2] != H or w13.shape[1] % 2:
        raise ValueError(f"w13 must have shape ({E}, 2*I, {H}), got {w13.shape}")
    I = w13.shape[1] // 2
    if w2.shape != (E, H, I):
        raise ValueError(f"w2 must have shape {(E, H, I)}, got {w2.shape}")
    if (shared_w13 is None) != (shared_w2 is None):
        raise ValueError("give both shared_w13 and shared_w2, or neither")
    if shared_gate is not None and shared_w13 is None:
        raise ValueError("shared_gate needs a shared expert (shared_w13, shared_w2)")

    for name, value, want in (("router_bias", router_bias, (E,)),
                              ("w13_bias", w13_bias, (E, 2 * I)), ("w2_bias", w2_bias, (E, H))):
        if value is not None and np.shape(value) != want:
            raise ValueError(f"{name} must have shape {want}, got {np.shape(value)}")

    logits = x @ router.T
    if router_bias is not None:
        logits = logits + _f64(router_bias, "router_bias")
    weights, ids = route(logits, bias, **route_kwargs)
    k = ids.shape[1]
    rows, offsets = dispatch(
        ids,
        weights,
        num_experts=E,
        capacity=capacity,
        capacity_factor=capacity_factor,
        drop_policy=drop_policy,
    )
    xs = permute(x, rows, k)
    if weight_quant is not None:
        # The weights are dequantized above; the matmuls quantize their inputs.
        xs = quantize_activations(xs, weight_quant["block"][1],
                                  weight_quant.get("activation", "dynamic"), w13_input_scale)
    h = grouped_matmul(xs, w13, offsets, bias=w13_bias)
    a = glu(h, activation, glu_layout, alpha, limit)
    if weight_quant is not None:
        a = quantize_activations(a, weight_quant["block"][1],
                                 weight_quant.get("activation", "dynamic"), w2_input_scale)
    ys = grouped_matmul(a, w2, offsets, bias=w2_bias)
    y = combine(ys, rows, weights)

    if shared_w13 is not None:
        shared_w13 = _f64(shared_w13, "shared_w13", ndim=2)
        shared_w2 = _f64(shared_w2, "shared_w2", ndim=2)
        if shared_w13.shape[1] != H or shared_w13.shape[0] % 2:
            raise ValueError(f"shared_w13 must have shape (2*Is, {H}), got {shared_w13.shape}")
        Is = shared_w13.shape[0] // 2
        if shared_w2.shape != (H, Is):
            raise ValueError(f"shared_w2 must have shape {(H, Is)}, got {shared_w2.shape}")
        shared = glu(x @ shared_w13.T, activation, glu_layout, alpha, limit) @ shared_w2.T
        if shared_gate is not None:
            shared_gate = _f64(shared_gate, "shared_gate", ndim=2)
            if shared_gate.shape != (1, H):
                raise ValueError(f"shared_gate must have shape (1, {H}), got {shared_gate.shape}")
            shared = shared * _sigmoid(x @ shared_gate.T)
        y = y + shared
    return y, weights, ids


def layer(x, router, w13, w2, **kwargs):
    """A whole MoE layer (``moe.layer``); see :func:`layer_with_routing`. Returns y [T, H]."""
    return layer_with_routing(x, router, w13, w2, **kwargs)[0]


def layer_kwargs(spec):
    """The :func:`layer` arguments (beside the tensors) of a layer described as in a
    moe-compile manifest's ``layer`` entry: routing, expert FFN and capacity."""
    keys = ("k", "scoring", "n_group", "topk_group", "group_score", "renormalize",
            "renorm_epsilon", "scale", "activation", "glu_layout", "alpha", "limit",
            "capacity", "capacity_factor", "drop_policy")
    return {key: spec[key] for key in keys if key in spec}


# ----------------------------------------------------------------------------------------
# Model recipes
# ----------------------------------------------------------------------------------------

#: Routing arguments (for :func:`route`, or :func:`layer` via ``**``) of known models.
MODEL_RECIPES = {
    "mixtral": dict(scoring="softmax", k=2, renormalize=True),
    "qwen3": dict(scoring="softmax", k=8, renormalize=True),
    "olmoe": dict(scoring="softmax", k=8, renormalize=False),
    "deepseek_v3": dict(
        scoring="sigmoid",
        k=8,
        n_group=8,
        topk_group=4,
        group_score="sum_top2",
        renormalize=True,
        renorm_epsilon=1e-20,
        scale=2.5,
    ),
    "gpt_oss": dict(scoring="softmax_topk", k=4),
    "switch": dict(scoring="softmax", k=1),
}

#: Recipes whose routing needs the selection bias (DeepSeek-V3's e_score_correction_bias).
MODEL_REQUIRES_BIAS = frozenset({"deepseek_v3"})

#: Expert FFN arguments (for :func:`layer`) of the recipes whose experts are GLUs. Switch
#: is absent: its experts are a plain ReLU MLP, not a GLU.
MODEL_FFN = {
    "mixtral": dict(activation="silu", glu_layout="concatenated"),
    "qwen3": dict(activation="silu", glu_layout="concatenated"),
    "olmoe": dict(activation="silu", glu_layout="concatenated"),
    "deepseek_v3": dict(activation="silu", glu_layout="concatenated"),
    "gpt_oss": dict(activation="swiglu_oai", glu_layout="interleaved", alpha=1.702, limit=7.0),
}
