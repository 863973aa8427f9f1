"""The FP8 rows of the GPU benchmark (``gpu.py --fp8``): the expert half with
block-scaled e4m3 weights (the ``<shape>@fp8`` artifacts, [128, 128] blocks,
dynamic activations), beside its peers in the same run.

Each point: fresh bf16 weights and tokens (gpu_peers.make_inputs), the
weights quantized as a checkpoint stores them (torch_reference_fp8); our FP8
layer into a NaN-poisoned output, checked against the FP8 oracle (the same
quantization, fp32 products) before it is timed; then the peers:

- ``bf16 ms``: our own bf16 layer on the unquantized weights;
- ``scaled_grouped_mm ms``: torch._scaled_grouped_mm (row-wise scales: the
  weights requantized per output row beforehand, each call quantizing its
  activations per row), where torch has it;
- ``dequant+grouped_mm ms``: each call dequantizes the FP8 weights to bf16,
  then runs gpu_peers.grouped_mm_pipeline.

The floor counts FP8 bytes (weights at 1 byte plus their f32 scales, the
activations as they are) against the read-only rate, and the FLOPs against
the FP8 matmul rate measured in the same run (torch._scaled_mm on 8192^3,
the faster of its two accumulation modes).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import gpu_peers
from moe_mlir import roofline
from moe_mlir import torch_reference_fp8 as fp8

#: max |y - ref| / max |ref| against the FP8 oracle that a point must meet
#: (docs/quantization.md); a point above it is reported.
FP8_BOUND = 2e-2


def measure_fp8_tflops(n: int = 8192) -> tuple[float | None, dict]:
    """torch._scaled_mm's e4m3 rate (TFLOP/s) on n^3 with per-tensor scales:
    the best of its accumulation modes, and each mode's rate; None where
    torch has no FP8 matmul on this GPU."""
    import torch

    scaled_mm = getattr(torch, "_scaled_mm", None)
    if scaled_mm is None:
        return None, {"error": "torch._scaled_mm is not available"}
    a = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn)
    b = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn)
    one = torch.ones((), device="cuda")
    rates = {}
    try:
        for fast in (False, True):
            ms = gpu_peers.time_ms(lambda: scaled_mm(a, b.t(), one, one,
                                                     out_dtype=torch.bfloat16,
                                                     use_fast_accum=fast))
            rates["fast_accum" if fast else "accum"] = 2 * n**3 / (ms * 1e-3) / 1e12
    except Exception as exc:  # an FP8 matmul torch refuses here has no ceiling
        return None, {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        del a, b
        torch.cuda.empty_cache()
    return max(rates.values()), rates


def scale_blocks(size: int, block: int) -> int:
    return -(-size // block)


def weight_bytes(hit: int, H: int, I: int, block: tuple[int, int]) -> int:
    """Each expert hit reads its e4m3 weights once (1 byte each) and their
    f32 block scales."""
    bn, bk = block
    scales = (scale_blocks(2 * I, bn) * scale_blocks(H, bk)
              + scale_blocks(H, bn) * scale_blocks(I, bk))
    return hit * (3 * H * I + 4 * scales)


def floor_ms(T: int, H: int, I: int, k: int, hit: int, ceilings: dict,
             block: tuple[int, int]) -> float:
    """The FP8 point's roofline floor (moe_mlir.roofline) at the FP8 ceilings."""
    measured = roofline.Ceilings(read_bytes_per_s=ceilings["read_tbps"] * 1e12,
                                 copy_bytes_per_s=ceilings["copy_tbps"] * 1e12,
                                 matmul={"fp8": ceilings["fp8_tflops"] * 1e12},
                                 sources={"fp8": "torch._scaled_mm e4m3 8192^3"})
    return roofline.floor(gpu_peers.flops(T, H, I, k), weight_bytes(hit, H, I, block),
                          gpu_peers.activation_bytes(T, H), measured, "fp8").seconds * 1e3


def rowwise(q: Any, scales: Any, block: tuple[int, int]) -> tuple[Any, Any]:
    """The block-scaled weights [E, N, K] requantized with one scale per
    output row (what torch._scaled_grouped_mm takes): (e4m3 [E, N, K], f32
    [E, N]), one expert at a time."""
    import torch

    E, N, K = q.shape
    out = torch.empty_like(q)
    row_scales = torch.empty(E, N, dtype=torch.float32, device=q.device)
    for e in range(E):
        w = fp8.dequantize_weights(q[e], scales[e], block)
        amax = w.abs().amax(dim=1)
        s = torch.where(amax == 0, torch.ones_like(amax), amax / fp8.E4M3_MAX)
        out[e] = (w / s[:, None]).clamp(-fp8.E4M3_MAX, fp8.E4M3_MAX).to(torch.float8_e4m3fn)
        row_scales[e] = s
    return out, row_scales


def _quantize_per_row(a: Any) -> tuple[Any, Any]:
    import torch

    amax = a.float().abs().amax(dim=1)
    s = torch.where(amax == 0, torch.ones_like(amax), amax / fp8.E4M3_MAX)
    q = (a.float() / s[:, None]).clamp(-fp8.E4M3_MAX, fp8.E4M3_MAX).to(torch.float8_e4m3fn)
    return q, s


