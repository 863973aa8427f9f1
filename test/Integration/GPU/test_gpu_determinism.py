"""Determinism of the compiled expert halves on the GPU: repeatability and
batch invariance, for bf16 (the three benchmark shapes), FP8 and MXFP4
weights (Qwen3 and Mixtral), from the lowered artifacts of
utils/build-gpu-artifacts.sh.

- **Repeatable**: 20 calls on the same inputs give bitwise the same output,
  at T = 1, 32, 512 and 4096 (the decode kernel, and the prefill kernel from
  `large-rows-per-expert` rows per expert on average). No kernel uses
  atomics; split-K sums go through shared memory in a fixed order.
- **Batch invariant within a kernel**: the grouped matmul picks its tile
  shape per call from the average rows per expert (docs/gpu.md), and each
  shape sums every output element over K in its own fixed order, whatever
  the other rows of its tile. So a token gets bitwise the same output alone
  (T = 1) as inside a batch that also takes the decode kernel, and the same
  inside a batch of 4096 as inside that batch shuffled (the prefill kernel
  both times, the token in another tile).
- **Not across kernels**: between a decode-sized and a prefill-sized batch
  the two kernels sum K in different orders (mma.sync steps of 32 or 64 K,
  split over warps above small-split-k-from; wgmma K tiles of 64 or 128), so
  a token's output differs in its last bits. The test prints the largest
  difference, relative to the largest output, and bounds it by the layers'
  error bound against the oracle (2e-2): the two results must both be right.

Skips without a GPU or the artifacts. Run with pytest, or as
`python3 test/Integration/GPU/test_gpu_determinism.py`.
"""

from device_artifacts import artifact_index, clear_modules, load_module, require_gpu, torch  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

REPEATS = 20
TOKENS = (1, 32, 512, 4096)
#: Tokens of a batch that stays below every prefill threshold (8 rows per
#: expert with bf16 wgmma, 32 with FP8): Mixtral's 8 experts at k = 2 get
#: 2.5 rows each on average, Qwen3's 128 at k = 8 get 0.6.
DECODE_BATCH = 10
PREFILL_BATCH = 4096
#: max |a - b| / max |b| allowed between the decode and the prefill kernel's
#: output for the same token: the layers' bound against the fp64 oracle.
ACROSS_KERNELS_BOUND = 2e-2
ENTRIES = ("qwen3-30b-a3b", "mixtral-8x7b", "deepseek-v3",
           "qwen3-30b-a3b@fp8", "mixtral-8x7b@fp8",
           "qwen3-30b-a3b@mxfp4", "mixtral-8x7b@mxfp4")


def entries():
    require_gpu()
    index = artifact_index()
    missing = [name for name in ENTRIES if name not in index]
    if missing:
        skip(f"no {', '.join(missing)} artifacts (rebuild artifacts/gpu)")
    if torch.cuda.get_device_capability() < (8, 9):
        return [index[name] for name in ENTRIES if "@fp8" not in name]
    return [index[name] for name in ENTRIES]


def bf16_weights(E, N, K, gen):
    """[E, N, K] bf16, one expert at a time (DeepSeek-V3's f32 draws would not fit)."""
    w = torch.empty((E, N, K), dtype=torch.bfloat16, device="cuda")
    for e in range(E):
        w[e] = torch.randn((N, K), device="cuda", generator=gen) * K ** -0.5
    return w


def weights_of(entry, gen):
    """The entry's weights: (w13, w2, the operands after ids and routing)."""
    H, I, E = entry["H"], entry["I"], entry["E"]
    if entry["kind"] == "experts-weight-only":
        import test_weight_only_gpu as wonly

        w13 = wonly.make_weights(entry, 2 * I, H, gen)
        w2 = wonly.make_weights(entry, H, I, gen)
        return w13["w"], w2["w"], wonly.operands(w13, w2)
    w13, w2 = bf16_weights(E, 2 * I, H, gen), bf16_weights(E, H, I, gen)
    if entry["kind"] == "experts-fp8":
        from moe_mlir import torch_reference_fp8 as fp8

        block = tuple(entry["block"])
        q13, s13 = fp8.quantize_weights(w13, block)
        del w13
        q2, s2 = fp8.quantize_weights(w2, block)
        return q13, q2, [s13, s2]
    return w13, w2, []


