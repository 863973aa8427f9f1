"""Weight-only experts on the GPU: the expert halves with MXFP4 (blocks of 32, e8m0
scales), int4 (groups of 128, asymmetric: a zero point per group) and int8 (one
scale per output row) weights, lowered with the mma_sync_wonly kernel
(utils/build-gpu-artifacts.sh: `<shape>@<format>` for every benchmark shape, and
edge shapes whose K and N are not multiples of the tiles or whose K is one group;
int4 and int8 also with f16 activations, AWQ's and GPTQ's, which take the f16 MMA),
against the fp64 oracle (moe_mlir.reference_lowbit's exact dequantization, then
the expert half in float64; the same exact dequantization and float64
products on the GPU, checked equal to numpy's for one expert a call) on fresh random codes, scales and tokens.

Each point: T = 1, 7, 32 and 300 tokens with random routing (some experts get no
token); every selection on one expert (the others get none) at T = 300; and the
extreme scales (e8m0 0 and 254 beside codes of magnitude <= 1 and activations of
2^-118, so every weight and product stays in range; int4 scales of 0 on every
seventh weight row). The output is poisoned with NaN first, so every element
must be written. The bound is 2e-2 (max |y - ref| / max |ref|): the kernel rounds
the dequantized weights and the GLU output to bf16 (f16). Skips without a GPU or the
artifacts.

Run with pytest, or as `python3 test/Integration/GPU/test_weight_only_gpu.py`.
"""

from device_artifacts import clear_modules, entries_of, load_module, require_gpu, torch  # noqa: E402
from expert_half_oracle import expert_half  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

import numpy as np  # noqa: E402

#: max |y - ref| / max |ref| against the fp64 oracle.
BOUND = 2e-2
TOKENS = (1, 7, 32, 300)


def entries():
    require_gpu()
    if torch.cuda.get_device_capability() < (8, 0):
        skip("the weight-only kernel (bf16 mma.sync) needs sm_80 or newer")
    return entries_of("experts-weight-only")


def make_weights(entry, N, K, gen, extreme=False):
    """One projection's quantized weights on the GPU (torch_reference_lowbit)."""
    from moe_mlir import torch_reference_lowbit as tl

    return tl.random_weights(entry["format"], entry["E"], N, K, entry.get("group", 1),
                             entry.get("zero_points", False), gen, extreme)


def dequantize(entry, weights, e):
    """Expert e's weights [N, K] in float64 by the numpy oracle
    (moe_mlir.reference_lowbit's exact dequantization)."""
    from moe_mlir import reference_lowbit as lb

    w = weights["w"][e:e + 1].cpu().numpy()
    scales = weights["scales"][e:e + 1].cpu().numpy()
    if entry["format"] == "mxfp4":
        return lb.dequantize_mxfp4(w, scales)[0]
    if entry["format"] == "int8":
        return lb.dequantize_int8(w, scales)[0]
    zero_points = weights["zero_points"][e:e + 1].cpu().numpy()
    return lb.dequantize_int4(w, scales, zero_points, entry["group"])[0]


#: Weight rows dequantized to float64 at a time by the oracle: a whole expert of
#: the largest shapes (Mixtral's w13, 28672 x 4096) is 0.9 GiB in float64, which
#: the sanitizers' own device memory leaves no room for.
ORACLE_ROWS = 4096


def dequantize_on_gpu(entry, weights, e, K, rows):
    """Rows `rows` of expert e's weights [N, K] in float64 on the GPU
    (torch_reference_lowbit in f64, exact)."""
    from moe_mlir import torch_reference_lowbit as tl

    return tl.dequantize_experts(entry["format"],
                                 {name: t[e:e + 1, rows] for name, t in weights.items()},
                                 entry.get("group", 1), K, torch.float64)[0]


def times_expert(entry, weights, e, K, a, check):
    """a [M, K] (float64, on the GPU) times expert e's weights transposed, the
    weights dequantized ORACLE_ROWS rows at a time; with `check`, each slice is
    asserted equal to the numpy oracle's dequantization (the products of the
    largest shapes in numpy would take minutes a call)."""
    N = weights["w"].shape[1]
    expected = dequantize(entry, weights, e) if check else None
    products = []
    for r in range(0, N, ORACLE_ROWS):
        rows = slice(r, min(r + ORACLE_ROWS, N))
        w = dequantize_on_gpu(entry, weights, e, K, rows)
        if check:
            assert np.array_equal(w.cpu().numpy(), expected[rows]), \
                f"{entry['name']}: the f64 GPU dequantization differs from the numpy oracle's"
        products.append(a @ w.T)
    return torch.cat(products, dim=1)


