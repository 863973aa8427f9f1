"""Shared pieces of the GPU benchmark: the roofline ceilings and floor, the
PyTorch peers and the timing and table helpers (the inputs and the fp32 oracle
come from ``moe_mlir.torch_reference``).

Weights use the layout of our kernels: w13 is [E, 2I, H] (rows 0..I-1 are the
gate projection W1, rows I..2I-1 the up projection W3), w2 is [E, H, I], all
bf16; x is [T, H] bf16, ids [T, k] int32, weights [T, k] float32, and the
layer computes y = sum_j w_j * W2_e (silu(W1_e x) * (W3_e x)).

torch and triton are imported only when a function needs them, so this module
imports on machines without either.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any, Callable

# The inputs and the oracle live in the package, for the tests too (the
# benchmark scripts put python/ on sys.path).
from moe_mlir import roofline
from moe_mlir.torch_reference import (  # noqa: F401
    experts_hit, experts_operands, make_inputs, make_tokens, make_weights,
    reference_fp32, relative_error)

if TYPE_CHECKING:
    import torch

L2_BYTES = 50 * 1024 * 1024  # H100 SXM
NONE_CELL = "\u2014"

_grouped_mm_error: str | None = None
#: Why a peer column of the quantized tables reads as a dash (the last refusal
#: of each peer), for the run's log.
_peer_errors: dict[str, str] = {}


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "the GPU benchmark needs torch (with CUDA)") from exc
    return torch


def time_ms(fn: Callable[[], object], warmup: int = 25,
            rep: int = 100) -> float:
    """Median milliseconds per call; the median keeps one-off clock or
    scheduling hiccups out of the number. triton's do_bench also wipes L2
    before every run, so each call starts cold."""
    try:
        from triton.testing import do_bench
    except ImportError:
        do_bench = None
    if do_bench is not None:
        return float(do_bench(fn, warmup=warmup, rep=rep,
                              return_mode="median"))
    torch = _torch()
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(statistics.median(times))


def read_rate_tbps(buffer: torch.Tensor) -> tuple[float, dict]:
    """The best read-only streaming rate (TB/s) over ``buffer``, which must
    be far larger than L2: the fastest of a few torch reductions that read
    every byte once and write next to nothing (each timed as a median, L2
    flushed). Returns the rate and every reduction's rate."""
    torch = _torch()
    words = buffer.view(torch.float32)  # bf16 1.0 pairs: finite float32 words
    rows = words.view(-1, 8192)
    reductions = {
        "sum": lambda: words.sum(),
        "amax": lambda: words.amax(),
        "row sums": lambda: rows.sum(dim=1),
    }
    rates = {name: buffer.numel() * buffer.element_size() / (time_ms(fn) * 1e-3) / 1e12
             for name, fn in reductions.items()}
    return max(rates.values()), rates


def measure_ceilings(copy_bytes: int = 2 * 1024**3, n: int = 8192) -> dict:
    """The machine's attainable bandwidths and bf16 matmul rate, measured in
    the same run as the layers so that the floor reflects this GPU's clocks
    rather than the datasheet. The weights are only read, so their ceiling is
    the read-only rate (``read_tbps``); a copy (``copy_tbps``, bytes read +
    written) understates it and bounds the activations, which are read and
    written."""
    torch = _torch()
    src = torch.empty(copy_bytes // 2, dtype=torch.bfloat16, device="cuda")
    src.fill_(1.0)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src))
    copy_tbps = 2 * copy_bytes / (ms * 1e-3) / 1e12  # read + write
    del dst
    read_tbps, read_variants = read_rate_tbps(src)
    del src
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    ms = time_ms(lambda: a @ b)
    bf16_tflops = 2 * n**3 / (ms * 1e-3) / 1e12
    del a, b
    torch.cuda.empty_cache()
    return {"copy_tbps": copy_tbps, "read_tbps": read_tbps,
            "read_variants_tbps": read_variants, "bf16_tflops": bf16_tflops}


def flops(T: int, H: int, I: int, k: int) -> int:
    """Useful work only: three H x I matmuls per routed (token, slot) row;
    the activation and the weighted sum are negligible beside them."""
    return 2 * T * k * 3 * H * I


def weight_bytes(hit: int, H: int, I: int) -> int:
    """Each expert that is hit must be read once (bf16), however many tokens
    it serves; experts that are not hit cost nothing."""
    return hit * 3 * H * I * 2


def activation_bytes(T: int, H: int) -> int:
    """x read once and the output written once, both bf16."""
    return 2 * T * H * 2


