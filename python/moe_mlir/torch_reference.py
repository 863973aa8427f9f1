"""The expert half of a MoE layer in torch: random inputs and the fp32 oracle.

What the GPU tests and benchmarks check the compiled expert half against.
Weights use the layout of our kernels: w13 is [E, 2I, H] (rows 0..I-1 are the
gate projection W1, rows I..2I-1 the up projection W3), w2 is [E, H, I]; x is
[T, H], ids [T, k] int32, weights [T, k] float32, and the layer computes
y = sum_j w_j * W2_e (silu(W1_e x) * (W3_e x)). With gpt-oss's expert biases
(w13_bias [E, 2I], w2_bias [E, H]) and its activation (``swiglu_oai``: gate
and up interleaved, clamped), y = sum_j w_j * (W2_e swiglu(W13_e x + b13_e)
+ b2_e).

torch is imported only when a function needs it, so this module imports on
machines without it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("the expert-half oracle needs torch") from exc
    return torch


def experts_hit(ids: Any) -> int:
    """Distinct experts routed to; this, not E, sets the weight traffic."""
    if hasattr(ids, "unique"):
        return int(ids.unique().numel())
    return len({int(e) for e in ids.reshape(-1)})


def make_weights(H: int, I: int, E: int, seed: int, device: str = "cuda",
                 dtype: Any = None) -> dict:
    """Random expert weights (bf16, or ``dtype``), scaled by 1/sqrt(fan_in) so the
    activations stay O(1) and the rounding error is comparable across shapes."""
    torch = _torch()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    dtype = dtype or torch.bfloat16
    w13 = torch.randn(E, 2 * I, H, generator=gen, device=device, dtype=dtype)
    w13.mul_(1.0 / math.sqrt(H))
    w2 = torch.randn(E, H, I, generator=gen, device=device, dtype=dtype)
    w2.mul_(1.0 / math.sqrt(I))
    return {"w13": w13, "w2": w2}


def make_tokens(T: int, H: int, E: int, k: int, seed: int,
                device: str = "cuda", dtype: Any = None) -> dict:
    """Random tokens x (bf16, or ``dtype``) and their routing: near-uniform router
    logits, so the experts hit match random routing; the top-k weights
    renormalized."""
    torch = _torch()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    x = torch.randn(T, H, generator=gen, device=device, dtype=dtype or torch.bfloat16)
    logits = 0.01 * torch.randn(T, E, generator=gen, device=device)
    probs = torch.softmax(logits, dim=-1)
    top, ids = torch.topk(probs, k, dim=-1)
    weights = (top / top.sum(dim=-1, keepdim=True)).float().contiguous()
    return {"x": x, "ids": ids.to(torch.int32).contiguous(), "weights": weights}


def make_inputs(T: int, H: int, I: int, E: int, k: int, seed: int,
                device: str = "cuda", dtype: Any = None) -> dict:
    """Random layer inputs: :func:`make_weights` and :func:`make_tokens`."""
    return {**make_weights(H, I, E, seed, device, dtype),
            **make_tokens(T, H, E, k, seed + 1, device, dtype)}


def experts_operands(inputs: dict) -> list:
    """The compiled expert half's operands, in its argument order, from
    :func:`make_inputs`'s dict."""
    return [inputs[key] for key in ("x", "w13", "w2", "ids", "weights")]


def _tf32_matmul_enabled(torch: Any) -> bool:
    # Reading the legacy flag raises once the new API has been used, so the
    # new one is consulted first.
    matmul = torch.backends.cuda.matmul
    precision = getattr(matmul, "fp32_precision", None)
    if precision not in (None, "none"):
        return precision == "tf32"
    return bool(matmul.allow_tf32)


def swiglu_oai(h: torch.Tensor, alpha: float = 1.702, limit: float = 7.0) -> torch.Tensor:
    """gpt-oss's activation of h [rows, 2I]: gate h[:, ::2] clamped above at
    ``limit``, up h[:, 1::2] clamped to [-limit, limit], gate * sigmoid(alpha
    * gate) * (up + 1)."""
    torch = _torch()
    gate = h[:, ::2].clamp(max=limit)
    up = h[:, 1::2].clamp(min=-limit, max=limit)
    return gate * torch.sigmoid(alpha * gate) * (up + 1)


def reference_fp32(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor,
                   ids: torch.Tensor, weights: torch.Tensor,
                   w13_bias: torch.Tensor | None = None,
                   w2_bias: torch.Tensor | None = None,
                   activation: str = "silu") -> torch.Tensor:
    """The oracle: the layer in fp32 arithmetic from the same bf16 (or f16) inputs.
    It goes one expert at a time so that only one expert's weights are ever
    upcast (a full fp32 copy of deepseek-v3's experts would not fit).
    ``activation`` is ``silu`` (concatenated gate/up) or ``swiglu_oai``
    (gpt-oss); the biases are added before the activation and before the
    routing weight."""
    if activation not in ("silu", "swiglu_oai"):
        raise ValueError(f"activation must be silu or swiglu_oai, got {activation!r}")
    torch = _torch()
    if _tf32_matmul_enabled(torch):
        raise RuntimeError(
            "reference_fp32 needs IEEE fp32 matmuls; TF32 is on")
    T, H = x.shape
    I = w2.shape[-1]
    out = torch.zeros(T, H, dtype=torch.float32, device=x.device)
    for e in torch.unique(ids).tolist():  # experts with no tokens are skipped
        tok, slot = torch.where(ids == e)
        xe = x.index_select(0, tok).float()
        h = xe @ w13[e].float().t()
        if w13_bias is not None:
            h = h + w13_bias[e].float()
        if activation == "swiglu_oai":
            a = swiglu_oai(h)
        else:
            a = torch.nn.functional.silu(h[:, :I]) * h[:, I:]
        y = a @ w2[e].float().t()
        if w2_bias is not None:
            y = y + w2_bias[e].float()
        out.index_add_(0, tok, y * weights[tok, slot].float().unsqueeze(1))
    return out


def relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """max |y - ref| / max |ref|; a NaN left in y (an element never written
    over the poisoned output) makes it infinite."""
    torch = _torch()
    y, ref = y.double(), ref.double()
    if torch.isnan(y).any():
        return float("inf")
    return float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
