"""The CPU benchmark grid of BENCHMARKS.md: one MoE layer (SwiGLU experts, no
shared expert) per shape and token count, fp32 and bf16 weights, and FP8 weights
(``--dtypes fp8``: e4m3 with [128, 128] block scales and dynamic activation
quantization, bf16 activations; docs/quantization.md).

In one run it measures the machine's two ceilings (numpy/OpenBLAS sgemm 2048^3
and a 1 GiB copy; torch's bf16 matmul where torch is installed), the roofline
floor of each point, the compiled layer's median time, the fraction of the
floor it reaches, and the peers: the numpy per-expert loop (OpenBLAS) and the
PyTorch eager loop where torch is installed. Every compiled layer is checked
against the fp64 oracle before it is timed; every timed call (ours and the
peers') starts with cold caches. The table is printed last.

FP8 rows: the weights are quantized from bf16 weights as a checkpoint is; the kernel
reads them in the nk layout and dequantizes them into f32 FMAs, so the floor counts 1
byte per weight plus the scales and the sgemm rate; the check is against the FP8
oracle (``moe_mlir.reference_quant``, same activation quantization) with the bound
2e-2, and the error against the unquantized bf16 layer is printed beside it. The
peers run on the dequantized weights (numpy in f32, torch in bf16).

The experts' weights are packed once into ``--weight-layout`` before anything is timed,
as a model loader would. The default is the CPU kernel's layout for each dtype
(``panels`` for fp32, ``panels_vnni`` for bf16; see moe_mlir.pack); ``nk`` times the
kernel on the PyTorch Linear layout instead.

    python3 python/benchmarks/cpu.py [--shapes qwen3-30b-a3b,...] [--tokens 1,16]
                                     [--weight-layout panels|panels_vnni|nk|kn]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from moe_mlir import cpu, dtypes, irgen, pack, reference  # noqa: E402
from moe_mlir import reference_quant  # noqa: E402

SHAPES = {  # name: (H, I, E, k, largest T)
    "qwen3-30b-a3b": (2048, 768, 128, 8, 512),
    "olmoe-1b-7b": (2048, 1024, 64, 8, 512),
    "mixtral-8x7b": (4096, 14336, 8, 2, 128),
}
TOKENS = (1, 16, 128, 512)
#: The CPU kernel's weight layout for each dtype.
PACKED_LAYOUT = {"f32": "panels", "bf16": "panels_vnni", "fp8": "nk"}
#: The FP8 rows' quantization: DeepSeek-V3's.
FP8_QUANT = dict(block=(128, 128), activation="dynamic")

try:
    import torch
except ImportError:  # the torch peer is optional
    torch = None


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


def measure_ceilings() -> dict:
    """Matmul rates (FLOP/s) and copy bandwidth (bytes read + written per s)."""
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    sgemm = 2 * n**3 / median_time(lambda: a @ b, 5, cold=False)
    src = np.ones(1 << 28, dtype=np.float32)  # 1 GiB
    dst = np.empty_like(src)
    copy = 2 * src.nbytes / median_time(lambda: np.copyto(dst, src), 5, cold=False)
    bf16 = None
    if torch is not None:
        ta = torch.randn(n, n, dtype=torch.bfloat16)
        tb = torch.randn(n, n, dtype=torch.bfloat16)
        bf16 = 2 * n**3 / median_time(lambda: ta @ tb, 5, cold=False)
    return {"sgemm": sgemm, "copy": copy, "bf16": bf16 or sgemm}


def floor_seconds(H, I, k, T, hit, weight_bytes, ceilings, dtype) -> float:
    flops = 2 * T * k * 3 * H * I
    data = hit * 3 * H * I * weight_bytes + 2 * T * H * 4
    # FP8 weights are dequantized into f32 FMAs: the sgemm rate.
    rate = ceilings["bf16"] if dtype == "bf16" else ceilings["sgemm"]
    return max(flops / rate, data / ceilings["copy"])


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


def run_shape(name, dtype, tokens, ceilings, repeats, workdir, rng, layout):
    H, I, E, k, largest = SHAPES[name]
    fp8 = dtype == "fp8"
    act = "bf16" if fp8 else dtype  # the activations' dtype
    ir = irgen.layer_ir(None, H, E, I, k, dtype=act, name="layer",
                        weight_layout="nk" if fp8 else layout, scoring="softmax",
                        renormalize=True, weight_quant=FP8_QUANT if fp8 else None)
    start = time.perf_counter()
    cpu.lower_to_llvm_dialect(ir)
    pipeline_s = time.perf_counter() - start  # moe-lower-to-cpu-pipeline alone
    start = time.perf_counter()
    module = cpu.compile_module(ir, workdir)
    compile_s = time.perf_counter() - start  # pipeline, LLVM, clang -O2, link

    router = random_weights(rng, (E, H), H, act)
    w13 = random_weights(rng, (E, 2 * I, H), H, act)
    w2 = random_weights(rng, (E, H, I), I, act)
    unquantized = None
    if fp8:
        # The bf16 weights become the checkpoint's FP8 weights; the peers and the
        # routing oracle use their dequantized values from here on.
        q13, s13, deq13 = quantize_per_expert(w13, FP8_QUANT["block"])
        q2, s2, deq2 = quantize_per_expert(w2, FP8_QUANT["block"])
        unquantized = (w13, w2)
        w13, w2 = deq13, deq2
        args_w = [cpu.to_storage(router, act), q13, q2, s13, s2]
    else:
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
        tolerance = {"bf16": 1e-2, "fp8": 2e-2}.get(dtype, 1e-5)
        if not err <= tolerance:
            raise SystemExit(f"{name} {dtype} T={T}: error {err:.2e} above {tolerance}")
        ours = median_time(call, repeats)
        hit = len(np.unique(ids))
        # FP8: one byte per weight and one f32 scale per 128 x 128 block.
        bn, bk = FP8_QUANT["block"]
        weight_bytes = {"bf16": 2, "fp8": 1 + 4 / (bn * bk)}.get(dtype, 4)
        floor = floor_seconds(H, I, k, T, hit, weight_bytes, ceilings, dtype)
        numpy_s = median_time(lambda: numpy_peer(x, router, w13, w2, k, I), repeats)
        torch_s = None
        if tw is not None:
            tx = torch.from_numpy(x).to(tw[0].dtype)
            with torch.inference_mode():
                torch_s = median_time(lambda: torch_peer(tx, *tw, k, I), repeats)
        rows.append(dict(shape=name, dtype=dtype, T=T, hit=hit, floor=floor, ours=ours,
                         numpy=numpy_s, torch=torch_s, err=err, ties=int((~clear).sum()),
                         pipeline=pipeline_s, compile=compile_s,
                         vs_unquantized=vs_unquantized))
        print(f"  {name} {dtype} T={T}: ours {ours*1e3:.2f} ms, floor {floor*1e3:.2f} ms",
              flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--dtypes", default="f32,bf16")
    parser.add_argument("--tokens", default=",".join(map(str, TOKENS)))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--weight-layout", choices=reference.RHS_LAYOUTS,
                        help="default: panels for f32, panels_vnni for bf16")
    opts = parser.parse_args()
    tokens = [int(t) for t in opts.tokens.split(",")]
    ceilings = measure_ceilings()
    rng = np.random.default_rng()
    rows = []
    with tempfile.TemporaryDirectory(prefix="moe-bench-") as tmp:
        for name in opts.shapes.split(","):
            for dtype in opts.dtypes.split(","):
                rows += run_shape(name, dtype, tokens, ceilings, opts.repeats, tmp, rng,
                                  opts.weight_layout or PACKED_LAYOUT[dtype])

    print()
    print(f"ceilings: sgemm {ceilings['sgemm']/1e9:.0f} GFLOP/s, bf16 matmul "
          f"{ceilings['bf16']/1e9:.0f} GFLOP/s{'' if torch else ' (no torch: sgemm rate)'}, "
          f"copy {ceilings['copy']/1e9:.1f} GB/s (read + write); weights in the "
          f"{opts.weight_layout or ' / '.join(f'{l} ({d})' for d, l in PACKED_LAYOUT.items())}"
          " layout")
    print(f"{'shape':<15}{'dtype':>5}{'T':>5}{'hit':>5}{'floor ms':>10}{'ours ms':>10}"
          f"{'of floor':>9}{'numpy ms':>10}{'torch ms':>10}{'max err':>9}{'ties':>5}"
          f"{'pipeline s':>11}{'build s':>8}{'err vs bf16':>12}")
    for r in rows:
        torch_ms = f"{r['torch']*1e3:10.2f}" if r["torch"] else f"{'-':>10}"
        print(f"{r['shape']:<15}{r['dtype']:>5}{r['T']:>5}{r['hit']:>5}"
              f"{r['floor']*1e3:10.2f}{r['ours']*1e3:10.2f}{r['floor']/r['ours']:9.2f}"
              f"{r['numpy']*1e3:10.2f}{torch_ms}{r['err']:9.1e}{r['ties']:5d}"
              f"{r['pipeline']:11.2f}{r['compile']:8.2f}"
              + (f"{r['vs_unquantized']:12.1e}" if r["vs_unquantized"] is not None
                 else f"{'-':>12}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
