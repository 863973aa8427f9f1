"""Reference semantics of quantized expert weights (``#moe.weight_quant``), numpy float64.

The FP8 contract (docs/quantization.md): weights ``W[e, n, k]`` in ``float8_e4m3fn`` with
float32 scales ``S[e, ceil(N / bn), ceil(K / bk)]`` (the checkpoint's ``weight_scale_inv``);
the weight is ``W[e, n, k] * S[e, n // bn, k // bk]``, computed here exactly in float64
from the exact e4m3 values (ml_dtypes).

Activations are quantized the way the compiled code does it, in float32 arithmetic so that
every rounding decision is the same: ``dynamic`` splits each row into groups of ``bk``
columns, scale = amax(|a|) / 448 (float32; 1 for an all-zero group); ``static`` uses one
given float32 scale. ``a / scale`` (float32) is clamped to [-448, 448] and rounded to the
nearest e4m3 value (ties to even); the product uses ``q * scale`` exactly (float64).
"""

import numpy as np

try:  # exact e4m3 values; the numpy forms below give the same ones without it
    import ml_dtypes
except ImportError:  # e.g. a GPU machine with torch and numpy only
    ml_dtypes = None

__all__ = [
    "E4M3_MAX",
    "ACTIVATION_QUANTS",
    "e4m3_values",
    "weight_scale_shape",
    "dequantize_weights",
    "quantize_activations",
    "quantize_weights",
]

E4M3_MAX = 448.0
ACTIVATION_QUANTS = ("none", "dynamic", "static")


def _block(block, N, K):
    """(bn, bk) clamped to the dimensions: a block at least a dimension spans it."""
    if len(block) != 2 or any(int(b) < 1 for b in block):
        raise ValueError(f"block must be [bn, bk] with both >= 1, got {list(block)}")
    return min(int(block[0]), N), min(int(block[1]), K)


def _e4m3_table():
    """The float64 value of each e4m3 byte: sign, 4 exponent bits (bias 7), 3 mantissa
    bits; exponent 0 is subnormal (m * 2^-9); 0x7F and 0xFF are NaN."""
    byte = np.arange(256)
    exponent, mantissa = (byte >> 3) & 0xF, byte & 7
    magnitude = np.where(exponent == 0, mantissa * 2.0 ** -9,
                         (1 + mantissa / 8.0) * 2.0 ** (exponent - 7.0))
    values = np.where(byte & 0x80, -magnitude, magnitude)
    values[(byte & 0x7F) == 0x7F] = np.nan
    return values


E4M3_TABLE = _e4m3_table()


def e4m3_values(w):
    """The exact float64 values of e4m3 weights (a float8_e4m3fn array, or its uint8 bits)."""
    w = np.asarray(w)
    if w.dtype == np.uint8:
        return E4M3_TABLE[w]
    if ml_dtypes is None or w.dtype != ml_dtypes.float8_e4m3fn:
        raise ValueError(f"FP8 weights must be float8_e4m3fn (or their uint8 bits), got {w.dtype}")
    return w.astype(np.float64)


