//===- MoERoutingOps.td - Routing ops of the moe dialect ---*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEROUTINGOPS_TD
#define MOE_DIALECT_MOE_IR_MOEROUTINGOPS_TD

include "moe/Dialect/MoE/IR/MoEOpBase.td"

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

def MoE_RouteOp : MoE_Op<"route", [Pure,
    DeclareOpInterfaceMethods<ReifyRankedShapedTypeOpInterface,
        ["reifyResultShapes"]>]> {
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
    AttrSizedResultSegments,
    DeclareOpInterfaceMethods<ReifyRankedShapedTypeOpInterface,
        ["reifyResultShapes"]>]> {
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

#endif // MOE_DIALECT_MOE_IR_MOEROUTINGOPS_TD
