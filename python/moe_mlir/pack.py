"""Weight layouts of ``moe.grouped_matmul`` and ``moe.layer``, and the packing step.

Every layout stores E experts' [N, K] weight matrices W[e] (output column n, reduction
index k):

- ``"nk"``: [E, N, K], the PyTorch Linear layout;
- ``"kn"``: [E, K, N];
- ``"panels"``: [E, N / P, K, P] with element [e, n // P, k, n % P]: panels of P output
  columns, each contiguous along K. This is the CPU kernel's packed layout: each k of a
  panel is one contiguous vector load, and a panel is one sequential stream;
- ``"panels_vnni"``: [E, N / P, K / 2, 2P] with element [e, n // P, k // 2,
  2 (n % P) + k % 2]: the same panels with each column's consecutive k in pairs (the
  VNNI order that ``vdpbf16ps`` multiplies). This is the CPU kernel's layout for bf16
  weights; K must be even.

Quantized weights (``#moe.weight_quant``) go into ``"panels"`` as they are stored
(:func:`quantized_to_panels`): the bytes of the nk layout ([E, N, K / 2] for mxfp4 and
int4, whose byte j of a column holds k = 2j and 2j + 1, [E, N, K] for int8 and FP8) as
[E, N / P, Ks, P] panels, so that one 64-byte row of a 64-wide 4-bit panel is the k-pair
of 64 columns; the weight-only formats' scales and zero points [E, N, G] follow into [E,
N / P, G, P] panels, FP8's block scales stay as they are. P is the widest of
QUANTIZED_PANEL_WIDTHS that divides N. In 64-wide panels the 4-bit codes of each row
are rearranged into the word order (:func:`nibbles_to_word_order`) that the CPU kernel
indexes its tables with directly; :func:`quantized_from_panels` reads any panels back.

Packing is a one-time step on the weights, done when a model is loaded, never per call:

    w13_packed = pack.to_layout(w13, "panels")   # [E, 2I, H] -> [E, 2I/16, H, 16]
    w13_bf16 = pack.to_layout(w13_bits, "panels_vnni")   # -> [E, 2I/16, H/2, 32]
"""

from __future__ import annotations

import numpy as np

from .reference import RHS_LAYOUTS

#: The panel width P that layers are packed with: one AVX-512 vector of f32.
PANEL_WIDTH = 16


