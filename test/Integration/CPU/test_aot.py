"""moe-compile artifacts: config files of every model family to a shared
library with the C ABI, called from Python (ctypes) and from the C example,
checked against the numpy oracle; the ABI's error statuses, exported symbols,
determinism and the driver's diagnostics."""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from harness import (CPUINFO_FLAGS, assert_close, cpu_flags, draw_robust, normal,
                     routing_is_robust)
from moe_mlir import aot, cpu, irgen, pack
from moe_mlir import reference as ref

REPO = pathlib.Path(__file__).resolve().parents[3]

# Small configs with the fields (and model_type) of each family's config.json.
CONFIGS = {
    "mixtral": {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 24,
                "num_local_experts": 8, "num_experts_per_tok": 2, "torch_dtype": "float32"},
    "qwen3_moe": {"model_type": "qwen3_moe", "hidden_size": 32, "moe_intermediate_size": 16,
                  "num_experts": 16, "num_experts_per_tok": 4, "norm_topk_prob": True},
    "olmoe": {"model_type": "olmoe", "hidden_size": 32, "intermediate_size": 16,
              "num_experts": 16, "num_experts_per_tok": 4, "norm_topk_prob": False},
    "deepseek_v3": {"model_type": "deepseek_v3", "hidden_size": 32,
                    "moe_intermediate_size": 16, "n_routed_experts": 16,
                    "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2,
                    "routed_scaling_factor": 2.5, "norm_topk_prob": True,
                    "scoring_func": "sigmoid", "topk_method": "noaux_tc",
                    "n_shared_experts": 1},
    "gpt_oss": {"model_type": "gpt_oss", "hidden_size": 32, "intermediate_size": 16,
                "num_local_experts": 8, "num_experts_per_tok": 4, "swiglu_limit": 7.0,
                "torch_dtype": "bfloat16"},
}

# What each family means for the oracle.
ORACLE = {
    "mixtral": dict(route=ref.MODEL_RECIPES["mixtral"]),
    "qwen3_moe": dict(route=ref.MODEL_RECIPES["qwen3"] | {"k": 4}),
    "olmoe": dict(route=ref.MODEL_RECIPES["olmoe"] | {"k": 4}),
    "deepseek_v3": dict(route=ref.MODEL_RECIPES["deepseek_v3"] | {"k": 4, "n_group": 4,
                                                                  "topk_group": 2}),
    "gpt_oss": dict(route=ref.MODEL_RECIPES["gpt_oss"],
                    ffn=dict(activation="swiglu_oai", glu_layout="interleaved")),
}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    return tmp_path_factory.mktemp("aot")


@pytest.mark.parametrize("family", sorted(CONFIGS))
@pytest.mark.parametrize("tokens", [1, 7, 33])
def test_config_to_kernel_matches_oracle(out_dir, rng, family, tokens):
    config = CONFIGS[family]
    artifact = aot.compile(config, name=family, out_dir=out_dir / family)
    layer = artifact.load()
    manifest = artifact.manifest
    spec = manifest["layer"]
    H, I, E = spec["hidden"], spec["intermediate"], spec["experts"]
    dtype = spec["dtype"]
    route = ORACLE[family]["route"]

    def draw():
        drawn = {
            "x": normal(rng, (tokens, H), dtype),
            "router": normal(rng, (E, H), dtype, scale=0.5),
        }
        if spec["bias"]:
            drawn["bias"] = normal(rng, (E,), scale=0.1)
        if spec["router_bias"]:
            drawn["router_bias"] = normal(rng, (E,), dtype, scale=0.5)
        return drawn

    # No near-tie may decide the routing, or f32 rounding could pick another expert.
    inputs = draw_robust(rng, draw, lambda d: routing_is_robust(
        rng, d["x"].astype(np.float64) @ d["router"].T.astype(np.float64)
        + d.get("router_bias", 0.0), d.get("bias"), route), family)
    inputs["w13"] = normal(rng, (E, 2 * I, H), dtype, scale=0.2)
    inputs["w2"] = normal(rng, (E, H, I), dtype, scale=0.2)
    kwargs = {"bias": inputs["bias"]} if spec["bias"] else {}
    if spec["router_bias"]:
        kwargs["router_bias"] = inputs["router_bias"]
    if spec["expert_bias"]:
        # gpt-oss's gate_up_proj_bias and down_proj_bias, non-zero.
        inputs["w13_bias"] = normal(rng, (E, 2 * I), dtype, scale=0.5)
        inputs["w2_bias"] = normal(rng, (E, H), dtype, scale=0.5)
        kwargs.update(w13_bias=inputs["w13_bias"], w2_bias=inputs["w2_bias"])
    if spec["shared_intermediate"]:
        Is = spec["shared_intermediate"]
        inputs["shared_w13"] = normal(rng, (2 * Is, H), dtype, scale=0.2)
        inputs["shared_w2"] = normal(rng, (H, Is), dtype, scale=0.2)
        kwargs.update(shared_w13=inputs["shared_w13"], shared_w2=inputs["shared_w2"])
    names = [t["name"] for t in layer.inputs]
    args = [inputs[n] if n == "bias" else cpu.to_storage(inputs[n], dtype) for n in names]
    y = cpu.from_storage(layer(*args), dtype)
    want = ref.layer(inputs["x"], inputs["router"], inputs["w13"], inputs["w2"],
                     **kwargs, **route, **ORACLE[family].get("ffn", {}))
    assert_close(y, want, dtype, f"{family} T={tokens}")