def oracle(entry, x, ids, routing, w13, w2):
    """y [T, H] in float64 (expert_half_oracle): the weights dequantized exactly,
    the products in float64 on the GPU."""
    x = x.double()
    return expert_half(
        ids, routing, entry["H"],
        lambda e, i, tokens: times_expert(entry, w13, e, entry["H"], x[tokens], i == 0),
        lambda e, i, a: times_expert(entry, w2, e, entry["I"], torch.from_numpy(a).cuda(),
                                     i == 0))


def operands(weights13, weights2):
    """The quantized arguments after ids and weights, in the artifact's order."""
    args = [weights13["scales"], weights2["scales"]]
    if "zero_points" in weights13:
        args += [weights13["zero_points"], weights2["zero_points"]]
    return args


def run_case(entry, T, seed, ids=None, extreme=False):
    """The relative error of one call against the oracle."""
    H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
    gen = torch.Generator(device="cuda").manual_seed(seed)
    w13 = make_weights(entry, 2 * I, H, gen, extreme)
    w2 = make_weights(entry, H, I, gen)
    x = torch.randn((T, H), device="cuda", generator=gen)
    if extreme:
        x = x * 2.0 ** -118
    x = x.to({"bf16": torch.bfloat16, "f16": torch.float16}[entry.get("dtype", "bf16")])
    if ids is None:
        ids = torch.stack([torch.randperm(E, device="cuda", generator=gen)[:k]
                           for _ in range(T)])
    ids = ids.to(torch.int32).contiguous()
    routing = torch.rand((T, k), device="cuda", generator=gen)
    routing = (routing / routing.sum(dim=1, keepdim=True)).contiguous()
    y = torch.full_like(x, float("nan"))
    load_module(entry).call("experts", [x, w13["w"], w2["w"], ids, routing] +
                            operands(w13, w2), [y])
    torch.cuda.synchronize()
    got = y.float().cpu().numpy().astype(np.float64)
    if not np.isfinite(got).all():
        return float("inf")
    want = oracle(entry, x, ids, routing, w13, w2)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def check(cases):
    failures = []
    for entry, label, error in cases:
        print(f"  {entry['name']:24s} {label:18s} rel err {error:.2e}", flush=True)
        if not error <= BOUND:
            failures.append((entry["name"], label, error))
    return failures


def test_weight_only_random_routing():
    """T = 1, 7, 32 and 300, random distinct experts per token."""
    failures = []
    for entry in entries():
        failures += check((entry, f"T={T}", run_case(entry, T, seed=T)) for T in TOKENS)
        clear_modules()
        torch.cuda.empty_cache()
    assert not failures, failures


def test_weight_only_one_expert():
    """Every selection of 300 tokens on the last expert, the others none: the
    tokens pick expert E - 1 in every slot (k rows each)."""
    failures = []
    for entry in entries():
        E, k = entry["E"], entry["k"]
        ids = torch.full((300, k), E - 1, dtype=torch.int32, device="cuda")
        failures += check([(entry, "one expert", run_case(entry, 300, seed=5, ids=ids))])
    clear_modules()
    assert not failures, failures


def test_weight_only_extreme_scales():
    """mxfp4: e8m0 scales 0 (2^-127) and 254 (2^127) in the gate/up weights, codes of
    magnitude <= 1 and activations of 2^-118 (the products of scale 254 are O(1),
    those of scale 0 underflow against them); int4: zero scales (every case has
    them). The edge shapes, T = 1 and 300."""
    failures = []
    for entry in entries():
        if entry["format"] != "mxfp4" or not entry["name"].startswith("wonly-"):
            continue
        failures += check((entry, f"extreme T={T}", run_case(entry, T, seed=11 + T,
                                                               extreme=True))
                          for T in (1, 300))
    clear_modules()
    assert not failures, failures


if __name__ == "__main__":
    import sys

    run_tests(dict(globals()), only=sys.argv[1:])
