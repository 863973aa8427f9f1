"""The oracle of the expert half: ``moe.dispatch``, ``moe.permute``,
``moe.glu``, ``moe.grouped_matmul`` and ``moe.combine`` (re-exported by
:mod:`moe_mlir.reference`, whose notation and ranking rule they follow)."""

import math

import numpy as np

from .reference_common import (ACTIVATIONS, DROP_POLICIES, GLU_LAYOUTS, RHS_LAYOUTS,
                               _choice, _f64, _int_array, _sigmoid)
from .reference_quant import dequantize_weights, quantize_activations
from .reference_routing import rank_order




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