@pytest.mark.parametrize("weight_layout,dtype",
                         [("panels", "f32"), ("panels", "bf16"), ("kn", "f32"),
                          ("kn", "bf16"), ("panels_vnni", "bf16")])
def test_packed_weights_match_oracle(out_dir, rng, weight_layout, dtype):
    # A config plus a layer setting: the expert weights are passed packed
    # (moe_mlir.pack.to_layout), as the manifest and the header describe them.
    config = dict(CONFIGS["qwen3_moe"], torch_dtype="float32" if dtype == "f32"
                  else "bfloat16")
    name = f"packed_{weight_layout}_{dtype}"
    artifact = aot.compile(config, layer={"weight_layout": weight_layout}, name=name,
                           out_dir=out_dir / name)
    spec = artifact.manifest["layer"]
    assert spec["weight_layout"] == weight_layout
    H, I, E = spec["hidden"], spec["intermediate"], spec["experts"]
    shapes = {t["name"]: tuple(t["shape"]) for t in artifact.manifest["tensors"]}
    assert shapes["w13"] == pack.weight_shape(E, 2 * I, H, weight_layout)
    assert shapes["w2"] == pack.weight_shape(E, H, I, weight_layout)
    route = ORACLE["qwen3_moe"]["route"]
    layer = artifact.load()
    for tokens in (1, 29):
        inputs = draw_robust(rng, lambda: {"x": normal(rng, (tokens, H), dtype),
                                           "router": normal(rng, (E, H), dtype, scale=0.5)},
                             lambda d: routing_is_robust(
                                 rng, d["x"].astype(np.float64)
                                 @ d["router"].T.astype(np.float64), None, route), name)
        w13 = normal(rng, (E, 2 * I, H), dtype, scale=0.2)
        w2 = normal(rng, (E, H, I), dtype, scale=0.2)
        packed = {}
        for name, w in (("w13", w13), ("w2", w2)):
            # The library's own packing function writes what moe_mlir.pack writes.
            packed[name] = layer.pack(name, cpu.to_storage(w, dtype))
            assert np.array_equal(packed[name],
                                  pack.to_layout(cpu.to_storage(w, dtype), weight_layout))
        raw = getattr(layer._lib, f"{artifact.manifest['prefix']}_pack_w2")
        assert raw(None, packed["w2"].ctypes.data) == 1  # MOE_STATUS_NULL_POINTER
        args = [cpu.to_storage(inputs["x"], dtype), cpu.to_storage(inputs["router"], dtype),
                packed["w13"], packed["w2"]]
        y = cpu.from_storage(layer(*args), dtype)
        want = ref.layer(inputs["x"], inputs["router"], w13, w2, **route)
        assert_close(y, want, dtype, f"{name} T={tokens}")


