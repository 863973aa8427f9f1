"""IR of a whole MoE layer whose experts hold weight-only mxfp4, int4 or int8 weights.

``moe.layer`` does not take the weight-only formats yet (docs/quantization.md); this
builds the same computation from the ops its decomposition uses, with the expert
matmuls fused as ``moe-fuse-routing`` fuses them:

- the router logits ``x . router^T`` in f32 (a grouped matmul with one expert, as
  ``moe-decompose-layer`` builds it), softmax top-k routing with renormalization;
- ``moe.dispatch``, the gate/up grouped matmul with the gather and the SiLU GLU
  epilogue (concatenated halves), the down grouped matmul with the routing weights as
  row scale, both in the weight-only format (``rhs_scales``, ``rhs_zero_points``);
- ``moe.combine`` (prescaled) into the activations' dtype.

Intermediates are f32, as in the decomposed ``moe.layer``, except the GLU output of a
layer with bf16 activations, which is bf16 by default (``glu_dtype``), as
``moe-lower-to-cpu-pipeline`` decomposes such a layer (``bf16-weight-only-glu``): the
down projection multiplies bf16 activations.

``@name(x [T,H], router [1,E,H], w13 [E,2I,K13], w2 [E,H,K2], w13_scales, w2_scales
[, w13_zero_points, w2_zero_points]) -> y [T,H]``: the weights in the nk layout as
stored by the format (K / 2 bytes per row for mxfp4 and int4), the scales ``[E, N,
ceil(K / g)]`` (uint8 e8m0 bits for mxfp4, f32 otherwise; ``[E, N, 1]`` for int8),
int4 zero points (i8) with the scales' shape when ``zero_points``. With
``layout="panels"`` all of them are in panels of ``panel_width`` columns (``[E, N / P,
Ks, P]`` and ``[E, N / P, G, P]``, ``moe_mlir.pack.quantized_to_panels``).
"""

from __future__ import annotations

from typing import Optional

from .irgen import tensor_type

__all__ = ["FORMATS", "layer_ir", "scale_shape", "weight_shape"]

#: The weight-only formats and their scale group along K (int4: the default group,
#: overridable; int8: one group spanning K).
FORMATS = ("mxfp4", "int4", "int8")


