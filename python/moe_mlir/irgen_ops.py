"""IR of one ``moe`` op a function (routing, training-side values, dispatch
and the expert computation), re-exported by :mod:`moe_mlir.irgen`, whose
conventions they follow."""

from __future__ import annotations

from typing import Optional

from . import pack
from .irgen_printing import (_I64, _UNIT, CAPACITY_ATTRS, GLU_ATTRS, ROUTING_ATTRS, Dim,
                             _attr_dict, _check_dtype, _enum, _Function, _mul, _split,
                             tensor_type)

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
