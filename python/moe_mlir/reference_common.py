"""What the numpy oracle's modules share: the attribute values each op accepts
and the checks and float64 functions they are computed with
(:mod:`moe_mlir.reference` documents the oracle)."""

import numpy as np

SCORINGS = ("softmax", "sigmoid", "softmax_topk", "none")
GROUP_SCORES = ("sum_top2", "max")
SECOND_EXPERT_POLICIES = ("all", "random")
DROP_POLICIES = ("position", "score")
ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu", "swiglu_oai")
GLU_LAYOUTS = ("concatenated", "interleaved")
RHS_LAYOUTS = ("nk", "kn", "panels", "panels_vnni")

_U64 = (1 << 64) - 1


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
