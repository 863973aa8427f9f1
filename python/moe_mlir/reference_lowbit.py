"""Reference semantics of the weight-only formats of ``#moe.weight_quant``, numpy float64.

The contract (docs/quantization.md), for weights ``W[e, n, k]`` (nk layout):

- ``mxfp4`` (OCP Microscaling, gpt-oss): ``f4E2M1FN`` codes packed two per byte along K
  (``[E, N, K / 2]`` uint8, the low nibble holds the even k), one ``f8E8M0FNU`` scale
  ``s`` (uint8 bits) per 32 consecutive K (``[E, N, K / 32]``); the weight is
  ``e2m1(code) * 2^(s - 127)`` (s = 255 is NaN). gpt-oss stores the codes as
  ``*_blocks`` ``[E, N, K / 32, 16]``, the same bytes.
- ``int4`` group-wise: ``q`` in [0, 15] packed two per byte along K (low nibble first),
  per group of ``g`` along K a float32 scale ``s`` and a zero point ``z`` (``[E, N,
  ceil(K / g)]``; ``z = 8`` when there are none, the symmetric form); the weight is
  ``(q - z) * s``.
- ``int8`` per-channel: ``q`` in [-127, 127] (int8 ``[E, N, K]``), one float32 scale per
  output row (``[E, N, 1]``); the weight is ``q * s``.

Every value here is exact in float64.
"""

import numpy as np

__all__ = [
    "E2M1_VALUES",
    "MXFP4_BLOCK",
    "INT4_GROUPS",
    "pack_nibbles",
    "unpack_nibbles",
    "e2m1_values",
    "e8m0_values",
    "dequantize_mxfp4",
    "dequantize_int4",
    "dequantize_int8",
]

#: The 16 f4E2M1FN values by code: sign (bit 3), exponent (bits 1..2), mantissa (bit 0).
E2M1_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                        -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
MXFP4_BLOCK = 32
INT4_GROUPS = (32, 64, 128)


def _uint8(a, what):
    a = np.asarray(a)
    if a.dtype == np.int8:
        a = a.view(np.uint8)
    if a.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (or int8) bytes, got {a.dtype}")
    return a


def pack_nibbles(codes):
    """Codes [..., K] in [0, 15] (K even) packed two per byte: code k even in the low
    nibble of byte k / 2, code k + 1 in its high nibble. Returns uint8 [..., K / 2]."""
    codes = np.asarray(codes)
    if codes.shape[-1] % 2:
        raise ValueError(f"4-bit codes pack in pairs along K: K = {codes.shape[-1]} is odd")
    if codes.size and (codes.min() < 0 or codes.max() > 15):
        raise ValueError("4-bit codes must be in [0, 15]")
    codes = codes.astype(np.uint8)
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def unpack_nibbles(packed):
    """The inverse of :func:`pack_nibbles`: uint8 [..., K / 2] -> codes uint8 [..., K]."""
    packed = _uint8(packed, "packed 4-bit weights")
    out = np.empty(packed.shape[:-1] + (packed.shape[-1] * 2,), dtype=np.uint8)
    out[..., 0::2] = packed & 0xF
    out[..., 1::2] = packed >> 4
    return out


def e2m1_values(codes):
    """The exact float64 values of f4E2M1FN codes (integers in [0, 15])."""
    return E2M1_VALUES[np.asarray(codes, dtype=np.intp)]


def e8m0_values(bits):
    """2^(s - 127) in float64 for f8E8M0FNU bytes s (s = 255 is NaN)."""
    s = _uint8(bits, "e8m0 scales").astype(np.float64)
    return np.where(s == 255, np.nan, np.exp2(s - 127.0))


def _check_shape(name, a, expected):
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(a.shape)}")


def dequantize_mxfp4(blocks, scales):
    """W [E, N, K] float64 from MXFP4 ``blocks`` (uint8 [E, N, K / 2], or gpt-oss's
    [E, N, K / 32, 16]) and ``scales`` (uint8 e8m0 bits [E, N, K / 32])."""
    blocks = _uint8(blocks, "mxfp4 blocks")
    if blocks.ndim == 4:
        if blocks.shape[3] != MXFP4_BLOCK // 2:
            raise ValueError(f"gpt-oss mxfp4 blocks are [E, N, K / 32, 16], got {blocks.shape}")
        blocks = blocks.reshape(blocks.shape[0], blocks.shape[1], -1)
    if blocks.ndim != 3:
        raise ValueError(f"mxfp4 blocks must be [E, N, K / 2], got shape {blocks.shape}")
    E, N, half = blocks.shape
    K = 2 * half
    if K % MXFP4_BLOCK:
        raise ValueError(f"mxfp4 needs K a multiple of {MXFP4_BLOCK}, got K = {K}")
    scales = _uint8(scales, "mxfp4 scales")
    _check_shape("mxfp4 scales", scales, (E, N, K // MXFP4_BLOCK))
    values = e2m1_values(unpack_nibbles(blocks))
    return values * np.repeat(e8m0_values(scales), MXFP4_BLOCK, axis=2)


def dequantize_int4(packed, scales, zero_points=None, group=128):
    """W [E, N, K] float64 from int4 codes ``packed`` (uint8 [E, N, K / 2]), float32
    ``scales`` [E, N, ceil(K / g)] and integer ``zero_points`` of the same shape (None:
    the symmetric form, z = 8). The last group may be partial."""
    if int(group) not in INT4_GROUPS:
        raise ValueError(f"int4 group size must be one of {INT4_GROUPS}, got {group}")
    codes = unpack_nibbles(packed)
    if codes.ndim != 3:
        raise ValueError(f"int4 weights must be [E, N, K / 2], got shape {np.shape(packed)}")
    E, N, K = codes.shape
    groups = -(-K // group)
    scales = np.asarray(scales)
    if scales.dtype != np.float32:
        raise ValueError(f"int4 scales must be float32, got {scales.dtype}")
    _check_shape("int4 scales", scales, (E, N, groups))
    if zero_points is None:
        z = np.full((E, N, groups), 8.0)
    else:
        zero_points = np.asarray(zero_points)
        _check_shape("int4 zero points", zero_points, (E, N, groups))
        if zero_points.size and (zero_points.min() < 0 or zero_points.max() > 15):
            raise ValueError("int4 zero points must be in [0, 15]")
        z = zero_points.astype(np.float64)
    per_k = lambda t: np.repeat(t, group, axis=2)[:, :, :K]  # noqa: E731
    return (codes.astype(np.float64) - per_k(z)) * per_k(scales.astype(np.float64))


def dequantize_int8(q, scales):
    """W [E, N, K] float64 from int8 ``q`` in [-127, 127] and float32 per-row ``scales``
    [E, N, 1]."""
    q = np.asarray(q)
    if q.dtype != np.int8 or q.ndim != 3:
        raise ValueError(f"int8 weights must be int8 [E, N, K], got {q.dtype} {q.shape}")
    if q.size and q.min() < -127:
        raise ValueError("int8 weights must be in [-127, 127] (-128 is not used)")
    scales = np.asarray(scales)
    if scales.dtype != np.float32:
        raise ValueError(f"int8 scales must be float32, got {scales.dtype}")
    _check_shape("int8 scales", scales, (q.shape[0], q.shape[1], 1))
    return q.astype(np.float64) * scales.astype(np.float64)
