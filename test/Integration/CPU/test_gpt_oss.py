"""gpt-oss exact on the CPU: a gpt-oss config compiled by moe-compile (router
bias, expert biases, interleaved gate/up, clamped SwiGLU, softmax over the top
k), called through the C ABI (aot.Layer) and the torch op with the
checkpoint's tensors, against the numpy oracle and against the transcription
of gpt-oss's own MoE block (moe_mlir.gpt_oss_reference), with non-zero biases:
1 token, experts without tokens, all tokens on one expert, sizes that are not
multiples of the tiles, both weight layouts and the pre-routed entry; and a
bias of the wrong shape or dtype, which aot.Layer and the torch op name."""

import re

import numpy as np
import pytest

from harness import assert_close, draw_robust, normal, routing_is_robust
from moe_mlir import aot, cpu, dtypes, gpt_oss
from moe_mlir import gpt_oss_reference as transcription
from moe_mlir import reference as ref

# Not multiples of any tile: H = 36, I = 20 (2I = 40), E = 10.
H, I, E, K = 36, 20, 10, 4


def config(dtype):
    return {"model_type": "gpt_oss", "hidden_size": H, "intermediate_size": I,
            "num_local_experts": E, "num_experts_per_tok": K, "swiglu_limit": 7.0,
            "hidden_act": "silu",
            "torch_dtype": "float32" if dtype == "f32" else "bfloat16"}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    return tmp_path_factory.mktemp("gpt_oss")


_layers = {}


def load(out_dir, dtype, entry="layer", **settings):
    key = (dtype, entry, tuple(sorted(settings.items())))
    if key not in _layers:
        name = "_".join(["gpt_oss", dtype, entry] + [f"{k}_{v}" for k, v in settings.items()])
        _layers[key] = aot.compile(config(dtype), layer=settings or None, entry=entry,
                                   name=name, out_dir=out_dir / name).load()
    return _layers[key]


def checkpoint(rng, dtype, experts=E, bias_scale=0.5):
    """Random checkpoint tensors (Hugging Face names and layouts), non-zero biases."""
    return {
        "router.weight": normal(rng, (experts, H), dtype, scale=0.5),
        "router.bias": normal(rng, (experts,), dtype, scale=bias_scale),
        "experts.gate_up_proj": normal(rng, (experts, H, 2 * I), dtype, scale=H ** -0.5),
        "experts.gate_up_proj_bias": normal(rng, (experts, 2 * I), dtype, scale=bias_scale),
        "experts.down_proj": normal(rng, (experts, I, H), dtype, scale=I ** -0.5),
        "experts.down_proj_bias": normal(rng, (experts, H), dtype, scale=bias_scale),
    }


def boost(ckpt, experts, dtype):
    """+50 on the router bias of `experts` (every token goes to them), rounded to
    `dtype` again so that the kernel and the references see the same bias."""
    bias = ckpt["router.bias"].copy()
    bias[list(experts)] += 50.0
    ckpt["router.bias"] = dtypes.round_to_bf16(bias) if dtype == "bf16" else bias


def robust_inputs(rng, tokens, dtype, k=K, **ckpt_kw):
    """A checkpoint and tokens whose routing no near-tie decides."""
    def draw():
        return checkpoint(rng, dtype, **ckpt_kw), 2.0 * normal(rng, (tokens, H), dtype)

    def robust(drawn):
        ckpt, x = drawn
        logits = x.astype(np.float64) @ ckpt["router.weight"].T.astype(np.float64)
        return routing_is_robust(rng, logits + ckpt["router.bias"], None,
                                 dict(ref.MODEL_RECIPES["gpt_oss"], k=k))
    return draw_robust(rng, draw, robust, f"gpt-oss T={tokens}")


