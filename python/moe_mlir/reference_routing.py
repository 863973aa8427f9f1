"""The oracle of routing: ``moe.route``, ``moe.expert_choice``, and the
training-side ``moe.aux_loss`` and ``moe.z_loss`` (re-exported by
:mod:`moe_mlir.reference`, whose notation and ranking rule they follow)."""

import numpy as np

from .reference_common import (_U64, GROUP_SCORES, SCORINGS,
                               SECOND_EXPERT_POLICIES, _choice, _f64, _int_array,
                               _logsumexp, _sigmoid, _softmax)


def rank_order(scores):
    """Indices that order ``scores`` best-first along the last axis.

    Best-first means descending score, ties broken towards the lower index, and NaN
    ranked below -inf. ``scores`` may have any rank; each slice along the last axis is
    ranked independently. Returns int64 indices with the same shape as ``scores``.
    """
    s = np.asarray(scores, dtype=np.float64)
    nan = np.isnan(s)
    # Two stable passes: by descending value, then by NaN-ness, so NaNs move behind every
    # number (including -inf) while each group keeps its lower-index-first tie order.
    order = np.argsort(-np.where(nan, 0.0, s), axis=-1, kind="stable")
    nan_in_order = np.take_along_axis(nan, order, axis=-1)
    return np.take_along_axis(order, np.argsort(nan_in_order, axis=-1, kind="stable"), axis=-1)


def gshard_uniform(seed, t):
    """Uniform number in [0, 1) for GShard random routing, keyed by (seed, token index).

    SplitMix64's output function on the counter ``seed + (t + 1) * golden`` (uint64,
    wrapping); the top 24 bits become the fraction, so the value is exact in float32.
    """
    z = (int(seed) + (int(t) + 1) * 0x9E3779B97F4A7C15) & _U64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    z = z ^ (z >> 31)
    return (z >> 40) / float(1 << 24)




