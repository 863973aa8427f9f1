"""bf16 as numpy users hold it: ``ml_dtypes.bfloat16`` arrays go into compiled
modules (moe_mlir.cpu) and artifacts (moe_mlir.aot), and come back as
bfloat16; the raw uint16 form keeps working and gives the same bits; data of
any other dtype is refused with ValueError."""

import numpy as np
import pytest

from harness import assert_close, draw_robust, normal, routing_is_robust
from moe_mlir import aot, cpu, dtypes, irgen
from moe_mlir import reference as ref

# A required dependency (utils/install-deps.sh): missing, the test must fail.
import ml_dtypes  # noqa: E402
BF16 = ml_dtypes.bfloat16

H, I, E, K = 32, 16, 8, 2
ROUTE = ref.MODEL_RECIPES["mixtral"]


def draw(rng, tokens):
    """x and router with no near-tie in the routing; float32 values already on
    the bf16 grid, so both forms hold them exactly."""
    inputs = draw_robust(
        rng, lambda: {"x": normal(rng, (tokens, H), "bf16"),
                      "router": normal(rng, (E, H), "bf16", scale=0.5)},
        lambda d: routing_is_robust(rng, d["x"].astype(np.float64)
                                    @ d["router"].T.astype(np.float64), None, ROUTE),
        "bf16 layer")
    inputs["w13"] = normal(rng, (E, 2 * I, H), "bf16", scale=0.2)
    inputs["w2"] = normal(rng, (E, H, I), "bf16", scale=0.2)
    return inputs


def test_dtypes_round_trip():
    values = np.array([1.0, -2.5, 3.140625, np.inf, -0.0], np.float32)
    as_bf16 = values.astype(BF16)
    raw = dtypes.bits(as_bf16)
    assert raw.dtype == np.uint16
    assert np.array_equal(raw, dtypes.f32_to_bf16_bits(values))
    assert dtypes.as_bfloat16(raw).dtype == BF16
    assert np.array_equal(dtypes.bf16_bits_to_f32(as_bf16), values)
    # to_storage and from_storage take either form, exactly.
    assert np.array_equal(cpu.to_storage(as_bf16, "bf16"), raw)
    assert np.array_equal(cpu.from_storage(as_bf16, "bf16"), values.astype(np.float64))
    with pytest.raises(ValueError, match="ml_dtypes.bfloat16 or uint16"):
        dtypes.bits(values)


@pytest.fixture(scope="module")
def bf16_layer(tmp_path_factory):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    out = tmp_path_factory.mktemp("bf16")
    return aot.compile(layer={"hidden": H, "intermediate": I, "experts": E, "k": K,
                              "renormalize": True, "dtype": "bf16"},
                       name="bf16_numpy", out_dir=out).load()


@pytest.mark.parametrize("lead", [(5,), (2, 3)])
def test_aot_layer_takes_and_returns_bfloat16(bf16_layer, rng, lead):
    tokens = int(np.prod(lead))
    inputs = draw(rng, tokens)
    order = ("x", "router", "w13", "w2")
    as_bf16 = [inputs[n].astype(BF16) for n in order]
    as_bf16[0] = as_bf16[0].reshape(lead + (H,))
    y = bf16_layer(*as_bf16)
    assert y.dtype == BF16 and y.shape == lead + (H,)
    want = ref.layer(inputs["x"], inputs["router"], inputs["w13"], inputs["w2"], **ROUTE)
    assert_close(y.astype(np.float64).reshape(tokens, H), want, "bf16", f"bfloat16 {lead}")
    # The raw form gives the same bits, as uint16.
    raw = bf16_layer(*[cpu.to_storage(inputs[n], "bf16") for n in order])
    assert raw.dtype == np.uint16
    assert np.array_equal(raw, dtypes.bits(y).reshape(tokens, H))


def test_aot_layer_refuses_other_float_data(bf16_layer, rng):
    inputs = draw(rng, 3)
    args = [inputs[n].astype(BF16) for n in ("x", "router", "w13", "w2")]
    args[1] = inputs["router"]  # float32 where bf16 is due
    with pytest.raises(ValueError, match=r"'router' must be .* ml_dtypes.bfloat16 or "
                                         r"uint16 \(bf16 bits\), got \(8, 32\) float32"):
        bf16_layer(*args)


def test_aot_pack_bfloat16(tmp_path, rng):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    layer = aot.compile(layer={"hidden": H, "intermediate": I, "experts": E, "k": K,
                               "renormalize": True, "dtype": "bf16",
                               "weight_layout": "panels_vnni"},
                        name="bf16_packed", out_dir=tmp_path).load()
    inputs = draw(rng, 4)
    packed = {}
    for name in ("w13", "w2"):
        packed[name] = layer.pack(name, inputs[name].astype(BF16))
        assert packed[name].dtype == BF16
        raw = layer.pack(name, cpu.to_storage(inputs[name], "bf16"))
        assert raw.dtype == np.uint16 and np.array_equal(dtypes.bits(packed[name]), raw)
    y = layer(inputs["x"].astype(BF16), inputs["router"].astype(BF16),
              packed["w13"], packed["w2"])
    assert y.dtype == BF16
    want = ref.layer(inputs["x"], inputs["router"], inputs["w13"], inputs["w2"], **ROUTE)
    assert_close(y.astype(np.float64), want, "bf16", "packed bfloat16")
    with pytest.raises(ValueError, match="ml_dtypes.bfloat16 or uint16"):
        layer.pack("w13", inputs["w13"])


def test_compiled_module_takes_and_returns_bfloat16(compile_ir, rng):
    module = compile_ir(irgen.layer_ir(None, H, E, I, K, dtype="bf16", renormalize=True))
    inputs = draw(rng, 6)
    order = ("x", "router", "w13", "w2")
    result = [cpu.TensorSpec((6, H), "bf16")]
    (y,) = module.call("layer", [inputs[n].astype(BF16) for n in order], result)
    assert y.dtype == BF16
    want = ref.layer(inputs["x"], inputs["router"], inputs["w13"], inputs["w2"], **ROUTE)
    assert_close(cpu.from_storage(y, "bf16"), want, "bf16", "compiled module bfloat16")
    (raw,) = module.call("layer", [cpu.to_storage(inputs[n], "bf16") for n in order], result)
    assert raw.dtype == np.uint16 and np.array_equal(raw, dtypes.bits(y))
    with pytest.raises(ValueError, match=r"input 0: numpy dtype float32, .* needs "
                                         r"ml_dtypes.bfloat16 or uint16"):
        module.call("layer", [inputs["x"]] + [inputs[n].astype(BF16) for n in order[1:]],
                    result)
    # bfloat16 data where the function takes f32 is refused, not read as bits.
    f32 = compile_ir(irgen.layer_ir(None, H, E, I, K, renormalize=True))
    with pytest.raises(ValueError, match="numpy dtype bfloat16, .* needs float32"):
        f32.call("layer", [inputs[n].astype(BF16) for n in order],
                 [cpu.TensorSpec((6, H), "f32")])
