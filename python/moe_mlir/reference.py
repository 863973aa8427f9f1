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

import math

import numpy as np

from .reference_quant import dequantize_weights, quantize_activations

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

SCORINGS = ("softmax", "sigmoid", "softmax_topk", "none")
GROUP_SCORES = ("sum_top2", "max")
SECOND_EXPERT_POLICIES = ("all", "random")
DROP_POLICIES = ("position", "score")
ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu", "swiglu_oai")
GLU_LAYOUTS = ("concatenated", "interleaved")
RHS_LAYOUTS = ("nk", "kn", "panels", "panels_vnni")

_U64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


def _f64(a, name, ndim=None):
    arr = np.asarray(a, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {arr.shape}")
    return arr


def _int_array(a, name, ndim):
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _softmax(x, axis=-1):
    # Subtracting the max keeps exp() in range; all -inf or NaN rows come out NaN, as
    # IEEE arithmetic in a kernel would give.
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        e = np.exp(x - m)
        return e / np.sum(e, axis=axis, keepdims=True)


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _logsumexp(x, axis=-1):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        finite_m = np.where(np.isfinite(m), m, 0.0)
        s = np.log(np.sum(np.exp(x - finite_m), axis=axis, keepdims=True)) + finite_m
    return np.squeeze(s, axis=axis)


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


# ----------------------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------
# Dispatch and data movement
# ----------------------------------------------------------------------------------------


def dispatch(
    ids,
    weights=None,
    *,
    num_experts,
    capacity=None,
    capacity_factor=None,
    drop_policy="position",
    expert_map=None,
    num_local_experts=None,
):
    """Group the selections by (local) expert (``moe.dispatch``).

    Args:
      ids: [T, k] expert ids. Ids outside [0, num_experts) get no row.
      weights: [T, k] routing weights; needed only for drop_policy "score" with a capacity.
      num_experts: E, the number of global experts.
      capacity: C, the most selections one local expert keeps. Or
      capacity_factor: f, giving C = ceil(f * T * k / E). Neither: unlimited.
      drop_policy: which selections an overflowing expert keeps:
        "position": slot-major priority, (j, t) ascending (every token's first choice in
          token order, then every second choice, ...);
        "score": larger weight first, ties to the lower t, then the lower j.
      expert_map: optional [E] map from global expert to local expert index, -1 for experts
        not on this device (their selections get no row).
      num_local_experts: L, the number of local experts (default E).

    Returns:
      rows [T * k] int32: flat selection indices ``t * k + j`` of the kept selections,
        grouped by local expert 0..L-1 and ascending within an expert; the entries from
        offsets[L] on are -1.
      offsets [L + 1] int32: local expert e owns rows[offsets[e]:offsets[e + 1]].
    """
    ids = _int_array(ids, "ids", ndim=2)
    T, k = ids.shape
    _choice(drop_policy, "drop_policy", DROP_POLICIES)
    if not (isinstance(num_experts, (int, np.integer)) and num_experts >= 1):
        raise ValueError(f"num_experts must be a positive integer, got {num_experts!r}")
    E = int(num_experts)
    L = E if num_local_experts is None else int(num_local_experts)
    if L < 0:
        raise ValueError(f"num_local_experts must be non-negative, got {L}")

    if capacity is not None and capacity_factor is not None:
        raise ValueError("give at most one of capacity and capacity_factor")
    if capacity is not None:
        if not (isinstance(capacity, (int, np.integer)) and capacity >= 0):
            raise ValueError(f"capacity must be a non-negative integer, got {capacity!r}")
        C = int(capacity)
    elif capacity_factor is not None:
        if not capacity_factor >= 0:
            raise ValueError(f"capacity_factor must be non-negative, got {capacity_factor!r}")
        C = math.ceil(float(capacity_factor) * T * k / E)
    else:
        C = None

    if weights is not None:
        weights = _f64(weights, "weights", ndim=2)
        if weights.shape != (T, k):
            raise ValueError(f"weights must have shape {(T, k)} like ids, got {weights.shape}")
    if C is not None and drop_policy == "score" and weights is None:
        raise ValueError("drop_policy 'score' with a capacity needs the routing weights")

    if expert_map is not None:
        expert_map = _int_array(expert_map, "expert_map", ndim=1)
        if expert_map.shape != (E,):
            raise ValueError(f"expert_map must have shape ({E},), got {expert_map.shape}")
        if np.any((expert_map < -1) | (expert_map >= L)):
            raise ValueError(f"expert_map values must be -1 or in [0, {L})")

    flat_ids = ids.reshape(-1)
    local = np.full(T * k, -1, dtype=np.int64)
    for s, g in enumerate(flat_ids):
        if 0 <= g < E:
            local[s] = g if expert_map is None else expert_map[g]

    kept = local >= 0
    if C is not None:
        flat_w = None if weights is None else weights.reshape(-1)
        for e in range(L):
            sel = np.nonzero(local == e)[0]  # ascending flat index: by t, then j
            if drop_policy == "position":
                priority = sel[np.argsort((sel % k) * T + sel // k, kind="stable")]
            else:
                priority = sel[rank_order(flat_w[sel])]
            kept[priority[C:]] = False

    rows = np.full(T * k, -1, dtype=np.int32)
    offsets = np.zeros(L + 1, dtype=np.int32)
    n = 0
    for e in range(L):
        sel = np.nonzero((local == e) & kept)[0]
        rows[n : n + len(sel)] = sel
        n += len(sel)
        offsets[e + 1] = n
    return rows, offsets


def _row_valid(rows, limit):
    return (rows >= 0) & (rows < limit)


def permute(x, rows, k):
    """Gather token rows into routed rows (``moe.permute``).

    xs[r] = x[rows[r] // k]; a row value outside [0, T * k) gives a zero row.
    Returns xs [len(rows), H] float64.
    """
    x = _f64(x, "x", ndim=2)
    rows = _int_array(rows, "rows", ndim=1)
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    T = x.shape[0]
    valid = _row_valid(rows, T * k)
    tokens = np.where(valid, rows, 0) // k
    if T == 0:
        return np.zeros((len(rows), x.shape[1]), dtype=np.float64)
    return np.where(valid[:, None], x[tokens], 0.0)


def glu(h, activation="silu", layout="concatenated", alpha=1.702, limit=7.0):
    """Gated linear unit (``moe.glu``): h [M, 2I] -> [M, I], act(gate) * up.

    layout "concatenated": gate = h[:, :I], up = h[:, I:];
    layout "interleaved": gate = h[:, 0::2], up = h[:, 1::2].
    Activations: "silu" g*sigmoid(g); "gelu" exact (erf) GELU; "gelu_tanh" the tanh
    approximation; "relu" max(g, 0); "swiglu_oai" (gpt-oss): g = min(g, limit),
    u = clip(u, -limit, limit), out = g * sigmoid(alpha * g) * (u + 1).
    """
    h = _f64(h, "h", ndim=2)
    _choice(activation, "activation", ACTIVATIONS)
    _choice(layout, "layout", GLU_LAYOUTS)
    if h.shape[1] % 2:
        raise ValueError(f"glu input must have an even number of columns, got {h.shape[1]}")
    I = h.shape[1] // 2
    if layout == "concatenated":
        g, u = h[:, :I], h[:, I:]
    else:
        g, u = h[:, 0::2], h[:, 1::2]

    if activation == "silu":
        return g * _sigmoid(g) * u
    if activation == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * g * (1.0 + erf(g / math.sqrt(2.0))) * u
    if activation == "gelu_tanh":
        inner = math.sqrt(2.0 / math.pi) * (g + 0.044715 * g**3)
        return 0.5 * g * (1.0 + np.tanh(inner)) * u
    if activation == "relu":
        return np.maximum(g, 0.0) * u
    g = np.minimum(g, limit)
    u = np.clip(u, -limit, limit)
    return g * _sigmoid(alpha * g) * (u + 1.0)


def grouped_matmul(
    lhs,
    rhs,
    offsets,
    *,
    rhs_layout="nk",
    rows=None,
    gather=False,
    k=1,
    row_scale=None,
    bias=None,
    epilogue=None,
    glu_layout="concatenated",
    alpha=1.702,
    limit=7.0,
    weight_quant=None,
    rhs_scales=None,
    lhs_scales=None,
):
    """Per-expert matrix multiply over contiguous row ranges (``moe.grouped_matmul``).

    Args:
      lhs: [M, K] routed rows, or with ``gather`` [T, K] token rows.
      rhs: [E, N, K] (``rhs_layout="nk"``, PyTorch Linear layout), [E, K, N] ("kn") or
        [E, N / P, K, P] ("panels") or [E, N / P, K / 2, 2P] ("panels_vnni"; see
        :mod:`moe_mlir.pack`).
      offsets: [E + 1]; row r in [offsets[e], offsets[e + 1]) computes A[r] @ W[e] with
        W[e] the [K, N] view of rhs[e]. Rows in no expert's range are zero.
      rows: [M] flat selection indices; needed by ``gather`` and ``row_scale``.
      gather: A[r] = lhs[rows[r] // k] (the permute folded in), zero if rows[r] is outside
        [0, T * k); M = len(rows). Without it A = lhs.
      k: the divisor of ``gather``.
      row_scale: [T, k] routing weights; output row r is multiplied, after the epilogue,
        by row_scale.flat[rows[r]] (zero row when rows[r] is out of range).
      bias: [E, N]; row r of expert e becomes A[r] @ W[e] + bias[e], before the epilogue
        and the row scale (gpt-oss's gate_up_proj_bias and down_proj_bias).
      epilogue: None or an activation name: the output becomes
        ``glu(result, epilogue, glu_layout, alpha, limit)``.
      weight_quant: None, or ``dict(block=(bn, bk), activation="dynamic" | "static" |
        "none")`` for FP8 weights: rhs is float8_e4m3fn [E, N, K] (nk layout) with
        ``rhs_scales`` [E, ceil(N / bn), ceil(K / bk)] float32, and A is quantized as
        :func:`moe_mlir.reference_quant.quantize_activations` says (``lhs_scales``: the
        one static scale).

    Returns:
      [M, N] float64, or [M, N // 2] with an epilogue.
    """
    lhs = _f64(lhs, "lhs", ndim=2)
    _choice(rhs_layout, "rhs_layout", RHS_LAYOUTS)
    if weight_quant is not None:
        if rhs_layout != "nk":
            raise ValueError("FP8 weights are given in the nk layout [E, N, K]")
        rhs = dequantize_weights(rhs, rhs_scales, weight_quant["block"])
    rhs = _f64(rhs, "rhs", ndim=4 if rhs_layout in ("panels", "panels_vnni") else 3)
    offsets = _int_array(offsets, "offsets", ndim=1)
    if epilogue is not None:
        _choice(epilogue, "epilogue", ACTIVATIONS)
    if rhs_layout == "panels":
        E, panels, K, P = rhs.shape
        W = rhs.transpose(0, 1, 3, 2).reshape(E, panels * P, K)
    elif rhs_layout == "panels_vnni":
        # W[e, n, k] = rhs[e, n // P, k // 2, 2 (n % P) + k % 2]
        E, panels, pairs, width = rhs.shape
        P = width // 2
        n = np.arange(panels * P)[:, None]
        kk = np.arange(pairs * 2)[None, :]
        W = rhs[:, n // P, kk // 2, 2 * (n % P) + kk % 2]
    else:
        W = rhs if rhs_layout == "nk" else np.transpose(rhs, (0, 2, 1))  # [E, N, K]
    E, N, K = W.shape

    if rows is not None:
        rows = _int_array(rows, "rows", ndim=1)
    if gather:
        if rows is None:
            raise ValueError("gather needs rows")
        A = permute(lhs, rows, k)
    else:
        A = lhs
        if rows is not None and len(rows) != A.shape[0]:
            raise ValueError(f"rows must have {A.shape[0]} entries (one per lhs row), got {len(rows)}")
    M = A.shape[0]
    if A.shape[1] != K:
        raise ValueError(f"lhs has {A.shape[1]} columns but rhs has reduction size {K}")
    if weight_quant is not None:
        A = quantize_activations(A, weight_quant["block"][1],
                                 weight_quant.get("activation", "dynamic"), lhs_scales)
    if offsets.shape != (E + 1,):
        raise ValueError(f"offsets must have shape ({E + 1},), got {offsets.shape}")
    if offsets[0] < 0 or offsets[-1] > M or np.any(np.diff(offsets) < 0):
        raise ValueError(f"offsets must be non-decreasing within [0, {M}], got {offsets.tolist()}")

    if bias is not None:
        bias = _f64(bias, "bias", ndim=2)
        if bias.shape != (E, N):
            raise ValueError(f"bias must have shape {(E, N)}, got {bias.shape}")
    out = np.zeros((M, N), dtype=np.float64)
    covered = np.zeros(M, dtype=bool)
    for e in range(E):
        lo, hi = offsets[e], offsets[e + 1]
        out[lo:hi] = A[lo:hi] @ W[e].T
        if bias is not None:
            out[lo:hi] += bias[e]
        covered[lo:hi] = True

    if epilogue is not None:
        out = glu(out, epilogue, glu_layout, alpha, limit)
    out = np.where(covered[:, None], out, 0.0)

    if row_scale is not None:
        if rows is None:
            raise ValueError("row_scale needs rows")
        row_scale = _f64(row_scale, "row_scale", ndim=2)
        if gather and row_scale.shape[1] != k:
            raise ValueError(f"row_scale must have k={k} columns, got shape {row_scale.shape}")
        valid = _row_valid(rows, row_scale.size)
        factor = row_scale.reshape(-1)[np.where(valid, rows, 0)] if row_scale.size else np.zeros(M)
        out = np.where(valid[:, None], out * factor[:, None], 0.0)
    return out


def combine(ys, rows, weights):
    """Weighted sum of each token's expert outputs (``moe.combine``).

    out[t] = sum over j ascending of weights[t, j] * ys[r], where r is the row with
    rows[r] == t * k + j. Selections with no row add nothing. T and k come from the shape
    of ``weights``. Returns out [T, H] float64.
    """
    ys = _f64(ys, "ys", ndim=2)
    rows = _int_array(rows, "rows", ndim=1)
    weights = _f64(weights, "weights", ndim=2)
    T, k = weights.shape
    if len(rows) != ys.shape[0]:
        raise ValueError(f"rows must have {ys.shape[0]} entries (one per ys row), got {len(rows)}")

    row_of = np.full(T * k, -1, dtype=np.int64)
    for r, sel in enumerate(rows):
        if 0 <= sel < T * k:
            if row_of[sel] >= 0:
                raise ValueError(f"selection {sel} appears in rows twice ({row_of[sel]} and {r})")
            row_of[sel] = r

    out = np.zeros((T, ys.shape[1]), dtype=np.float64)
    for j in range(k):
        r = row_of[np.arange(T) * k + j]
        has = r >= 0
        out[has] += weights[has, j][:, None] * ys[r[has]]
    return out


# ----------------------------------------------------------------------------------------
# Training-side values
# ----------------------------------------------------------------------------------------


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