def test_python_loader_refuses_bad_arguments(out_dir, rng):
    layer = aot.compile(CONFIGS["mixtral"], name="checked", out_dir=out_dir / "checked").load()
    with pytest.raises(ValueError, match="has no moe_checked_pack_w13"):
        layer.pack("w13", normal(rng, (8, 48, 32)))
    x = normal(rng, (4, 32))
    with pytest.raises(ValueError, match="'router' must be"):
        layer(x, normal(rng, (8, 31)), normal(rng, (8, 48, 32)), normal(rng, (8, 32, 24)))
    with pytest.raises(ValueError, match="expected 4 inputs"):
        layer(x)


def lcg_inputs(count, seed):
    """The C example's generator, replayed in numpy."""
    out = np.empty(count, dtype=np.float32)
    state = seed
    for i in range(count):
        state = (state * 1664525 + 1013904223) % 2**32
        out[i] = ((np.float32(state >> 8) / np.float32(16777216.0)) - np.float32(0.5)) \
            * np.float32(0.5)
    return out


def test_c_example(out_dir, tmp_path):
    """docs/examples/layer_example.c, compiled with -std=c99 -Wall -Wextra -Werror
    against the generated header, calls the library and matches the oracle."""
    build = out_dir / "example"
    aot.compile(layer=dict(hidden=64, intermediate=32, experts=8, k=2, renormalize=True),
                name="example", out_dir=build)
    compiler = shutil.which("cc") or "/usr/lib/llvm-22/bin/clang"
    exe = tmp_path / "layer_example"
    subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{build}",
                    str(REPO / "docs/examples/layer_example.c"), f"-L{build}",
                    "-lmoe_example", f"-Wl,-rpath,{build}", "-o", str(exe)], check=True)
    dump = tmp_path / "y.txt"
    run = subprocess.run([str(exe), str(dump)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "error paths: a tensor pointer is NULL" in run.stdout
    T, H, I, E = 5, 64, 32, 8
    x = lcg_inputs(T * H, 1).reshape(T, H)
    router = lcg_inputs(E * H, 2).reshape(E, H)
    w13 = lcg_inputs(E * 2 * I * H, 3).reshape(E, 2 * I, H)
    w2 = lcg_inputs(E * H * I, 4).reshape(E, H, I)
    want = ref.layer(x, router, w13, w2, k=2, renormalize=True)
    got = np.loadtxt(dump).reshape(T, H)
    assert_close(got, want, "f32", "C example")


def test_only_abi_symbols_exported(out_dir):
    artifact = aot.compile(CONFIGS["olmoe"], name="symbols", out_dir=out_dir / "symbols")
    nm = subprocess.run(["/usr/lib/llvm-22/bin/llvm-nm", "-D", "--defined-only",
                         str(artifact.library)], capture_output=True, text=True, check=True)
    names = sorted(line.split()[-1] for line in nm.stdout.splitlines() if line.strip())
    assert names == sorted(["moe_symbols_forward", "moe_symbols_status_string",
                            "moe_symbols_workspace_size", "moe_symbols_cpu_variant"])
    assert names == sorted(artifact.manifest["symbols"])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_is_deterministic(out_dir):
    first = aot.compile(CONFIGS["qwen3_moe"], name="same", out_dir=out_dir / "same",
                        emit=("so", "header", "manifest", "obj", "mlir"))
    files = [first.library, first.header, first.directory / "moe_same.json",
             first.directory / "moe_same.o", first.directory / "moe_same.mlir"]
    before = [digest(f) for f in files]
    aot.compile(CONFIGS["qwen3_moe"], name="same", out_dir=out_dir / "same",
                emit=("so", "header", "manifest", "obj", "mlir"))
    assert [digest(f) for f in files] == before


def moe_compile(*args):
    return subprocess.run([str(aot.moe_compile()), *args], capture_output=True, text=True)


def test_version_names_llvm():
    run = moe_compile("--version")
    assert run.returncode == 0
    assert "moe-compile 0.1.0" in run.stdout and "LLVM/MLIR 22." in run.stdout


def test_bad_inputs_are_diagnosed(tmp_path):
    unknown = tmp_path / "config.json"
    unknown.write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    run = moe_compile(str(unknown), "-o", str(tmp_path))
    assert run.returncode == 1 and "config key 'model_type' is 'llama'" in run.stderr

    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"model_type": "mixtral", "hidden_size": 8}))
    run = moe_compile(str(missing), "-o", str(tmp_path))
    assert run.returncode == 1 and "'intermediate_size'" in run.stderr

    run = moe_compile("--layer=hidden=8,intermediate=4,experts=4,k=5", "-o", str(tmp_path))
    assert run.returncode == 1 and "k = 5 is out of range" in run.stderr

    malformed = tmp_path / "bad.mlir"
    malformed.write_text("func.func @f( {\n")
    run = moe_compile(str(malformed), "-o", str(tmp_path))
    assert run.returncode == 1 and "bad.mlir:1:" in run.stderr

    run = moe_compile("--layer=hidden=8,intermediate=4,experts=4,k=2,weight_layout=tiles",
                      "-o", str(tmp_path))
    assert run.returncode == 1 and "weight_layout: 'tiles' is not one of" in run.stderr

    run = moe_compile("--layer=hidden=24,intermediate=16,experts=4,k=2,weight_layout=panels",
                      "-o", str(tmp_path))
    assert run.returncode == 1 and "multiples of 16" in run.stderr

    run = moe_compile("--layer=hidden=32,intermediate=16,experts=4,k=2,weight_layout=panels",
                      "--target=cuda", "--emit=ptx", "-o", str(tmp_path))
    assert run.returncode == 1 and "have no GPU lowering" in run.stderr

    run = moe_compile("--layer=hidden=32,intermediate=20,experts=4,k=2,"
                      "weight_layout=panels_vnni", "-o", str(tmp_path))
    assert run.returncode == 1 and "weight_layout panels_vnni needs hidden" in run.stderr

    run = moe_compile("--layer=hidden=32,intermediate=16,experts=4,k=2,"
                      "weight_layout=panels_vnni", "--target=cuda", "--emit=ptx",
                      "-o", str(tmp_path))
    assert run.returncode == 1 and "panels_vnni layout (the CPU kernel's packing)" in run.stderr

    run = moe_compile("--layer=hidden=8,intermediate=4,experts=4,k=2", "--target=tpu")
    assert run.returncode == 1 and "--target must be cpu or cuda" in run.stderr


