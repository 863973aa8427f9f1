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
