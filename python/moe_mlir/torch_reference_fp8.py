"""The FP8 expert half in torch: block-scaled e4m3 weights and the FP8 oracle.

What the GPU benchmark checks the compiled FP8 expert half against, at sizes
where the numpy fp64 oracle (``moe_mlir.reference`` with ``weight_quant``)
would not fit in memory. The contract is docs/quantization.md's and
``reference_quant``'s: weights ``W[e, n, k]`` in ``float8_e4m3fn`` with f32
scales ``S[e, ceil(N / bn), ceil(K / bk)]``; each GEMM's input rows are
quantized dynamically per group of ``bk`` columns (scale = amax / 448, 1 for
a zero group, ``a / scale`` clamped to [-448, 448] and rounded to e4m3, ties
to even). The matmuls then run in fp32 (TF32 off) on the dequantized values,
in the dtypes of the FP8 expert halves that moe-compile and the benchmark
build (``irgen.experts_ir(..., weight_quant=..., intermediate_dtype="f32")``):
the GLU output is quantized from its f32 value, as docs/quantization.md
specifies, and each routed row, scaled by its routing weight, is rounded to
the activation dtype (bf16) before the f32 combine.

torch is imported only when a function needs it, so this module imports on
machines without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moe_mlir.torch_reference import _tf32_matmul_enabled, _torch

if TYPE_CHECKING:
    import torch

E4M3_MAX = 448.0


def _blocks(size: int, block: int) -> int:
    return -(-size // block)


def quantize_weights(w: torch.Tensor, block: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 weights of ``w`` [E, N, K] as a checkpoint makes them: per block of
    ``bn`` x ``bk``, scale = amax / 448 (1 for a zero block) and ``w / scale``
    rounded to e4m3. Returns (float8_e4m3fn [E, N, K], float32 scales
    [E, ceil(N / bn), ceil(K / bk)]). Works one expert at a time, so only one
    expert is ever held in f32."""
    torch = _torch()
    E, N, K = w.shape
    bn, bk = min(int(block[0]), N), min(int(block[1]), K)
    gn, gk = _blocks(N, bn), _blocks(K, bk)
    q = torch.empty(E, N, K, dtype=torch.float8_e4m3fn, device=w.device)
    scales = torch.empty(E, gn, gk, dtype=torch.float32, device=w.device)
    for e in range(E):
        padded = torch.zeros(gn * bn, gk * bk, dtype=torch.float32, device=w.device)
        padded[:N, :K] = w[e].float()
        amax = padded.abs().reshape(gn, bn, gk, bk).amax(dim=(1, 3))
        scale = torch.where(amax == 0, torch.ones_like(amax), amax / E4M3_MAX)
        full = scale.repeat_interleave(bn, 0)[:N].repeat_interleave(bk, 1)[:, :K]
        q[e] = (padded[:N, :K] / full).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
        scales[e] = scale
    return q, scales


def dequantize_weights(q: torch.Tensor, scales: torch.Tensor, block: tuple[int, int],
                       dtype: Any = None) -> torch.Tensor:
    """``W[e, n, k] * S[e, n / bn, k / bk]`` of FP8 weights [E, N, K] (or of one
    expert's [N, K] with its scales [gn, gk]), in f32 or ``dtype``. All experts
    are dequantized one at a time into the result, so the f32 intermediates of
    only one expert are held (DeepSeek-V3's gate/up weights in f32 take 28 GiB)."""
    torch = _torch()
    dtype = dtype or torch.float32
    if q.dim() == 3:
        out = torch.empty(q.shape, dtype=dtype, device=q.device)
        for e in range(q.shape[0]):
            out[e] = dequantize_weights(q[e], scales[e], block, dtype)
        return out
    N, K = q.shape
    bn, bk = min(int(block[0]), N), min(int(block[1]), K)
    full = scales.repeat_interleave(bn, 0)[:N].repeat_interleave(bk, 1)[:, :K]
    return (q.float() * full).to(dtype)


def quantize_rows(a: torch.Tensor, bk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic activation quantization of rows ``a`` [R, K]: per group of
    ``bk`` columns (the last may be shorter), scale = amax / 448 in f32 (1 for
    an all-zero group), ``a / scale`` clamped and rounded to e4m3. Returns
    (float8_e4m3fn [R, K], float32 scales [R, ceil(K / bk)])."""
    torch = _torch()
    R, K = a.shape
    bk = min(int(bk), K)
    gk = _blocks(K, bk)
    padded = torch.zeros(R, gk * bk, dtype=torch.float32, device=a.device)
    padded[:, :K] = a.float()
    amax = padded.abs().reshape(R, gk, bk).amax(dim=2)
    scales = torch.where(amax == 0, torch.ones_like(amax), amax / E4M3_MAX)
    full = scales.repeat_interleave(bk, 1)[:, :K]
    q = (padded[:, :K] / full).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, scales


def quantized_rows(a: torch.Tensor, bk: int) -> torch.Tensor:
    """The f32 values ``q * scale`` that the FP8 product uses for rows ``a``."""
    q, scales = quantize_rows(a, bk)
    K = a.shape[1]
    bk = min(int(bk), K)
    return q.float() * scales.repeat_interleave(bk, 1)[:, :K]


def reference_fp8(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor,
                  ids: torch.Tensor, weights: torch.Tensor, w13_scales: torch.Tensor,
                  w2_scales: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """The FP8 oracle of the expert half (silu GLU, concatenated gate/up): x
    [T, H] (bf16), FP8 w13 [E, 2I, H] and w2 [E, H, I] with their block
    scales, ids [T, k], weights [T, k]; returns y [T, H] in f32. One expert
    at a time, so only one expert's weights are ever dequantized."""
    torch = _torch()
    if _tf32_matmul_enabled(torch):
        raise RuntimeError("reference_fp8 needs IEEE fp32 matmuls; TF32 is on")
    T, H = x.shape
    I = w2.shape[-1]
    bk = int(block[1])
    xq = quantized_rows(x, bk)  # a token's row is quantized once, before the gather
    out = torch.zeros(T, H, dtype=torch.float32, device=x.device)
    for e in torch.unique(ids).tolist():  # experts with no tokens are skipped
        tok, slot = torch.where(ids == e)
        h = xq.index_select(0, tok) @ dequantize_weights(w13[e], w13_scales[e], block).t()
        a = torch.nn.functional.silu(h[:, :I]) * h[:, I:]
        y = quantized_rows(a, bk) @ dequantize_weights(w2[e], w2_scales[e], block).t()
        scaled = (y * weights[tok, slot].float().unsqueeze(1)).to(x.dtype)
        out.index_add_(0, tok, scaled.float())
    return out