def scaled_grouped_mm_pipeline(x: Any, w13: Any, s13: Any, w2: Any, s2: Any, ids: Any,
                               weights: Any) -> Any:
    """torch._scaled_grouped_mm's FP8 layer: rows sorted by expert, each GEMM's
    input quantized per row, both GEMMs with row-wise weight scales (w13, w2
    e4m3 [E, N, K] and s13, s2 [E, N] from rowwise), the weighted index_add.
    None where torch lacks it or refuses the inputs (scaled_grouped_mm_error
    says why)."""
    import torch

    grouped = getattr(torch, "_scaled_grouped_mm", None)
    if grouped is None:
        gpu_peers.record_peer_error("scaled_grouped_mm",
                                    "torch._scaled_grouped_mm is not available")
        return None
    try:
        I = w2.shape[-1]
        rows = gpu_peers.ExpertRows(ids, w2.shape[0])
        xq, xs = _quantize_per_row(x.index_select(0, rows.token))
        h = grouped(xq, w13.transpose(-2, -1), xs, s13, offs=rows.offsets,
                    out_dtype=torch.bfloat16)
        a = torch.nn.functional.silu(h[:, :I]) * h[:, I:]
        aq, as_ = _quantize_per_row(a)
        y = grouped(aq, w2.transpose(-2, -1), as_, s2, offs=rows.offsets,
                    out_dtype=torch.bfloat16)
        return rows.combine(y, weights, x.shape[0])
    except Exception as exc:  # any refusal only costs this peer its column
        first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
        gpu_peers.record_peer_error("scaled_grouped_mm", f"{type(exc).__name__}: {first_line}")
        return None


def dequantized(w13: Any, s13: Any, w2: Any, s2: Any, block: tuple[int, int]) -> tuple:
    """Both projections' FP8 weights dequantized to bf16 (the dequantizing peer's
    first step)."""
    import torch

    return (fp8.dequantize_weights(w13, s13, block, torch.bfloat16),
            fp8.dequantize_weights(w2, s2, block, torch.bfloat16))


def _checked_time(fn: Callable[[], Any], ref: Any) -> tuple[float | None, float | None]:
    """The peer's error against the FP8 oracle and its median time, or
    (None, None) where it refused the inputs."""
    out = fn()
    if out is None:
        return None, None
    error = gpu_peers.relative_error(out, ref)
    del out
    return error, gpu_peers.time_ms(fn)


def point(shape: str, T: int, fp8_entry: dict, fp8_module: Any, bf16_module: Any,
          ceilings: dict) -> dict:
    """One FP8 row: ours checked and timed, then the peers."""
    import torch

    H, I, E, k = fp8_entry["H"], fp8_entry["I"], fp8_entry["E"], fp8_entry["k"]
    block = tuple(fp8_entry["block"])
    inputs = gpu_peers.make_inputs(T, H, I, E, k, seed=int(time.time()) % 100000)
    x, ids, weights = inputs["x"], inputs["ids"], inputs["weights"]
    w13, s13 = fp8.quantize_weights(inputs["w13"], block)
    w2, s2 = fp8.quantize_weights(inputs["w2"], block)
    operands = [x, w13, w2, ids, weights, s13, s2]
    y = torch.full_like(x, float("nan"))
    workspace = fp8_module.workspace("experts", operands)
    fp8_module.call("experts", operands, [y], workspace=workspace)
    torch.cuda.synchronize()
    ref = fp8.reference_fp8(x, w13, w2, ids, weights, s13, s2, block)
    error = gpu_peers.relative_error(y, ref)
    ours = gpu_peers.time_ms(lambda: fp8_module.call("experts", operands, [y],
                                                     workspace=workspace))
    bf16_operands = gpu_peers.experts_operands(inputs)
    y16 = torch.empty_like(x)
    bf16_workspace = bf16_module.workspace("experts", bf16_operands)
    bf16 = gpu_peers.time_ms(lambda: bf16_module.call("experts", bf16_operands, [y16],
                                                      workspace=bf16_workspace))
    # The unquantized weights are no longer needed: room for the peers' copies.
    del bf16_operands, y16, inputs
    torch.cuda.empty_cache()
    r13, rs13 = rowwise(w13, s13, block)
    r2, rs2 = rowwise(w2, s2, block)
    scaled_error, scaled = _checked_time(
        lambda: scaled_grouped_mm_pipeline(x, r13, rs13, r2, rs2, ids, weights), ref)
    del r13, rs13, r2, rs2
    torch.cuda.empty_cache()
    dequant_error, dequant = _checked_time(
        lambda: gpu_peers.dequant_grouped_mm_pipeline(
            x, lambda: dequantized(w13, s13, w2, s2, block), ids, weights), ref)
    hit = gpu_peers.experts_hit(ids)
    floor = floor_ms(T, H, I, k, hit, ceilings, block)
    peers = [t for t in (bf16, scaled, dequant) if t is not None]
    return dict(shape=shape, T=T, hit=hit, floor=floor, ours=ours, fraction=floor / ours,
                bf16=bf16, vs_bf16=bf16 / ours, scaled_grouped_mm=scaled,
                dequant_grouped_mm=dequant, vs_best_peer=min(peers) / ours,
                rel_err=error, scaled_grouped_mm_err=scaled_error,
                dequant_grouped_mm_err=dequant_error)


COLUMNS = [("shape", "shape"), ("T", "T"), ("hit", "hit"), ("floor", "floor ms"),
           ("ours", "ours ms"), ("fraction", "of floor"), ("bf16", "our bf16 ms"),
           ("vs_bf16", "x vs bf16"), ("scaled_grouped_mm", "scaled_grouped_mm ms"),
           ("dequant_grouped_mm", "dequant+grouped_mm ms"),
           ("vs_best_peer", "x vs best peer"), ("rel_err", "rel err (FP8 oracle)"),
           ("scaled_grouped_mm_err", "scaled_grouped_mm err"),
           ("dequant_grouped_mm_err", "dequant err")]
