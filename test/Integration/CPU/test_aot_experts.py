"""moe-compile --entry=experts: the routed experts of a layer with the routing
given (x, topk_ids, topk_weights, w13, w2 -> y), as engines that own the
router call them; checked against the numpy oracle of the ops it is made of
(dispatch, permute, grouped matmuls, GLU, combine) on fresh random inputs,
with ids outside [0, E), empty and crowded experts, no tokens and x of shape
[*, H]."""

import numpy as np
import pytest

from harness import assert_close, normal
from moe_mlir import aot, cpu, dtypes
from moe_mlir import reference as ref

H, I, E, K = 32, 24, 8, 2
SETTINGS = dict(hidden=H, intermediate=I, experts=E, k=K, renormalize=True)
GPT_OSS = {"model_type": "gpt_oss", "hidden_size": 32, "intermediate_size": 16,
           "num_local_experts": 8, "num_experts_per_tok": 4, "swiglu_limit": 7.0,
           "torch_dtype": "bfloat16"}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    return tmp_path_factory.mktemp("experts")


@pytest.fixture(scope="module")
def experts(out_dir):
    return aot.compile(layer=SETTINGS, entry="experts", name="experts",
                       out_dir=out_dir / "f32").load()


def oracle(x, ids, weights, w13, w2, num_experts, w13_bias=None, w2_bias=None, **ffn):
    """The expert half of ``reference.layer_with_routing`` with the routing
    given: ids outside [0, num_experts) get no row and add nothing."""
    k = ids.shape[-1]
    capacity = {key: ffn.pop(key) for key in ("capacity", "drop_policy") if key in ffn}
    rows, offsets = ref.dispatch(ids, weights, num_experts=num_experts, **capacity)
    h = ref.grouped_matmul(ref.permute(x, rows, k), w13, offsets, bias=w13_bias)
    a = ref.glu(h, ffn.get("activation", "silu"), ffn.get("glu_layout", "concatenated"))
    ys = ref.grouped_matmul(a, w2, offsets, bias=w2_bias)
    return ref.combine(ys, rows, weights)


def draw(rng, tokens, dtype="f32", hidden=H, inter=I, experts=E, k=K):
    x = normal(rng, (tokens, hidden), dtype)
    w13 = normal(rng, (experts, 2 * inter, hidden), dtype, scale=0.2)
    w2 = normal(rng, (experts, hidden, inter), dtype, scale=0.2)
    ids = np.stack([rng.permutation(experts)[:k] for _ in range(tokens)]).astype(np.int32)
    ids = ids.reshape(tokens, k)
    weights = rng.random((tokens, k)).astype(np.float32)
    return x, ids, weights, w13, w2


def call(layer, x, ids, weights, w13, w2, dtype="f32", biases=()):
    tensors = (x, w13, w2, *biases)
    if dtype == "bf16":
        tensors = [dtypes.as_bfloat16(dtypes.f32_to_bf16_bits(a)) for a in tensors]
    x, w13, w2, *biases = tensors
    return np.asarray(layer(x, ids, weights, w13, w2, *biases), dtype=np.float32)


@pytest.mark.parametrize("tokens", [1, 7, 33])
def test_matches_oracle(experts, rng, tokens):
    x, ids, weights, w13, w2 = draw(rng, tokens)
    y = experts(x, ids, weights, w13, w2)
    assert y.shape == (tokens, H) and y.dtype == np.float32
    assert_close(y, oracle(x, ids, weights, w13, w2, E), "f32", "experts")


def test_manifest_records_the_entry(experts):
    manifest = experts.manifest
    assert manifest["entry"] == "experts" and experts.entry == "experts"
    assert [(t["name"], t["shape"], t["dtype"]) for t in manifest["tensors"]] == [
        ("x", [-1, H], "f32"), ("topk_ids", [-1, K], "i32"), ("topk_weights", [-1, K], "f32"),
        ("w13", [E, 2 * I, H], "f32"), ("w2", [E, H, I], "f32"), ("y", [-1, H], "f32")]


def test_experts_without_tokens(experts, rng):
    # Only experts 1 and 6 are chosen: the other six have zero rows.
    x, _, weights, w13, w2 = draw(rng, 13)
    ids = np.tile(np.array([[1, 6]], np.int32), (13, 1))
    rng.shuffle(ids, axis=1)
    y = experts(x, ids, weights, w13, w2)
    assert_close(y, oracle(x, ids, weights, w13, w2, E), "f32", "two experts used")


