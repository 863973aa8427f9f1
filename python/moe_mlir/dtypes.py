"""bfloat16 helpers on top of numpy, which has no native bf16 type.

numpy users hold bf16 data as ``ml_dtypes.bfloat16`` arrays; the compiled code
sees its raw form, the 16 bit pattern (``np.uint16``): the upper half of the
IEEE-754 float32 with the same sign, exponent and top 7 mantissa bits. Every
call that takes bf16 accepts either form, and bf16 results come back in the
form the bf16 inputs had (``bits``, ``as_bfloat16``).

ml_dtypes is imported when present: without it no ``bfloat16`` array can
exist, and the raw form still works.
"""

import numpy as np

try:
    import ml_dtypes

    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
    FLOAT8_E4M3FN = np.dtype(ml_dtypes.float8_e4m3fn)
    # MXFP4's scales; older ml_dtypes releases lack the type.
    FLOAT8_E8M0FNU = (np.dtype(ml_dtypes.float8_e8m0fnu)
                      if hasattr(ml_dtypes, "float8_e8m0fnu") else None)
except ImportError:  # the raw uint16 form needs nothing beyond numpy
    BFLOAT16 = None
    FLOAT8_E4M3FN = None
    FLOAT8_E8M0FNU = None

__all__ = ["BFLOAT16", "FLOAT8_E4M3FN", "FLOAT8_E8M0FNU", "fp8_bits", "f32_to_bf16_bits", "bf16_bits_to_f32", "round_to_bf16",
           "is_bfloat16", "bits", "as_bfloat16"]


def is_bfloat16(a) -> bool:
    """Whether ``a`` is an ``ml_dtypes.bfloat16`` array."""
    return BFLOAT16 is not None and getattr(a, "dtype", None) == BFLOAT16


def fp8_bits(a) -> np.ndarray:
    """The raw form of f8E4M3FN data: a ``float8_e4m3fn`` array viewed as its
    ``uint8`` bits (no copy); any other array as it is."""
    a = np.asarray(a)
    if FLOAT8_E4M3FN is not None and a.dtype == FLOAT8_E4M3FN:
        return a.view(np.uint8)
    return a


def bits(a) -> np.ndarray:
    """The raw form of bf16 data: a ``bfloat16`` array viewed as its ``uint16``
    bits (no copy), a ``uint16`` array as it is. Any other dtype is not bf16
    data (a float32 array would be read as garbage bits): ValueError."""
    a = np.asarray(a)
    if is_bfloat16(a):
        return a.view(np.uint16)
    if a.dtype != np.uint16:
        raise ValueError(f"bf16 data must be ml_dtypes.bfloat16 or uint16 bits, "
                         f"got dtype {a.dtype}")
    return a


def as_bfloat16(b) -> np.ndarray:
    """``uint16`` bf16 bits viewed as an ``ml_dtypes.bfloat16`` array (no copy)."""
    if BFLOAT16 is None:
        raise ValueError("bfloat16 arrays need the ml_dtypes package (pip install ml_dtypes)")
    return bits(b).view(BFLOAT16)


def f32_to_bf16_bits(a):
    """Round float32 values to bfloat16 and return the bit patterns as ``np.uint16``.

    Rounding is to nearest, ties to even; values beyond the largest finite bf16 round to
    infinity. NaNs stay NaN (sign kept, quiet bit set). Inputs of other float types are
    first converted to float32, as a kernel storing an f32 accumulator to bf16 would see them.
    """
    f = np.asarray(a, dtype=np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16) & 0xFFFF
    # Rounding a NaN's payload could carry into the exponent or clear every mantissa bit,
    # turning it into an infinity; forcing the quiet bit keeps it a NaN.
    nan_bits = ((bits >> 16) | 0x0040) & 0xFFFF
    out = np.where(np.isnan(f), nan_bits, rounded)
    return out.astype(np.uint16)


def bf16_bits_to_f32(b):
    """Widen bf16 data (``np.uint16`` bits or ``ml_dtypes.bfloat16``) to float32;
    this is exact."""
    return (bits(b).astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(a):
    """Round values to the nearest bfloat16 and return them as float32.

    Every returned value is exactly representable in bf16, so it survives a round trip
    through bf16 storage unchanged.
    """
    return bf16_bits_to_f32(f32_to_bf16_bits(a))
