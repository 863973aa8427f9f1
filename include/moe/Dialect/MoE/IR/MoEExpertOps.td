//===- MoEExpertOps.td - Expert computation ops ------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEEXPERTOPS_TD
#define MOE_DIALECT_MOE_IR_MOEEXPERTOPS_TD

include "moe/Dialect/MoE/IR/MoEOpBase.td"

//===----------------------------------------------------------------------===//
// Expert computation (unfused forms and the fused grouped matmul)
//===----------------------------------------------------------------------===//

def MoE_PermuteOp : MoE_DpsOp<"permute"> {
  let summary = "gathers token rows into the grouped layout";
  let description = [{
    `xs[r] = x[rows[r] / k]` for `x` `[T, H]` and `rows` `[M]`; a row value
    outside `[0, T * k)` gives a zero row.

    ```mlir
    %xs = moe.permute ins(%x, %rows : tensor<16x64xf32>, tensor<32xi32>)
        outs(%init : tensor<32x64xf32>) {k = 2 : i64} -> tensor<32x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, AnyRankedTensor:$rows,
                       AnyRankedTensor:$init,
                       ConfinedAttr<I64Attr, [IntPositive]>:$k);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    `ins` `(` $x `,` $rows `:` type($x) `,` type($rows) `)`
    `outs` `(` $init `:` type($init) `)` attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_GroupedMatmulOp : MoE_DpsOp<"grouped_matmul", [AttrSizedOperandSegments]> {
  let summary = "one matmul per expert over its range of rows";
  let description = [{
    `lhs` `[M, K]`, `rhs` holding E experts' `[N, K]` weights, and `offsets`
    `[E + 1]`: row r in expert e's range is `lhs[r] . W[e]^T`. Rows in no
    expert's range are zero, and experts with zero rows cost nothing.
    Accumulation is f32.

    `rhs_layout` says how `rhs` stores `W[e][n, k]`:
    - `nk` (default): `[E, N, K]`, the PyTorch Linear layout;
    - `kn`: `[E, K, N]`;
    - `panels`: `[E, N / P, K, P]`, element `[e, n / P, k, n % P]`: panels
      of P columns, each contiguous along K. This is the CPU kernel's
      packed layout (`moe_mlir.pack.to_layout(w, "panels")` writes it
      from `nk`);
    - `panels_vnni`: `[E, N / P, K / 2, 2P]`, element
      `[e, n / P, k / 2, 2 (n % P) + k % 2]`: the same panels with each
      column's consecutive k in pairs (the VNNI order of `vdpbf16ps`), the
      CPU kernel's layout for bf16 weights; K must be even.

    Fused forms:
    - `gather(%rows)`: `lhs` is `[T, K]` and row r reads `lhs[rows[r] / k]`
      (the permute folded into the A-operand load);
    - `epilogue = #moe.activation<...>`: a GLU on the `[M, N]` result before
      the store (gate and up projections in one GEMM), giving `[M, N / 2]`;
    - `row_scale(%weights)`: row r is multiplied by `weights[rows[r] / k,
      rows[r] % k]` after the epilogue (routing weights in the epilogue).

    `bias(%b)` (`[E, N]`, f32, bf16 or f16, indexed by the output column n
    of `W[e]` whatever `rhs_layout` is): row r of expert e becomes
    `lhs[r] . W[e]^T + b[e]`, added to the f32 accumulator before the GLU
    epilogue and before the row scale (gpt-oss's `gate_up_proj_bias`, in
    its interleaved order, and `down_proj_bias`, which the routing weight
    then scales with the rest of the expert's output). Rows in no expert's
    range stay zero.

    `row_tiles(%tiles)`, from a `moe.row_tiles` of the same `offsets` and
    `rows`, is the schedule of row tiles that the GPU kernels take their work
    from; grouped matmuls over the same routed rows share it. It does not
    change the result, and the CPU lowerings do not read it.

    Quantized weights (`weight_quant = #moe.weight_quant<...>`, docs/
    quantization.md): `rhs` holds `f8E4M3FN` values and `rhs_scales(%s)`
    their f32 scales `[E, ceil(N / bn), ceil(K / bk)]`; the weight is
    `rhs[e, n, k] * s[e, n / bn, k / bk]`. Each A row is quantized to e4m3
    before the product (in groups of `bk` for `activation = dynamic`; by
    `lhs_scales(%si)` `[1]`, one f32 scale for the tensor, for `static`).
    The weight-only formats read `rhs` as `i8` (the `nk` layout): `mxfp4`
    and `int4` pack two 4-bit weights per byte along K (`[E, N, K / 2]`,
    the low nibble holds the even k), `int8` holds one; `mxfp4` scales are
    `f8E8M0FNU`, and `int4` takes optional `rhs_zero_points(%z)`, i8 `[E, N,
    ceil(K / g)]` (without them the zero point is 8).

    ```mlir
    %h = moe.grouped_matmul ins(%xs, %w13, %offsets
        : tensor<?x256xbf16>, tensor<8x512x128xi8>, tensor<9xi32>)
        rhs_scales(%s : tensor<8x512x2xf32>)
        rhs_zero_points(%z : tensor<8x512x2xi8>)
        outs(%init : tensor<?x512xf32>)
        {weight_quant = #moe.weight_quant<format = int4,
         block = [1, 128], activation = none>} -> tensor<?x512xf32>
    ```

    ```mlir
    %h = moe.grouped_matmul ins(%xs, %w13, %offsets
        : tensor<?x256xbf16>, tensor<8x512x256xf8E4M3FN>, tensor<9xi32>)
        rhs_scales(%s : tensor<8x4x2xf32>)
        outs(%init : tensor<?x512xf32>)
        {weight_quant = #moe.weight_quant<format = fp8_e4m3,
         block = [128, 128], activation = dynamic>} -> tensor<?x512xf32>
    ```

    ```mlir
    %h = moe.grouped_matmul ins(%xs, %w13, %offsets
        : tensor<32x64xf32>, tensor<8x256x64xf32>, tensor<9xi32>)
        outs(%init : tensor<32x256xf32>) -> tensor<32x256xf32>
    ```
  }];
  let arguments = !con((ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs,
                            AnyRankedTensor:$offsets,
                            Optional<AnyRankedTensor>:$rows,
                            Optional<AnyRankedTensor>:$row_scale,
                            Optional<AnyRankedTensor>:$bias,
                            Optional<AnyRankedTensor>:$rhs_scales,
                            Optional<AnyRankedTensor>:$lhs_scales,
                            Optional<AnyRankedTensor>:$rhs_zero_points,
                            Optional<AnyRankedTensor>:$row_tiles,
                            AnyRankedTensor:$init,
                            DefaultValuedAttr<MoE_RhsLayoutAttr,
                                "::mlir::moe::RhsLayout::nk">:$rhs_layout,
                            UnitAttr:$gather,
                            DefaultValuedAttr<I64Attr, "1">:$k,
                            OptionalAttr<MoE_ActivationAttr>:$epilogue,
                            OptionalAttr<MoE_WeightQuantAttr>:$weight_quant),
                       MoE_GluArgs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    `ins` `(` $lhs `,` $rhs `,` $offsets `:` type($lhs) `,` type($rhs) `,`
      type($offsets) `)`
    (`rows` `(` $rows^ `:` type($rows) `)`)?
    (`row_scale` `(` $row_scale^ `:` type($row_scale) `)`)?
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`rhs_scales` `(` $rhs_scales^ `:` type($rhs_scales) `)`)?
    (`lhs_scales` `(` $lhs_scales^ `:` type($lhs_scales) `)`)?
    (`rhs_zero_points` `(` $rhs_zero_points^ `:` type($rhs_zero_points) `)`)?
    (`row_tiles` `(` $row_tiles^ `:` type($row_tiles) `)`)?
    `outs` `(` $init `:` type($init) `)` attr-dict `->` type($result)
  }];
  let builders = [
    // The unfused form: no gather, epilogue or row scale; a bias if given.
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$lhs,
                   "::mlir::Value":$rhs, "::mlir::Value":$offsets,
                   "::mlir::Value":$init,
                   CArg<"::mlir::moe::RhsLayout",
                        "::mlir::moe::RhsLayout::nk">:$rhsLayout,
                   CArg<"::mlir::Value", "{}">:$bias), [{
      build($_builder, $_state, result, lhs, rhs, offsets, /*rows=*/Value(),
            /*row_scale=*/Value(), bias,
            /*rhs_scales=*/Value(), /*lhs_scales=*/Value(),
            /*rhs_zero_points=*/Value(), /*row_tiles=*/Value(), init, rhsLayout, /*gather=*/false,
            /*k=*/1, /*epilogue=*/nullptr, /*weight_quant=*/nullptr,
            GluLayout::concatenated,
            ::llvm::APFloat(1.702), ::llvm::APFloat(7.0));
    }]>
  ];
  let hasVerifier = 1;
}

