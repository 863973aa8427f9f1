"""The CPU benchmark grid of BENCHMARKS.md: one MoE layer (SwiGLU experts, no
shared expert) per shape and token count, fp32 and bf16 weights, and FP8 weights
(``--dtypes fp8``: e4m3 with [128, 128] block scales and dynamic activation
quantization, bf16 activations; docs/quantization.md).

In one run it measures the machine's ceilings (``cpu_ceilings``: the best
read-only streaming rate of all threads, a 1 GiB copy, the f32 matmul rate and
torch's bf16 matmul rate), the roofline floor of each point
(``moe_mlir.roofline``: the weights at the read rate, never the copy rate; bf16
math at torch's bf16 rate, never the sgemm rate, and no bf16 floor without
torch), the compiled layer's median time, the fraction of the floor it
reaches, and the peers: the numpy per-expert loop (OpenBLAS) and the PyTorch
eager loop (a dash, with the reason, where torch is missing; install it with
utils/install-bench-deps.sh). Every compiled layer is checked against the fp64
oracle before it is timed; every timed call (ours and the peers') starts with
cold caches. The table is printed last; ``--json`` also writes the ceilings
and the rows (python/benchmarks/plot_fractions.py plots them). A point above
1.0 of its floor means a ceiling is understated: the script lists it and
exits with status 1.

FP8 rows: the weights are quantized from bf16 weights as a checkpoint is; the kernel
reads them in the panels layout (64-wide panels of e4m3 bytes, the block scales as
stored) and decodes them into f32 FMAs, so the floor counts 1
byte per weight plus the scales and the f32 matmul rate; the check is against the FP8
oracle (``moe_mlir.reference_quant``, same activation quantization) with the bound
2e-2, and the error against the unquantized bf16 layer is printed beside it. The
peers run on the dequantized weights (numpy in f32, torch in bf16).

Weight-only rows (``--dtypes mxfp4,int4,int8``, cpu_weight_only.py): bf16 activations,
the weights packed into the panels layout (``pack.quantized_to_panels``; ``nk`` is the
layout as stored), decoded in registers (bf16 tables into ``vdpbf16ps`` for the 4-bit
formats' bf16 activations where the host has AVX512_BF16, f32 FMAs otherwise); the floor
counts the stored bytes (codes, scales and zero points: 4.25 bits per weight for MXFP4,
4.31 for int4 g128 with zero points, 8 for int8) and the matmul rate of the kernel's
arithmetic (torch's bf16 rate for the 4-bit formats where they use ``vdpbf16ps``, else
the f32 rate). The peers run
on the dequantized weights (numpy in f32, torch in bf16).

The experts' weights are packed once into ``--weight-layout`` before anything is timed,
as a model loader would. The default is the CPU kernel's layout for each dtype
(``panels`` for fp32 and the quantized dtypes, ``panels_vnni`` for bf16; see
moe_mlir.pack); ``nk`` times the kernel on the PyTorch Linear layout instead.

    python3 python/benchmarks/cpu.py [--shapes qwen3-30b-a3b,...] [--tokens 1,16]
                                     [--weight-layout panels|panels_vnni|nk|kn]
                                     [--json rows.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import cpu_ceilings  # noqa: E402
import cpu_weight_only  # noqa: E402
from moe_mlir import cpu, dtypes, irgen, pack, reference, roofline  # noqa: E402
from moe_mlir import reference_quant  # noqa: E402

SHAPES = {  # name: (H, I, E, k, largest T)
    "qwen3-30b-a3b": (2048, 768, 128, 8, 512),
    "olmoe-1b-7b": (2048, 1024, 64, 8, 512),
    "mixtral-8x7b": (4096, 14336, 8, 2, 128),
}
TOKENS = (1, 16, 128, 512)
#: The CPU kernel's weight layout for each dtype.
PACKED_LAYOUT = {"f32": "panels", "bf16": "panels_vnni", "fp8": "panels",
                 "mxfp4": "panels", "int4": "panels", "int8": "panels"}
WEIGHT_ONLY = ("mxfp4", "int4", "int8")
#: The FP8 rows' quantization: DeepSeek-V3's.
FP8_QUANT = dict(block=(128, 128), activation="dynamic")

try:
    import torch
    TORCH_MISSING = None
except ImportError as exc:  # the torch peer and the bf16 ceiling need it
    torch = None
    TORCH_MISSING = (f"torch is not installed ({exc}); "
                     "install it with utils/install-bench-deps.sh")


_EVICT = None


def evict_caches() -> None:
    """Writes 1 GiB so no weights stay in the caches (this machine's L3 is
    large enough to hold a decode step's experts)."""
    global _EVICT
    if _EVICT is None:
        _EVICT = np.empty(1 << 28, dtype=np.float32)
    _EVICT.fill(1.0)


def median_time(fn, repeats: int, cold: bool = True) -> float:
    """Median wall time of ``fn`` after one warm-up call; with ``cold`` the
    caches are evicted (untimed) before every call."""
    fn()
    times = []
    for _ in range(repeats):
        if cold:
            evict_caches()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternating_medians(fns, rounds: int, cold: bool = True):
    """Median wall times in ms of the sides ``fns``, timed in alternation so a
    change of the machine's load hits every side alike: each round calls each
    side twice, the first time cold (the caches evicted, untimed, before it)
    or untimed without ``cold``, the second time warm (right after). Returns
    (cold medians or None, warm medians), one per side."""
    cold_times = [[] for _ in fns]
    warm_times = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            if cold:
                evict_caches()
            t0 = time.perf_counter()
            fn()
            cold_times[i].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fn()
            warm_times[i].append(time.perf_counter() - t0)
    med = lambda ts: statistics.median(ts) * 1e3  # noqa: E731
    return ([med(t) for t in cold_times] if cold else None,
            [med(t) for t in warm_times])


def routed_tokens(rng, T, H, router, w13, w2, k, draws: int = 100):
    """bf16 tokens x [T, H] (float32 values) with the oracle's y and the tokens it
    compares (``oracle``): x is drawn again while every token's routing is a near
    tie, which at T = 1 would leave nothing to compare."""
    for _ in range(draws):
        x = dtypes.round_to_bf16(rng.standard_normal((T, H), dtype=np.float32))
        want, _, clear = oracle(x, router, w13, w2, k)
        if clear.any():
            return x, want, clear
    raise SystemExit(f"{draws} draws of {T} tokens were all near routing ties")


def check_output(got, want, clear, label: str, bound: float = 1e-2) -> None:
    """Exits with a message unless ``got`` matches the oracle's ``want`` on the
    ``clear`` tokens to ``bound``, relative to the largest output."""
    err = float(np.abs(got - want)[clear].max() / np.abs(want).max())
    if not err <= bound:
        raise SystemExit(f"{label}: error {err:.2e}")


def host_has_avx512_bf16() -> bool:
    """Whether /proc/cpuinfo lists AVX512_BF16 (the CPU pipeline's default target is
    the host)."""
    try:
        return " avx512_bf16" in pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


#: The matmul ceiling each weight dtype's kernel computes at: FP8 and int8 weights are
#: decoded into f32 FMAs, so they run at the f32 rate; the 4-bit formats with bf16
#: activations go through vdpbf16ps in both projections (the GLU output is bf16) where
#: the host has AVX512_BF16, at the bf16 rate.
_FOUR_BIT_RATE = "bf16" if host_has_avx512_bf16() else "f32"
MATMUL_DTYPE = {"f32": "f32", "bf16": "bf16", "fp8": "f32", "mxfp4": _FOUR_BIT_RATE,
                "int4": _FOUR_BIT_RATE, "int8": "f32"}


def weight_bytes_per_weight(dtype: str, K: int) -> float:
    """Stored bytes per weight: FP8 is one byte plus one f32 scale per block; the
    weight-only formats count their scales and zero points (rows of K weights)."""
    if dtype in WEIGHT_ONLY:
        return cpu_weight_only.bytes_per_weight(dtype, K)
    if dtype == "fp8":
        bn, bk = FP8_QUANT["block"]
        return 1 + 4 / (bn * bk)
    return roofline.WEIGHT_BYTES[dtype]


def add_floors(rows, ceilings) -> None:
    """Each row's roofline floor and fraction against ``ceilings``; None
    where the row's dtype has no matmul ceiling (bf16 without torch)."""
    for r in rows:
        try:
            floor = roofline.floor(r["flops"], r["weight_bytes"], r["activation_bytes"],
                                   ceilings, MATMUL_DTYPE[r["dtype"]])
        except roofline.CeilingError:
            r.update(floor=None, fraction=None, bound=None, compute_floor=None,
                     memory_floor=None)
            continue
        r.update(floor=floor.seconds, fraction=roofline.fraction(floor.seconds, r["ours"]),
                 bound=floor.bound, compute_floor=floor.compute_seconds,
                 memory_floor=floor.memory_seconds)


def random_weights(rng, shape, fan_in, dtype):
    """N(0, 1/fan_in) float32 weights, drawn one expert at a time so the
    largest shapes need no temporaries; for bf16 layers rounded to bf16, so
    the peers and the oracle see exactly the values the kernel reads."""
    out = np.empty(shape, dtype=np.float32)
    for e in range(shape[0]):
        rng.standard_normal(shape[1:], dtype=np.float32, out=out[e])
        out[e] *= np.float32(1 / math.sqrt(fan_in))
        if dtype == "bf16":
            out[e] = dtypes.round_to_bf16(out[e])
    return out


def storage_per_expert(array, dtype, layout="nk"):
    """The kernel's storage of [E, N, K] ``array`` (bf16 bits or float32) packed into
    ``layout``, one expert at a time so the largest shapes need no temporaries."""
    if dtype != "bf16" and layout == "nk":
        return array
    E, N, K = array.shape
    out = np.empty(pack.weight_shape(E, N, K, layout),
                   dtype=np.uint16 if dtype == "bf16" else np.float32)
    for e in range(E):
        out[e] = pack.to_layout(cpu.to_storage(array[e:e + 1], dtype), layout)[0]
    return out


def oracle(x, router, w13, w2, k):
    """The fp64 oracle of the layer (reference routing and GLU), one expert's
    weights widened at a time so the largest shapes fit in memory. Returns y,
    the expert ids and the tokens whose routing is not decided by a near-tie."""
    x64 = x.astype(np.float64)
    logits = x64 @ router.astype(np.float64).T
    weights, ids = reference.route(logits, k=k, scoring="softmax", renormalize=True)
    y = np.zeros_like(x64)
    for e in np.unique(ids):
        tok, slot = np.nonzero(ids == e)
        a = reference.glu(x64[tok] @ w13[e].astype(np.float64).T)
        y[tok] += weights[tok, slot, None] * (a @ w2[e].astype(np.float64).T)
    # Tokens whose k-th and (k+1)-th logits nearly tie may be routed
    # differently by f32 arithmetic; they are left out of the comparison.
    ordered = -np.sort(-logits, axis=1)
    clear = (k == logits.shape[1]) | (ordered[:, k - 1] - ordered[:, min(k, logits.shape[1] - 1)]
                                      > 1e-4 * np.abs(ordered[:, :1]).ravel().clip(1.0))
    return y, ids, clear


def quantize_per_expert(w, block):
    """FP8 weights (uint8 bits) and scales of float32 ``w`` [E, N, K], one expert at a
    time, and the dequantized weights as float32 (what the peers multiply by)."""
    E, N, K = w.shape
    q = np.empty((E, N, K), dtype=np.uint8)
    scales = np.empty(reference_quant.weight_scale_shape(w.shape, block), dtype=np.float32)
    deq = np.empty_like(w)
    for e in range(E):
        qe, se = reference_quant.quantize_weights(w[e:e + 1], block)
        q[e], scales[e] = qe[0].view(np.uint8), se[0]
        deq[e] = reference_quant.dequantize_weights(qe, se, block)[0]
    return q, scales, deq


def fp8_oracle(x, router, deq13, deq2, k, block_k):
    """The FP8 layer's oracle: :func:`oracle`'s routing, with the activations of both
    matmuls quantized as the kernel does (weights given dequantized, exact in fp64)."""
    x64 = x.astype(np.float64)
    logits = x64 @ router.astype(np.float64).T
    weights, ids = reference.route(logits, k=k, scoring="softmax", renormalize=True)
    xq = reference_quant.quantize_activations(x64, block_k)
    y = np.zeros_like(x64)
    for e in np.unique(ids):
        tok, slot = np.nonzero(ids == e)
        a = reference.glu(xq[tok] @ deq13[e].astype(np.float64).T)
        aq = reference_quant.quantize_activations(a, block_k)
        y[tok] += weights[tok, slot, None] * (aq @ deq2[e].astype(np.float64).T)
    return y


def numpy_peer(x, router, w13, w2, k, I):
    """The HF-style per-expert loop in numpy (OpenBLAS), routing included."""
    logits = x @ router.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ids = np.argsort(-p, axis=1, kind="stable")[:, :k]
    w = np.take_along_axis(p, ids, axis=1)
    w /= w.sum(axis=1, keepdims=True)
    y = np.zeros_like(x)
    for e in np.unique(ids):
        tok, slot = np.nonzero(ids == e)
        h = x[tok] @ w13[e].T
        g = h[:, :I]
        a = g / (1 + np.exp(-g)) * h[:, I:]
        y[tok] += w[tok, slot, None] * (a @ w2[e].T)
    return y


def torch_peer(x, router, w13, w2, k, I):
    logits = x.float() @ router.float().T
    p = torch.softmax(logits, dim=1)
    w, ids = torch.topk(p, k, dim=1)
    w = (w / w.sum(dim=1, keepdim=True)).to(x.dtype)
    y = torch.zeros_like(x)
    for e in torch.unique(ids).tolist():
        tok, slot = torch.nonzero(ids == e, as_tuple=True)
        h = x[tok] @ w13[e].T
        a = torch.nn.functional.silu(h[:, :I]) * h[:, I:]
        y.index_add_(0, tok, w[tok, slot, None] * (a @ w2[e].T))
    return y


def run_shape(name, dtype, tokens, repeats, workdir, rng, layout):
    H, I, E, k, largest = SHAPES[name]
    fp8 = dtype == "fp8"
    weight_only = dtype in WEIGHT_ONLY
    act = "bf16" if fp8 or weight_only else dtype  # the activations' dtype
    quantized_panels = cpu_weight_only.panel_width(H, I)
    if weight_only:
        ir = cpu_weight_only.layer_ir(dtype, H, E, I, k, layout)
    else:
        ir = irgen.layer_ir(None, H, E, I, k, dtype=act, name="layer",
                            weight_layout=layout, scoring="softmax",
                            panel_width=quantized_panels if fp8 else pack.PANEL_WIDTH,
                            renormalize=True, weight_quant=FP8_QUANT if fp8 else None)
    start = time.perf_counter()
    cpu.lower_to_llvm_dialect(ir)
    pipeline_s = time.perf_counter() - start  # moe-lower-to-cpu-pipeline alone
    start = time.perf_counter()
    module = cpu.compile_module(ir, workdir)
    compile_s = time.perf_counter() - start  # pipeline, LLVM, clang -O2, link

    router = random_weights(rng, (E, H), H, act)
    unquantized = None
    if weight_only:
        # The stored codes and scales; the peers and the oracle use their values.
        q13, w13 = cpu_weight_only.random_weights(rng, dtype, E, 2 * I, H)
        q2, w2 = cpu_weight_only.random_weights(rng, dtype, E, H, I)
        q13, q2 = (cpu_weight_only.to_layout(dtype, q, layout, quantized_panels)
                   for q in (q13, q2))
        args_w = cpu_weight_only.kernel_arguments(cpu.to_storage(router, act), q13, q2)
    else:
        w13 = random_weights(rng, (E, 2 * I, H), H, act)
        w2 = random_weights(rng, (E, H, I), I, act)
    if fp8:
        # The bf16 weights become the checkpoint's FP8 weights; the peers and the
        # routing oracle use their dequantized values from here on.
        q13, s13, deq13 = quantize_per_expert(w13, FP8_QUANT["block"])
        q2, s2, deq2 = quantize_per_expert(w2, FP8_QUANT["block"])
        unquantized = (w13, w2)
        w13, w2 = deq13, deq2
        if layout == "panels":
            q13, q2 = (pack.to_layout(q, "panels", quantized_panels) for q in (q13, q2))
        args_w = [cpu.to_storage(router, act), q13, q2, s13, s2]
    elif not weight_only:
        args_w = [cpu.to_storage(router, dtype)] + [storage_per_expert(a, dtype, layout)
                                                    for a in (w13, w2)]
    tw = None
    if torch is not None:
        tdt = torch.bfloat16 if act == "bf16" else torch.float32
        tw = [torch.from_numpy(a).to(tdt) for a in (router, w13, w2)]

    rows = []
    for T in tokens:
        if T > largest:
            continue
        x = rng.standard_normal((T, H), dtype=np.float32)
        if act == "bf16":
            x = dtypes.round_to_bf16(x)
        xs = cpu.to_storage(x, act)
        spec = [cpu.TensorSpec((T, H), act)]
        call = lambda: module.call("layer", [xs] + args_w, spec)  # noqa: E731
        (y,) = call()
        got = cpu.from_storage(y, act)
        y_ref, ids, clear = oracle(x, router, w13, w2, k)
        vs_unquantized = None
        if fp8:
            y_ref = fp8_oracle(x, router, w13, w2, k, FP8_QUANT["block"][1])
            y_bf16 = oracle(x, router, *unquantized, k)[0]
            vs_unquantized = float(np.abs(got - y_bf16)[clear].max() / np.abs(y_bf16).max())
        err = float(np.abs(got - y_ref)[clear].max() / np.abs(y_ref).max())
        tolerance = {"bf16": 1e-2, "fp8": 2e-2}.get(act if weight_only else dtype, 1e-5)
        if not err <= tolerance:
            raise SystemExit(f"{name} {dtype} T={T}: error {err:.2e} above {tolerance}")
        ours = median_time(call, repeats)
        hit = len(np.unique(ids))
        numpy_s = median_time(lambda: numpy_peer(x, router, w13, w2, k, I), repeats)
        torch_s = None
        if tw is not None:
            tx = torch.from_numpy(x).to(tw[0].dtype)
            with torch.inference_mode():
                torch_s = median_time(lambda: torch_peer(tx, *tw, k, I), repeats)
        rows.append(dict(
            shape=name, dtype=dtype, T=T, hit=hit, ours=ours, numpy=numpy_s, torch=torch_s,
            flops=roofline.layer_flops(T, H, I, k),
            weight_bytes=(hit * 2 * I * H * weight_bytes_per_weight(dtype, H)
                          + hit * H * I * weight_bytes_per_weight(dtype, I)),
            activation_bytes=2 * T * H * 4,  # x read and y written, f32
            err=err, ties=int((~clear).sum()), pipeline=pipeline_s, compile=compile_s,
            vs_unquantized=vs_unquantized))
        print(f"  {name} {dtype} T={T}: ours {_ms(ours)} ms, numpy {_ms(numpy_s)} ms, "
              f"torch {_ms(torch_s)} ms", flush=True)
    return rows


def _ms(seconds, width=0):
    return f"{seconds * 1e3:{width}.2f}" if seconds is not None else f"{'-':>{width}}"


def cpu_name() -> str:
    """The model name /proc/cpuinfo gives (the machine of the table)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def print_table(rows, ceilings, details, layout) -> None:
    print(cpu_ceilings.describe(ceilings, details))
    print(f"weights in the {layout} layout; times in ms (median of cold calls); "
          f"of floor = floor / ours")
    if TORCH_MISSING:
        print(f"torch column: {TORCH_MISSING}")
    print(f"{'shape':<15}{'dtype':>5}{'T':>5}{'hit':>5}{'bound':>8}{'floor ms':>10}"
          f"{'ours ms':>10}{'of floor':>9}{'numpy ms':>10}{'torch ms':>10}{'x torch':>8}"
          f"{'max err':>9}{'ties':>5}{'pipeline s':>11}{'build s':>8}{'err vs bf16':>12}")
    for r in rows:
        fraction = f"{r['fraction']:9.2f}" if r["fraction"] is not None else f"{'-':>9}"
        vs_torch = f"{r['torch'] / r['ours']:8.2f}" if r["torch"] else f"{'-':>8}"
        print(f"{r['shape']:<15}{r['dtype']:>5}{r['T']:>5}{r['hit']:>5}{r['bound'] or '-':>8}"
              f"{_ms(r['floor'], 10)}{_ms(r['ours'], 10)}{fraction}"
              f"{_ms(r['numpy'], 10)}{_ms(r['torch'], 10)}{vs_torch}{r['err']:9.1e}"
              f"{r['ties']:5d}{r['pipeline']:11.2f}{r['compile']:8.2f}"
              + (f"{r['vs_unquantized']:12.1e}" if r.get("vs_unquantized") is not None
                 else f"{'-':>12}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--dtypes", default="f32,bf16")
    parser.add_argument("--tokens", default=",".join(map(str, TOKENS)))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--weight-layout", choices=reference.RHS_LAYOUTS,
                        help="default: panels for f32 and the quantized dtypes, panels_vnni "
                        "for bf16")
    parser.add_argument("--json", type=pathlib.Path,
                        help="also write the machine, the ceilings and the rows here")
    opts = parser.parse_args()
    tokens = [int(t) for t in opts.tokens.split(",")]
    for name in opts.shapes.split(","):
        if name not in SHAPES:
            parser.error(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    for dtype in opts.dtypes.split(","):
        if dtype not in PACKED_LAYOUT:
            parser.error(f"unknown dtype {dtype!r}; known: {', '.join(PACKED_LAYOUT)}")
    if opts.repeats < 1 or any(t < 1 for t in tokens):
        parser.error("--repeats and every token count must be at least 1")
    if "bf16" in opts.dtypes.split(",") and TORCH_MISSING:
        print(f"bf16 fractions will not be reported: {TORCH_MISSING}", flush=True)
    # The ceilings are sampled before, between and after the points; each
    # is the best sample (see cpu_ceilings).
    samples = [cpu_ceilings.sample(torch)]
    rng = np.random.default_rng()
    rows = []
    with tempfile.TemporaryDirectory(prefix="moe-bench-") as tmp:
        for name in opts.shapes.split(","):
            for dtype in opts.dtypes.split(","):
                rows += run_shape(name, dtype, tokens, opts.repeats, tmp, rng,
                                  opts.weight_layout or PACKED_LAYOUT[dtype])
                samples.append(cpu_ceilings.sample(torch))
    ceilings, details = cpu_ceilings.combine(samples)
    add_floors(rows, ceilings)

    layout = opts.weight_layout or " / ".join(f"{l} ({d})" for d, l in PACKED_LAYOUT.items())
    if opts.json:
        opts.json.write_text(json.dumps(dict(
            benchmark="cpu", date=datetime.date.today().isoformat(), cpu=cpu_name(),
            threads=os.cpu_count(), torch=torch.__version__ if torch else None,
            torch_missing=TORCH_MISSING, numpy=np.__version__, weight_layout=layout,
            ceilings=ceilings.as_json(), ceiling_details=details, rows=rows), indent=1) + "\n")
    print()
    print_table(rows, ceilings, details, layout)
    above = roofline.above_floor(rows)
    if above:
        print("above 1.0 of the floor (a ceiling understates this machine): "
              + ", ".join(f"{r['shape']} {r['dtype']} T={r['T']} ({r['fraction']:.2f})"
                          for r in above))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
