"""bfloat16 helpers on top of numpy, which has no native bf16 type.

A bf16 value is stored as its 16 bit pattern (``np.uint16``): the upper half of the
IEEE-754 float32 with the same sign, exponent and top 7 mantissa bits.
"""

import numpy as np

__all__ = ["f32_to_bf16_bits", "bf16_bits_to_f32", "round_to_bf16"]


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
    """Widen bfloat16 bit patterns (``np.uint16``) to float32; this is exact."""
    b = np.asarray(b)
    if b.dtype != np.uint16:
        raise ValueError(f"bf16 bit patterns must be uint16, got dtype {b.dtype}")
    return (b.astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(a):
    """Round values to the nearest bfloat16 and return them as float32.

    Every returned value is exactly representable in bf16, so it survives a round trip
    through bf16 storage unchanged.
    """
    return bf16_bits_to_f32(f32_to_bf16_bits(a))