def gpu_ceilings(ceilings: dict) -> roofline.Ceilings:
    """``measure_ceilings``'s result as the roofline's ceilings (bf16 weights)."""
    return roofline.Ceilings(read_bytes_per_s=ceilings["read_tbps"] * 1e12,
                             copy_bytes_per_s=ceilings["copy_tbps"] * 1e12,
                             matmul={"bf16": ceilings["bf16_tflops"] * 1e12},
                             sources={"bf16": "torch bf16 matmul 8192^3"})


def floor_ms(T: int, H: int, I: int, k: int, hit: int,
             ceilings: dict) -> float:
    """Roofline lower bound (moe_mlir.roofline): no kernel can beat the slower
    of moving the bytes (the weights at the read-only rate, the activations at
    the copy rate) and doing the matmul work at the measured ceilings."""
    return roofline.floor(flops(T, H, I, k), weight_bytes(hit, H, I),
                          activation_bytes(T, H), gpu_ceilings(ceilings),
                          "bf16").seconds * 1e3


def artifact_entries(directory) -> dict:
    """The entries of ``index.json`` in a GPU artifact directory, by name."""
    import json
    import pathlib

    index = pathlib.Path(directory) / "index.json"
    return {entry["name"]: entry for entry in json.loads(index.read_text())}


def experts_call(module: Any, entry: dict, T: int, seed: int,
                 poison: bool = False) -> tuple[dict, list, torch.Tensor, torch.Tensor]:
    """What a call of an artifact's ``experts`` function on ``T`` random tokens
    of its shape needs: the inputs (:func:`make_inputs`), its operands in order,
    an output (filled with NaN where ``poison``, so every element must be
    written) and ``module``'s workspace for them."""
    torch = _torch()
    inputs = make_inputs(T, entry["H"], entry["I"], entry["E"], entry["k"], seed=seed)
    operands = experts_operands(inputs)
    y = (torch.full_like(inputs["x"], float("nan")) if poison
         else torch.empty_like(inputs["x"]))
    return inputs, operands, y, module.workspace("experts", operands)