def MoE_GluOp : MoE_DpsOp<"glu"> {
  let summary = "gated linear unit: act(gate) * up";
  let description = [{
    `h` `[M, 2I]` to `[M, I]`: `act(gate) * up`. With the `concatenated`
    layout gate is `h[:, :I]` and up is `h[:, I:]`; with `interleaved` gate is
    `h[:, 0::2]` and up is `h[:, 1::2]`. `swiglu_oai` (gpt-oss) clamps gate
    above at `limit` and up to `[-limit, limit]`, and computes
    `gate * sigmoid(alpha * gate) * (up + 1)`.

    ```mlir
    %a = moe.glu ins(%h : tensor<32x256xf32>) outs(%init : tensor<32x128xf32>)
        {activation = #moe.activation<silu>} -> tensor<32x128xf32>
    ```
  }];
  let arguments = !con((ins AnyRankedTensor:$h, AnyRankedTensor:$init,
                            DefaultValuedAttr<MoE_ActivationAttr,
                                "::mlir::moe::Activation::silu">:$activation),
                       MoE_GluArgs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    `ins` `(` $h `:` type($h) `)` `outs` `(` $init `:` type($init) `)`
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_CombineOp : MoE_DpsOp<"combine"> {
  let summary = "weighted sum of each token's expert outputs";
  let description = [{
    `out[t] = sum_j weights[t, j] * ys[r(t, j)]`, where `r(t, j)` is the row
    with `rows[r] = t * k + j`; summed in ascending j in f32, then cast.
    Selections without a row add nothing. Deterministic: no atomics.
    With `prescaled` the rows already carry their routing weights (the
    `row_scale` epilogue of the grouped matmul that produced them), so they
    are summed unweighted; `weights` still gives T and k.
    `row_of(%row_of)` `[T * k]` is the inverse of `rows`, as `moe.dispatch`
    returns it: where it is given, the combine reads each selection's row
    there instead of inverting `rows`.

    ```mlir
    %y = moe.combine ins(%ys, %rows, %w
        : tensor<32x64xf32>, tensor<32xi32>, tensor<16x2xf32>)
        outs(%init : tensor<16x64xf32>) -> tensor<16x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$ys, AnyRankedTensor:$rows,
                       AnyRankedTensor:$weights,
                       Optional<AnyRankedTensor>:$row_of,
                       AnyRankedTensor:$init, UnitAttr:$prescaled);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    `ins` `(` $ys `,` $rows `,` $weights `:` type($ys) `,` type($rows) `,`
      type($weights) `)`
    (`row_of` `(` $row_of^ `:` type($row_of) `)`)?
    `outs` `(` $init `:` type($init) `)` attr-dict `->` type($result)
  }];
  let builders = [
    // Without the inverse rows.
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$ys,
                   "::mlir::Value":$rows, "::mlir::Value":$weights,
                   "::mlir::Value":$init, CArg<"bool", "false">:$prescaled), [{
      build($_builder, $_state, result, ys, rows, weights, /*row_of=*/Value(),
            init, prescaled);
    }]>
  ];
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEEXPERTOPS_TD