def test_empty_chip_is_refused(tmp_path):
    """chip="" used to be dropped, compiling for the host without a word."""
    with pytest.raises(cpu.CompileError, match="--chip is empty"):
        aot.compile(layer=dict(hidden=8, intermediate=4, experts=4, k=2), chip="",
                    out_dir=tmp_path)


def test_ir_and_config_together_are_refused(tmp_path):
    """IR with a config compiled the IR and left the config unread."""
    ir = irgen.layer_ir(None, 8, 4, 4, k=2)
    with pytest.raises(ValueError, match="give either ir or config, not both"):
        aot.compile(CONFIGS["mixtral"], ir=ir, out_dir=tmp_path)


def test_layer_settings_must_be_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="layer must be a mapping of settings, got list"):
        aot.compile(layer=[("hidden", 8), ("intermediate", 4)], out_dir=tmp_path)


# hidden_act of each activation the dialect has, as Hugging Face spells it.
HIDDEN_ACTS = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
               "relu": "relu", "swish": "silu"}


@pytest.mark.parametrize("hidden_act", sorted(HIDDEN_ACTS))
def test_hidden_act_is_honoured(out_dir, rng, hidden_act):
    config = dict(CONFIGS["mixtral"], hidden_act=hidden_act)
    name = f"act_{hidden_act}"
    artifact = aot.compile(config, name=name, out_dir=out_dir / name)
    assert artifact.manifest["layer"]["activation"] == HIDDEN_ACTS[hidden_act]
    layer = artifact.load()
    H, I, E, T = 32, 24, 8, 9
    route = ORACLE["mixtral"]["route"]
    inputs = draw_robust(rng, lambda: {"x": normal(rng, (T, H)),
                                       "router": normal(rng, (E, H), scale=0.5)},
                         lambda d: routing_is_robust(
                             rng, d["x"].astype(np.float64) @ d["router"].T.astype(np.float64),
                             None, route), name)
    w13 = normal(rng, (E, 2 * I, H), scale=0.2)
    w2 = normal(rng, (E, H, I), scale=0.2)
    y = layer(inputs["x"], inputs["router"], w13, w2)
    want = ref.layer(inputs["x"], inputs["router"], w13, w2,
                     activation=HIDDEN_ACTS[hidden_act], **route)
    assert_close(y, want, "f32", name)