def scale_shape(fmt: str, E: int, N: int, K: int, group: int,
                panel_width: Optional[int] = None) -> tuple[int, ...]:
    """The scales' (and int4 zero points') shape of ``[E, N, K]`` weights, in panels of
    ``panel_width`` columns when given."""
    G = 1 if fmt == "int8" else -(-K // group)
    if panel_width:
        return (E, N // panel_width, G, panel_width)
    return (E, N, G)


def weight_shape(fmt: str, E: int, N: int, K: int,
                 panel_width: Optional[int] = None) -> tuple[int, ...]:
    """The stored weights' shape: K / 2 bytes per column for the 4-bit formats."""
    Ks = K // 2 if fmt in ("mxfp4", "int4") else K
    if panel_width:
        return (E, N // panel_width, Ks, panel_width)
    return (E, N, Ks)


def _block(fmt: str, K: int, group: int) -> int:
    return K if fmt == "int8" else group


def layer_ir(T: Optional[int], H: int, E: int, I: int, k: int, fmt: str, *,
             group: int = 32, zero_points: bool = False, dtype: str = "bf16",
             name: str = "layer", layout: str = "nk", panel_width: int = 64,
             glu_dtype: Optional[str] = None) -> str:
    """The layer in ``fmt`` (see the module docstring); ``T=None`` is dynamic.
    ``glu_dtype`` is the GLU output's element type: ``dtype`` for bf16 activations,
    else f32, by default."""
    if glu_dtype is None:
        glu_dtype = "bf16" if dtype == "bf16" else "f32"
    if glu_dtype not in ("f32", "bf16"):
        raise ValueError(f"the GLU output is f32 or bf16, got {glu_dtype!r}")
    if layout not in ("nk", "panels"):
        raise ValueError(f"weight-only layers take the nk or panels layout, got {layout!r}")
    P = panel_width if layout == "panels" else None
    if fmt not in FORMATS:
        raise ValueError(f"unknown weight-only format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "mxfp4" and group != 32:
        raise ValueError(f"mxfp4 scales cover 32 k, got group {group}")
    if zero_points and fmt != "int4":
        raise ValueError("zero points are int4's only")
    s_elem = "f8E8M0FNU" if fmt == "mxfp4" else "f32"
    dims = lambda shape: "x".join(str(d) for d in shape)  # noqa: E731
    t = "?" if T is None else str(T)
    x_t = f"tensor<{t}x{H}x{dtype}>"
    router_t = f"tensor<1x{E}x{H}x{dtype}>"
    w13_t = f"tensor<{dims(weight_shape(fmt, E, 2 * I, H, P))}xi8>"
    w2_t = f"tensor<{dims(weight_shape(fmt, E, H, I, P))}xi8>"
    s13_t = f"tensor<{dims(scale_shape(fmt, E, 2 * I, H, group, P))}x{s_elem}>"
    s2_t = f"tensor<{dims(scale_shape(fmt, E, H, I, group, P))}x{s_elem}>"
    z13_t = f"tensor<{dims(scale_shape(fmt, E, 2 * I, H, group, P))}xi8>"
    z2_t = f"tensor<{dims(scale_shape(fmt, E, H, I, group, P))}xi8>"
    args = [f"%x: {x_t}", f"%router: {router_t}", f"%w13: {w13_t}", f"%w2: {w2_t}",
            f"%s13: {s13_t}", f"%s2: {s2_t}"]
    z13 = z2 = ""
    if zero_points:
        args += [f"%z13: {z13_t}", f"%z2: {z2_t}"]
        z13 = f" rhs_zero_points(%z13 : {z13_t})"
        z2 = f" rhs_zero_points(%z2 : {z2_t})"

    def quant(K: int) -> str:
        rhs_layout = "rhs_layout = #moe.rhs_layout<panels>, " if P else ""
        return (f"{rhs_layout}weight_quant = #moe.weight_quant<format = {fmt}, "
                f"block = [1, {_block(fmt, K, group)}], activation = none>")

    M = "?" if T is None else str(T * k)
    logits_t = f"tensor<{t}x{E}xf32>"
    rows_t, offsets_t = f"tensor<{M}xi32>", f"tensor<{E + 1}xi32>"
    w_t, ids_t = f"tensor<{t}x{k}xf32>", f"tensor<{t}x{k}xi32>"
    h_t, ys_t = f"tensor<{M}x{I}x{glu_dtype}>", f"tensor<{M}x{H}xf32>"
    dyn = lambda value: f"(%{value})" if T is None else "()"  # noqa: E731
    return f"""module {{
  func.func @{name}({", ".join(args)}) -> {x_t} {{
    %c0 = arith.constant 0 : index
    %zero = arith.constant 0 : i32
    %tokens = tensor.dim %x, %c0 : {x_t}
    %tokens_i32 = arith.index_cast %tokens : index to i32
    %router_offsets = tensor.from_elements %zero, %tokens_i32 : tensor<2xi32>
    %logits_init = tensor.empty{dyn("tokens")} : {logits_t}
    %logits = moe.grouped_matmul ins(%x, %router, %router_offsets : {x_t}, {router_t}, tensor<2xi32>) outs(%logits_init : {logits_t}) -> {logits_t}
    %weights, %ids = moe.route %logits {{k = {k} : i64, scoring = #moe.scoring<softmax>, renormalize}} : {logits_t} -> {w_t}, {ids_t}
    %rows, %offsets = moe.dispatch %ids weights(%weights : {w_t}) {{num_experts = {E} : i64}} : {ids_t} -> {rows_t}, {offsets_t}
    %m = tensor.dim %rows, %c0 : {rows_t}
    %h_init = tensor.empty{dyn("m")} : {h_t}
    %h = moe.grouped_matmul ins(%x, %w13, %offsets : {x_t}, {w13_t}, {offsets_t}) rows(%rows : {rows_t}) rhs_scales(%s13 : {s13_t}){z13} outs(%h_init : {h_t}) {{epilogue = #moe.activation<silu>, gather, k = {k} : i64, {quant(H)}}} -> {h_t}
    %ys_init = tensor.empty{dyn("m")} : {ys_t}
    %ys = moe.grouped_matmul ins(%h, %w2, %offsets : {h_t}, {w2_t}, {offsets_t}) rows(%rows : {rows_t}) row_scale(%weights : {w_t}) rhs_scales(%s2 : {s2_t}){z2} outs(%ys_init : {ys_t}) {{k = {k} : i64, {quant(I)}}} -> {ys_t}
    %y_init = tensor.empty{dyn("tokens")} : {x_t}
    %y = moe.combine ins(%ys, %rows, %weights : {ys_t}, {rows_t}, {w_t}) outs(%y_init : {x_t}) {{prescaled}} -> {x_t}
    return %y : {x_t}
  }}
}}
"""