def rotation_count(set_bytes: int, budget_bytes: int,
                   l2_bytes: int = L2_BYTES) -> int:
    """How many weight copies to cycle through so that consecutive timed calls
    cannot find a previous call's weights in L2 (total >= 4x L2), without
    exceeding the memory budget. Sets already far larger than L2 need one."""
    wanted = max(1, math.ceil(4 * l2_bytes / max(1, set_bytes)))
    affordable = max(1, budget_bytes // max(1, set_bytes))
    return int(min(wanted, affordable))


def weight_sets(w13: torch.Tensor, w2: torch.Tensor,
                n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Distinct copies (same values, different addresses) so every layer in a
    rotation computes the same output and can be checked once."""
    return [(w13, w2)] + [(w13.clone(), w2.clone()) for _ in range(n - 1)]


def rotating(fn: Callable[..., object], x: torch.Tensor,
             sets: list[tuple[torch.Tensor, torch.Tensor]],
             ids: torch.Tensor, weights: torch.Tensor) -> Callable[[], object]:
    """A zero-argument call for time_ms that uses the next weight set each
    time, so that L2 reuse across timed calls does not flatter anyone."""
    state = {"i": 0}

    def call() -> object:
        w13, w2 = sets[state["i"] % len(sets)]
        state["i"] += 1
        return fn(x, w13, w2, ids, weights)

    return call


def eager_loop(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor,
               ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The Hugging Face style per-expert loop, the baseline most users run.
    It accumulates in fp32 so that its error is not worse than ours."""
    torch = _torch()
    F = torch.nn.functional
    T, H = x.shape
    I = w2.shape[-1]
    out = torch.zeros(T, H, dtype=torch.float32, device=x.device)
    for e in torch.unique(ids).tolist():
        tok, slot = torch.where(ids == e)
        h = F.linear(x.index_select(0, tok), w13[e])  # one GEMM for W1 and W3
        y = F.linear(F.silu(h[:, :I]) * h[:, I:], w2[e])
        out.index_add_(0, tok, y.float() * weights[tok, slot].unsqueeze(1))
    return out.to(torch.bfloat16)


class ExpertRows:
    """The routed rows of ``ids`` [T, k] sorted by expert, as torch's grouped
    GEMMs take them (the set-up every grouped-GEMM peer shares): ``order`` (the flat selections t·k + j, stable by expert),
    ``token`` (each row's token) and ``offsets`` (int32 [E], each expert's end
    row)."""

    def __init__(self, ids: torch.Tensor, num_experts: int):
        torch = _torch()
        k = ids.shape[1]
        flat = ids.reshape(-1).long()
        self.order = torch.argsort(flat, stable=True)
        self.token = self.order // k
        # scatter_add_ rather than bincount: bincount on CUDA waits for the
        # host to learn max(ids), a sync the peer should not pay for.
        counts = torch.zeros(num_experts, dtype=torch.int64, device=ids.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat))
        self.offsets = torch.cumsum(counts, 0, dtype=torch.int32)

    def combine(self, y: torch.Tensor, weights: torch.Tensor,
                tokens: int) -> torch.Tensor:
        """The rows' outputs ``y`` [rows, H] weighted by their routing weights
        ([T, k] float32) and summed per token in fp32: [T, H] bf16."""
        torch = _torch()
        scaled = y.float() * weights.reshape(-1).index_select(0, self.order)[:, None]
        out = torch.zeros(tokens, y.shape[1], dtype=torch.float32, device=y.device)
        out.index_add_(0, self.token, scaled)
        return out.to(torch.bfloat16)


def grouped_mm_pipeline(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor,
                        ids: torch.Tensor,
                        weights: torch.Tensor) -> torch.Tensor | None:
    """PyTorch's own grouped GEMM (CUTLASS on sm90), the strongest peer that
    ships with torch. None when torch._grouped_mm is missing or refuses the
    inputs, so that one absent peer reads as a dash instead of ending the run;
    grouped_mm_error() says why (the last refusal)."""
    global _grouped_mm_error
    torch = _torch()
    grouped_mm = getattr(torch, "_grouped_mm", None)
    if grouped_mm is None:
        _grouped_mm_error = "torch._grouped_mm is not available"
        return None
    try:
        I = w2.shape[-1]
        rows = ExpertRows(ids, w2.shape[0])
        xs = x.index_select(0, rows.token)
        # The transposed weights are column-major views, which
        # torch._grouped_mm accepts as they are; no copy is made.
        h = grouped_mm(xs, w13.transpose(-2, -1), offs=rows.offsets)  # [rows, 2I]
        a = torch.nn.functional.silu(h[:, :I]) * h[:, I:]
        y = grouped_mm(a, w2.transpose(-2, -1), offs=rows.offsets)  # [rows, H]
        return rows.combine(y, weights, x.shape[0])
    except Exception as exc:  # any refusal only costs this peer its column
        _grouped_mm_error = f"{type(exc).__name__}: {exc}"
        return None


def grouped_mm_error() -> str | None:
    """Why the grouped_mm peer is reported as a dash, for the run's log."""
    return _grouped_mm_error


def record_peer_error(peer: str, why: str) -> None:
    """Notes why ``peer`` refused its inputs (peer_errors() lists them)."""
    _peer_errors[peer] = why


def peer_errors() -> dict[str, str]:
    """Why a quantized table's peer column reads as a dash, for the run's log."""
    return dict(_peer_errors)


def dequant_grouped_mm_pipeline(x: torch.Tensor, dequantize: Callable[[], tuple],
                                ids: torch.Tensor,
                                weights: torch.Tensor) -> torch.Tensor | None:
    """The quantized layers' dequantizing peer: ``dequantize()`` gives both
    projections' weights in bf16, then torch._grouped_mm's layer runs on
    them; None where it refused (peer_errors() says why)."""
    b13, b2 = dequantize()
    out = grouped_mm_pipeline(x, b13, b2, ids, weights)
    if out is None:
        record_peer_error("dequant+grouped_mm", str(grouped_mm_error()))
    return out


def _cell(value: object) -> tuple[str, bool]:
    # Returns the text and whether it is a number (numbers align right).
    if value is None:
        return NONE_CELL, True
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value), True
        size = abs(value)
        if size == 0:
            return "0", True
        if size < 1e-3:
            return f"{value:.2e}", True
        digits = 0 if size >= 1000 else 1 if size >= 100 else \
            2 if size >= 10 else 3
        return f"{value:.{digits}f}", True
    return str(value), False


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A fixed-width text table that reads the same in a terminal, a log and
    a Markdown code block; missing values show as a dash."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    numeric = [all(c[i][1] for c in cells) if cells else False
               for i in range(len(columns))]
    widths = [max([len(header)] + [len(c[i][0]) for c in cells])
              for i, (_, header) in enumerate(columns)]

    def line(texts: list[str]) -> str:
        parts = [t.rjust(w) if num else t.ljust(w)
                 for t, w, num in zip(texts, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line([header for _, header in columns]),
           line(["-" * w for w in widths])]
    out += [line([text for text, _ in c]) for c in cells]
    return "\n".join(out)
