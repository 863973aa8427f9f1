//===- GroupedMatmul.h - A grouped matmul as its kernels see it -*- C++ -*-===//
//
// The buffers, sizes and per-element epilogue of one moe.grouped_matmul,
// shared by every kernel that computes it: the gathered rows it reads, the
// expert ranges, the bias, GLU and row scale, and the output stores.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_GROUPEDMATMUL_H
#define MOE_LIB_CONVERSION_MOETOGPU_GROUPEDMATMUL_H

#include "Fp8Matmul.h"
#include "KernelBuilder.h"

#include <optional>

namespace mlir::moe::gpu_lowering {

class GroupedMatmul {
public:
  /// Reads `op`'s operands (`operands`) as buffers and allocates its output.
  GroupedMatmul(GroupedMatmulOp op, GroupedMatmulOp::Adaptor operands,
                KernelBuilder &b);

  /// The lhs row that output row r reads and whether it exists.
  std::pair<Value, Value> sourceRow(KernelBuilder &b, Value r) const;

  /// The routing weight that output row r is scaled by (0 for a row of no
  /// selection), or null without a row scale. `r` must be a row of the
  /// output.
  Value rowScale(KernelBuilder &b, Value r) const;

  /// Bias, GLU and row scale (`factor`, from rowScale, or null) of output
  /// column `column` of a row of expert `expert`, as f32: `value` is the
  /// f32 accumulator of that column (of its gate column for a GLU) and `up`
  /// that of its up column. `expert` may be null without a bias.
  Value epilogue(KernelBuilder &b, Value expert, Value column, Value value,
                 Value up, Value factor) const;

  /// Bias, GLU, row scale and cast of one output element, then the store.
  void storeOutput(KernelBuilder &b, Value expert, Value r, Value column,
                   Value value, Value up) const;

  /// Whether the output is aligned to a pair of elements, which a caller's
  /// buffer, aligned to its element only, may not be.
  Value outputPairAligned(KernelBuilder &b) const {
    return b.alignedTo(out.buffer, pairBytes());
  }

  int64_t pairBytes() const { return 2 * outType.getIntOrFloatBitWidth() / 8; }

  /// Whether a lane's two adjacent columns of each tile are stored as a
  /// pair (storePair), with one routing weight per row.
  bool storesPairs() const { return !interleaved && width % 2 == 0; }

  /// Two adjacent output elements (columns `column`, `column + 1`, which
  /// the caller keeps inside the row and even with an even width) in one
  /// store where the output is `aligned` to a pair (outputPairAligned),
  /// else in two.
  void storePair(KernelBuilder &b, Value aligned, Value r, Value column,
                 Value first, Value second) const;

  /// The experts' rows of the output.
  ExpertRows expertRows() const { return {offsets, numRows, numExperts}; }
  /// [lo, hi) of expert e, clamped to the output rows.
  std::pair<Value, Value> expertRange(KernelBuilder &b, Value e) const {
    return expertRows().range(b, e);
  }

  mutable GroupedMatmulOp op;
  // reduction: K in weights (the packed 4-bit formats store K / 2 bytes).
  int64_t numExperts, n, reduction, width;
  bool kn, glu, interleaved;
  Type outType, lhsType, rhsElement;
  Value lhs, rhs, rows, scale, bias, numRows, gatherTokens, scaleTokens;
  OffsetsSource offsets;
  OutputBuffer out;
  // Quantized weights: the weight_quant attribute, the scale operands
  // (lhsScales for static activations, rhsZeroPoints for asymmetric int4);
  // for FP8, the layout of its K blocks and the quantized activations
  // (quantizeActivations).
  WeightQuantAttr quant;
  std::optional<Fp8Layout> fp8;
  Value rhsScales, lhsScales, rhsZeroPoints, quantLhs, quantScales;
};

/// The simt kernel (SimtMatmulKernel.cpp): one thread per output element,
/// for what tensor cores cannot take.
void launchSimtMatmul(KernelBuilder &b, const GroupedMatmul &mm);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_GROUPEDMATMUL_H
