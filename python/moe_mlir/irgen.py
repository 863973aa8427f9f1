"""Emit ``moe`` dialect IR as text: one function per op, and whole layers.

Every generator returns a ``module`` holding one public ``func.func`` that takes the op's
operands as tensors and returns its results, so the module can go straight through
``moe-opt --moe-lower-to-cpu-pipeline`` (see :mod:`moe_mlir.cpu`). Destination operands
(``outs``) are ``tensor.empty`` values built inside the function, so callers pass inputs
only; after lowering the results become trailing out-parameters.

Sizes are Python ints; ``None`` stands for a dynamic (``?``) dimension. Only token and row
counts may be dynamic: hidden, expert, k and intermediate sizes must be static (the
verifiers require it).

Attribute keywords use the names of :mod:`moe_mlir.reference` (``k``, ``scoring``,
``n_group``, ``renormalize``, ``capacity_factor``, ``activation``, ...), so one dict of
keywords configures both the IR and the oracle. ``None`` (or ``False`` for unit
attributes) leaves an attribute out, which selects the dialect's default.
"""

from __future__ import annotations

from typing import Optional

from . import pack, reference
# The op generators and the printing they share live in irgen_ops and
# irgen_printing; this module adds the layers and gathers them under one name.
from .irgen_ops import (aux_loss_ir, combine_ir, dispatch_ir, expert_choice_ir,  # noqa: F401
                        glu_ir, grouped_matmul_ir, permute_ir, route_ir, z_loss_ir)
from .irgen_printing import (_I64, CAPACITY_ATTRS, GLU_ATTRS, ROUTING_ATTRS, Dim,  # noqa: F401
                             _attr_dict, _check_dtype, _enum, _Function, _mul,
                             format_float, tensor_type)

__all__ = [
    "format_float",
    "tensor_type",
    "route_ir",
    "expert_choice_ir",
    "dispatch_ir",
    "permute_ir",
    "grouped_matmul_ir",
    "glu_ir",
    "combine_ir",
    "aux_loss_ir",
    "z_loss_ir",
    "layer_ir",
    "experts_ir",
    "model_layer_ir",
    "MODEL_LAYERS",
    "MODEL_SHARED_EXPERT",
    "ROUTING_ATTRS",
    "CAPACITY_ATTRS",
    "GLU_ATTRS",
]


# ----------------------------------------------------------------------------------------
# Whole layer
# ----------------------------------------------------------------------------------------


