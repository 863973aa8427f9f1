"""The IR generator: its text parses and verifies in moe-opt and keeps attribute values."""

import math
import subprocess

import pytest

from moe_mlir import cpu, irgen


@pytest.mark.parametrize("value", [1e-20, 2.5, 0.1, 1.0, -3.0, 1e300, 1.702, 7.0, 1 / 3,
                                   123456789.0, 2.0**-30])
def test_format_float_round_trips_and_lexes_as_float(value):
    text = irgen.format_float(value)
    assert float(text) == value
    mantissa = text.split("e")[0]
    assert "." in mantissa, text


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_format_float_rejects_non_finite(value):
    with pytest.raises(ValueError):
        irgen.format_float(value)


def test_unknown_attribute_is_an_error():
    with pytest.raises(TypeError):
        irgen.route_ir(4, 8, 2, renormalise=True)
    with pytest.raises(ValueError):
        irgen.route_ir(4, 8, 2, scoring="softplus")


def _generated_modules():
    yield "route_deepseek", irgen.route_ir(
        None, 32, 8, bias=True, scoring="sigmoid", n_group=8, topk_group=4,
        group_score="sum_top2", renormalize=True, renorm_epsilon=1e-20, scale=2.5)
    yield "route_gshard", irgen.route_ir(16, 8, 2, renormalize=True,
                                         second_expert_policy="random", seed=7)
    yield "expert_choice", irgen.expert_choice_ir(None, 8, 4)
    yield "dispatch", irgen.dispatch_ir(None, 2, 8, weights=True, expert_map=True,
                                        num_local_experts=3, capacity_factor=1.25,
                                        drop_policy="score")
    yield "permute", irgen.permute_ir(None, None, 16, 2, dtype="bf16")
    yield "grouped_matmul_fused", irgen.grouped_matmul_ir(
        32, 16, 24, 8, dtype="bf16", rhs_layout="kn", gather=True, row_scale=True, T=16, k=2,
        epilogue="swiglu_oai", glu_layout="interleaved", alpha=1.5, limit=3.0)
    yield "grouped_matmul_dynamic", irgen.grouped_matmul_ir(None, 16, 24, 8, row_scale=True,
                                                            k=2)
    yield "glu", irgen.glu_ir(None, 8, activation="gelu_tanh", out_dtype="bf16")
    yield "combine", irgen.combine_ir(None, 16, None, 2, out_dtype="bf16")
    yield "combine_prescaled", irgen.combine_ir(None, 16, None, 2, prescaled=True)
    yield "experts", irgen.experts_ir(None, 16, 8, 12, 2)
    yield "experts_of_one_rank", irgen.experts_ir(None, 16, 8, 12, 1, num_local_experts=2)
    yield "aux_loss", irgen.aux_loss_ir(16, 8, 2)
    yield "z_loss", irgen.z_loss_ir(None, 8)
    yield "layer_full", irgen.layer_ir(None, 16, 8, 8, 2, dtype="bf16", bias=True,
                                       shared=(6, True), capacity=3, drop_policy="score",
                                       activation="swiglu_oai", glu_layout="interleaved")
    for model in irgen.MODEL_LAYERS:
        yield f"model_{model}", irgen.model_layer_ir(model, 16, 16, 32, 8,
                                                     shared_intermediate=8)


_MODULES = list(_generated_modules())


@pytest.mark.parametrize("name,ir", _MODULES, ids=[name for name, _ in _MODULES])
def test_generated_ir_verifies(name, ir):
    proc = subprocess.run([str(cpu.moe_opt())], input=ir, text=True, capture_output=True)
    assert proc.returncode == 0, f"{name}:\n{proc.stderr}\n{ir}"


def test_attribute_values_survive_the_round_trip():
    ir = irgen.route_ir(4, 32, 8, bias=True, scoring="sigmoid", n_group=8, topk_group=4,
                        renormalize=True, renorm_epsilon=1e-20, scale=2.5)
    printed = subprocess.run([str(cpu.moe_opt())], input=ir, text=True, capture_output=True,
                             check=True).stdout
    for fragment in ("renorm_epsilon = 9.9999999999999995E-21 : f64", "scale = 2.500000e+00 : f64",
                     "scoring = #moe.scoring<sigmoid>", "n_group = 8 : i64",
                     "topk_group = 4 : i64", "renormalize"):
        assert fragment in printed, (fragment, printed)