def tokens_of(entry, T, gen):
    """x [T, H] bf16, distinct random experts per token, and routing weights."""
    E, k = entry["E"], entry["k"]
    x = torch.randn((T, entry["H"]), device="cuda", generator=gen).bfloat16()
    ids = torch.stack([torch.randperm(E, device="cuda", generator=gen)[:k]
                       for _ in range(T)]).to(torch.int32).contiguous()
    routing = torch.rand((T, k), device="cuda", generator=gen)
    return x, ids, (routing / routing.sum(dim=1, keepdim=True)).contiguous()


class Layer:
    """One entry's module and weights, called on any tokens."""

    def __init__(self, entry, seed):
        self.entry = entry
        self.gen = torch.Generator(device="cuda").manual_seed(seed)
        self.w13, self.w2, self.rest = weights_of(entry, self.gen)
        self.module = load_module(entry)

    def tokens(self, T):
        return tokens_of(self.entry, T, self.gen)

    def __call__(self, x, ids, routing):
        operands = [x, self.w13, self.w2, ids, routing] + self.rest
        y = torch.full_like(x, float("nan"))
        self.module.call("experts", operands, [y],
                         workspace=self.module.workspace("experts", operands))
        torch.cuda.synchronize()
        return y


def each_layer(test):
    """Runs test(layer) for every entry, freeing each one's weights after it."""
    failures = []
    for i, entry in enumerate(entries()):
        layer = Layer(entry, seed=100 + i)
        failures += test(layer)
        del layer
        clear_modules()
        torch.cuda.empty_cache()
    assert not failures, failures


def test_repeatable():
    """20 calls, bitwise equal, at every T (decode and prefill kernels)."""
    def test(layer):
        failures = []
        for T in TOKENS:
            inputs = layer.tokens(T)
            first = layer(*inputs)
            differing = sum(not torch.equal(layer(*inputs), first) for _ in range(REPEATS - 1))
            if torch.isnan(first).any():
                failures.append((layer.entry["name"], T, "NaN left in the output"))
            print(f"  {layer.entry['name']:22s} T={T:5d} {REPEATS} calls: "
                  f"{differing} differ from the first", flush=True)
            if differing:
                failures.append((layer.entry["name"], T, f"{differing} calls differ"))
        return failures
    each_layer(test)


def test_batch_invariant_within_a_kernel():
    """Each token alone = in a decode-sized batch; a prefill batch = that batch
    shuffled, row for row; and decode against prefill within the error bound."""
    def test(layer):
        name, failures = layer.entry["name"], []
        x, ids, routing = layer.tokens(DECODE_BATCH)
        batch = layer(x, ids, routing)
        alone = torch.cat([layer(x[t:t + 1], ids[t:t + 1], routing[t:t + 1])
                           for t in range(DECODE_BATCH)])
        if not torch.equal(alone, batch):
            failures.append((name, "decode: a token alone differs from its batch"))

        big_x, big_ids, big_routing = layer.tokens(PREFILL_BATCH)
        # The decode batch's tokens at the front of a prefill-sized batch.
        big_x[:DECODE_BATCH], big_ids[:DECODE_BATCH] = x, ids
        big_routing[:DECODE_BATCH] = routing
        prefill = layer(big_x, big_ids, big_routing)
        order = torch.randperm(PREFILL_BATCH, device="cuda", generator=layer.gen)
        shuffled = layer(big_x[order], big_ids[order].contiguous(), big_routing[order].contiguous())
        if not torch.equal(shuffled, prefill[order]):
            failures.append((name, "prefill: the shuffled batch differs row for row"))

        front = prefill[:DECODE_BATCH].float()
        across = float((front - batch.float()).abs().max() /
                       batch.float().abs().max().clamp_min(1e-30))
        print(f"  {name:22s} decode batch = tokens alone: {torch.equal(alone, batch)}; "
              f"prefill batch = shuffled: {torch.equal(shuffled, prefill[order])}; "
              f"decode vs prefill kernel {across:.2e}", flush=True)
        if not across <= ACROSS_KERNELS_BOUND:
            failures.append((name, f"decode vs prefill kernel differ by {across:.2e}"))
        return failures
    each_layer(test)


if __name__ == "__main__":
    run_tests(globals())