def _mask_groups(s, n_group, topk_group, group_score):
    """Set the selection score of experts outside the topk_group best groups to -inf."""
    T, E = s.shape
    grouped = s.reshape(T, n_group, E // n_group)
    best = np.take_along_axis(grouped, rank_order(grouped), axis=-1)
    if group_score == "sum_top2":
        gscore = best[..., 0] + best[..., 1]
    else:
        gscore = best[..., 0]
    kept_groups = rank_order(gscore)[:, :topk_group]
    keep = np.zeros((T, n_group), dtype=bool)
    np.put_along_axis(keep, kept_groups, True, axis=1)
    # -inf, never 0: a zero would outrank negative scores (sigmoid + a negative bias).
    return np.where(np.repeat(keep, E // n_group, axis=1), s, -np.inf)


def route(
    logits,
    bias=None,
    *,
    k,
    scoring="softmax",
    n_group=1,
    topk_group=1,
    group_score="sum_top2",
    renormalize=False,
    renorm_epsilon=0.0,
    scale=1.0,
    second_expert_policy="all",
    seed=0,
):
    """Token-choice top-k routing (``moe.route``).

    Args:
      logits: [T, E] router logits.
      bias: optional [E] selection bias (DeepSeek-V3's correction bias). It changes which
        experts are chosen, never their weights.
      k: experts per token, 1 <= k <= E.
      scoring: how logits become probabilities p:
        "softmax" (softmax over E), "sigmoid" (elementwise), "none" (p = logit), or
        "softmax_topk" (select on the raw logits, then the weights are the softmax over
        the k selected logits: gpt-oss).
      n_group, topk_group, group_score: group-limited selection. When n_group > 1 the
        experts form n_group contiguous equal groups; each group is scored from the
        selection scores ("sum_top2": sum of its two best, "max": its best); only the
        topk_group best groups (ranking rule, ties to the lower group) stay eligible.
      renormalize, renorm_epsilon: w = p_sel / (sum(p_sel) + renorm_epsilon).
      scale: final multiplier of the weights (DeepSeek's routed_scaling_factor).
      second_expert_policy: "all", or "random" (GShard; needs k == 2 and renormalize):
        the second selection of token t is dropped unless
        ``gshard_uniform(seed, t) < 2 * w[t, 1]`` (w before scaling). A dropped selection
        has id -1 and weight 0.
      seed: key of the GShard generator.

    The selection score is s = p + bias (p = logit for "softmax_topk"), and the k experts
    are picked by the ranking rule on s; output slot j holds the j-th best.

    Returns:
      (weights [T, k] float64, ids [T, k] int32).
    """
    logits = _f64(logits, "logits", ndim=2)
    T, E = logits.shape
    _choice(scoring, "scoring", SCORINGS)
    _choice(group_score, "group_score", GROUP_SCORES)
    _choice(second_expert_policy, "second_expert_policy", SECOND_EXPERT_POLICIES)
    if E < 1:
        raise ValueError("logits must have at least one expert column")
    if not (isinstance(n_group, (int, np.integer)) and n_group >= 1):
        raise ValueError(f"n_group must be a positive integer, got {n_group!r}")
    if E % n_group != 0:
        raise ValueError(f"the number of experts ({E}) must be divisible by n_group ({n_group})")
    if not (isinstance(topk_group, (int, np.integer)) and 1 <= topk_group <= n_group):
        raise ValueError(f"topk_group must be in [1, n_group={n_group}], got {topk_group}")
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= E):
        raise ValueError(f"k must be an integer in [1, E={E}], got {k!r}")
    group_size = E // n_group
    if k > topk_group * group_size:
        raise ValueError(
            f"k ({k}) must not exceed the experts in the kept groups "
            f"(topk_group * E / n_group = {topk_group * group_size})"
        )
    if n_group > 1 and group_score == "sum_top2" and group_size < 2:
        raise ValueError("group_score 'sum_top2' needs at least 2 experts per group")
    if second_expert_policy == "random" and (k != 2 or not renormalize):
        raise ValueError("second_expert_policy 'random' requires k == 2 and renormalize")
    if bias is not None:
        bias = _f64(bias, "bias", ndim=1)
        if bias.shape != (E,):
            raise ValueError(f"bias must have shape ({E},), got {bias.shape}")

    if scoring == "softmax":
        p = _softmax(logits)
    elif scoring == "sigmoid":
        p = _sigmoid(logits)
    else:
        p = logits.copy()
    s = p + bias if bias is not None else p
    if n_group > 1:
        s = _mask_groups(s, n_group, topk_group, group_score)

    ids = rank_order(s)[:, :k]
    w = np.take_along_axis(p, ids, axis=1)
    if scoring == "softmax_topk":
        w = _softmax(w)
    if renormalize:
        w = w / (np.sum(w, axis=1, keepdims=True) + renorm_epsilon)

    dropped = None
    if second_expert_policy == "random":
        u = np.array([gshard_uniform(seed, t) for t in range(T)], dtype=np.float64)
        dropped = ~(u < 2.0 * w[:, 1])

    w = w * scale
    ids = ids.astype(np.int32)
    if dropped is not None:
        w[dropped, 1] = 0.0
        ids[dropped, 1] = -1
    return w, ids


def expert_choice(logits, *, capacity):
    """Expert-choice routing: every expert picks its C best tokens, C = min(capacity, T).

    p = softmax over E per token; expert e ranks tokens by p[:, e] (ranking rule over
    token indices) and keeps the first C.

    Returns:
      weights [T, E] float64: p[t, e] where expert e chose token t, else 0.
      rows [E * C] int32: for e = 0..E-1, its chosen tokens in ascending token order, each
        stored as ``t * E + e`` (a flat selection index with "k = E").
      offsets [E + 1] int32: offsets[e] = e * C.
    """
    logits = _f64(logits, "logits", ndim=2)
    T, E = logits.shape
    if not (isinstance(capacity, (int, np.integer)) and capacity >= 1):
        raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
    C = min(int(capacity), T)
    p = _softmax(logits)
    weights = np.zeros((T, E), dtype=np.float64)
    rows = []
    for e in range(E):
        chosen = np.sort(rank_order(p[:, e])[:C])
        weights[chosen, e] = p[chosen, e]
        rows.extend(int(t) * E + e for t in chosen)
    offsets = np.arange(E + 1, dtype=np.int32) * C
    return weights, np.array(rows, dtype=np.int32).reshape(E * C), offsets




def aux_loss(logits, ids):
    """Switch/GShard load-balancing loss: E * sum_e f_e * P_e.

    f_e = (number of selections with ids == e) / T, ids outside [0, E) not counted;
    P_e = mean over tokens of softmax(logits)[t, e].
    """
    logits = _f64(logits, "logits", ndim=2)
    ids = _int_array(ids, "ids", ndim=2)
    T, E = logits.shape
    if ids.shape[0] != T:
        raise ValueError(f"ids must have {T} rows like logits, got shape {ids.shape}")
    if T == 0:
        raise ValueError("aux_loss needs at least one token")
    valid = ids[(ids >= 0) & (ids < E)]
    f = np.bincount(valid, minlength=E).astype(np.float64) / T
    P = np.mean(_softmax(logits), axis=0)
    return float(E * np.sum(f * P))


def z_loss(logits):
    """Router z-loss: mean over tokens of logsumexp(logits[t]) ** 2 (stable logsumexp)."""
    logits = _f64(logits, "logits", ndim=2)
    if logits.shape[0] == 0:
        raise ValueError("z_loss needs at least one token")
    return float(np.mean(_logsumexp(logits, axis=1) ** 2))
