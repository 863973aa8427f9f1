//===- GroupedMatmulKernel.h - CPU grouped matmul kernels -------*- C++ -*-===//
//
// What the two CPU kernels of moe.grouped_matmul share: an scf.forall over
// (column tile, expert) work items, each computing one tile of the result in
// place, and the per-row bookkeeping of the fused forms (gather, bias, row
// scale).
// The weights' layout picks the inner kernel:
//
// - nk (`[E, N, K]`): DotProductKernel, f32 vector FMAs along K;
// - kn (`[E, K, N]`), panels (`[E, N / P, K, P]`) and panels_vnni
//   (`[E, N / P, K / 2, 2P]`): OuterProductKernel, rank-1 (rank-2 for VNNI
//   pairs) updates of a block of rows by a panel of weight columns, with a
//   vectorized epilogue;
// - quantized weights in panels: LowBitPanelKernel (LowBitPanelKernel.h),
//   the same blocks with each weight vector decoded once per stored row.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOVECTOR_GROUPEDMATMULKERNEL_H
#define MOE_LIB_CONVERSION_MOETOVECTOR_GROUPEDMATMULKERNEL_H

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

namespace mlir::moe {

/// Tile sizes of the CPU kernels (the pass options of convert-moe-to-vector).
struct KernelShape {
  int64_t vectorWidth;
  // nk weights.
  int64_t rowBlock;
  int64_t columnBlock;
  int64_t columnTile;
  // kn weights.
  int64_t panelRowBlock;
  // Panels of output columns (each two weight vectors) sharing each A
  // broadcast.
  int64_t panelColumnBlock;
  int64_t panelColumnTile;
  int64_t prefetchDistance;
  // panels_vnni weights: vdpbf16ps (AVX512_BF16) for the k-pairs.
  bool bf16DotProduct;
  // 4-bit weights: a 16-entry f32 table looked up with vpermps (AVX-512F).
  bool tablePermute;
};

/// One routed row of a block: where its A row is read and its scale.
struct BlockRow {
  Value aRow;  // index of the A row in lhs
  Value scale; // f32 factor applied after the epilogue (0 for no row)
};

/// Loops over [0, count) in steps of blocks[0] while a whole block remains,
/// then of blocks[1], and so on; `blocks` is decreasing and ends with 1.
/// `init` is threaded through; `body(builder, start, size, iter)` computes
/// one step of `size` rows or columns starting at `start`.
Value blockedLoop(
    StructuredBuilder &b, Value count, ArrayRef<int64_t> blocks, Value init,
    function_ref<Value(StructuredBuilder &, Value, int64_t, Value)> body);

class GroupedMatmulKernel {
public:
  GroupedMatmulKernel(GroupedMatmulOp op, StructuredBuilder &b,
                      KernelShape shape, int64_t columnTile);
  virtual ~GroupedMatmulKernel() = default;

  /// The result of the op: a zero-filled init with every expert's tiles
  /// computed in place.
  Value build();

  /// `width` elements of `source` at [indices..., k], extended to f32.
  static Value loadF32(StructuredBuilder &b, Value source,
                       ArrayRef<Value> indices, int64_t width, bool inBounds);

protected:
  /// Computes rows [0, rowCount) of expert `expert` (global rows from `lo`)
  /// and output columns [col0, col0 + colCount) into `tile`.
  virtual Value computeTile(StructuredBuilder &b, Value expert, Value lo,
                            Value rowCount, Value col0, Value colCount,
                            Value tile) = 0;

  /// Where global row `row` reads its A row, and its scale.
  BlockRow blockRow(StructuredBuilder &b, Value row);

  /// The op's bias[expert, column] as an f32 scalar; null without a bias.
  Value biasTerm(StructuredBuilder &b, Value expert, Value column);

  /// The op's bias[expert, column .. column + width) as a vector<width x f32>
  /// (0 past N where `inBounds` is false), for accumulators of that type
  /// whatever the width, 1 included; null without a bias.
  Value biasVector(StructuredBuilder &b, Value expert, Value column,
                   int64_t width, bool inBounds);

  /// `value` plus `term` (from biasTerm or biasVector, of `value`'s type),
  /// or `value` where `term` is null.
  static Value addBias(StructuredBuilder &b, Value value, Value term);

  GroupedMatmulOp op;
  StructuredBuilder &b;
  KernelShape shape;
  int64_t columnTile;
  int64_t numExperts, n, reduction, width, panelWidth;
  bool glu;
  Type outType;

private:
  /// offsets[i] as an index clamped to [lower, numRows].
  Value clampedOffset(Value i, Value numRows, Value lower);
};

/// Whether the kernels cover `op`'s weight quantization (always for
/// unquantized weights): FP8 weights in the nk layout, activations already
/// quantized (moe-quantize-activations), and a scale block along K that
/// is a multiple of the vector width or spans K, so that every weight
/// vector has one scale; or weight-only mxfp4, int4 and int8 weights in
/// the nk layout (WeightOnlySteps.h says when). Otherwise `why` says what
/// is missing.
bool quantizedKernelApplies(GroupedMatmulOp op, KernelShape shape,
                            std::string &why);

/// The result of `op` (nk weights) computed by DotProductKernel.
Value buildDotProductKernel(GroupedMatmulOp op, StructuredBuilder &b,
                            KernelShape shape);

/// Whether OuterProductKernel covers `op`: kn weights, or panels (bf16 ones
/// for panels_vnni) whose width P and GLU half width are multiples of the
/// vector width.
bool outerProductKernelApplies(GroupedMatmulOp op, KernelShape shape);

/// The result of `op` (kn, panels or panels_vnni weights) computed by
/// OuterProductKernel.
Value buildOuterProductKernel(GroupedMatmulOp op, StructuredBuilder &b,
                              KernelShape shape);

} // namespace mlir::moe

#endif // MOE_LIB_CONVERSION_MOETOVECTOR_GROUPEDMATMULKERNEL_H