def test_all_tokens_on_one_expert(experts, rng):
    x, _, weights, w13, w2 = draw(rng, 40)
    ids = np.full((40, K), 5, np.int32)
    y = experts(x, ids, weights, w13, w2)
    want = oracle(x, ids, weights, w13, w2, E)
    assert_close(y, want, "f32", "one expert")
    # Every selection is expert 5's: y[t] = (w[t, 0] + w[t, 1]) * ffn_5(x[t]).
    ffn5 = ref.glu(x.astype(np.float64) @ w13[5].T) @ w2[5].T
    assert_close(y, weights.sum(axis=1, keepdims=True) * ffn5, "f32", "expert 5")


def test_out_of_range_ids_select_nothing(experts, rng):
    # Ids outside [0, E) are no selection (moe.dispatch): they add nothing,
    # and the kernel reads no weights for them. The output is poisoned first,
    # so a token without any selection must be written as zeros.
    tokens = 9
    x, ids, weights, w13, w2 = draw(rng, tokens)
    bad = [-1, E, E + 1, 2**31 - 1, -2**31, -7]
    ids[0, 1], ids[1, 0], ids[2, 1], ids[3, 0], ids[4, 1] = bad[:5]
    ids[5] = [bad[5], E]      # no selection at all
    ids[6] = [-1, -1]
    # Their weights are not used: not even a NaN gets through.
    weights[(ids < 0) | (ids >= E)] = np.nan
    y = np.full((tokens, H), np.nan, np.float32)
    experts.forward_pointers([a.ctypes.data for a in (x, ids, weights, w13, w2, y)],
                             tokens, None, 0)
    want = oracle(x, ids, weights, w13, w2, E)
    assert np.all(np.isfinite(want))
    assert_close(y, want, "f32", "out-of-range ids")
    assert np.all(y[5:7] == 0.0)
    # The same as the call with those selections' weights set to zero.
    valid = (ids >= 0) & (ids < E)
    clean = np.where(valid, ids, 0).astype(np.int32)
    assert_close(y, experts(x, clean, np.where(valid, weights, 0).astype(np.float32),
                            w13, w2), "f32", "weights zeroed instead")


@pytest.mark.parametrize("drop_policy", ["position", "score"])
def test_capacity_of_the_layer_applies(out_dir, rng, drop_policy):
    # The layer's capacity (3 selections per expert) drops the same
    # selections as the oracle's dispatch; 16 tokens on 3 experts overflow.
    layer = aot.compile(layer=SETTINGS | {"capacity": 3, "drop_policy": drop_policy},
                        entry="experts", name=f"capacity_{drop_policy}",
                        out_dir=out_dir / f"capacity_{drop_policy}").load()
    x, _, weights, w13, w2 = draw(rng, 16)
    ids = rng.integers(0, 3, (16, K)).astype(np.int32)
    ids[:, 1] = (ids[:, 0] + 1) % 3
    y = layer(x, ids, weights, w13, w2)
    want = oracle(x, ids, weights, w13, w2, E, capacity=3, drop_policy=drop_policy)
    assert_close(y, want, "f32", "capacity")
    assert not np.allclose(want, oracle(x, ids, weights, w13, w2, E), atol=1e-3)


def test_routing_of_the_oracle_layer(experts, rng):
    # The routing the whole layer would do, given from outside, reproduces it.
    x, _, _, w13, w2 = draw(rng, 11)
    router = normal(rng, (E, H), scale=0.5)
    want, weights, ids = ref.layer_with_routing(x, router, w13, w2, k=K, renormalize=True)
    y = experts(x, ids.astype(np.int32), weights.astype(np.float32), w13, w2)
    assert_close(y, want, "f32", "layer with its routing given")


def test_leading_dimensions(experts, rng):
    x, ids, weights, w13, w2 = draw(rng, 6)
    y = experts(x.reshape(2, 3, H), ids.reshape(2, 3, K), weights.reshape(2, 3, K), w13, w2)
    assert y.shape == (2, 3, H)
    assert np.array_equal(y.reshape(6, H), experts(x, ids, weights, w13, w2))
    with pytest.raises(ValueError, match="'topk_ids' has leading dimensions"):
        experts(x.reshape(2, 3, H), ids.reshape(3, 2, K), weights.reshape(2, 3, K), w13, w2)
    with pytest.raises(ValueError, match=r"'topk_weights' must have shape \[\*, 2\]"):
        experts(x, ids, weights[:, :1], w13, w2)