def test_multimodal_text_config_is_followed(out_dir, rng):
    # Qwen3-VL-MoE: the language model's settings live in text_config.
    config = {"model_type": "qwen3_vl_moe", "vision_config": {"depth": 2},
              "text_config": {k: v for k, v in CONFIGS["qwen3_moe"].items()
                              if k != "model_type"} | {"model_type": "qwen3_vl_moe_text"}}
    artifact = aot.compile(config, name="vl", out_dir=out_dir / "vl")
    spec = artifact.manifest["layer"]
    assert (spec["family"], spec["hidden"], spec["experts"], spec["k"]) == \
        ("qwen3_vl_moe", 32, 16, 4)
    H, I, E, T = 32, 16, 16, 7
    route = ORACLE["qwen3_moe"]["route"]
    inputs = draw_robust(rng, lambda: {"x": normal(rng, (T, H)),
                                       "router": normal(rng, (E, H), scale=0.5)},
                         lambda d: routing_is_robust(
                             rng, d["x"].astype(np.float64) @ d["router"].T.astype(np.float64),
                             None, route), "vl")
    w13 = normal(rng, (E, 2 * I, H), scale=0.2)
    w2 = normal(rng, (E, H, I), scale=0.2)
    y = artifact.load()(inputs["x"], inputs["router"], w13, w2)
    assert_close(y, ref.layer(inputs["x"], inputs["router"], w13, w2, **route), "f32", "vl")


def test_config_without_json_suffix(out_dir, tmp_path):
    path = tmp_path / "mixtral.cfg"
    path.write_text(json.dumps(CONFIGS["mixtral"]))
    artifact = aot.compile(str(path), name="suffix", out_dir=out_dir / "suffix")
    assert artifact.manifest["layer"]["family"] == "mixtral"


@pytest.mark.parametrize("change,message", [
    ({"hidden_act": "gelu_fast"}, "config key 'hidden_act' is 'gelu_fast'"),
    ({"torch_dtype": "float8_e4m3fn"}, "config key 'torch_dtype' is 'float8_e4m3fn'"),
    ({"quantization_config": {"quant_method": "hqq"}},
     "config key 'quantization_config' (quant_method 'hqq'): this quantization is not supported"),
    # A supported method on a layer it cannot describe: mxfp4 wants multiples of 32.
    ({"quantization_config": {"quant_method": "mxfp4"}},
     "to be multiples of 32, the scale block"),
    ({"num_experts_per_tok": 9}, "config key 'num_experts_per_tok': k = 9 is out of range"),
    ({"intermediate_size": -16}, "config key 'intermediate_size': intermediate = -16 is out"),
    ({"hidden_size": "32"}, "config key 'hidden_size' must be an integer, got the string"),
])
def test_config_errors_name_the_key(tmp_path, change, message):
    with pytest.raises(cpu.CompileError) as error:
        aot.compile(dict(CONFIGS["mixtral"], **change), name="bad", out_dir=tmp_path)
    assert message in str(error.value)
    assert "<layer>" not in str(error.value)


@pytest.fixture(scope="module")
def small_layer(out_dir):
    return aot.compile(CONFIGS["mixtral"], name="shapes", out_dir=out_dir / "shapes").load()


def small_weights(rng):
    return (normal(rng, (8, 32), scale=0.5), normal(rng, (8, 48, 32), scale=0.2),
            normal(rng, (8, 32, 24), scale=0.2))


def test_leading_dimensions(small_layer, rng):
    # x [*, H] -> y [*, H], the same values as the flattened call.
    weights = small_weights(rng)
    x = normal(rng, (2, 3, 32))
    y = small_layer(x, *weights)
    assert y.shape == (2, 3, 32)
    assert np.array_equal(y, small_layer(x.reshape(6, 32), *weights).reshape(2, 3, 32))
    one = small_layer(x[0, 0], *weights)
    assert one.shape == (32,) and np.array_equal(one, y[0, 0])
    with pytest.raises(ValueError, match=r"'x' must have shape \[\*, 32\]"):
        small_layer(normal(rng, (2, 3, 31)), *weights)


