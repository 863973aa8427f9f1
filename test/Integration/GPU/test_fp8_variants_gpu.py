"""FP8 expert halves under each kernel choice on the GPU: the lowered
`<shape>@fp8` artifacts and their variants `<shape>@fp8@<options>`
(python/benchmarks/gpu_artifacts.py, FP8_VARIANTS: the mma_sync_fp8 prefill
kernel, the prefill tile from 8 rows per expert, and around the default
staged decode loop the first one, 8-byte steps alone, three register stages
and split-K; FP8_EDGES under
every variant and split-K from small K; and Qwen3 and FP8_EDGES built for
sm_80, FP8_OTHER_CHIPS, whose mma_sync_fp8_f16 widens the e4m3 fragments to
f16 and whose PTX the driver compiles for the GPU at hand), against the fp64
oracle on fresh random e4m3 weights, block scales and tokens.

The oracle is moe_mlir.reference_quant's contract, as test_fp8_gpu.py's
experts_oracle computes it through moe_mlir.reference: each GEMM's rows
quantized per row and 128-wide K block (numpy, reference_quant's
quantize_activations), the weights dequantized exactly (e4m3 times the f32
block scale, exact in float64), the products in float64 (on the GPU, as
test_weight_only_gpu.py does: numpy would take minutes a call at the
benchmark shapes), the SiLU GLU in numpy, each routed row times its routing
weight, summed per token. Every variant of a shape gets the same inputs and
oracle.

Points: T = 1, 7 and 32 with random distinct experts per token (most experts
get no token at T = 1 and 7), and every selection of 32 tokens on the last
expert. The output is poisoned with NaN first, so every element must be
written, and each call is made twice: the split-K sums go through shared
memory in a fixed order, so the two must be bitwise equal. The bound is
2e-2 (max |y - ref| / max |ref|); the artifacts, like moe-compile's FP8
layers, quantize the GLU output from its f32 value, as the oracle does.
Skips without a GPU (sm_89 or newer) or the artifacts.

Run with pytest, or as `python3 test/Integration/GPU/test_fp8_variants_gpu.py`.
"""

from device_artifacts import artifact_index, clear_modules, load_module, require_gpu, torch  # noqa: E402
from expert_half_oracle import expert_half  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

import numpy as np  # noqa: E402

#: max |y - ref| / max |ref| against the fp64 oracle.
BOUND = 2e-2
TOKENS = (1, 7, 32)
KINDS = ("experts-fp8", "experts-fp8-variant", "experts-fp8-edge")


def shapes():
    """The FP8 entries by shape: {shape: [default entry, variant entries...]}."""
    require_gpu()
    if torch.cuda.get_device_capability() < (8, 9):
        skip("the FP8 kernel needs sm_89 or newer")
    by_shape = {}
    for entry in artifact_index().values():
        if entry["kind"] in KINDS:
            by_shape.setdefault(entry["name"].split("@")[0], []).append(entry)
    if not by_shape:
        skip("no FP8 artifacts (rebuild artifacts/gpu)")
    return {shape: sorted(entries, key=lambda e: e["name"])
            for shape, entries in sorted(by_shape.items())}