def weight_shape(E: int, N: int, K: int, layout: str = "nk",
                 panel_width: int = PANEL_WIDTH) -> tuple[int, ...]:
    """The shape of E experts' [N, K] weights stored in ``layout``."""
    if layout == "nk":
        return (E, N, K)
    if layout == "kn":
        return (E, K, N)
    if layout == "panels":
        if panel_width < 1 or N % panel_width:
            raise ValueError(f"the panels layout needs N = {N} to be a multiple of the "
                             f"panel width {panel_width}")
        return (E, N // panel_width, K, panel_width)
    if layout == "panels_vnni":
        if panel_width < 1 or N % panel_width or K % 2:
            raise ValueError(f"the panels_vnni layout needs N = {N} to be a multiple of "
                             f"the panel width {panel_width} and K = {K} to be even")
        return (E, N // panel_width, K // 2, 2 * panel_width)
    raise ValueError(f"unknown weight layout {layout!r}; expected one of {RHS_LAYOUTS}")


def to_layout(weights, layout: str, panel_width: int = PANEL_WIDTH) -> np.ndarray:
    """Packs [E, N, K] (``nk``) weights into ``layout``, as a new contiguous array of the
    same dtype (bf16 storage as uint16 works too)."""
    w = np.asarray(weights)
    if w.ndim != 3:
        raise ValueError(f"weights must be [E, N, K], got shape {w.shape}")
    E, N, K = w.shape
    shape = weight_shape(E, N, K, layout, panel_width)
    if layout == "nk":
        return np.ascontiguousarray(w)
    if layout == "kn":
        return np.ascontiguousarray(w.transpose(0, 2, 1))
    if layout == "panels":
        return np.ascontiguousarray(
            w.reshape(E, shape[1], panel_width, K).transpose(0, 1, 3, 2))
    return np.ascontiguousarray(
        w.reshape(E, shape[1], panel_width, K // 2, 2).transpose(0, 1, 3, 2, 4)
        .reshape(shape))


def from_layout(weights, layout: str) -> np.ndarray:
    """The [E, N, K] (``nk``) view of weights stored in ``layout``."""
    w = np.asarray(weights)
    if layout == "nk":
        return w
    if layout == "kn":
        return w.transpose(0, 2, 1)
    if layout == "panels":
        if w.ndim != 4:
            raise ValueError(f"panels weights must be [E, N/P, K, P], got shape {w.shape}")
        E, panels, K, P = w.shape
        return w.transpose(0, 1, 3, 2).reshape(E, panels * P, K)
    if layout == "panels_vnni":
        if w.ndim != 4 or w.shape[3] % 2:
            raise ValueError("panels_vnni weights must be [E, N/P, K/2, 2P], got shape "
                             f"{w.shape}")
        E, panels, pairs, width = w.shape
        P = width // 2
        return (w.reshape(E, panels, pairs, P, 2).transpose(0, 1, 3, 2, 4)
                .reshape(E, panels * P, pairs * 2))
    raise ValueError(f"unknown weight layout {layout!r}; expected one of {RHS_LAYOUTS}")


#: The panel widths of quantized weights, widest first: a row of a 64-wide panel of
#: 4-bit codes is one 64-byte line holding the k-pair of 64 columns.
QUANTIZED_PANEL_WIDTHS = (64, 32, 16)


#: The panel width whose 4-bit rows are stored in the word order
#: (:func:`nibbles_to_word_order`).
WORD_ORDER_PANEL_WIDTH = 64


def nibbles_to_word_order(rows):
    """Rows of 64 bytes of 4-bit codes, byte c holding column c's k-pair (k = 2j in the
    low nibble, 2j + 1 in the high one), rearranged into the word order of
    docs/quantization.md: column 16 b + d, weight k = 2j + h, goes to nibble b % 2 of
    byte 4 d + 2 h + b // 2. Read as 32 little-endian words, word 2 d + h then holds
    weight k of columns d, 16 + d, 32 + d and 48 + d in bits 0-3, 4-7, 8-11 and 12-15,
    so the CPU kernel indexes its tables with the words shifted, nothing more."""
    r = np.asarray(rows)
    if r.shape[-1] != 64:
        raise ValueError(f"rows in the word order are 64 bytes, got {r.shape[-1]}")
    b = r.view(np.uint8).reshape(r.shape[:-1] + (4, 16, 1))        # [.., b, d, 1]
    nibbles = np.concatenate([b & 15, b >> 4], axis=-1)            # [.., b, d, h]
    packed = nibbles[..., 0::2, :, :] | (nibbles[..., 1::2, :, :] << 4)  # [.., q, d, h]
    order = np.moveaxis(packed, -3, -1)                              # [.., d, h, q]
    return np.ascontiguousarray(order.reshape(r.shape)).view(r.dtype)


def nibbles_from_word_order(rows):
    """The inverse of :func:`nibbles_to_word_order`."""
    r = np.asarray(rows)
    if r.shape[-1] != 64:
        raise ValueError(f"rows in the word order are 64 bytes, got {r.shape[-1]}")
    order = r.view(np.uint8).reshape(r.shape[:-1] + (16, 2, 2))    # [.., d, h, q]
    nibbles = np.stack([order & 15, order >> 4], axis=-1)          # [.., d, h, q, nib]
    # Column block b = 2 q + nib.
    by_block = np.moveaxis(nibbles.reshape(r.shape[:-1] + (16, 2, 4)), -1, -3)  # [.., b, d, h]
    plain = by_block[..., 0] | (by_block[..., 1] << 4)
    return np.ascontiguousarray(plain.reshape(r.shape)).view(r.dtype)


def quantized_from_panels(fmt: str, packed):
    """The nk bytes ([E, N, Ks]) of ``fmt`` weights packed by :func:`quantized_to_panels`."""
    w = np.asarray(packed)
    if w.ndim != 4:
        raise ValueError(f"{fmt} panels must be [E, N/P, Ks, P], got shape {w.shape}")
    if fmt in ("mxfp4", "int4") and w.shape[3] == WORD_ORDER_PANEL_WIDTH:
        w = nibbles_from_word_order(w)
    return from_layout(w, "panels")


def quantized_panel_width(N: int) -> int:
    """The panel width of quantized weights with N output columns: the widest of
    QUANTIZED_PANEL_WIDTHS that divides N."""
    for width in QUANTIZED_PANEL_WIDTHS:
        if N % width == 0:
            return width
    raise ValueError(f"quantized weights in panels need N = {N} to be a multiple of "
                     f"{QUANTIZED_PANEL_WIDTHS[-1]}")


def quantized_to_panels(fmt: str, weights, scales, zero_points=None,
                        panel_width: int | None = None):
    """(weights, scales, zero_points) of E experts in ``fmt`` (``mxfp4``, ``int4``,
    ``int8`` or ``fp8_e4m3``) from the nk layout as stored into the panels layout (see
    the module docstring); ``zero_points`` stays None when it is None."""
    w = np.asarray(weights)
    if w.ndim != 3:
        raise ValueError(f"{fmt} weights must be [E, N, Ks], got shape {w.shape}")
    P = panel_width or quantized_panel_width(w.shape[1])
    packed = to_layout(w, "panels", P)
    if fmt in ("mxfp4", "int4") and P == WORD_ORDER_PANEL_WIDTH:
        packed = nibbles_to_word_order(packed)
    if fmt == "fp8_e4m3":
        if zero_points is not None:
            raise ValueError("FP8 weights have no zero points")
        return packed, scales, None
    if fmt not in ("mxfp4", "int4", "int8"):
        raise ValueError(f"unknown quantized format {fmt!r}")

    def follow(t, name):
        t = np.asarray(t)
        if t.ndim != 3 or t.shape[:2] != w.shape[:2]:
            raise ValueError(f"{name} must be [E, N, G] = {w.shape[:2]} x G, got {t.shape}")
        return to_layout(t, "panels", P)

    return (packed, follow(scales, "scales"),
            None if zero_points is None else follow(zero_points, "zero_points"))
