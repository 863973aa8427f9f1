"""``moe.layer`` with weight-only MXFP4, int4 and int8 experts on the CPU, against the
fp64 oracle: ``moe_mlir.reference.layer`` on the weights ``reference_lowbit``
dequantizes exactly.

The layer routes inside; its grouped matmuls dequantize through the reference lowering
(the vector kernels take no weight-only format). Cases: 1, 7 and 300 tokens (experts
without tokens at the small counts), every token on one expert (a selection bias), and
K equal to one int4 group. The output is poisoned before each call.
"""

import math

import numpy as np
import pytest

from harness import assert_close, draw_robust, normal, routing_is_robust, storage
from lowbit_inputs import quantized_weights
from moe_mlir import cpu, pack
from moe_mlir import reference as ref


def _t(shape, element):
    return "tensor<" + "x".join("?" if d is None else str(d) for d in shape) + f"x{element}>"


def layer_ir(fmt, H, I, E, k, group, zero_points, dtype, gpt_oss=False, selection_bias=False,
             panel_width=None):
    """A function @layer(x, router, w13, w2[, bias][, router_bias, w13_bias, w2_bias],
    s13, s2[, z13, z2]) -> y around one moe.layer; the weights, scales and zero points
    in panels of ``panel_width`` columns when given."""
    K13, K2 = H, I
    per_byte = 2 if fmt in ("mxfp4", "int4") else 1
    block = {"mxfp4": 32, "int4": group, "int8": max(H, I)}[fmt]
    scale_type = "f8E8M0FNU" if fmt == "mxfp4" else "f32"
    P = panel_width

    def stored(N, K):  # [E, N, K] or its panels
        return (E, N // P, K, P) if P else (E, N, K)

    w13, w2 = _t(stored(2 * I, K13 // per_byte), "i8"), _t(stored(H, K2 // per_byte), "i8")
    s13 = _t(stored(2 * I, -(-K13 // block)), scale_type)
    s2 = _t(stored(H, -(-K2 // block)), scale_type)
    z13, z2 = _t(stored(2 * I, -(-K13 // block)), "i8"), _t(stored(H, -(-K2 // block)), "i8")
    x = _t((None, H), dtype)
    args = [("x", x), ("router", _t((E, H), dtype)), ("w13", w13), ("w2", w2)]
    operands = ""
    if selection_bias:
        args.append(("bias", _t((E,), "f32")))
        operands += f" bias(%bias : {_t((E,), 'f32')})"
    if gpt_oss:
        args += [("router_bias", _t((E,), dtype)), ("w13_bias", _t((E, 2 * I), dtype)),
                 ("w2_bias", _t((E, H), dtype))]
        operands += (f" router_bias(%router_bias : {_t((E,), dtype)})"
                     f" w13_bias(%w13_bias : {_t((E, 2 * I), dtype)})"
                     f" w2_bias(%w2_bias : {_t((E, H), dtype)})")
    args += [("s13", s13), ("s2", s2)]
    operands += f" scales(%s13, %s2 : {s13}, {s2})"
    if zero_points:
        args += [("z13", z13), ("z2", z2)]
        operands += f" zero_points(%z13, %z2 : {z13}, {z2})"
    attrs = [f"k = {k} : i64"]
    if P:
        attrs.append("weight_layout = #moe.rhs_layout<panels>")
    if gpt_oss:
        attrs += ["scoring = #moe.scoring<softmax_topk>", "activation = #moe.activation<swiglu_oai>",
                  "glu_layout = #moe.glu_layout<interleaved>"]
    else:
        attrs.append("renormalize")
    attrs.append(f"weight_quant = #moe.weight_quant<format = {fmt}, block = [1, {block}], "
                 "activation = none>")
    signature = ", ".join(f"%{name}: {ty}" for name, ty in args)
    return f"""
func.func @layer({signature}) -> {x} {{
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : {x}
  %init = tensor.empty(%t) : {x}
  %y = moe.layer ins(%x, %router, %w13, %w2 : {x}, {_t((E, H), dtype)}, {w13}, {w2}){operands}
      outs(%init : {x}) {{{', '.join(attrs)}}} -> {x}
  return %y : {x}
}}
""", [name for name, _ in args]


# (id, format, H, I, E, k, group, zero points, activation dtype, gpt-oss recipe)
CASES = [
    ("mxfp4_gpt_oss", "mxfp4", 64, 32, 8, 4, None, False, "bf16", True),
    ("mxfp4", "mxfp4", 96, 64, 6, 2, None, False, "f32", False),
    ("int4_g32_asym_ragged_w2", "int4", 96, 48, 8, 2, 32, True, "bf16", False),
    ("int4_g128_k_one_group", "int4", 128, 64, 5, 2, 128, False, "f32", False),
    ("int4_g64_asym", "int4", 64, 40, 8, 2, 64, True, "f32", False),
    ("int8", "int8", 40, 24, 8, 2, None, False, "f32", False),
]


def _inputs(rng, case, T, selection_bias=False, hot_expert=None):
    _, fmt, H, I, E, k, group, zero_points, dtype, gpt_oss = case
    q13, W13 = quantized_weights(rng, fmt, E, 2 * I, H, group, zero_points)
    q2, W2 = quantized_weights(rng, fmt, E, H, I, group, zero_points)
    router = normal(rng, (E, H), dtype, 1.0 / math.sqrt(H))
    bias = None
    if selection_bias:  # every token selects the hot expert first
        bias = np.zeros(E, np.float32)
        bias[hot_expert] = 1e3
    extra = {}
    if gpt_oss:
        extra = dict(router_bias=normal(rng, (E,), dtype, 0.1),
                     w13_bias=normal(rng, (E, 2 * I), dtype, 0.5),
                     w2_bias=normal(rng, (E, H), dtype, 0.5))
    route = dict(k=k, scoring="softmax_topk" if gpt_oss else "softmax",
                 renormalize=not gpt_oss)

    def draw():
        return normal(rng, (T, H), dtype)

    def robust(x):
        logits = x.astype(np.float64) @ router.astype(np.float64).T
        if gpt_oss:
            logits = logits + extra["router_bias"]
        return routing_is_robust(rng, logits, bias, route)

    x = draw_robust(rng, draw, robust, f"{case[0]} T={T}")
    values = dict(x=x, router=router, w13=q13["weights"], w2=q2["weights"], bias=bias,
                  s13=q13["scales"], s2=q2["scales"], z13=q13.get("zero_points"),
                  z2=q2.get("zero_points"), **extra)
    ffn = (dict(activation="swiglu_oai", glu_layout="interleaved") if gpt_oss else {})
    want = ref.layer(x, router, W13, W2, bias=bias, **extra, **route, **ffn)
    return values, want


def _run(module, names, values, dtype, T, H):
    floats = {"x", "router", "router_bias", "w13_bias", "w2_bias"}
    inputs = [storage(values[n], dtype) if n in floats else values[n] for n in names]
    (y,) = module.call("layer", inputs, [cpu.TensorSpec((T, H), dtype)], poison=True)
    return cpu.from_storage(y, dtype)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("pipeline", ["default", "reference"])
def test_weight_only_layer(compile_ir, rng, case, pipeline):
    _, fmt, H, I, E, k, group, zero_points, dtype, gpt_oss = case
    ir, names = layer_ir(fmt, H, I, E, k, group, zero_points, dtype, gpt_oss)
    module = compile_ir(ir, pipeline)
    for T in (1, 7, 300):
        values, want = _inputs(rng, case, T)
        y = _run(module, names, values, dtype, T, H)
        assert_close(y, want, dtype, f"{case[0]} layer T={T} {pipeline}")


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]], ids=["mxfp4", "int4", "int8"])
def test_weight_only_layer_one_expert(compile_ir, rng, case):
    """k = 1 and a selection bias that sends every token to one expert: the others have
    no tokens."""
    _, fmt, H, I, E, _, group, zero_points, dtype, _ = case
    one = (case[0], fmt, H, I, E, 1, group, zero_points, dtype, False)
    ir, names = layer_ir(fmt, H, I, E, 1, group, zero_points, dtype, selection_bias=True)
    module = compile_ir(ir)
    hot = int(rng.integers(E))
    for T in (1, 7, 300):
        values, want = _inputs(rng, one, T, selection_bias=True, hot_expert=hot)
        y = _run(module, names, values, dtype, T, H)
        assert_close(y, want, dtype, f"{case[0]} layer, every token on expert {hot}, T={T}")


#: N (2I and H) a multiple of 16 for panels. I = 96 puts the up half 32 columns into
#: a 64-wide row (the word order's GLU steps alternate between the halves of their
#: rows, the gate and up vectors in different ones).
PANEL_CASES = [CASES[0], CASES[2], ("int8", "int8", 48, 32, 8, 2, None, False, "f32", False),
               ("mxfp4_p64_up_offset", "mxfp4", 128, 96, 6, 2, None, False, "bf16", False),
               ("int4_asym_p64_up_offset", "int4", 128, 96, 6, 2, 32, True, "bf16", False)]


@pytest.mark.parametrize("case", PANEL_CASES, ids=["mxfp4_gpt_oss", "int4", "int8",
                                                   "mxfp4_p64_up_offset",
                                                   "int4_asym_p64_up_offset"])
def test_weight_only_layer_panels(compile_ir, rng, case):
    """The layer with its weights, scales and zero points packed into panels
    (``pack.quantized_to_panels``), against the same oracle: the gpt-oss recipe's
    interleaved GLU and expert biases in the panels kernel's epilogue."""
    _, fmt, H, I, E, k, group, zero_points, dtype, gpt_oss = case
    P = min(pack.quantized_panel_width(2 * I), pack.quantized_panel_width(H))
    ir, names = layer_ir(fmt, H, I, E, k, group, zero_points, dtype, gpt_oss, panel_width=P)
    module = compile_ir(ir)
    for T in (1, 7, 300):
        values, want = _inputs(rng, case, T)
        for w, s, z in (("w13", "s13", "z13"), ("w2", "s2", "z2")):
            values[w], values[s], values[z] = pack.quantized_to_panels(
                fmt, values[w], values[s], values[z], panel_width=P)
        y = _run(module, names, values, dtype, T, H)
        assert_close(y, want, dtype, f"{case[0]} layer in panels T={T}")