def test_empty_batch_skips_the_call(experts, rng, monkeypatch):
    _, _, _, w13, w2 = draw(rng, 1)

    def no_call(*args, **kwargs):
        raise AssertionError("the library was called for an empty batch")

    monkeypatch.setattr(experts, "forward_pointers", no_call)
    y = experts(np.zeros((0, H), np.float32), np.zeros((0, K), np.int32),
                np.zeros((0, K), np.float32), w13, w2)
    assert y.shape == (0, H) and y.dtype == np.float32
    with pytest.raises(ValueError, match="'w2' must be"):
        experts(np.zeros((0, H), np.float32), np.zeros((0, K), np.int32),
                np.zeros((0, K), np.float32), w13, w2[:, :, :4])


def test_ids_must_be_int32(experts, rng):
    x, ids, weights, w13, w2 = draw(rng, 3)
    with pytest.raises(ValueError, match=r"'topk_ids' must be \(3, 2\) int32, got \(3, 2\) int64"):
        experts(x, ids.astype(np.int64), weights, w13, w2)
    with pytest.raises(ValueError, match="'topk_weights' must be"):
        experts(x, ids, weights.astype(np.float64), w13, w2)


def test_abi_checks_num_tokens(experts, rng):
    x, ids, weights, w13, w2 = draw(rng, 2)
    y = np.zeros((2, H), np.float32)
    pointers = [a.ctypes.data for a in (x, ids, weights, w13, w2, y)]
    with pytest.raises(aot.MoEError, match="status 3"):
        experts.forward_pointers(pointers, 0, None, 0)
    with pytest.raises(aot.MoEError, match="status 1"):
        experts.forward_pointers(pointers[:1] + [None] + pointers[2:], 2, None, 0)


@pytest.mark.parametrize("tokens", [1, 19])
def test_gpt_oss_bf16(out_dir, rng, tokens):
    # A config's experts: bf16, swiglu_oai on interleaved gate/up, k = 4, and
    # the experts' biases (gate_up_proj_bias [E, 2I], down_proj_bias [E, H]).
    layer = aot.compile(GPT_OSS, entry="experts", name="gpt_oss_experts",
                        out_dir=out_dir / "gpt_oss").load()
    assert layer.manifest["layer"]["family"] == "gpt_oss"
    assert [t["name"] for t in layer.inputs] == [
        "x", "topk_ids", "topk_weights", "w13", "w2", "w13_bias", "w2_bias"]
    x, ids, weights, w13, w2 = draw(rng, tokens, "bf16", hidden=32, inter=16, k=4)
    ids[0, -1] = -1
    w13_bias = normal(rng, (8, 32), "bf16", scale=0.5)
    w2_bias = normal(rng, (8, 32), "bf16", scale=0.5)
    y = call(layer, x, ids, weights, w13, w2, "bf16", (w13_bias, w2_bias))
    want = oracle(x, ids, weights, w13, w2, 8, w13_bias, w2_bias, activation="swiglu_oai",
                  glu_layout="interleaved")
    assert_close(y, want, "bf16", "gpt-oss experts")


def test_c_header_of_the_entry(experts, out_dir):
    header = (out_dir / "f32" / "moe_experts.h").read_text()
    assert ("moe_status moe_experts_forward(const void *x, const void *topk_ids, "
            "const void *topk_weights, const void *w13, const void *w2, void *y, "
            "int64_t num_tokens, void *workspace, size_t workspace_size, "
            "void *stream);") in header


def test_entry_is_checked(out_dir):
    with pytest.raises(ValueError, match="entry must be 'layer' or 'experts'"):
        aot.compile(layer=SETTINGS, entry="expert", out_dir=out_dir / "bad")
    with pytest.raises(ValueError, match="IR exports its own function"):
        aot.compile(ir="module {}", entry="experts", out_dir=out_dir / "bad")
    layer = aot.compile(layer=SETTINGS, out_dir=out_dir / "layer").load()
    assert layer.entry == "layer"
    assert [t["name"] for t in layer.inputs] == ["x", "router", "w13", "w2"]
