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

import math
from typing import Mapping, Optional, Sequence

from . import pack, reference

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

Dim = Optional[int]

# Attribute kinds: how a Python value is printed in an attribute dictionary.
_I64, _F64, _UNIT = "i64", "f64", "unit"


def _enum(mnemonic: str) -> str:
    return "enum:" + mnemonic


#: Routing attributes of ``moe.route`` and ``moe.layer`` (name -> kind).
ROUTING_ATTRS = {
    "scoring": _enum("scoring"),
    "n_group": _I64,
    "topk_group": _I64,
    "group_score": _enum("group_score"),
    "renormalize": _UNIT,
    "renorm_epsilon": _F64,
    "scale": _F64,
    "second_expert_policy": _enum("second_expert_policy"),
    "seed": _I64,
}

#: Capacity attributes of ``moe.dispatch`` and ``moe.layer``.
CAPACITY_ATTRS = {
    "capacity": _I64,
    "capacity_factor": _F64,
    "drop_policy": _enum("drop_policy"),
}

#: GLU attributes of ``moe.glu``, ``moe.grouped_matmul`` (with an epilogue) and ``moe.layer``.
GLU_ATTRS = {
    "glu_layout": _enum("glu_layout"),
    "alpha": _F64,
    "limit": _F64,
}

_ENUM_VALUES = {
    "scoring": reference.SCORINGS,
    "group_score": reference.GROUP_SCORES,
    "second_expert_policy": reference.SECOND_EXPERT_POLICIES,
    "drop_policy": reference.DROP_POLICIES,
    "activation": reference.ACTIVATIONS,
    "glu_layout": reference.GLU_LAYOUTS,
    "rhs_layout": reference.RHS_LAYOUTS,
}


# ----------------------------------------------------------------------------------------
# Printing helpers
# ----------------------------------------------------------------------------------------


