"""FP8 checkpoints through moe-compile: an fp8 quantization_config (block, per-channel,
per-tensor; dynamic or static activations) compiles to an FP8 layer whose manifest lists
the scale tensors; the artifact, the ``Layer`` and the torch op take the checkpoint's
tensors (weights in float8_e4m3fn, weight_scale_inv stacked per expert) and match the
oracle. Unsupported quantization configs are refused by name."""

import math

import numpy as np
import pytest

from harness import relative_error
from moe_mlir import aot, cpu, dtypes
from moe_mlir import reference as ref
from moe_mlir.reference_quant import quantize_weights

FP8_TOL = 2e-2
BASE = {"model_type": "mixtral", "hidden_size": 256, "intermediate_size": 128,
        "num_local_experts": 8, "num_experts_per_tok": 2, "torch_dtype": "bfloat16"}


def _fp8(**quant):
    return dict(BASE, quantization_config={"quant_method": "fp8", "fmt": "e4m3", **quant})


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    return tmp_path_factory.mktemp("aot_fp8")


CASES = [
    ("block", _fp8(activation_scheme="dynamic", weight_block_size=[128, 128]), None, (128, 128)),
    # DeepSeek-V3's block with a ragged last block along K of w2 (I = 96) is refused
    # (below); a block of 32 divides every size here.
    ("block_32", _fp8(activation_scheme="dynamic", weight_block_size=[32, 32]), None, (32, 32)),
    ("per_channel", _fp8(activation_scheme="dynamic"), {"weight_block": "per_channel"},
     (1, 1 << 20)),
    ("per_tensor", _fp8(activation_scheme="dynamic"), None, (1 << 20, 1 << 20)),
    ("static", _fp8(activation_scheme="static", weight_block_size=[128, 128]), None, (128, 128)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("tokens", [1, 19])
def test_fp8_config_matches_oracle(out_dir, rng, case, tokens):
    name, config, settings, block = case
    artifact = aot.compile(config, layer=settings, name=f"fp8_{name}",
                           out_dir=out_dir / f"{name}_{tokens}")
    manifest = artifact.manifest
    spec = manifest["layer"]
    assert spec["weight_quant"] == "fp8_e4m3"
    assert spec["weight_block"] == list(block)
    static = spec["activation_quant"] == "static"
    H, I, E = spec["hidden"], spec["intermediate"], spec["experts"]
    gn = lambda n: -(-n // min(block[0], n))  # noqa: E731
    gk = lambda kk: -(-kk // min(block[1], kk))  # noqa: E731
    tensors = {t["name"]: t for t in manifest["tensors"]}
    assert tensors["w13"]["dtype"] == "f8E4M3FN" and tensors["w2"]["dtype"] == "f8E4M3FN"
    # A single block along N (per-tensor) has one scale per expert and weight.
    n13 = 1 if block[0] >= 2 * I else gn(2 * I)
    assert tensors["w13_scales"]["shape"] == [E, n13, gk(H)]
    assert tensors["w2_scales"]["shape"] == [E, gn(H), gk(I)]
    assert tensors["w13_scales"]["dtype"] == "f32"
    header = (artifact.directory / f"moe_fp8_{name}.h").read_text()
    assert f"w13_scales [{E}, {n13}, {gk(H)}] f32" in header

    layer = artifact.load()
    x = dtypes.round_to_bf16(rng.standard_normal((tokens, H)).astype(np.float32))
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    w13 = rng.standard_normal((E, 2 * I, H)) / math.sqrt(H)
    w2 = rng.standard_normal((E, H, I)) / math.sqrt(I)
    # The checkpoint's tensors: the gate and up projections of each expert quantized
    # separately, their scales stacked along N as w13 stacks the weights.
    q_gate, s_gate = quantize_weights(w13[:, :I], block)
    q_up, s_up = quantize_weights(w13[:, I:], block)
    q13 = np.concatenate([q_gate, q_up], axis=1)
    s13 = np.concatenate([s_gate, s_up], axis=1)
    if n13 == 1:  # per-tensor: one scale for gate and up, as the manifest asks
        q13, s13 = quantize_weights(w13, block)
    q2, s2 = quantize_weights(w2, block)
    inputs = dict(x=dtypes.as_bfloat16(cpu.to_storage(x, "bf16")),
                  router=dtypes.as_bfloat16(cpu.to_storage(router, "bf16")),
                  w13=q13, w2=q2, w13_scales=s13, w2_scales=s2)
    i13 = i2 = None
    if static:
        i13 = np.array([np.abs(x).max() / 448.0], np.float32)
        i2 = np.array([10.0 / 448.0], np.float32)
        inputs.update(w13_input_scale=i13, w2_input_scale=i2)
    y = layer(*[inputs[t["name"]] for t in layer.inputs])
    want = ref.layer(x, router, q13, q2, **ref.layer_kwargs(spec), weight_quant=dict(
        block=block, activation=spec["activation_quant"]), w13_scales=s13, w2_scales=s2,
        w13_input_scale=i13, w2_input_scale=i2)
    err = relative_error(np.asarray(y, dtype=np.float64), want)
    assert err <= FP8_TOL, f"fp8 {name} T={tokens}: relative error {err:.3g}"


def test_fp8_torch_op(out_dir, rng):
    torch = pytest.importorskip("torch")
    from moe_mlir import torch_op

    artifact = aot.compile(_fp8(activation_scheme="dynamic", weight_block_size=[128, 128]),
                           name="fp8_torch", out_dir=out_dir / "torch")
    layer = artifact.load()
    op = torch_op.register(layer, "fp8_torch")
    H, I, E = 256, 128, 8
    x = torch.randn(5, H).to(torch.bfloat16)
    router = (torch.randn(E, H) / 16).to(torch.bfloat16)
    q13, s13 = quantize_weights(rng.standard_normal((E, 2 * I, H)) / 16, (128, 128))
    q2, s2 = quantize_weights(rng.standard_normal((E, H, I)) / 11, (128, 128))
    as_torch = lambda q: torch.from_numpy(q.view(np.uint8)).view(torch.float8_e4m3fn)  # noqa
    y = op(x, router, as_torch(q13), as_torch(q2), torch.from_numpy(s13), torch.from_numpy(s2))
    assert y.dtype == torch.bfloat16
    want = ref.layer(x.float().numpy(), router.float().numpy(), q13, q2,
                     **ref.layer_kwargs(layer.manifest["layer"]), weight_quant=dict(block=(128, 128), activation="dynamic"),
                     w13_scales=s13, w2_scales=s2)
    err = relative_error(y.float().numpy(), want)
    assert err <= FP8_TOL, err


@pytest.mark.parametrize("config,message", [
    (dict(BASE, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True}),
     "config key 'quantization_config' (quant_method 'bitsandbytes'): this quantization is "
     "not supported (quant_method fp8, mxfp4, awq, gptq or compressed-tensors)"),
    (_fp8(fmt="e5m2"), "config key 'quantization_config': fmt the string \"e5m2\" is not "
     "supported (only 'e4m3')"),
    (_fp8(activation_scheme="per_token"), "activation_scheme the string \"per_token\" is "
     "not supported (dynamic or static)"),
    (_fp8(weight_block_size=[128]), "weight_block_size must be [bn, bk], two positive "
     "integers"),
    (dict(_fp8(weight_block_size=[128, 128]), intermediate_size=96),
     "the block along N (128) must divide intermediate (96"),
])
def test_unsupported_quantization_is_refused(out_dir, config, message):
    with pytest.raises(cpu.CompileError) as error:
        aot.compile(config, name="refused", out_dir=out_dir / "refused", emit=("manifest",))
    assert message in str(error.value)


def test_fp8_experts_entry(out_dir, rng):
    """The experts entry (routing given) of an FP8 config: the same weights and scales."""
    config = _fp8(activation_scheme="dynamic", weight_block_size=[128, 128])
    artifact = aot.compile(config, name="fp8_experts", out_dir=out_dir / "experts",
                           entry="experts")
    layer = artifact.load()
    assert [t["name"] for t in layer.inputs] == [
        "x", "topk_ids", "topk_weights", "w13", "w2", "w13_scales", "w2_scales"]
    H, I, E, k, T = 256, 128, 8, 2, 6
    x = dtypes.round_to_bf16(rng.standard_normal((T, H)).astype(np.float32))
    ids = np.stack([rng.choice(E, k, replace=False) for _ in range(T)]).astype(np.int32)
    weights = rng.random((T, k)).astype(np.float32)
    q13, s13 = quantize_weights(rng.standard_normal((E, 2 * I, H)) / 16, (128, 128))
    q2, s2 = quantize_weights(rng.standard_normal((E, H, I)) / 11, (128, 128))
    y = layer(dtypes.as_bfloat16(cpu.to_storage(x, "bf16")), ids, weights, q13, q2, s13, s2)
    quant = dict(block=(128, 128), activation="dynamic")
    rows, offsets = ref.dispatch(ids, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, k), q13, offsets, weight_quant=quant,
                           rhs_scales=s13)
    want = ref.combine(ref.grouped_matmul(ref.glu(h), q2, offsets, weight_quant=quant,
                                          rhs_scales=s2), rows, weights)
    err = relative_error(np.asarray(y, dtype=np.float64), want)
    assert err <= FP8_TOL, err


# gpt-oss's expert biases with FP8 experts: sizes that are multiples of the [8, 8] block
# but of no kernel tile (H = 40, 2I = 48, I = 24).
GPT_OSS_FP8 = {"model_type": "gpt_oss", "hidden_size": 40, "intermediate_size": 24,
               "num_local_experts": 6, "num_experts_per_tok": 4, "swiglu_limit": 7.0,
               "torch_dtype": "bfloat16",
               "quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
                                       "activation_scheme": "dynamic",
                                       "weight_block_size": [8, 8]}}


def _gpt_oss_fp8_tensors(rng, E, H, I):
    bf16 = lambda a: dtypes.round_to_bf16(np.asarray(a, np.float32))  # noqa: E731
    q13, s13 = quantize_weights(rng.standard_normal((E, 2 * I, H)) / math.sqrt(H), (8, 8))
    q2, s2 = quantize_weights(rng.standard_normal((E, H, I)) / math.sqrt(I), (8, 8))
    return dict(w13=q13, w2=q2, w13_scales=s13, w2_scales=s2,
                w13_bias=bf16(0.5 * rng.standard_normal((E, 2 * I))),
                w2_bias=bf16(0.5 * rng.standard_normal((E, H))))


#: The bf16 arguments of the gpt-oss FP8 layer (the scales and routing weights are f32).
_BF16_ARGUMENTS = {"x", "router", "router_bias", "w13_bias", "w2_bias"}


def _as_storage(tensors):
    return {name: dtypes.as_bfloat16(cpu.to_storage(value, "bf16"))
            if name in _BF16_ARGUMENTS else value for name, value in tensors.items()}


@pytest.mark.parametrize("tokens", [1, 13])
def test_fp8_with_expert_biases_layer(out_dir, rng, tokens):
    """A gpt-oss config with an fp8 quantization_config: the biases come after w2 and
    the scales after them; the biases are added after the FP8 product."""
    artifact = aot.compile(GPT_OSS_FP8, name="fp8_gpt_oss", out_dir=out_dir / f"gpt_oss_{tokens}")
    spec = artifact.manifest["layer"]
    assert spec["weight_quant"] == "fp8_e4m3" and spec["expert_bias"]
    layer = artifact.load()
    assert [t["name"] for t in layer.inputs] == [
        "x", "router", "w13", "w2", "router_bias", "w13_bias", "w2_bias", "w13_scales",
        "w2_scales"]
    H, I, E = 40, 24, 6
    tensors = _gpt_oss_fp8_tensors(rng, E, H, I)
    x = dtypes.round_to_bf16(rng.standard_normal((tokens, H)).astype(np.float32))
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    router_bias = dtypes.round_to_bf16((0.1 * rng.standard_normal(E)).astype(np.float32))
    inputs = _as_storage(dict(tensors, x=x, router=router, router_bias=router_bias))
    y = layer(*[inputs[t["name"]] for t in layer.inputs])
    want = ref.layer(x, router, tensors["w13"], tensors["w2"], **ref.layer_kwargs(spec),
                     router_bias=router_bias, w13_bias=tensors["w13_bias"],
                     w2_bias=tensors["w2_bias"],
                     weight_quant=dict(block=(8, 8), activation="dynamic"),
                     w13_scales=tensors["w13_scales"], w2_scales=tensors["w2_scales"])
    err = relative_error(np.asarray(y, dtype=np.float64), want)
    assert err <= FP8_TOL, f"T={tokens}: relative error {err:.3g}"
    # The biases are in the result: without them the oracle is far from it.
    no_bias = ref.layer(x, router, tensors["w13"], tensors["w2"], **ref.layer_kwargs(spec),
                        router_bias=router_bias,
                        weight_quant=dict(block=(8, 8), activation="dynamic"),
                        w13_scales=tensors["w13_scales"], w2_scales=tensors["w2_scales"])
    assert relative_error(np.asarray(y, dtype=np.float64), no_bias) > 10 * FP8_TOL


def test_fp8_with_expert_biases_experts_entry(out_dir, rng):
    """The experts entry of the same config, with all tokens on one expert and experts
    without tokens."""
    artifact = aot.compile(GPT_OSS_FP8, name="fp8_gpt_oss_experts",
                           out_dir=out_dir / "gpt_oss_experts", entry="experts")
    spec = artifact.manifest["layer"]
    layer = artifact.load()
    assert [t["name"] for t in layer.inputs] == [
        "x", "topk_ids", "topk_weights", "w13", "w2", "w13_bias", "w2_bias", "w13_scales",
        "w2_scales"]
    H, I, E, k, T = 40, 24, 6, 4, 7
    tensors = _gpt_oss_fp8_tensors(rng, E, H, I)
    x = dtypes.round_to_bf16(rng.standard_normal((T, H)).astype(np.float32))
    # Expert 2 serves every token; experts 4 and 5 serve none.
    ids = np.stack([np.concatenate([[2], rng.permutation([0, 1, 3])]) for _ in range(T)])
    ids = ids.astype(np.int32)
    weights = rng.random((T, k)).astype(np.float32)
    inputs = _as_storage(dict(tensors, x=x, topk_ids=ids, topk_weights=weights))
    y = layer(*[inputs[t["name"]] for t in layer.inputs])
    quant = dict(block=(8, 8), activation="dynamic")
    rows, offsets = ref.dispatch(ids, num_experts=E)
    glu = dict(layout=spec["glu_layout"], alpha=spec["alpha"], limit=spec["limit"])
    h = ref.grouped_matmul(ref.permute(x, rows, k), tensors["w13"], offsets,
                           bias=tensors["w13_bias"], weight_quant=quant,
                           rhs_scales=tensors["w13_scales"])
    a = ref.glu(h, spec["activation"], **glu)
    want = ref.combine(ref.grouped_matmul(a, tensors["w2"], offsets, bias=tensors["w2_bias"],
                                          weight_quant=quant, rhs_scales=tensors["w2_scales"]),
                       rows, weights)
    err = relative_error(np.asarray(y, dtype=np.float64), want)
    assert err <= FP8_TOL, err