def random_weights(E, N, K, block, gen):
    """e4m3 weights [E, N, K] (normal codes, one expert at a time) and f32 block
    scales [E, ceil(N / bn), ceil(K / bk)] of 2^-9 to 2^-5."""
    bn, bk = min(block[0], N), min(block[1], K)
    w = torch.empty((E, N, K), dtype=torch.float8_e4m3fn, device="cuda")
    for e in range(E):
        w[e] = (torch.randn((N, K), device="cuda", generator=gen) * 32).clamp(-448, 448) \
            .to(torch.float8_e4m3fn)
    exponents = torch.randint(-9, -4, (E, -(-N // bn), -(-K // bk)), device="cuda",
                              generator=gen)
    return w, torch.exp2(exponents.float()).contiguous()


def dequantized(w, scales, e, block):
    """Expert e's weights [N, K] in float64: e4m3 times its block's scale, exact."""
    N, K = w.shape[1:]
    bn, bk = min(block[0], N), min(block[1], K)
    s = scales[e].double().repeat_interleave(bn, 0)[:N].repeat_interleave(bk, 1)[:, :K]
    return w[e].double() * s


def quantized_rows(a, bk):
    """The rows as the FP8 product sees them (reference_quant, dynamic), on the GPU."""
    from moe_mlir import reference_quant as rq

    return torch.from_numpy(rq.quantize_activations(a, bk)).cuda()


def oracle(entry, x, ids, routing, w13, s13, w2, s2):
    """y [T, H] in float64 (expert_half_oracle): each product's rows quantized
    per K block, the weights dequantized exactly, the products in float64 on
    the GPU."""
    block = tuple(entry["block"])
    bk = block[1]
    x = x.float().cpu().numpy().astype(np.float64)
    return expert_half(
        ids, routing, entry["H"],
        lambda e, i, tokens: quantized_rows(x[tokens.cpu().numpy()], bk) @
        dequantized(w13, s13, e, block).T,
        lambda e, i, a: quantized_rows(a, bk) @ dequantized(w2, s2, e, block).T)


def call(entry, operands, T):
    module = load_module(entry)
    y = torch.full((T, entry["H"]), float("nan"), dtype=torch.bfloat16, device="cuda")
    module.call("experts", operands, [y], workspace=module.workspace("experts", operands))
    torch.cuda.synchronize()
    return y


def check_shape(entries, T, seed, one_expert=False):
    """Every entry of one shape on the same inputs: [(name, label, error)]."""
    first = entries[0]
    H, I, E, k = first["H"], first["I"], first["E"], first["k"]
    block = tuple(first["block"])
    gen = torch.Generator(device="cuda").manual_seed(seed)
    w13, s13 = random_weights(E, 2 * I, H, block, gen)
    w2, s2 = random_weights(E, H, I, block, gen)
    x = torch.randn((T, H), device="cuda", generator=gen).bfloat16()
    if one_expert:
        ids = torch.full((T, k), E - 1, dtype=torch.int32, device="cuda")
    else:
        ids = torch.stack([torch.randperm(E, device="cuda", generator=gen)[:k]
                           for _ in range(T)]).to(torch.int32)
    routing = torch.rand((T, k), device="cuda", generator=gen)
    routing = (routing / routing.sum(dim=1, keepdim=True)).contiguous()
    operands = [x, w13, w2, ids.contiguous(), routing, s13, s2]
    want = oracle(first, x, ids, routing, w13, s13, w2, s2)
    label = "one expert" if one_expert else "random"
    results = []
    for entry in entries:
        y = call(entry, operands, T)
        again = call(entry, operands, T)
        got = y.float().cpu().numpy().astype(np.float64)
        if not np.isfinite(got).all():
            error = float("inf")
        elif not torch.equal(y, again):
            error = float("nan")  # two calls differ: reported, and fails the bound
        else:
            error = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
        results.append((entry["name"], f"T={T} {label}", error))
        print(f"  {entry['name']:72s} T={T:3d} {label:10s} rel err {error:.2e}", flush=True)
    del w13, w2
    torch.cuda.empty_cache()
    return results


def failures_of(results):
    return [r for r in results if not r[2] <= BOUND]


def test_fp8_variants_random_routing():
    """T = 1, 7, 32, random distinct experts per token."""
    results = []
    for shape, entries in shapes().items():
        for T in TOKENS:
            results += check_shape(entries, T, seed=T)
        clear_modules()
    assert not failures_of(results), failures_of(results)


def test_fp8_variants_one_expert():
    """Every selection of 32 tokens on the last expert, the others none."""
    results = []
    for shape, entries in shapes().items():
        results += check_shape(entries, 32, seed=5, one_expert=True)
        clear_modules()
    assert not failures_of(results), failures_of(results)


if __name__ == "__main__":
    import sys

    run_tests(dict(globals()), only=sys.argv[1:])