def format_float(value: float) -> str:
    """Prints ``value`` so that MLIR parses it back as the same float64.

    17 significant digits round-trip any double. MLIR's lexer only reads a number as a
    float when it has a ``.`` before any exponent (``1e-20`` would lex as the integer 1),
    so one is inserted where Python leaves it out.
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"attribute values must be finite, got {value!r}")
    text = format(value, ".17g")
    mantissa, sep, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + sep + exponent


def _dim(size: Dim) -> str:
    if size is None:
        return "?"
    size = int(size)
    if size < 0:
        raise ValueError(f"tensor sizes must be non-negative, got {size}")
    return str(size)


def tensor_type(shape: Sequence[Dim], element_type: str) -> str:
    """``tensor<...>`` text for ``shape`` (``None`` = dynamic) and an element type."""
    if not shape:
        return f"tensor<{element_type}>"
    return "tensor<" + "x".join(_dim(d) for d in shape) + "x" + element_type + ">"


def _attr_entry(name: str, kind: str, value) -> Optional[str]:
    if value is None:
        return None
    if kind == _UNIT:
        return name if value else None
    if kind == _I64:
        if isinstance(value, bool) or int(value) != value:
            raise TypeError(f"attribute {name} must be an integer, got {value!r}")
        return f"{name} = {int(value)} : i64"
    if kind == _F64:
        return f"{name} = {format_float(value)} : f64"
    mnemonic = kind.split(":", 1)[1]
    if value not in _ENUM_VALUES[mnemonic]:
        raise ValueError(f"{name} must be one of {_ENUM_VALUES[mnemonic]}, got {value!r}")
    return f"{name} = #moe.{mnemonic}<{value}>"


def _attr_dict(kinds: Mapping[str, str], values: Mapping[str, object]) -> str:
    """An attribute dictionary (with a leading space) or "" when every value is a default."""
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise TypeError(f"unknown attributes {unknown}; expected some of {sorted(kinds)}")
    entries = [_attr_entry(name, kinds[name], values[name]) for name in kinds if name in values]
    entries = [e for e in entries if e is not None]
    return " {" + ", ".join(entries) + "}" if entries else ""


class _Function:
    """Accumulates the body of one ``func.func`` and prints it inside a module."""

    def __init__(self, name: str):
        self.name = name
        self.args: list[tuple[str, str]] = []
        self.lines: list[str] = []
        self.results: list[tuple[str, str]] = []
        self._names: set[str] = set()
        self._constants: dict[int, str] = {}

    def _fresh(self, base: str) -> str:
        name, n = base, 0
        while name in self._names:
            n += 1
            name = f"{base}{n}"
        self._names.add(name)
        return "%" + name

    def arg(self, name: str, type_: str) -> str:
        value = self._fresh(name)
        self.args.append((value, type_))
        return value

    def op(self, text: str, *results: str) -> tuple[str, ...]:
        """Emits ``text`` with fresh result names built from ``results``."""
        values = tuple(self._fresh(r) for r in results)
        prefix = (", ".join(values) + " = ") if values else ""
        self.lines.append(prefix + text)
        return values

    def index(self, value: int) -> str:
        if value not in self._constants:
            (self._constants[value],) = self.op(f"arith.constant {value} : index", f"c{value}")
        return self._constants[value]

    def empty(self, shape: Sequence[Dim], element_type: str,
              dynamic_sizes: Sequence[tuple[str, str, int]]) -> str:
        """``tensor.empty`` of ``shape``; each ``None`` takes the size of the next
        ``(value, type, dim)`` in ``dynamic_sizes``."""
        sizes = []
        dynamic = iter(dynamic_sizes)
        for d in shape:
            if d is None:
                value, type_, dim = next(dynamic)
                (size,) = self.op(f"tensor.dim {value}, {self.index(dim)} : {type_}", "dim")
                sizes.append(size)
        (init,) = self.op(f"tensor.empty({', '.join(sizes)}) : {tensor_type(shape, element_type)}",
                          "init")
        return init

    def ret(self, *values: tuple[str, str]) -> None:
        self.results.extend(values)

    def module(self) -> str:
        args = ", ".join(f"{v}: {t}" for v, t in self.args)
        types = [t for _, t in self.results]
        result_types = types[0] if len(types) == 1 else "(" + ", ".join(types) + ")"
        body = "".join(f"    {line}\n" for line in self.lines)
        values = ", ".join(v for v, _ in self.results)
        return (f"module {{\n  func.func @{self.name}({args}) -> {result_types} {{\n"
                f"{body}    return {values} : {', '.join(types)}\n  }}\n}}\n")


def _split(attrs: Mapping[str, object], *groups: Mapping[str, str]) -> list[dict]:
    """Splits keyword attributes among ``groups``; unknown names raise TypeError."""
    known = set().union(*groups)
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise TypeError(f"unknown attributes {unknown}; expected some of {sorted(known)}")
    return [{n: v for n, v in attrs.items() if n in g} for g in groups]


def _check_dtype(dtype: str) -> str:
    if dtype not in ("f32", "bf16", "f16"):
        raise ValueError(f"element type must be f32, bf16 or f16, got {dtype!r}")
    return dtype


def _mul(a: Dim, b: int) -> Dim:
    return None if a is None else a * b


# ----------------------------------------------------------------------------------------
# Routing and training-side values
# ----------------------------------------------------------------------------------------


def route_ir(T: Dim, E: int, k: int, *, bias: bool = False, name: str = "route",
             **attrs) -> str:
    """``moe.route``: ``@name(logits [T,E] f32[, bias [E] f32]) -> (weights [T,k] f32,
    ids [T,k] i32)``. ``attrs``: the routing attributes (:data:`ROUTING_ATTRS`)."""
    (routing,) = _split(attrs, ROUTING_ATTRS)
    f = _Function(name)
    logits_t = tensor_type([T, E], "f32")
    logits = f.arg("logits", logits_t)
    bias_text = ""
    if bias:
        bias_t = tensor_type([E], "f32")
        bias_text = f" bias({f.arg('bias', bias_t)} : {bias_t})"
    w_t, ids_t = tensor_type([T, k], "f32"), tensor_type([T, k], "i32")
    entries = _attr_dict({"k": _I64, **ROUTING_ATTRS}, {"k": k, **routing})
    w, ids = f.op(f"moe.route {logits}{bias_text}{entries} : {logits_t} -> {w_t}, {ids_t}",
                  "weights", "ids")
    f.ret((w, w_t), (ids, ids_t))
    return f.module()


def expert_choice_ir(T: Dim, E: int, capacity: int, *, name: str = "expert_choice") -> str:
    """``moe.expert_choice``: ``@name(logits [T,E] f32) -> (weights [T,E] f32,
    rows [E*min(capacity,T)] i32, offsets [E+1] i32)``."""
    f = _Function(name)
    logits_t = tensor_type([T, E], "f32")
    logits = f.arg("logits", logits_t)
    rows_dim = None if T is None else E * min(capacity, T)
    types = (tensor_type([T, E], "f32"), tensor_type([rows_dim], "i32"),
             tensor_type([E + 1], "i32"))
    values = f.op(f"moe.expert_choice {logits} {{capacity = {int(capacity)} : i64}} : "
                  f"{logits_t} -> {', '.join(types)}", "weights", "rows", "offsets")
    f.ret(*zip(values, types))
    return f.module()


def aux_loss_ir(T: Dim, E: int, k: int, *, name: str = "aux_loss") -> str:
    """``moe.aux_loss``: ``@name(logits [T,E] f32, ids [T,k] i32) -> tensor<f32>``."""
    f = _Function(name)
    logits_t, ids_t = tensor_type([T, E], "f32"), tensor_type([T, k], "i32")
    logits, ids = f.arg("logits", logits_t), f.arg("ids", ids_t)
    loss_t = tensor_type([], "f32")
    (loss,) = f.op(f"moe.aux_loss {logits}, {ids} : {logits_t}, {ids_t} -> {loss_t}", "loss")
    f.ret((loss, loss_t))
    return f.module()


def z_loss_ir(T: Dim, E: int, *, name: str = "z_loss") -> str:
    """``moe.z_loss``: ``@name(logits [T,E] f32) -> tensor<f32>``."""
    f = _Function(name)
    logits_t = tensor_type([T, E], "f32")
    logits = f.arg("logits", logits_t)
    loss_t = tensor_type([], "f32")
    (loss,) = f.op(f"moe.z_loss {logits} : {logits_t} -> {loss_t}", "loss")
    f.ret((loss, loss_t))
    return f.module()


# ----------------------------------------------------------------------------------------
# Dispatch and expert computation
# ----------------------------------------------------------------------------------------


def dispatch_ir(T: Dim, k: int, E: int, *, weights: bool = False, expert_map: bool = False,
                num_local_experts: Optional[int] = None, name: str = "dispatch",
                **attrs) -> str:
    """``moe.dispatch``: ``@name(ids [T,k] i32[, weights [T,k] f32][, expert_map [E] i32])
    -> (rows [T*k] i32, offsets [L+1] i32)``.

    ``L`` is ``num_local_experts`` (default E; only meaningful with ``expert_map``).
    ``attrs``: ``capacity``, ``capacity_factor``, ``drop_policy``.
    """
    (capacity,) = _split(attrs, CAPACITY_ATTRS)
    L = E if num_local_experts is None else int(num_local_experts)
    f = _Function(name)
    ids_t = tensor_type([T, k], "i32")
    ids = f.arg("ids", ids_t)
    operands = ""
    if weights:
        w_t = tensor_type([T, k], "f32")
        operands += f" weights({f.arg('weights', w_t)} : {w_t})"
    if expert_map:
        map_t = tensor_type([E], "i32")
        operands += f" expert_map({f.arg('expert_map', map_t)} : {map_t})"
    rows_t, offsets_t = tensor_type([_mul(T, k)], "i32"), tensor_type([L + 1], "i32")
    entries = _attr_dict({"num_experts": _I64, **CAPACITY_ATTRS},
                         {"num_experts": E, **capacity})
    rows, offsets = f.op(f"moe.dispatch {ids}{operands}{entries} : {ids_t} -> {rows_t}, "
                         f"{offsets_t}", "rows", "offsets")
    f.ret((rows, rows_t), (offsets, offsets_t))
    return f.module()


def permute_ir(T: Dim, M: Dim, H: int, k: int, *, dtype: str = "f32",
               out_dtype: Optional[str] = None, name: str = "permute") -> str:
    """``moe.permute``: ``@name(x [T,H], rows [M] i32) -> xs [M,H]``."""
    dtype = _check_dtype(dtype)
    out_dtype = _check_dtype(out_dtype or dtype)
    f = _Function(name)
    x_t, rows_t = tensor_type([T, H], dtype), tensor_type([M], "i32")
    x, rows = f.arg("x", x_t), f.arg("rows", rows_t)
    out_t = tensor_type([M, H], out_dtype)
    init = f.empty([M, H], out_dtype, [(rows, rows_t, 0)])
    (xs,) = f.op(f"moe.permute ins({x}, {rows} : {x_t}, {rows_t}) outs({init} : {out_t}) "
                 f"{{k = {int(k)} : i64}} -> {out_t}", "xs")
    f.ret((xs, out_t))
    return f.module()


def grouped_matmul_ir(M: Dim, K: int, N: int, E: int, *, dtype: str = "f32",
                      rhs_dtype: Optional[str] = None, out_dtype: str = "f32",
                      rhs_layout: Optional[str] = None, gather: bool = False,
                      row_scale: bool = False, T: Dim = None, k: Optional[int] = None,
                      epilogue: Optional[str] = None, bias: Optional[str] = None,
                      name: str = "grouped_matmul",
                      panel_width: int = pack.PANEL_WIDTH, **glu_attrs) -> str:
    """``moe.grouped_matmul``, unfused or fused.

    ``@name(lhs, rhs, offsets [E+1] i32[, rows [M] i32][, row_scale [T',k] f32]
    [, bias [E,N]]) -> out [M, N or N/2]``:

    - lhs is [M,K], or with ``gather`` [T,K] token rows read through ``rows`` / ``k``;
    - rhs is [E,N,K], or [E,K,N] with ``rhs_layout="kn"``, or [E,N/P,K,P] with
      ``rhs_layout="panels"`` and P = ``panel_width``;
    - ``rows`` is an argument whenever ``gather`` or ``row_scale`` is set;
    - ``row_scale`` is [T',k] with T' = T under ``gather``, else M / k (dynamic when M is);
    - ``epilogue`` (an activation) applies a GLU and halves N; ``glu_attrs`` are
      ``glu_layout``, ``alpha``, ``limit``;
    - ``bias`` (an element type) adds a bias [E,N] of that type before the epilogue.

    ``k`` defaults to 1 (the dialect's default, left out of the IR when not given).
    """
    (glu,) = _split(glu_attrs, GLU_ATTRS)
    dtype = _check_dtype(dtype)
    rhs_dtype = _check_dtype(rhs_dtype or dtype)
    out_dtype = _check_dtype(out_dtype)
    if glu and epilogue is None:
        raise TypeError("glu_layout, alpha and limit need an epilogue")
    if epilogue is not None and N % 2:
        raise ValueError(f"a GLU epilogue needs an even N, got {N}")
    kk = 1 if k is None else int(k)
    f = _Function(name)
    lhs_t = tensor_type([T if gather else M, K], dtype)
    rhs_shape = list(pack.weight_shape(E, N, K, rhs_layout or "nk", panel_width))
    rhs_t, offsets_t = tensor_type(rhs_shape, rhs_dtype), tensor_type([E + 1], "i32")
    lhs, rhs, offsets = f.arg("lhs", lhs_t), f.arg("rhs", rhs_t), f.arg("offsets", offsets_t)
    extra = ""
    rows = rows_t = None
    if gather or row_scale:
        rows_t = tensor_type([M], "i32")
        rows = f.arg("rows", rows_t)
        extra += f" rows({rows} : {rows_t})"
    if row_scale:
        scale_rows = T if gather else (None if M is None else M // kk)
        scale_t = tensor_type([scale_rows, kk], "f32")
        extra += f" row_scale({f.arg('row_scale', scale_t)} : {scale_t})"
    if bias is not None:
        bias_t = tensor_type([E, N], _check_dtype(bias))
        extra += f" bias({f.arg('bias', bias_t)} : {bias_t})"
    width = N // 2 if epilogue is not None else N
    out_t = tensor_type([M, width], out_dtype)
    init = f.empty([M, width], out_dtype, [(rows, rows_t, 0) if gather else (lhs, lhs_t, 0)])
    entries = _attr_dict(
        {"rhs_layout": _enum("rhs_layout"), "gather": _UNIT, "k": _I64,
         "epilogue": _enum("activation"), **GLU_ATTRS},
        {"rhs_layout": rhs_layout, "gather": gather, "k": k, "epilogue": epilogue, **glu})
    (out,) = f.op(f"moe.grouped_matmul ins({lhs}, {rhs}, {offsets} : {lhs_t}, {rhs_t}, "
                  f"{offsets_t}){extra} outs({init} : {out_t}){entries} -> {out_t}", "out")
    f.ret((out, out_t))
    return f.module()


def glu_ir(M: Dim, I: int, *, dtype: str = "f32", out_dtype: Optional[str] = None,
           activation: Optional[str] = None, name: str = "glu", **glu_attrs) -> str:
    """``moe.glu``: ``@name(h [M,2I]) -> [M,I]``; ``glu_attrs``: glu_layout, alpha, limit."""
    (glu,) = _split(glu_attrs, GLU_ATTRS)
    dtype = _check_dtype(dtype)
    out_dtype = _check_dtype(out_dtype or dtype)
    f = _Function(name)
    h_t = tensor_type([M, 2 * I], dtype)
    h = f.arg("h", h_t)
    out_t = tensor_type([M, I], out_dtype)
    init = f.empty([M, I], out_dtype, [(h, h_t, 0)])
    entries = _attr_dict({"activation": _enum("activation"), **GLU_ATTRS},
                         {"activation": activation, **glu})
    (out,) = f.op(f"moe.glu ins({h} : {h_t}) outs({init} : {out_t}){entries} -> {out_t}", "out")
    f.ret((out, out_t))
    return f.module()


def combine_ir(M: Dim, H: int, T: Dim, k: int, *, dtype: str = "f32",
               out_dtype: Optional[str] = None, prescaled: bool = False,
               name: str = "combine") -> str:
    """``moe.combine``: ``@name(ys [M,H], rows [M] i32, weights [T,k] f32) -> out [T,H]``.

    ``prescaled``: the rows already carry their routing weights, which are then not
    applied again (only their shape is read).
    """
    dtype = _check_dtype(dtype)
    out_dtype = _check_dtype(out_dtype or dtype)
    f = _Function(name)
    ys_t, rows_t, w_t = (tensor_type([M, H], dtype), tensor_type([M], "i32"),
                         tensor_type([T, k], "f32"))
    ys, rows, w = f.arg("ys", ys_t), f.arg("rows", rows_t), f.arg("weights", w_t)
    out_t = tensor_type([T, H], out_dtype)
    init = f.empty([T, H], out_dtype, [(w, w_t, 0)])
    attrs = " {prescaled}" if prescaled else ""
    (out,) = f.op(f"moe.combine ins({ys}, {rows}, {w} : {ys_t}, {rows_t}, {w_t}) "
                  f"outs({init} : {out_t}){attrs} -> {out_t}", "out")
    f.ret((out, out_t))
    return f.module()


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
    (nk layout, f8E4M3FN) with two more last arguments, ``w13_scales`` and
    ``w2_scales`` (f32, docs/quantization.md).
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
        if layout != "nk":
            raise ValueError("FP8 weights are in the nk layout")
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
    """
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
    scales13 = scales2 = ""
    if weight_quant is not None:
        s13_t = tensor_type([L, -(-2 * I // bn), -(-H // bk)], "f32")
        s2_t = tensor_type([L, -(-H // bn), -(-I // bk)], "f32")
        scales13 = f"rhs_scales({f.arg('w13_scales', s13_t)} : {s13_t}) "
        scales2 = f"rhs_scales({f.arg('w2_scales', s2_t)} : {s2_t}) "
    M = _mul(T, k)
    rows_t, offsets_t = tensor_type([M], "i32"), tensor_type([L + 1], "i32")
    rows, offsets = f.op(f"moe.dispatch {ids} weights({weights} : {w_t}){mapping} "
                         f"{{num_experts = {E} : i64}} : {ids_t} -> {rows_t}, {offsets_t}",
                         "rows", "offsets")
    intermediate_dtype = _check_dtype(intermediate_dtype or dtype)
    ys_dtype = _check_dtype(ys_dtype or dtype)
    h_t, ys_t = tensor_type([M, I], intermediate_dtype), tensor_type([M, H], ys_dtype)
    h_init = f.empty([M, I], intermediate_dtype, [(rows, rows_t, 0)])
    (h,) = f.op(f"moe.grouped_matmul ins({x}, {w13}, {offsets} : {x_t}, {w13_t}, {offsets_t}) "
                f"rows({rows} : {rows_t}){bias13} {scales13}outs({h_init} : {h_t}) "
                f"{{epilogue = #moe.activation<{activation}>, gather, k = {k} : i64"
                f"{_glu_layout_entry(glu_layout)}{quant_attr}}} -> {h_t}", "h")
    ys_init = f.empty([M, H], ys_dtype, [(rows, rows_t, 0)])
    (ys,) = f.op(f"moe.grouped_matmul ins({h}, {w2}, {offsets} : {h_t}, {w2_t}, {offsets_t}) "
                 f"rows({rows} : {rows_t}) row_scale({weights} : {w_t}){bias2} {scales2}"
                 f"outs({ys_init} : {ys_t}) {{k = {k} : i64{quant_attr}}} -> {ys_t}", "ys")
    y_init = f.empty([T, H], dtype, [(x, x_t, 0)])
    (y,) = f.op(f"moe.combine ins({ys}, {rows}, {weights} : {ys_t}, {rows_t}, {w_t}) "
                f"outs({y_init} : {x_t}) {{prescaled}} -> {x_t}", "y")
    f.ret((y, x_t))
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
