"""Weight-only checkpoints through moe-compile: each quantization_config (gpt-oss mxfp4,
GPTQ and AWQ int4, compressed-tensors int8) compiles to a library whose manifest lists
the quantized tensors; the checkpoint's tensors, as stored and converted by
``moe_mlir.pack_lowbit``, go through ``aot.Layer`` (ctypes) and the torch op, and the
result matches the fp64 oracle (the weights dequantized by ``reference_lowbit``) at 1, 7
and 300 tokens. Edge cases: experts without tokens, every token on one expert, e8m0
scales 0 and 254, an int4 scale of 0. Wrong dtypes and shapes are ValueErrors.

The checkpoints are written here with vectorized packers of the GPTQ and AWQ int32
layouts (python/tests/test_pack_lowbit.py checks the module against element-by-element
ones)."""

import math

import numpy as np
import pytest

from harness import assert_close, draw_robust, routing_is_robust
from moe_mlir import aot, cpu, dtypes, pack, pack_lowbit
from moe_mlir import reference as ref
from moe_mlir import reference_lowbit as lb

TOKENS = (1, 7, 300)
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
MIXTRAL = {"model_type": "mixtral", "hidden_size": 128, "intermediate_size": 64,
           "num_local_experts": 6, "num_experts_per_tok": 2, "torch_dtype": "bfloat16"}
GPT_OSS = {"model_type": "gpt_oss", "hidden_size": 64, "intermediate_size": 32,
           "num_local_experts": 6, "num_experts_per_tok": 4, "swiglu_limit": 7.0,
           "hidden_act": "silu", "torch_dtype": "bfloat16",
           "quantization_config": {"quant_method": "mxfp4",
                                   "modules_to_not_convert": ["model.layers.*.mlp.router"]}}
INT8_CT = {"quant_method": "compressed-tensors", "format": "int-quantized",
           "quantization_status": "compressed",
           "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None,
                                         "weights": {"num_bits": 8, "type": "int",
                                                     "strategy": "channel", "symmetric": True,
                                                     "dynamic": False}}}}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    return tmp_path_factory.mktemp("aot_weight_only")


def _words(nibbles):
    """uint [..., 8] 4-bit values -> int32 [...], value j in bits 4j..4j+3."""
    shifts = np.arange(8, dtype=np.uint64) * 4
    return (np.asarray(nibbles, np.uint64) << shifts).sum(axis=-1).astype(np.uint32).view(np.int32)


