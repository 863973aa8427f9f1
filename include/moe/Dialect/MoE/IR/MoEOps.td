//===- MoEOps.td - Operations of the moe dialect -----------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/OpBase.td"

// Routing attributes shared by moe.route and moe.layer.
defvar MoE_RoutingArgs = (ins
    ConfinedAttr<I64Attr, [IntPositive]>:$k,
    DefaultValuedAttr<MoE_ScoringAttr, "::mlir::moe::Scoring::softmax">:$scoring,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<MoE_GroupScoreAttr,
                      "::mlir::moe::GroupScore::sum_top2">:$group_score,
    UnitAttr:$renormalize,
    DefaultValuedAttr<F64Attr, "0.0">:$renorm_epsilon,
    DefaultValuedAttr<F64Attr, "1.0">:$scale,
    DefaultValuedAttr<MoE_SecondExpertPolicyAttr,
                      "::mlir::moe::SecondExpertPolicy::all">:$second_expert_policy,
    DefaultValuedAttr<I64Attr, "0">:$seed);

// Capacity attributes shared by moe.dispatch and moe.layer.
defvar MoE_CapacityArgs = (ins
    OptionalAttr<I64Attr>:$capacity,
    OptionalAttr<F64Attr>:$capacity_factor,
    DefaultValuedAttr<MoE_DropPolicyAttr,
                      "::mlir::moe::DropPolicy::position">:$drop_policy);

// Activation attributes shared by moe.glu, moe.grouped_matmul and moe.layer.
defvar MoE_GluArgs = (ins
    DefaultValuedAttr<MoE_GluLayoutAttr,
                      "::mlir::moe::GluLayout::concatenated">:$glu_layout,
    DefaultValuedAttr<F64Attr, "1.702">:$alpha,
    DefaultValuedAttr<F64Attr, "7.0">:$limit);

class MoE_DpsOp<string mnemonic, list<Trait> traits = []>
    : MoE_Op<mnemonic, !listconcat(traits, [Pure,
        DestinationStyleOpInterface])> {
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() { return getInitMutable(); }
  }];
}

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

def MoE_RouteOp : MoE_Op<"route", [Pure]> {
  let summary = "top-k routing: router logits to expert weights and ids";
  let description = [{
    Turns router logits `[T, E]` (f32) into per-token expert weights `[T, k]`
    (f32) and expert ids `[T, k]` (i32).

    - `scoring`: `softmax` (p = softmax over E), `sigmoid` (p = sigmoid of the
      logit), `softmax_topk` (pick the k largest logits, then softmax over
      those k, as gpt-oss), `none` (p = logit).
    - The selection score is `s = p + bias` when `bias` `[E]` is given, else
      `p`. The bias changes which experts are chosen, never the weights.
    - Group-limited selection (`n_group > 1`): experts form `n_group` equal
      groups; the `topk_group` best groups by `group_score` (`sum_top2` or
      `max` of s) stay, the others are masked to -inf.
    - The k best experts by s are chosen; ties go to the lower expert index
      and NaN ranks below -inf. Slot j holds the j-th best.
    - `renormalize`: w = p_sel / (sum(p_sel) + `renorm_epsilon`); then
      w *= `scale`.
    - `second_expert_policy = random` (GShard, k = 2, renormalize): the second
      selection is kept only if u < 2 * w2, where u in [0, 1) is a
      counter-based (splitmix64) draw keyed by (`seed`, token index). A dropped
      selection has id -1 and weight 0.

    Example (DeepSeek-V3):

    ```mlir
    %w, %ids = moe.route %logits bias(%bias : tensor<256xf32>)
        {k = 8 : i64, scoring = #moe.scoring<sigmoid>, n_group = 8 : i64,
         topk_group = 4 : i64, renormalize, renorm_epsilon = 1.0e-20 : f64,
         scale = 2.5 : f64}
        : tensor<?x256xf32> -> tensor<?x8xf32>, tensor<?x8xi32>
    ```
  }];
  let arguments = !con((ins AnyRankedTensor:$logits,
                            Optional<AnyRankedTensor>:$bias), MoE_RoutingArgs);
  let results = (outs AnyRankedTensor:$weights, AnyRankedTensor:$ids);
  let assemblyFormat = [{
    $logits (`bias` `(` $bias^ `:` type($bias) `)`)? attr-dict
    `:` type($logits) `->` type($weights) `,` type($ids)
  }];
  let hasVerifier = 1;
}

