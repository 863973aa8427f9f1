"""Weight-only expert weights in torch, on the GPU: random ones as a checkpoint stores
them, and their dequantization (docs/quantization.md, "Weight-only formats").

What the GPU test (test/Integration/GPU/test_weight_only_gpu.py) and the benchmark
rows (``gpu.py --weight-only``) feed the compiled layers: ``random_weights`` draws the
codes, scales and zero points of one projection ``[E, N, K]`` on the device, scaled so
that a product with N(0, 1) activations is O(1); ``dequantize`` gives its float weights
(the dequantize-then-``torch._grouped_mm`` peer, and the benchmark's check).
``moe_mlir.reference_lowbit`` is the exact fp64 form, which the test checks against.

torch is imported only when a function needs it.
"""

from __future__ import annotations

import math
from typing import Any

#: The e2m1 magnitudes of codes 0..7 (bit 3 is the sign).
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
#: rms of an e2m1 value over uniform codes, of q - z for uniform q and z in [0, 15],
#: and of a uniform int8 code in [-127, 127].
_RMS = {"mxfp4": 2.9, "int4": 6.5, "int8": 73.0}


def groups(fmt: str, K: int, group: int) -> int:
    """Scales per weight row: one for int8 (per channel), ceil(K / g) otherwise."""
    return 1 if fmt == "int8" else -(-K // group)


def random_weights(fmt: str, E: int, N: int, K: int, group: int, zero_points: bool,
                   generator: Any, extreme: bool = False) -> dict:
    """One projection's weights on the GPU as stored: ``{"w", "scales"[,
    "zero_points"]}``: i8 codes ``[E, N, K / 2]`` (two per byte, the even k in the low
    nibble; uint8) or ``[E, N, K]`` (int8), e8m0 bits (uint8) or f32 scales ``[E, N,
    groups]``, int4 zero points (int8, in [0, 15]). int4 scales of 0 on every seventh
    row's first group. ``extreme`` (mxfp4): e8m0 scales 0 and 254 only, beside codes
    of magnitude at most 1, so that every weight stays in f32's range."""
    import torch

    G = groups(fmt, K, group)
    cuda = dict(device=generator.device, generator=generator)
    scale = 1.0 / (_RMS[fmt] * math.sqrt(K))
    if fmt == "int8":
        w = torch.randint(-127, 128, (E, N, K), dtype=torch.int8, **cuda)
        scales = (torch.rand((E, N, 1), **cuda) + 0.5) * scale
        return dict(w=w, scales=scales)
    if fmt == "mxfp4" and extreme:
        small = torch.tensor([0, 1, 2, 8, 9, 10], dtype=torch.uint8, device=generator.device)
        codes = small[torch.randint(0, len(small), (E, N, K), **cuda)]
    else:
        codes = torch.randint(0, 16, (E, N, K), dtype=torch.uint8, **cuda)
    w = (codes[..., 0::2] | (codes[..., 1::2] << 4)).contiguous()
    del codes
    if fmt == "mxfp4":
        if extreme:
            bits = torch.tensor([0, 254], dtype=torch.uint8, device=generator.device)
            scales = bits[torch.randint(0, 2, (E, N, G), **cuda)]
        else:
            centre = 127 + round(math.log2(scale))
            scales = torch.randint(centre - 1, centre + 2, (E, N, G), dtype=torch.uint8,
                                   **cuda)
        return dict(w=w, scales=scales)
    scales = (torch.rand((E, N, G), **cuda) + 0.5) * scale
    scales[:, ::7, 0] = 0.0  # a zero scale: those rows' first group is zero
    out = dict(w=w, scales=scales)
    if zero_points:
        out["zero_points"] = torch.randint(0, 16, (E, N, G), dtype=torch.int8, **cuda)
    return out


def _codes(w: Any) -> Any:
    """The 4-bit codes of packed bytes [..., K / 2] as [..., K] (int16)."""
    import torch

    w = w.view(torch.uint8).to(torch.int16)
    return torch.stack((w & 15, w >> 4), dim=-1).flatten(-2)


def _per_k(t: Any, group: int, K: int) -> Any:
    return t.repeat_interleave(group, dim=-1)[..., :K]


def dequantize_experts(fmt: str, weights: dict, group: int, K: int, dtype: Any) -> Any:
    """The float weights ``[E', N, K]`` in ``dtype`` of ``weights`` (any leading
    experts' slice), computed in f32, or in f64 where ``dtype`` is float64 (then
    exact: small integers times f32 scales or powers of two, e8m0's extremes
    included)."""
    import torch

    compute = torch.float64 if dtype == torch.float64 else torch.float32
    w, scales = weights["w"], weights["scales"]
    if fmt == "int8":
        return (w.to(compute) * scales.to(compute)).to(dtype)
    codes = _codes(w)
    if fmt == "mxfp4":
        table = torch.tensor(E2M1_MAGNITUDES, dtype=compute, device=w.device)
        values = table[(codes & 7).long()] * (1.0 - 2.0 * (codes >> 3).to(compute))
        exponent = scales.view(torch.uint8).to(compute) - 127.0
        return (values * _per_k(torch.exp2(exponent), 32, K)).to(dtype)
    z = weights.get("zero_points")
    z = z.to(compute) if z is not None else torch.full_like(scales, 8.0, dtype=compute)
    return ((codes.to(compute) - _per_k(z, group, K)) * _per_k(scales.to(compute), group, K)).to(dtype)


def dequantize(fmt: str, weights: dict, group: int, K: int, dtype: Any,
               experts_per_chunk: int = 8) -> Any:
    """All experts' float weights ``[E, N, K]`` in ``dtype``, a few experts at a time
    (the f32 intermediates of a whole projection may not fit beside the weights)."""
    import torch

    E, N = weights["w"].shape[:2]
    out = torch.empty((E, N, K), dtype=dtype, device=weights["w"].device)
    for e in range(0, E, experts_per_chunk):
        chunk = {name: t[e:e + experts_per_chunk] for name, t in weights.items()}
        out[e:e + experts_per_chunk] = dequantize_experts(fmt, chunk, group, K, dtype)
    return out