def expected(x, ckpt, k=K):
    """(oracle, transcription) of the layer."""
    oracle = ref.layer(
        x, ckpt["router.weight"], np.swapaxes(ckpt["experts.gate_up_proj"], 1, 2),
        np.swapaxes(ckpt["experts.down_proj"], 1, 2), router_bias=ckpt["router.bias"],
        w13_bias=ckpt["experts.gate_up_proj_bias"], w2_bias=ckpt["experts.down_proj_bias"],
        **dict(ref.MODEL_RECIPES["gpt_oss"], k=k), **ref.MODEL_FFN["gpt_oss"])
    gpt = transcription.moe_block(
        x, ckpt["router.weight"], ckpt["router.bias"], ckpt["experts.gate_up_proj"],
        ckpt["experts.gate_up_proj_bias"], ckpt["experts.down_proj"],
        ckpt["experts.down_proj_bias"], experts_per_token=k)
    return oracle, gpt


def run(layer, x, ckpt, dtype, **given):
    """Calls the layer with the checkpoint's tensors (bf16 as their bits)."""
    store = {key: cpu.to_storage(value, dtype) for key, value in ckpt.items()}
    args = gpt_oss.layer_inputs(layer, store, x=cpu.to_storage(x, dtype), **given)
    return cpu.from_storage(layer(*args), dtype)


def test_manifest_takes_the_biases(out_dir):
    layer = load(out_dir, "bf16")
    shapes = [(t["name"], t["shape"], t["dtype"]) for t in layer.inputs]
    assert shapes == [("x", [-1, H], "bf16"), ("router", [E, H], "bf16"),
                      ("w13", [E, 2 * I, H], "bf16"), ("w2", [E, H, I], "bf16"),
                      ("router_bias", [E], "bf16"), ("w13_bias", [E, 2 * I], "bf16"),
                      ("w2_bias", [E, H], "bf16")]
    spec = layer.manifest["layer"]
    assert spec["router_bias"] and spec["expert_bias"] and not spec["bias"]
    header = (out_dir / "gpt_oss_bf16_layer" / "moe_gpt_oss_bf16_layer.h").read_text()
    assert ("const void *router_bias, const void *w13_bias, const void *w2_bias, "
            "void *y") in header


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("weight_layout", ["nk", "kn"])
@pytest.mark.parametrize("tokens", [1, 7, 33])
def test_layer_matches_oracle_and_transcription(out_dir, rng, dtype, weight_layout, tokens):
    settings = {"weight_layout": weight_layout} if weight_layout != "nk" else {}
    layer = load(out_dir, dtype, **settings)
    ckpt, x = robust_inputs(rng, tokens, dtype)
    y = run(layer, x, ckpt, dtype)
    oracle, gpt = expected(x, ckpt)
    what = f"gpt-oss {dtype} {weight_layout} T={tokens}"
    assert_close(y, oracle, dtype, f"{what} vs oracle")
    assert_close(y, gpt, dtype, f"{what} vs the gpt-oss transcription")
    # The oracle itself is the transcription, to float64 rounding.
    np.testing.assert_allclose(oracle, gpt, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_experts_without_tokens(out_dir, rng, dtype):
    # A dominant router bias sends every token to experts 1, 3, 4 and 8: the six
    # others get no token, and their biases add nothing.
    layer = load(out_dir, dtype)
    ckpt, x = robust_inputs(rng, 29, dtype)
    boost(ckpt, [1, 3, 4, 8], dtype)
    y = run(layer, x, ckpt, dtype)
    oracle, gpt = expected(x, ckpt)
    _, _, ids = ref.layer_with_routing(
        x, ckpt["router.weight"], np.swapaxes(ckpt["experts.gate_up_proj"], 1, 2),
        np.swapaxes(ckpt["experts.down_proj"], 1, 2), router_bias=ckpt["router.bias"],
        **ref.MODEL_RECIPES["gpt_oss"], **ref.MODEL_FFN["gpt_oss"])
    assert set(np.unique(ids)) == {1, 3, 4, 8}
    assert_close(y, oracle, dtype, "experts without tokens vs oracle")
    assert_close(y, gpt, dtype, "experts without tokens vs transcription")


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_all_tokens_on_one_expert(out_dir, rng, dtype):
    # k = 1 and a dominant router bias: expert 6 takes every token.
    layer = load(out_dir, dtype, k=1)
    ckpt, x = robust_inputs(rng, 40, dtype, k=1)
    boost(ckpt, [6], dtype)
    y = run(layer, x, ckpt, dtype)
    oracle, gpt = expected(x, ckpt, k=1)
    assert_close(y, oracle, dtype, "one expert vs oracle")
    assert_close(y, gpt, dtype, "one expert vs transcription")


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("tokens", [1, 19])
def test_experts_entry(out_dir, rng, dtype, tokens):
    # The pre-routed entry with the routing gpt-oss computes gives its output; an
    # id outside [0, E) selects nothing.
    layer = load(out_dir, dtype, entry="experts")
    ckpt, x = robust_inputs(rng, tokens, dtype)
    logits = x.astype(np.float64) @ ckpt["router.weight"].T + ckpt["router.bias"]
    weights, ids = ref.route(logits, **ref.MODEL_RECIPES["gpt_oss"])
    y = run(layer, x, ckpt, dtype, topk_ids=ids, topk_weights=weights.astype(np.float32))
    assert_close(y, expected(x, ckpt)[1], dtype, "experts entry vs transcription")
    ids[0, 1] = E
    kept = weights.copy()
    kept[0, 1] = 0.0
    y = run(layer, x, ckpt, dtype, topk_ids=ids, topk_weights=weights.astype(np.float32))
    rows, offsets = ref.dispatch(ids, kept, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, K),
                           np.swapaxes(ckpt["experts.gate_up_proj"], 1, 2), offsets,
                           bias=ckpt["experts.gate_up_proj_bias"])
    ys = ref.grouped_matmul(ref.glu(h, "swiglu_oai", "interleaved"),
                            np.swapaxes(ckpt["experts.down_proj"], 1, 2), offsets,
                            bias=ckpt["experts.down_proj_bias"])
    assert_close(y, ref.combine(ys, rows, kept), dtype, "experts entry, an id out of range")