def MoE_ExpertChoiceOp : MoE_Op<"expert_choice", [Pure]> {
  let summary = "expert-choice routing: each expert picks its best tokens";
  let description = [{
    Each expert picks the `C = min(capacity, T)` tokens with the largest
    softmax score (softmax over E per token; ties go to the lower token). The
    result is already in the dispatched layout, with a virtual `k = E`:

    - `weights` `[T, E]`: the score where (t, e) was chosen, else 0;
    - `rows` `[E * C]`: expert e's tokens in ascending order, each stored as
      the flat selection index `t * E + e`;
    - `offsets` `[E + 1]`: `offsets[e] = e * C`.

    ```mlir
    %w, %rows, %offsets = moe.expert_choice %logits {capacity = 4 : i64}
        : tensor<16x8xf32> -> tensor<16x8xf32>, tensor<32xi32>, tensor<9xi32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$logits,
                       ConfinedAttr<I64Attr, [IntPositive]>:$capacity);
  let results = (outs AnyRankedTensor:$weights, AnyRankedTensor:$rows,
                      AnyRankedTensor:$offsets);
  let assemblyFormat = [{
    $logits attr-dict `:` type($logits) `->` type($weights) `,` type($rows)
    `,` type($offsets)
  }];
  let hasVerifier = 1;
}

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure, AttrSizedOperandSegments,
                                          AttrSizedResultSegments]> {
  let summary = "sorts routed selections into the grouped layout";
  let description = [{
    Sorts the selections `ids` `[T, k]` by expert. `rows` `[M]` holds the flat
    selection index `t * k + j` of every kept row, grouped by expert and
    stable (by t, then j) within an expert; entries from `offsets[L]` on are
    -1. Expert e owns `rows[offsets[e] ..< offsets[e + 1]]`.

    - `capacity` C, or `capacity_factor` f with C = ceil(f * T * k / E):
      an expert keeps at most C selections. `drop_policy = position` keeps
      slot-major order (every token's first choice in token order, then every
      second choice, ...); `score` keeps the largest `weights` (ties: lower
      token). Dropped selections get no row.
    - `expert_map` `[E]` (global expert to local index, -1 = not on this
      device): only local experts get rows, and `offsets` has one entry per
      local expert plus one.
    - Ids outside `[0, E)` (such as a dropped GShard selection) get no row.
    - The optional third result `row_of` `[T * k]` is the inverse of `rows`:
      `row_of[t * k + j]` is the row r with `rows[r] = t * k + j`, or -1 for
      a selection without a row. A `moe.combine` of the same rows takes it
      (`row_of(...)`) instead of inverting `rows` itself; the GPU kernels
      write it while they sort.
    - The optional result `row_tiles` is the schedule of row tiles of the
      GPU grouped matmuls over `rows` and `offsets`, exactly what a
      `moe.row_tiles` of them with the same `small_tile_rows`,
      `large_tile_rows` and `large_rows_per_expert` (given with it, and only
      with it) holds. `moe-gpu-share-row-tiles` moves the schedule here
      (`dispatch-row-tiles`): the one-block sort of a decode-sized dispatch
      (T * k <= 256) writes it from the counts it already holds, so the
      schedule takes no launch of its own; larger dispatches schedule it
      after their sort.

    ```mlir
    %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64}
        : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
    %rows2, %offsets2, %row_of = moe.dispatch %ids {num_experts = 8 : i64}
        : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>, tensor<?xi32>
    %rows3, %offsets3, %tiles = moe.dispatch %ids {num_experts = 8 : i64,
        small_tile_rows = 16 : i64, large_tile_rows = 128 : i64,
        large_rows_per_expert = 8 : i64}
        : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32> row_tiles tensor<?xi32>
    ```
  }];
  let arguments = !con((ins AnyRankedTensor:$ids,
                            Optional<AnyRankedTensor>:$weights,
                            Optional<AnyRankedTensor>:$expert_map,
                            ConfinedAttr<I64Attr, [IntPositive]>:$num_experts),
                       MoE_CapacityArgs,
                       (ins OptionalAttr<ConfinedAttr<I64Attr, [IntPositive]>>:$small_tile_rows,
                            OptionalAttr<ConfinedAttr<I64Attr, [IntPositive]>>:$large_tile_rows,
                            OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$large_rows_per_expert));
  let results = (outs AnyRankedTensor:$rows, AnyRankedTensor:$offsets,
                      Optional<AnyRankedTensor>:$row_of,
                      Optional<AnyRankedTensor>:$row_tiles);
  // `row_tiles` is spelled out: after the optional `row_of`, a bare third
  // type would be ambiguous.
  let assemblyFormat = [{
    $ids (`weights` `(` $weights^ `:` type($weights) `)`)?
    (`expert_map` `(` $expert_map^ `:` type($expert_map) `)`)? attr-dict
    `:` type($ids) `->` type($rows) `,` type($offsets)
    (`,` type($row_of)^)? (`row_tiles` type($row_tiles)^)?
  }];
  let builders = [
    // Without the inverse rows and the row tiles.
    OpBuilder<(ins "::mlir::Type":$rows, "::mlir::Type":$offsets,
                   "::mlir::Value":$ids, "::mlir::Value":$weights,
                   "::mlir::Value":$expertMap, "::mlir::IntegerAttr":$numExperts,
                   "::mlir::IntegerAttr":$capacity,
                   "::mlir::FloatAttr":$capacityFactor,
                   "::mlir::moe::DropPolicyAttr":$dropPolicy), [{
      build($_builder, $_state, rows, offsets, /*row_of=*/::mlir::Type(),
            /*row_tiles=*/::mlir::Type(), ids, weights, expertMap, numExperts,
            capacity, capacityFactor, dropPolicy,
            /*small_tile_rows=*/::mlir::IntegerAttr(),
            /*large_tile_rows=*/::mlir::IntegerAttr(),
            /*large_rows_per_expert=*/::mlir::IntegerAttr());
    }]>
  ];
  let hasVerifier = 1;
}

def MoE_RowTilesOp : MoE_Op<"row_tiles", [Pure]> {
  let summary = "the schedule of row tiles of grouped matmuls on the GPU";
  let description = [{
    The row tiles that the GPU kernels of grouped matmuls over `rows` `[M]`
    and `offsets` `[E + 1]` take their work from. Each kernel picks its tile
    rows on the host from the average rows per expert: `large_tile_rows`
    where `M / E >= large_rows_per_expert`, else `small_tile_rows` (the
    `moe.gpu_kernels` of the matmuls that read it, which must name the same
    tile rows and threshold). The result `[1 + 2 * tiles]` holds the number
    of tiles, then each tile's expert and first row as a pair, for up to
    `tiles = ceil(M / R) + min(E, M) + 1` tiles of R = min(small_tile_rows,
    large_tile_rows) rows: tile t covers rows `[first, min(first + R', end
    of its expert))` of its expert, for the picked tile rows R'.

    `moe-gpu-share-row-tiles` adds it before the first grouped matmul over a
    set of routed rows and hands it to each of them (`row_tiles(...)`), so
    that a layer's two matmuls schedule their tiles once; two of them over
    the same rows and tile sizes are one after CSE.

    ```mlir
    %tiles = moe.row_tiles %offsets, %rows {small_tile_rows = 16 : i64,
        large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
        : tensor<9xi32>, tensor<?xi32> -> tensor<?xi32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$offsets, AnyRankedTensor:$rows,
                       ConfinedAttr<I64Attr, [IntPositive]>:$small_tile_rows,
                       ConfinedAttr<I64Attr, [IntPositive]>:$large_tile_rows,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$large_rows_per_expert);
  let results = (outs AnyRankedTensor:$tiles);
  let assemblyFormat = [{
    $offsets `,` $rows attr-dict `:` type($offsets) `,` type($rows) `->`
      type($tiles)
  }];
  let hasVerifier = 1;
}

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

//===----------------------------------------------------------------------===//
// Whole layer
//===----------------------------------------------------------------------===//

def MoE_LayerOp : MoE_DpsOp<"layer", [AttrSizedOperandSegments]> {
  let summary = "a whole MoE layer, from hidden states to the combined output";
  let description = [{
    `x` `[T, H]`, `router` `[E, H]`, optional `bias` `[E]`, `w13` `[E, 2I, H]`
    (gate and up), `w2` `[E, H, I]`, and an optional shared expert
    (`shared_w13` `[2Is, H]`, `shared_w2` `[H, Is]`, optional sigmoid gate
    `shared_gate` `[1, H]`) to `y` `[T, H]`. Takes every routing, capacity and
    activation attribute. `moe-decompose-layer` rewrites it into the router
    matmul and the unfused ops; `y` is the combine plus the shared expert.
    `weight_layout` is the `rhs_layout` of the routed experts' `w13` and `w2`
    (`[E, 2I / P, H, P]` and `[E, H / P, I, P]` for `panels`,
    `[E, 2I / P, H / 2, 2P]` and `[E, H / P, I / 2, 2P]` for `panels_vnni`); the shared
    expert stays in the Linear layout.

    `bias` is the selection bias of `moe.route` (DeepSeek-V3's correction
    bias: it picks experts, never weights them). The Linear biases of gpt-oss
    are separate operands, each optional:
    - `router_bias` `[E]`: the router logits are `x . router^T +
      router_bias` (gpt-oss's `router.bias`), before any scoring;
    - `w13_bias` `[E, 2I]`: added to the gate/up projection before the
      activation, in the `glu_layout` order (`experts.gate_up_proj_bias`);
    - `w2_bias` `[E, H]`: added to the down projection, before the routing
      weight scales the expert's output (`experts.down_proj_bias`).
    Biases are f32, bf16 or f16 and are added in f32.

    With `weight_quant`, `w13` and `w2` hold quantized weights and
    `scales(%s13, %s2)` their scales (`[E, ceil(2I / bn), ceil(H / bk)]`
    and `[E, ceil(H / bn), ceil(I / bk)]`); `activation = static` takes
    `input_scales(%i13, %i2)`, each `[1]`. Both grouped matmuls quantize
    their inputs (x, and the GLU output). The shared expert is not
    quantized.

    ```mlir
    %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x256xbf16>,
        tensor<8x256xbf16>, tensor<8x512x256xf8E4M3FN>,
        tensor<8x256x256xf8E4M3FN>)
        scales(%s13, %s2 : tensor<8x4x2xf32>, tensor<8x2x2xf32>)
        outs(%init : tensor<?x256xbf16>) {k = 2 : i64, renormalize,
        weight_quant = #moe.weight_quant<format = fp8_e4m3,
        block = [128, 128], activation = dynamic>} -> tensor<?x256xbf16>
    ```

    ```mlir
    %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xf32>,
        tensor<8x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>)
        outs(%init : tensor<?x64xf32>) {k = 2 : i64, renormalize}
        -> tensor<?x64xf32>
    ```

    gpt-oss (router and expert biases, interleaved gate/up, clamped SwiGLU):

    ```mlir
    %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>,
        tensor<8x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>)
        router_bias(%br : tensor<8xbf16>)
        w13_bias(%b13 : tensor<8x256xbf16>) w2_bias(%b2 : tensor<8x64xbf16>)
        outs(%init : tensor<?x64xbf16>)
        {k = 4 : i64, scoring = #moe.scoring<softmax_topk>,
         activation = #moe.activation<swiglu_oai>,
         glu_layout = #moe.glu_layout<interleaved>}
        -> tensor<?x64xbf16>
    ```
  }];
  let arguments = !con((ins AnyRankedTensor:$x, AnyRankedTensor:$router,
                            AnyRankedTensor:$w13, AnyRankedTensor:$w2,
                            Optional<AnyRankedTensor>:$bias,
                            Optional<AnyRankedTensor>:$router_bias,
                            Optional<AnyRankedTensor>:$w13_bias,
                            Optional<AnyRankedTensor>:$w2_bias,
                            Optional<AnyRankedTensor>:$shared_w13,
                            Optional<AnyRankedTensor>:$shared_w2,
                            Optional<AnyRankedTensor>:$shared_gate,
                            Optional<AnyRankedTensor>:$w13_scales,
                            Optional<AnyRankedTensor>:$w2_scales,
                            Optional<AnyRankedTensor>:$w13_input_scales,
                            Optional<AnyRankedTensor>:$w2_input_scales,
                            Optional<AnyRankedTensor>:$w13_zero_points,
                            Optional<AnyRankedTensor>:$w2_zero_points,
                            AnyRankedTensor:$init),
                       MoE_RoutingArgs, MoE_CapacityArgs,
                       (ins DefaultValuedAttr<MoE_ActivationAttr,
                                "::mlir::moe::Activation::silu">:$activation,
                            DefaultValuedAttr<MoE_RhsLayoutAttr,
                                "::mlir::moe::RhsLayout::nk">:$weight_layout,
                            OptionalAttr<MoE_WeightQuantAttr>:$weight_quant),
                       MoE_GluArgs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    `ins` `(` $x `,` $router `,` $w13 `,` $w2 `:` type($x) `,` type($router)
      `,` type($w13) `,` type($w2) `)`
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`router_bias` `(` $router_bias^ `:` type($router_bias) `)`)?
    (`w13_bias` `(` $w13_bias^ `:` type($w13_bias) `)`)?
    (`w2_bias` `(` $w2_bias^ `:` type($w2_bias) `)`)?
    (`shared` `(` $shared_w13^ `,` $shared_w2 `:` type($shared_w13) `,`
      type($shared_w2) `)`)?
    (`shared_gate` `(` $shared_gate^ `:` type($shared_gate) `)`)?
    (`scales` `(` $w13_scales^ `,` $w2_scales `:` type($w13_scales) `,`
      type($w2_scales) `)`)?
    (`input_scales` `(` $w13_input_scales^ `,` $w2_input_scales `:`
      type($w13_input_scales) `,` type($w2_input_scales) `)`)?
    (`zero_points` `(` $w13_zero_points^ `,` $w2_zero_points `:`
      type($w13_zero_points) `,` type($w2_zero_points) `)`)?
    `outs` `(` $init `:` type($init) `)` attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Training-side values
//===----------------------------------------------------------------------===//

def MoE_AuxLossOp : MoE_Op<"aux_loss", [Pure]> {
  let summary = "Switch/GShard load-balancing loss";
  let description = [{
    `E * sum_e f_e * P_e`, where `f_e` is the number of selections of expert
    e in `ids` `[T, k]` divided by T, and `P_e` is the mean over tokens of
    softmax(`logits` `[T, E]`)[t, e]. Ids outside `[0, E)` are not counted.

    ```mlir
    %l = moe.aux_loss %logits, %ids : tensor<16x8xf32>, tensor<16x2xi32>
        -> tensor<f32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$ids);
  let results = (outs AnyRankedTensor:$loss);
  let assemblyFormat = [{
    $logits `,` $ids attr-dict `:` type($logits) `,` type($ids) `->` type($loss)
  }];
  let hasVerifier = 1;
}

def MoE_ZLossOp : MoE_Op<"z_loss", [Pure]> {
  let summary = "router z-loss: mean of squared logsumexp";
  let description = [{
    The mean over tokens of `logsumexp(logits[t])^2` for `logits` `[T, E]`.

    ```mlir
    %l = moe.z_loss %logits : tensor<16x8xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$logits);
  let results = (outs AnyRankedTensor:$loss);
  let assemblyFormat = "$logits attr-dict `:` type($logits) `->` type($loss)";
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