def weight_scale_shape(weight_shape, block):
    """[E, ceil(N / bn), ceil(K / bk)] for weights [E, N, K]."""
    E, N, K = weight_shape
    return (E, -(-N // int(block[0])), -(-K // int(block[1])))


def dequantize_weights(w, scales, block):
    """W[e, n, k] * S[e, n // bn, k // bk] in float64, for w [E, N, K] (nk layout)."""
    W = e4m3_values(w)
    if W.ndim != 3:
        raise ValueError(f"FP8 weights must be [E, N, K], got shape {W.shape}")
    E, N, K = W.shape
    scales = np.asarray(scales)
    expected = weight_scale_shape(W.shape, block)
    if scales.shape != expected or scales.dtype != np.float32:
        raise ValueError(f"scales must be float32 {expected} for weights {W.shape} and block "
                         f"{list(block)}, got {scales.dtype} {scales.shape}")
    bn, bk = _block(block, N, K)  # a block past a dimension spans it
    S = scales.astype(np.float64)
    S = np.repeat(np.repeat(S, bn, axis=1)[:, :N], bk, axis=2)[:, :, :K]
    return W * S


def _to_e4m3(y):
    """float32 y clamped to [-448, 448], rounded to e4m3 (ties to even), as float64."""
    y = np.clip(y, np.float32(-E4M3_MAX), np.float32(E4M3_MAX))
    if ml_dtypes is None:
        return _round_e4m3(y)
    return y.astype(ml_dtypes.float8_e4m3fn).astype(np.float64)


def _round_e4m3(y):
    """float32 y in [-448, 448] rounded to e4m3, ties to even, without ml_dtypes: y over
    the spacing of the e4m3 values around it (2^(e - 3) for its exponent e, 2^-9 below
    2^-6) rounded to an integer (numpy's rint: ties to even), times the spacing; exact
    in float64."""
    y = np.asarray(y, dtype=np.float64)
    _, exponent = np.frexp(np.abs(y))  # |y| = f * 2^exponent, f in [0.5, 1)
    spacing = np.exp2(np.maximum(exponent - 1, -6) - 3.0)
    return np.rint(y / spacing) * spacing


def quantize_activations(a, block_k, activation="dynamic", static_scale=None):
    """The A rows [M, K] as the product sees them: q * scale (float64), see the module doc.

    ``a`` is first taken to float32 (the compiled code's value of it).
    """
    if activation not in ACTIVATION_QUANTS:
        raise ValueError(f"activation must be one of {ACTIVATION_QUANTS}, got {activation!r}")
    a32 = np.asarray(a, dtype=np.float64).astype(np.float32)
    if a32.ndim != 2:
        raise ValueError(f"activations must be [M, K], got shape {a32.shape}")
    if activation == "none":
        return a32.astype(np.float64)
    if activation == "static":
        s = np.asarray(static_scale, dtype=np.float32).reshape(-1)
        if s.shape != (1,):
            raise ValueError(f"a static activation scale is one float32, got shape {s.shape}")
        return _to_e4m3(a32 / s[0]) * np.float64(s[0])
    M, K = a32.shape
    bk = min(int(block_k), K)
    groups = -(-K // bk)
    padded = np.zeros((M, groups * bk), dtype=np.float32)
    padded[:, :K] = np.abs(a32)
    amax = padded.reshape(M, groups, bk).max(axis=2) if M else np.zeros((0, groups), np.float32)
    scale = np.where(amax == 0, np.float32(1), amax / np.float32(E4M3_MAX)).astype(np.float32)
    per_column = np.repeat(scale, bk, axis=1)[:, :K]
    return _to_e4m3(a32 / per_column) * per_column.astype(np.float64)


def quantize_weights(w, block):
    """FP8 weights and scales for float weights w [E, N, K], as checkpoints make them
    (DeepSeek's weight_quant): per block, scale = amax / 448 (1 for a zero block) and
    w / scale rounded to e4m3. Returns (float8_e4m3fn [E, N, K], float32 scales)."""
    w = np.asarray(w, dtype=np.float64)
    E, N, K = w.shape
    bn, bk = _block(block, N, K)
    gn, gk = -(-N // bn), -(-K // bk)
    padded = np.zeros((E, gn * bn, gk * bk))
    padded[:, :N, :K] = np.abs(w)
    amax = padded.reshape(E, gn, bn, gk, bk).max(axis=(2, 4)).astype(np.float32)
    scales = np.where(amax == 0, np.float32(1), amax / np.float32(E4M3_MAX)).astype(np.float32)
    full = np.repeat(np.repeat(scales, bn, axis=1)[:, :N], bk, axis=2)[:, :, :K]
    if ml_dtypes is None:
        raise ImportError("quantize_weights returns float8_e4m3fn arrays: it needs the "
                          "ml_dtypes package (pip install ml_dtypes)")
    q = np.clip(w / full, -E4M3_MAX, E4M3_MAX).astype(ml_dtypes.float8_e4m3fn)
    return q, scales