def layer_ir(T: Dim, H: int, E: int, I: int, k: int, *, dtype: str = "f32",
             bias: bool = False, shared: Optional[tuple[int, bool]] = None,
             router_bias: bool = False, expert_bias: bool = False,
             name: str = "layer", weight_layout: Optional[str] = None,
             panel_width: int = pack.PANEL_WIDTH, weight_quant: Optional[dict] = None,
             **attrs) -> str:
    """``moe.layer``: a whole MoE layer.

    ``@name(x [T,H], router [E,H], w13 [E,2I,H], w2 [E,H,I][, bias [E] f32]
    [, router_bias [E]][, w13_bias [E,2I], w2_bias [E,H]]
    [, shared_w13 [2Is,H], shared_w2 [H,Is]][, shared_gate [1,H]]) -> y [T,H]``;
    ``router_bias`` and ``expert_bias`` add gpt-oss's Linear biases, in ``dtype``.

    ``weight_layout`` (:mod:`moe_mlir.pack`) stores w13 and w2 as [E,H,2I] and [E,I,H]
    ("kn") or [E,2I/P,H,P] and [E,H/P,I,P] ("panels", P = ``panel_width``).
    ``T=None`` makes the token dimension dynamic. Activations, router and expert weights
    all use ``dtype``; the bias is f32. ``shared=(Is, gated)`` adds a shared expert of
    intermediate size Is, with a sigmoid gate when ``gated``. ``attrs``: routing
    (:data:`ROUTING_ATTRS`), capacity (:data:`CAPACITY_ATTRS`), ``activation`` and the
    GLU attributes (:data:`GLU_ATTRS`).

    ``weight_quant=dict(block=(bn, bk), activation="dynamic" | "none")``: FP8 experts
    (nk or panels layout, f8E4M3FN; ``pack.quantized_to_panels``) with two more last
    arguments, ``w13_scales`` and ``w2_scales`` (f32, docs/quantization.md).
    """
    dtype = _check_dtype(dtype)
    kinds = {"k": _I64, **ROUTING_ATTRS, **CAPACITY_ATTRS,
             "activation": _enum("activation"), "weight_layout": _enum("rhs_layout"),
             **GLU_ATTRS}
    entries = _attr_dict(kinds, {"k": k, "weight_layout": weight_layout, **attrs})
    f = _Function(name)
    x_t = tensor_type([T, H], dtype)
    layout = weight_layout or "nk"
    wdt = dtype
    if weight_quant is not None:
        if layout not in ("nk", "panels"):
            raise ValueError(f"FP8 weights are in the nk or panels layout, got {layout!r}")
        bn, bk = (int(b) for b in weight_quant["block"])
        activation_quant = weight_quant.get("activation", "dynamic")
        if activation_quant not in ("dynamic", "none"):
            raise ValueError(f"layer_ir quantizes activations dynamically or not at all, "
                             f"got {activation_quant!r}")
        wdt = "f8E4M3FN"
        entries = entries[:-1] + (f", weight_quant = #moe.weight_quant<format = fp8_e4m3, "
                                  f"block = [{bn}, {bk}], activation = {activation_quant}>}}")
    types = [x_t, tensor_type([E, H], dtype),
             tensor_type(list(pack.weight_shape(E, 2 * I, H, layout, panel_width)), wdt),
             tensor_type(list(pack.weight_shape(E, H, I, layout, panel_width)), wdt)]
    x = f.arg("x", x_t)
    values = [x, f.arg("router", types[1]), f.arg("w13", types[2]), f.arg("w2", types[3])]
    extra = ""
    if bias:
        bias_t = tensor_type([E], "f32")
        extra += f" bias({f.arg('bias', bias_t)} : {bias_t})"
    if router_bias:
        rb_t = tensor_type([E], dtype)
        extra += f" router_bias({f.arg('router_bias', rb_t)} : {rb_t})"
    if expert_bias:
        b13_t, b2_t = tensor_type([E, 2 * I], dtype), tensor_type([E, H], dtype)
        extra += (f" w13_bias({f.arg('w13_bias', b13_t)} : {b13_t})"
                  f" w2_bias({f.arg('w2_bias', b2_t)} : {b2_t})")
    if shared is not None:
        Is, gated = shared
        s13_t, s2_t = tensor_type([2 * Is, H], dtype), tensor_type([H, Is], dtype)
        s13, s2 = f.arg("shared_w13", s13_t), f.arg("shared_w2", s2_t)
        extra += f" shared({s13}, {s2} : {s13_t}, {s2_t})"
        if gated:
            gate_t = tensor_type([1, H], dtype)
            extra += f" shared_gate({f.arg('shared_gate', gate_t)} : {gate_t})"
    if weight_quant is not None:
        s13_t = tensor_type([E, -(-2 * I // bn), -(-H // bk)], "f32")
        s2_t = tensor_type([E, -(-H // bn), -(-I // bk)], "f32")
        extra += (f" scales({f.arg('w13_scales', s13_t)}, {f.arg('w2_scales', s2_t)} : "
                  f"{s13_t}, {s2_t})")
    init = f.empty([T, H], dtype, [(x, x_t, 0)])
    (y,) = f.op(f"moe.layer ins({', '.join(values)} : {', '.join(types)}){extra} "
                f"outs({init} : {x_t}){entries} -> {x_t}", "y")
    f.ret((y, x_t))
    return f.module()


def _glu_layout_entry(glu_layout: Optional[str]) -> str:
    if glu_layout is None:
        return ""
    if glu_layout not in ("concatenated", "interleaved"):
        raise ValueError(f"glu_layout must be concatenated or interleaved, got {glu_layout!r}")
    return f", glu_layout = #moe.glu_layout<{glu_layout}>"


def experts_ir(T: Dim, H: int, E: int, I: int, k: int, *, dtype: str = "bf16",
               name: str = "experts", activation: str = "silu",
               num_local_experts: Optional[int] = None,
               intermediate_dtype: Optional[str] = None,
               ys_dtype: Optional[str] = None, glu_layout: Optional[str] = None,
               expert_bias: bool = False,
               weight_quant: Optional[dict] = None) -> str:
    """The expert half of a layer with the routing given, in fused form.

    ``@name(x [T,H], w13 [E,2I,H], w2 [E,H,I], ids [T,k] i32, weights [T,k] f32)
    -> y [T,H]``: dispatch, the gate/up grouped matmul with the gather and GLU
    epilogue, the down grouped matmul with the routing weights as row scale, and the
    prescaled combine. x, weights and y use ``dtype``. The GLU's output, the down
    projection's input, uses ``intermediate_dtype`` (default ``dtype``: bf16 layers
    round it to bf16 as the peers do, which lets the down projection read it with
    ldmatrix on GPUs). The down projection's output, each routed row scaled by its
    routing weight, uses ``ys_dtype`` (default ``dtype``); the combine sums a token's
    rows in f32. bf16 layers round those rows to bf16 as the peers do, which halves
    the bytes the down projection writes and the combine reads.

    ``num_local_experts=L`` makes it one rank's share under expert parallelism: the
    weights are those of L local experts ([L,2I,H], [L,H,I]), ``ids`` stay global
    (in [0, E)), and a last argument ``expert_map [E] i32`` gives each global expert's
    local index, or -1 for the experts of other ranks, whose selections add nothing.

    ``expert_bias`` adds gpt-oss's expert biases as arguments after ``w2``:
    ``w13_bias [E,2I]`` before the GLU (``glu_layout``, e.g. interleaved) and
    ``w2_bias [E,H]`` before the routing weight (L experts' under expert parallelism).

    ``weight_quant=dict(block=(bn, bk), activation="dynamic" | "none")`` makes the
    weights FP8 (f8E4M3FN, docs/quantization.md) with two more last arguments, their f32
    scales ``w13_scales [L, ceil(2I/bn), ceil(H/bk)]`` and ``w2_scales [L, ceil(H/bn),
    ceil(I/bk)]`` (the local experts' under expert parallelism).

    ``weight_quant=dict(format="mxfp4" | "int4" | "int8", group=g, zero_points=bool)``
    makes them weight-only (docs/quantization.md, "Weight-only formats"): i8 weights
    ``[L, N, K / 2]`` (4-bit) or ``[L, N, K]`` (int8), then the last arguments
    ``w13_scales [L, 2I, ceil(H/g)]`` and ``w2_scales [L, H, ceil(I/g)]`` (uint8 e8m0
    bits for mxfp4, f32 otherwise; ``[L, N, 1]`` for int8) and, for int4 with
    ``zero_points``, ``w13_zero_points`` and ``w2_zero_points`` (i8, the scales' shape).
    """
    if weight_quant is not None and "format" in weight_quant:
        return _weight_only_experts_ir(T, H, E, I, k, dtype=dtype, name=name,
                                       activation=activation, glu_layout=glu_layout,
                                       **weight_quant)
    dtype = _check_dtype(dtype)
    L = E if num_local_experts is None else int(num_local_experts)
    f = _Function(name)
    x_t = tensor_type([T, H], dtype)
    wdt = dtype
    quant_attr = ""
    if weight_quant is not None:
        bn, bk = (int(b) for b in weight_quant["block"])
        activation_quant = weight_quant.get("activation", "dynamic")
        if activation_quant not in ("dynamic", "none"):
            raise ValueError(f"experts_ir quantizes activations dynamically or not at all, "
                             f"got {activation_quant!r}")
        wdt = "f8E4M3FN"
        quant_attr = (f", weight_quant = #moe.weight_quant<format = fp8_e4m3, "
                      f"block = [{bn}, {bk}], activation = {activation_quant}>")
    w13_t, w2_t = tensor_type([L, 2 * I, H], wdt), tensor_type([L, H, I], wdt)
    ids_t, w_t = tensor_type([T, k], "i32"), tensor_type([T, k], "f32")
    x, w13, w2 = f.arg("x", x_t), f.arg("w13", w13_t), f.arg("w2", w2_t)
    bias13 = bias2 = ""
    if expert_bias:
        b13_t, b2_t = tensor_type([L, 2 * I], dtype), tensor_type([L, H], dtype)
        bias13 = f" bias({f.arg('w13_bias', b13_t)} : {b13_t})"
        bias2 = f" bias({f.arg('w2_bias', b2_t)} : {b2_t})"
    ids, weights = f.arg("ids", ids_t), f.arg("weights", w_t)
    mapping = ""
    if num_local_experts is not None:
        map_t = tensor_type([E], "i32")
        mapping = f" expert_map({f.arg('expert_map', map_t)} : {map_t})"
    operands13, operands2 = bias13, bias2
    if weight_quant is not None:
        s13_t = tensor_type([L, -(-2 * I // bn), -(-H // bk)], "f32")
        s2_t = tensor_type([L, -(-H // bn), -(-I // bk)], "f32")
        operands13 += f" rhs_scales({f.arg('w13_scales', s13_t)} : {s13_t})"
        operands2 += f" rhs_scales({f.arg('w2_scales', s2_t)} : {s2_t})"
    return _expert_chain(
        f, T, H, I, L, k, {x: x_t, w13: w13_t, w2: w2_t, ids: ids_t, weights: w_t},
        dispatch_attrs=f"{mapping} {{num_experts = {E} : i64}}", operands13=operands13,
        operands2=operands2, dtypes=(_check_dtype(intermediate_dtype or dtype),
                                     _check_dtype(ys_dtype or dtype), dtype),
        attrs13=f", k = {k} : i64{_glu_layout_entry(glu_layout)}{quant_attr}",
        attrs2=f", k = {k} : i64{quant_attr}", activation=activation)


def _expert_chain(f: _Function, T: Dim, H: int, I: int, L: int, k: int, types: dict, *,
                  dispatch_attrs: str, operands13: str, operands2: str, dtypes: tuple,
                  attrs13: str, attrs2: str, activation: str) -> str:
    """What :func:`experts_ir` writes after the arguments, whatever the weights'
    format: the dispatch, the gate/up grouped matmul with the gather and GLU
    epilogue, the down grouped matmul with the routing weights as row scale, the
    prescaled combine, and the return. ``types`` maps the arguments x, w13, w2,
    ids, weights (in that order) to their types; ``operands13``/``operands2``
    are each matmul's optional operands (biases, scales, zero points) and
    ``dtypes`` the GLU output's, the down projection output's and y's."""
    (x, x_t), (w13, w13_t), (w2, w2_t), (ids, ids_t), (weights, w_t) = types.items()
    h_dtype, ys_dtype, y_dtype = dtypes
    M = _mul(T, k)
    rows_t, offsets_t = tensor_type([M], "i32"), tensor_type([L + 1], "i32")
    rows, offsets = f.op(f"moe.dispatch {ids} weights({weights} : {w_t}){dispatch_attrs} "
                         f": {ids_t} -> {rows_t}, {offsets_t}", "rows", "offsets")
    h_t, ys_t = tensor_type([M, I], h_dtype), tensor_type([M, H], ys_dtype)
    h_init = f.empty([M, I], h_dtype, [(rows, rows_t, 0)])
    (h,) = f.op(f"moe.grouped_matmul ins({x}, {w13}, {offsets} : {x_t}, {w13_t}, {offsets_t}) "
                f"rows({rows} : {rows_t}){operands13} outs({h_init} : {h_t}) "
                f"{{epilogue = #moe.activation<{activation}>, gather{attrs13}}} -> {h_t}", "h")
    ys_init = f.empty([M, H], ys_dtype, [(rows, rows_t, 0)])
    (ys,) = f.op(f"moe.grouped_matmul ins({h}, {w2}, {offsets} : {h_t}, {w2_t}, {offsets_t}) "
                 f"rows({rows} : {rows_t}) row_scale({weights} : {w_t}){operands2} "
                 f"outs({ys_init} : {ys_t}) {{{attrs2.lstrip(', ')}}} -> {ys_t}", "ys")
    y_t = tensor_type([T, H], y_dtype)
    y_init = f.empty([T, H], y_dtype, [(x, x_t, 0)])
    (y,) = f.op(f"moe.combine ins({ys}, {rows}, {weights} : {ys_t}, {rows_t}, {w_t}) "
                f"outs({y_init} : {y_t}) {{prescaled}} -> {y_t}", "y")
    f.ret((y, y_t))
    return f.module()


def _model_layers() -> dict[str, dict]:
    layers = {}
    for model, routing in reference.MODEL_RECIPES.items():
        attrs = dict(routing)
        attrs.update(reference.MODEL_FFN.get(model, {}))
        if model in reference.MODEL_REQUIRES_BIAS:
            attrs["bias"] = True
        layers[model] = attrs
    # The dialect's experts are always gated, so Switch's ReLU MLP is approximated by a
    # ReLU GLU; its capacity factor is the paper's training setting, with Switch's
    # slot-major (position) drop order.
    layers["switch"].update(activation="relu", glu_layout="concatenated",
                            capacity_factor=1.25, drop_policy="position")
    return layers


#: Keyword arguments of :func:`layer_ir` for each model recipe (sizes excluded). Routing
#: and FFN keywords come from ``reference.MODEL_RECIPES`` / ``reference.MODEL_FFN``, so
#: the same dict (minus ``bias``) configures ``reference.layer``.
MODEL_LAYERS = _model_layers()

#: Recipes with a shared expert, mapped to whether it has a sigmoid gate. DeepSeek-V3
#: adds one ungated shared expert to every MoE layer.
MODEL_SHARED_EXPERT = {"deepseek_v3": False}


def model_layer_ir(model: str, T: Dim, H: int, E: int, I: int, *, dtype: str = "f32",
                   shared_intermediate: Optional[int] = None, name: str = "layer",
                   **overrides) -> str:
    """:func:`layer_ir` for a recipe of :data:`MODEL_LAYERS`.

    ``shared_intermediate`` gives the shared expert's size for recipes that have one
    (:data:`MODEL_SHARED_EXPERT`); ``overrides`` replace recipe keywords.
    """
    if model not in MODEL_LAYERS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODEL_LAYERS)}")
    attrs = {**MODEL_LAYERS[model], **overrides}
    shared = None
    if model in MODEL_SHARED_EXPERT and shared_intermediate is not None:
        shared = (int(shared_intermediate), MODEL_SHARED_EXPERT[model])
    return layer_ir(T, H, E, I, attrs.pop("k"), dtype=dtype, shared=shared, name=name,
                    **attrs)


def _weight_only_experts_ir(T: Dim, H: int, E: int, I: int, k: int, *, dtype: str,
                            name: str, activation: str, glu_layout: Optional[str],
                            format: str, group: int = 32,
                            zero_points: bool = False) -> str:
    """:func:`experts_ir` with weight-only weights (its ``weight_quant`` with a
    ``format``)."""
    if format not in ("mxfp4", "int4", "int8"):
        raise ValueError(f"unknown weight-only format {format!r}")
    if zero_points and format != "int4":
        raise ValueError("zero points are int4's only")
    dtype = _check_dtype(dtype)
    packed = format != "int8"
    per_byte = 2 if packed else 1
    # int8 is per channel: one group spanning each matmul's K.
    block = max(H, I) if format == "int8" else int(group)
    scale_dtype = "f8E8M0FNU" if format == "mxfp4" else "f32"
    quant_attr = (f", weight_quant = #moe.weight_quant<format = {format}, "
                  f"block = [1, {block}], activation = none>")
    f = _Function(name)
    x_t = tensor_type([T, H], dtype)
    w13_t = tensor_type([E, 2 * I, H // per_byte], "i8")
    w2_t = tensor_type([E, H, I // per_byte], "i8")
    ids_t, w_t = tensor_type([T, k], "i32"), tensor_type([T, k], "f32")
    x, w13, w2 = f.arg("x", x_t), f.arg("w13", w13_t), f.arg("w2", w2_t)
    ids, weights = f.arg("ids", ids_t), f.arg("weights", w_t)
    groups = (lambda K: 1) if format == "int8" else (lambda K: -(-K // block))
    s13_t = tensor_type([E, 2 * I, groups(H)], scale_dtype)
    s2_t = tensor_type([E, H, groups(I)], scale_dtype)
    operands13 = f" rhs_scales({f.arg('w13_scales', s13_t)} : {s13_t})"
    operands2 = f" rhs_scales({f.arg('w2_scales', s2_t)} : {s2_t})"
    if zero_points:
        z13_t = tensor_type([E, 2 * I, groups(H)], "i8")
        z2_t = tensor_type([E, H, groups(I)], "i8")
        operands13 += f" rhs_zero_points({f.arg('w13_zero_points', z13_t)} : {z13_t})"
        operands2 += f" rhs_zero_points({f.arg('w2_zero_points', z2_t)} : {z2_t})"
    return _expert_chain(
        f, T, H, I, E, k, {x: x_t, w13: w13_t, w2: w2_t, ids: ids_t, weights: w_t},
        dispatch_attrs=f" {{num_experts = {E} : i64}}", operands13=operands13,
        operands2=operands2, dtypes=(dtype, dtype, dtype),
        attrs13=f", k = {k} : i64{_glu_layout_entry(glu_layout)}{quant_attr}",
        attrs2=f", k = {k} : i64{quant_attr}", activation=activation)