def test_layer_inputs_names_the_missing_tensor(out_dir, rng):
    layer = load(out_dir, "f32")
    ckpt = checkpoint(rng, "f32")
    del ckpt["experts.down_proj_bias"]
    with pytest.raises(KeyError, match="no 'experts.down_proj_bias'"):
        gpt_oss.layer_inputs(layer, ckpt, x=np.zeros((1, H), np.float32))
    with pytest.raises(ValueError, match="input 'x' is per token"):
        gpt_oss.layer_inputs(layer, checkpoint(rng, "f32"))


# A bias of the wrong shape or dtype: each call path names the tensor, its
# shape or dtype, and what it got, and never calls the library.
WRONG_SHAPES = [("router_bias", (E + 1,)), ("router_bias", (1, E)), ("w13_bias", (E, I)),
                ("w13_bias", (2 * I, E)), ("w2_bias", (E, 2 * I)), ("w2_bias", (E - 1, H))]
WANT = {"router_bias": (E,), "w13_bias": (E, 2 * I), "w2_bias": (E, H)}


def replaced(layer, inputs, name, value):
    """``inputs`` with input ``name`` of ``layer`` replaced by ``value``."""
    names = [t["name"] for t in layer.inputs]
    inputs = list(inputs)
    inputs[names.index(name)] = value
    return inputs


# The experts entry has no router, so no router_bias.
@pytest.mark.parametrize("entry, name, shape", [
    (entry, name, shape) for entry in ("layer", "experts") for name, shape in WRONG_SHAPES
    if entry == "layer" or name != "router_bias"])
def test_layer_names_a_bias_of_the_wrong_shape(out_dir, rng, entry, name, shape):
    layer = load(out_dir, "f32", entry=entry)
    ckpt, x = checkpoint(rng, "f32"), normal(rng, (3, H), "f32")
    given = {}
    if entry == "experts":
        given = {"topk_ids": np.zeros((3, K), np.int32),
                 "topk_weights": np.full((3, K), 0.25, np.float32)}
    inputs = gpt_oss.layer_inputs(layer, ckpt, x=x, **given)
    bad = replaced(layer, inputs, name, np.zeros(shape, np.float32))
    message = f"'{name}' must be {WANT[name]} float32, got {shape} float32"
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(*bad)