def test_empty_batch_skips_the_call(small_layer, rng, monkeypatch):
    weights = small_weights(rng)

    def no_call(*args, **kwargs):
        raise AssertionError("the library was called for an empty batch")

    monkeypatch.setattr(small_layer, "forward_pointers", no_call)
    for shape in ((0, 32), (2, 0, 32)):
        y = small_layer(np.zeros(shape, dtype=np.float32), *weights)
        assert y.shape == shape and y.dtype == np.float32
    # The other inputs are still checked.
    with pytest.raises(ValueError, match="'router' must be"):
        small_layer(np.zeros((0, 32), dtype=np.float32), weights[0][:, :16], *weights[1:])


def test_pack_checks_the_shape(out_dir, rng):
    artifact = aot.compile(CONFIGS["mixtral"], layer={"weight_layout": "panels"},
                           name="packshape", out_dir=out_dir / "packshape")
    layer = artifact.load()
    # [E, H, 2I] has the element count of [E, 2I, H]: the layout is still wrong.
    with pytest.raises(ValueError, match=r"'w13' must be \(8, 48, 32\) float32"):
        layer.pack("w13", normal(rng, (8, 32, 48)))
    with pytest.raises(ValueError, match=r"'w2' must be \(8, 32, 24\) float32"):
        layer.pack("w2", normal(rng, (8, 24, 32)))
    shapes = {t["name"]: tuple(t["shape"]) for t in artifact.manifest["tensors"]}
    assert layer.pack("w2", normal(rng, (8, 32, 24))).shape == shapes["w2"]


@pytest.mark.parametrize("layer", [
    {"hidden": 32, "intermediate": 16, "experts": 8, "k": 2, "dtype": "f32,k=8"},
    {"hidden": 32, "intermediate": 16, "experts": 8, "k": "2,experts=4"},
    {"hidden": 32, "intermediate": 16, "experts": 8, "k=8": 2},
    {"hidden": 32, "intermediate": 16, "experts": 8, "k": 2, "scoring": ""},
    {"hidden": 32, "intermediate": 16, "experts": 8, "k": [2]},
])
def test_layer_settings_cannot_inject(tmp_path, layer):
    with pytest.raises(ValueError, match="layer setting"):
        aot.compile(layer=layer, name="inject", out_dir=tmp_path)


# /proc/cpuinfo's names of the features the manifest lists, where they differ.
CALL_ARTIFACT = """
import pathlib, sys
import numpy as np
from moe_mlir import aot
layer = aot.Artifact(pathlib.Path(sys.argv[1]), sys.argv[2]).load()
rng = np.random.default_rng(0)
args = [rng.standard_normal(layer.shape(t, 3), dtype=np.float32) for t in layer.inputs]
try:
    print("ok", layer(*args).shape)
except aot.MoEError as error:
    print(error)
"""


@pytest.mark.parametrize("chip", ["x86-64-v3", "sapphirerapids"])
def test_library_checks_the_cpu(out_dir, chip):
    flags = cpu_flags()
    name = "cpu_" + chip.replace("-", "_")
    artifact = aot.compile(layer=dict(hidden=32, intermediate=16, experts=8, k=2), chip=chip,
                           name=name, out_dir=out_dir / name)
    features = artifact.manifest["cpu_features"]
    assert "avx2" in features
    assert ("avx512fp16" in features) == (chip == "sapphirerapids")
    missing = [f for f in features if CPUINFO_FLAGS.get(f, f) not in flags]
    # A subprocess: without the check, the kernel would die of SIGILL.
    run = subprocess.run([sys.executable, "-c", CALL_ARTIFACT, str(artifact.directory), name],
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO / "python")))
    assert run.returncode == 0, run.stderr
    if missing:
        assert run.stdout.strip() == (f"status 5: this CPU lacks {missing[0]}, which the "
                                      f"kernel was compiled for (--chip={chip})")
    else:
        assert run.stdout.strip() == "ok (3, 32)"