def _int4_linear(rng, N, K, group, method, zero_points):
    """One Linear's checkpoint tensors in ``method``'s layout and its weights [N, K]."""
    G = -(-K // group)
    codes = rng.integers(0, 16, size=(N, K))
    zeros = rng.integers(1, 16, size=(N, G)) if zero_points else np.full((N, G), 8)
    scales = ((rng.random((N, G)) + 0.5) / (4 * math.sqrt(K))).astype(np.float16)
    scales[0, 0] = 0  # an int4 scale of 0: that group's weights are zero
    W = (codes - np.repeat(zeros, group, axis=1)[:, :K]) * np.repeat(
        scales.astype(np.float64), group, axis=1)[:, :K]
    if method == "gptq":  # along K; qzeros along N, stored as z - 1 (v1)
        qweight = _words(codes.T.reshape(K // 8, 8, N).transpose(0, 2, 1))
        qzeros = _words((zeros - 1).T.reshape(G, N // 8, 8))
    else:  # awq: along N in the order 0 2 4 6 1 3 5 7
        qweight = _words(codes.T.reshape(K, N // 8, 8)[:, :, AWQ_ORDER])
        qzeros = _words(zeros.T.reshape(G, N // 8, 8)[:, :, AWQ_ORDER])
    return dict(qweight=qweight, qzeros=qzeros, scales=scales.T.copy()), W


def _load_int4(tensors, method, group, zero_points):
    if method == "gptq":
        return pack_lowbit.gptq_to_int4(tensors["qweight"], tensors["qzeros"],
                                        tensors["scales"], group_size=group,
                                        sym=not zero_points)
    return pack_lowbit.awq_to_int4(tensors["qweight"], tensors["qzeros"], tensors["scales"],
                                   group_size=group)


def _mixtral_experts(rng, E, H, I, fmt, group=None, zero_points=False, method=None):
    """The layer's quantized arguments (w13, w2, scales[, zero points]) from per-expert
    checkpoint Linears (w1 = gate, w3 = up, w2 = down), and their weights."""
    linears = {"w1": (I, H), "w3": (I, H), "w2": (H, I)}
    loaded, weights = {}, {}
    for name, (N, K) in linears.items():
        parts, Ws = [], []
        for _ in range(E):
            if fmt == "int4":
                tensors, W = _int4_linear(rng, N, K, group, method, zero_points)
                parts.append(_load_int4(tensors, method, group, zero_points))
            else:  # compressed-tensors int8: weight [N, K], weight_scale [N, 1] (bf16)
                w = rng.integers(-127, 128, size=(N, K)).astype(np.int8)
                s = dtypes.round_to_bf16(((rng.random((N, 1)) + 0.5) / (64 * math.sqrt(K)))
                                         .astype(np.float32))
                parts.append(pack_lowbit.compressed_tensors_to_int8(w, s))
                W = w.astype(np.float64) * s.astype(np.float64)
            Ws.append(W)
        loaded[name] = pack_lowbit.stack_experts(parts)
        weights[name] = np.stack(Ws)
    w13 = pack_lowbit.concat_gate_up(loaded["w1"], loaded["w3"])
    w2 = loaded["w2"]
    args = dict(w13=w13[0], w2=w2[0], w13_scales=w13[1], w2_scales=w2[1])
    if len(w13) > 2 and w13[2] is not None:
        args.update(w13_zero_points=w13[2], w2_zero_points=w2[2])
    W13 = np.concatenate([weights["w1"], weights["w3"]], axis=1)
    return args, W13, weights["w2"]


def _call_layer(layer, values):
    return layer(*[values[t["name"]] for t in layer.inputs])


def _route_robust_x(rng, T, H, router, route, bias=None):
    def draw():
        return dtypes.round_to_bf16(rng.standard_normal((T, H)).astype(np.float32))

    def robust(x):
        logits = x.astype(np.float64) @ router.astype(np.float64).T
        if bias is not None:
            logits = logits + bias
        return routing_is_robust(rng, logits, None, route)

    return draw_robust(rng, draw, robust, f"T={T}")


def _bf16(a):
    return dtypes.as_bfloat16(cpu.to_storage(a, "bf16"))


INT4_CASES = [
    # (id, method, group, zero points (sym false / zero_point true))
    ("gptq_g32_asym", "gptq", 32, True),
    ("gptq_g128_sym_k_one_group", "gptq", 128, False),
    ("awq_g64", "awq", 64, True),
]


@pytest.mark.parametrize("case", INT4_CASES + [("int8_compressed_tensors", "int8", None, False)],
                         ids=[c[0] for c in INT4_CASES] + ["int8"])
def test_mixtral_weight_only(out_dir, rng, case):
    name, method, group, zero_points = case
    if method == "int8":
        quant = INT8_CT
    elif method == "gptq":
        quant = {"quant_method": "gptq", "bits": 4, "group_size": group, "desc_act": False,
                 "sym": not zero_points}
    else:
        quant = {"quant_method": "awq", "bits": 4, "group_size": group, "version": "gemm",
                 "zero_point": True}
    artifact = aot.compile(dict(MIXTRAL, quantization_config=quant), name=name,
                           out_dir=out_dir / name)
    spec = artifact.manifest["layer"]
    H, I, E = spec["hidden"], spec["intermediate"], spec["experts"]
    tensors = {t["name"]: t for t in artifact.manifest["tensors"]}
    fmt = "int8" if method == "int8" else "int4"
    assert spec["weight_quant"] == fmt
    per_byte = 2 if fmt == "int4" else 1
    assert tensors["w13"]["dtype"] == "i8" and tensors["w13"]["shape"] == [E, 2 * I, H // per_byte]
    assert tensors["w2"]["shape"] == [E, H, I // per_byte]
    g = group or 1 << 20
    assert tensors["w13_scales"]["shape"] == [E, 2 * I, -(-H // g)]
    assert tensors["w2_scales"]["dtype"] == "f32"
    assert ("w13_zero_points" in tensors) == zero_points
    layer = artifact.load()
    args, W13, W2 = _mixtral_experts(rng, E, H, I, fmt, group, zero_points, method)
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    route = ref.layer_kwargs(spec)
    for T in TOKENS:
        x = _route_robust_x(rng, T, H, router, dict(k=spec["k"], renormalize=True))
        y = _call_layer(layer, dict(args, x=_bf16(x), router=_bf16(router)))
        want = ref.layer(x, router, W13, W2, **route)
        assert_close(np.asarray(y, np.float64), want, "bf16", f"{name} T={T}")


def _gpt_oss_tensors(rng, E, H, I, extreme=False):
    """gpt-oss's checkpoint tensors (mxfp4 blocks and scales as stored, bf16 biases)."""
    out, W = {}, {}
    for name, (N, K) in (("w13", (2 * I, H)), ("w2", (H, I))):
        if extreme and name == "w13":  # |e2m1| <= 1 times 2^127 (254), or 2^-127 (0)
            codes = rng.choice([0, 1, 2, 8, 9, 10], size=(E, N, K))
            scales = rng.choice(np.array([254, 253, 0], np.uint8), size=(E, N, K // 32))
        elif extreme:
            codes = rng.integers(0, 16, size=(E, N, K))
            scales = rng.choice(np.array([0, 1, 2], np.uint8), size=(E, N, K // 32))
        else:
            codes = rng.integers(0, 16, size=(E, N, K))
            scales = rng.integers(122, 128, size=(E, N, K // 32)).astype(np.uint8)
        blocks = lb.pack_nibbles(codes).reshape(E, N, K // 32, 16)
        out[name], out[f"{name}_scales"] = pack_lowbit.gpt_oss_mxfp4(blocks, scales)
        W[name] = lb.dequantize_mxfp4(blocks, scales)
    bf16 = lambda a: dtypes.round_to_bf16(np.asarray(a, np.float32))  # noqa: E731
    out.update(w13_bias=bf16(0.5 * rng.standard_normal((E, 2 * I))),
               w2_bias=bf16(0.5 * rng.standard_normal((E, H))),
               router_bias=bf16(0.1 * rng.standard_normal(E)))
    return out, W


def _gpt_oss_oracle(spec, x, router, t, W):
    return ref.layer(x, router, W["w13"], W["w2"], **ref.layer_kwargs(spec),
                     router_bias=t["router_bias"], w13_bias=t["w13_bias"],
                     w2_bias=t["w2_bias"])


@pytest.fixture(scope="module")
def gpt_oss(out_dir):
    return aot.compile(GPT_OSS, name="gpt_oss_mxfp4", out_dir=out_dir / "gpt_oss")


def _as_inputs(t, x, router):
    floats = {"router_bias", "w13_bias", "w2_bias"}
    values = {k: (_bf16(v) if k in floats else v) for k, v in t.items()}
    return dict(values, x=_bf16(x), router=_bf16(router))


def test_gpt_oss_mxfp4(gpt_oss, rng):
    artifact = gpt_oss
    spec = artifact.manifest["layer"]
    assert spec["weight_quant"] == "mxfp4" and spec["quant_method"] == "mxfp4"
    tensors = {t["name"]: t for t in artifact.manifest["tensors"]}
    H, I, E = 64, 32, 6
    assert tensors["w13"]["shape"] == [E, 2 * I, H // 32, 16] and tensors["w13"]["dtype"] == "i8"
    assert tensors["w13_scales"]["shape"] == [E, 2 * I, H // 32]
    assert tensors["w13_scales"]["dtype"] == "f8E8M0FNU"
    layer = artifact.load()
    t, W = _gpt_oss_tensors(rng, E, H, I)
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    for T in TOKENS:
        x = _route_robust_x(rng, T, H, router, dict(k=4, scoring="softmax_topk"),
                            t["router_bias"].astype(np.float64))
        y = _call_layer(layer, _as_inputs(t, x, router))
        assert_close(np.asarray(y, np.float64), _gpt_oss_oracle(spec, x, router, t, W), "bf16",
                     f"gpt-oss mxfp4 T={T}")


def test_gpt_oss_mxfp4_extreme_scales_one_expert_set(gpt_oss, rng):
    """e8m0 scales 254 and 0: x of magnitude 2^-120 keeps x . w13 (weights up to 2^127)
    in range; w2's scales 2^-127..2^-125. The router logits are then the router bias
    alone, so every token picks the same 4 experts and 2 experts get no tokens."""
    spec = gpt_oss.manifest["layer"]
    layer = gpt_oss.load()
    H, I, E = 64, 32, 6
    t, W = _gpt_oss_tensors(rng, E, H, I, extreme=True)
    t["router_bias"] = dtypes.round_to_bf16(np.array([0.5, -1.0, 2.0, 1.0, -2.0, 0.0],
                                                     np.float32))
    t["w2_bias"] = np.zeros((E, H), np.float32)  # y stays at the scale of x . w2
    t["w13_bias"] = np.zeros((E, 2 * I), np.float32)
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    assert W["w13"].max() == math.ldexp(1.0, 127)
    for T in (1, 7):
        x = dtypes.round_to_bf16((rng.standard_normal((T, H)) * 2.0**-120).astype(np.float32))
        y = np.asarray(_call_layer(layer, _as_inputs(t, x, router)), np.float64)
        want = _gpt_oss_oracle(spec, x, router, t, W)
        assert np.isfinite(y).all() and np.abs(want).max() > 0
        assert_close(y, want, "bf16", f"gpt-oss mxfp4 extreme scales T={T}")


def test_experts_entry_one_expert(out_dir, rng):
    """The experts entry of a GPTQ config: every token on expert 3 (k = 1), the other
    experts without tokens, then k = 2 with expert 3 in every token's selection."""
    config = dict(MIXTRAL, quantization_config={"quant_method": "gptq", "bits": 4,
                                                "group_size": 64, "sym": False})
    for k in (1, 2):
        artifact = aot.compile(dict(config, num_experts_per_tok=k), name=f"gptq_experts_{k}",
                               out_dir=out_dir / f"experts_{k}", entry="experts")
        layer = artifact.load()
        H, I, E = 128, 64, 6
        args, W13, W2 = _mixtral_experts(rng, E, H, I, "int4", 64, True, "gptq")
        for T in TOKENS:
            x = dtypes.round_to_bf16(rng.standard_normal((T, H)).astype(np.float32))
            others = np.stack([rng.permutation([0, 1, 2, 4, 5])[:k - 1] for _ in range(T)])
            ids = np.concatenate([np.full((T, 1), 3), others.reshape(T, k - 1)], axis=1)
            ids = ids.astype(np.int32)
            weights = rng.random((T, k)).astype(np.float32)
            y = _call_layer(layer, dict(args, x=_bf16(x), topk_ids=ids, topk_weights=weights))
            rows, offsets = ref.dispatch(ids, num_experts=E)
            h = ref.grouped_matmul(ref.permute(x, rows, k), W13, offsets)
            want = ref.combine(ref.grouped_matmul(ref.glu(h), W2, offsets), rows, weights)
            assert_close(np.asarray(y, np.float64), want, "bf16", f"experts k={k} T={T}")


def test_wrong_tensors_are_value_errors(gpt_oss, rng):
    layer = gpt_oss.load()
    H, I, E = 64, 32, 6
    t, _ = _gpt_oss_tensors(rng, E, H, I)
    router = dtypes.round_to_bf16(rng.standard_normal((E, H)).astype(np.float32))
    x = dtypes.round_to_bf16(rng.standard_normal((2, H)).astype(np.float32))
    good = _as_inputs(t, x, router)
    # uint8 blocks (as gpt-oss stores them) and int8 views are both taken.
    _call_layer(layer, dict(good, w13=good["w13"].view(np.int8)))
    bad = [("w13", good["w13"].astype(np.float32),
            r"'w13' must be \(6, 64, 2, 16\) int8 or uint8 \(bytes\), got \(6, 64, 2, 16\) float32"),
           ("w13", good["w13"].reshape(E, 2 * I, H // 2),
            r"'w13' must be \(6, 64, 2, 16\) int8 or uint8 \(bytes\), got \(6, 64, 32\) uint8"),
           ("w2_scales", good["w2_scales"].astype(np.float32),
            r"'w2_scales' must be \(6, 64, 1\) ml_dtypes.float8_e8m0fnu or uint8 \(e8m0 bits\)"),
           ("w13_scales", good["w13_scales"][:, :, :1],
            r"'w13_scales' must be \(6, 64, 2\)")]
    for name, value, message in bad:
        with pytest.raises(ValueError, match=message):
            _call_layer(layer, dict(good, **{name: value}))


def test_torch_op_int4_and_mxfp4(out_dir, gpt_oss, rng):
    torch = pytest.importorskip("torch")
    from moe_mlir import torch_op

    spec = gpt_oss.manifest["layer"]
    layer = gpt_oss.load()
    op = torch_op.register(layer, "gpt_oss_mxfp4")
    H, I, E = 64, 32, 6
    t, W = _gpt_oss_tensors(rng, E, H, I)
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    x = _route_robust_x(rng, 7, H, router, dict(k=4, scoring="softmax_topk"),
                        t["router_bias"].astype(np.float64))
    as_torch = {k: (torch.from_numpy(np.asarray(v, np.float32)).to(torch.bfloat16)
                    if v.dtype != np.uint8 else torch.from_numpy(v)) for k, v in t.items()}
    as_torch.update(x=torch.from_numpy(x).to(torch.bfloat16),
                    router=torch.from_numpy(router).to(torch.bfloat16))
    y = op(*[as_torch[s["name"]] for s in layer.inputs])
    assert y.dtype == torch.bfloat16
    assert_close(y.float().numpy(), _gpt_oss_oracle(spec, x, router, t, W), "bf16", "torch op")
    with pytest.raises(ValueError, match="'w13_scales' must be torch.uint8"):
        op(*[as_torch[s["name"]].float() if s["name"] == "w13_scales" else as_torch[s["name"]]
             for s in layer.inputs])


PANEL_CASES = [
    # (id, method, group, zero points, hidden, intermediate)
    INT4_CASES[0] + (128, 64),
    ("gptq_g32_asym_p32", "gptq", 32, True, 96, 48),
    ("int8_compressed_tensors", "int8", None, False, 128, 64),
    ("gpt_oss_mxfp4", "mxfp4", None, False, 64, 32),
    ("gpt_oss_mxfp4_p32", "mxfp4", None, False, 96, 32),
]


@pytest.mark.parametrize("case", PANEL_CASES, ids=[c[0] for c in PANEL_CASES])
def test_panels_layout(out_dir, rng, case):
    """``weight_layout: panels``: the manifest's weights, scales and zero points are
    [E, N / P, Ks, P] panels, P the widest of 64, 32, 16 that divides N (64 and 32 here,
    4-bit 64-wide panels in the word order); ``Layer.pack`` writes them from the
    checkpoint's tensors as ``pack.quantized_to_panels`` does, and the layer matches
    the oracle."""
    name, method, group, zero_points, hidden, intermediate = case
    if method == "mxfp4":
        config = GPT_OSS
    elif method == "int8":
        config = dict(MIXTRAL, quantization_config=INT8_CT)
    else:
        config = dict(MIXTRAL, quantization_config={"quant_method": "gptq", "bits": 4,
                                                    "group_size": group, "desc_act": False,
                                                    "sym": not zero_points})
    config = dict(config, hidden_size=hidden, intermediate_size=intermediate)
    artifact = aot.compile(config, layer={"weight_layout": "panels"}, name=f"{name}_panels",
                           out_dir=out_dir / f"{name}_panels")
    spec = artifact.manifest["layer"]
    H, I, E = spec["hidden"], spec["intermediate"], spec["experts"]
    tensors = {t["name"]: t for t in artifact.manifest["tensors"]}
    per_byte = 1 if method == "int8" else 2
    P13, P2 = pack.quantized_panel_width(2 * I), pack.quantized_panel_width(H)
    assert spec["weight_layout"] == "panels"
    assert tensors["w13"]["shape"] == [E, 2 * I // P13, H // per_byte, P13]
    assert tensors["w2"]["shape"] == [E, H // P2, I // per_byte, P2]
    assert tensors["w2_scales"]["shape"][::3] == [E, P2]
    layer = artifact.load()
    if method == "mxfp4":
        args, W = _gpt_oss_tensors(rng, E, H, I)
        W13, W2 = W["w13"], W["w2"]
        fmt = "mxfp4"
    else:
        fmt = "int8" if method == "int8" else "int4"
        args, W13, W2 = _mixtral_experts(rng, E, H, I, fmt, group, zero_points, method)
    packed = dict(args)
    for w in ("w13", "w2"):
        stored = np.asarray(args[w]).reshape(E, -1, H // per_byte if w == "w13" else I // per_byte)
        want = pack.quantized_to_panels(fmt, stored.view(np.int8), args[f"{w}_scales"],
                                        args.get(f"{w}_zero_points"))
        for tensor, expected in zip((w, f"{w}_scales", f"{w}_zero_points"), want):
            if expected is None:
                continue
            packed[tensor] = layer.pack(tensor, args[tensor])
            assert np.array_equal(packed[tensor].view(np.uint8),
                                  np.asarray(expected).view(np.uint8)), tensor
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    for T in TOKENS:
        if method == "mxfp4":
            x = _route_robust_x(rng, T, H, router, dict(k=4, scoring="softmax_topk"),
                                args["router_bias"].astype(np.float64))
            y = _call_layer(layer, _as_inputs(packed, x, router))
            want = _gpt_oss_oracle(spec, x, router, args, W)
        else:
            x = _route_robust_x(rng, T, H, router, dict(k=spec["k"], renormalize=True))
            y = _call_layer(layer, dict(packed, x=_bf16(x), router=_bf16(router)))
            want = ref.layer(x, router, W13, W2, **ref.layer_kwargs(spec))
        assert_close(np.asarray(y, np.float64), want, "bf16", f"{name} panels T={T}")