def test_layer_names_a_bias_of_the_wrong_dtype(out_dir, rng):
    layer = load(out_dir, "bf16")
    ckpt = {key: cpu.to_storage(value, "bf16")
            for key, value in checkpoint(rng, "bf16").items()}
    x = cpu.to_storage(normal(rng, (2, H), "bf16"), "bf16")
    inputs = gpt_oss.layer_inputs(layer, ckpt, x=x)
    bad = replaced(layer, inputs, "w2_bias", np.zeros((E, H), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            f"'w2_bias' must be {(E, H)} ml_dtypes.bfloat16 or uint16 (bf16 bits), "
            f"got {(E, H)} float32")):
        layer(*bad)


@pytest.mark.parametrize("name, shape", WRONG_SHAPES)
def test_torch_op_names_a_bias_of_the_wrong_shape(out_dir, rng, name, shape):
    torch = pytest.importorskip("torch")
    from moe_mlir import torch_op

    layer = load(out_dir, "f32")
    op = torch_op.register(layer, f"gpt_oss_cpu_bad_{name}_{'x'.join(map(str, shape))}")
    tensors = {key: torch.from_numpy(value) for key, value in checkpoint(rng, "f32").items()}
    inputs = gpt_oss.layer_inputs(layer, tensors, x=torch.zeros(2, 3, H))
    bad = replaced(layer, inputs, name, torch.zeros(shape))
    with pytest.raises(ValueError, match=re.escape(
            f"'{name}' must have shape {WANT[name]}, got {shape}")):
        op(*bad)
    bad = replaced(layer, inputs, name, torch.zeros(WANT[name], dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=re.escape(
            f"'{name}' must be torch.float32, got torch.bfloat16")):
        op(*bad)


def test_torch_op(out_dir, rng):
    # The torch op takes the checkpoint's torch tensors, bf16, x of shape [*, H].
    torch = pytest.importorskip("torch")
    from moe_mlir import torch_op

    layer = load(out_dir, "bf16", weight_layout="kn")
    op = torch_op.register(layer, "gpt_oss_cpu_test")
    ckpt, x = robust_inputs(rng, 12, "bf16")
    tensors = {key: torch.from_numpy(value).to(torch.bfloat16) for key, value in ckpt.items()}
    xt = torch.from_numpy(x).to(torch.bfloat16).reshape(3, 4, H)
    y = op(*gpt_oss.layer_inputs(layer, tensors, x=xt))
    assert y.shape == (3, 4, H) and y.dtype == torch.bfloat16
    oracle, gpt = expected(x, ckpt)
    got = y.float().numpy().reshape(12, H)
    assert_close(got, oracle, "bf16", "torch op vs oracle")
    assert_close(got, gpt, "bf16", "torch op vs transcription")


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_every_cpu_pipeline(compile_ir, pipeline, rng, dtype):
    # The layer as IR through each CPU pipeline variant: fused routing with the
    # vectorized kernels, the reference linalg lowering, unfused, AVX2 width.
    from moe_mlir import irgen

    recipe = {key: value for key, value in ref.MODEL_RECIPES["gpt_oss"].items() if key != "k"}
    ir = irgen.layer_ir(None, H, E, I, K, dtype=dtype, router_bias=True, expert_bias=True,
                        **recipe, **ref.MODEL_FFN["gpt_oss"])
    module = compile_ir(ir, pipeline)
    for tokens in (1, 21):
        ckpt, x = robust_inputs(rng, tokens, dtype)
        inputs = [cpu.to_storage(a, dtype) for a in (
            x, ckpt["router.weight"], np.swapaxes(ckpt["experts.gate_up_proj"], 1, 2),
            np.swapaxes(ckpt["experts.down_proj"], 1, 2), ckpt["router.bias"],
            ckpt["experts.gate_up_proj_bias"], ckpt["experts.down_proj_bias"])]
        (y,) = module.call("layer", inputs, [cpu.TensorSpec((tokens, H), dtype)])
        oracle, gpt = expected(x, ckpt)
        what = f"gpt-oss IR {dtype} T={tokens} pipeline={pipeline}"
        assert_close(cpu.from_storage(y, dtype), oracle, dtype, f"{what} vs oracle")
        assert_close(cpu.from_storage(y, dtype), gpt, dtype, f"{what} vs transcription")
