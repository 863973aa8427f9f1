//===- GroupedMatmulVerifier.cpp - The verifier of moe.grouped_matmul ---===//
//
// Every diagnostic names the offending operand or attribute and says what was
// expected, so a user can fix the IR without reading this file.
//
//===----------------------------------------------------------------------===//

#include "TensorChecks.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::checks;

LogicalResult GroupedMatmulOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getLhs(), "lhs", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, K]")) ||
      failed(c.isStatic(getLhs(), "lhs", 1, "K")))
    return failure();
  WeightQuantAttr quant = getWeightQuantAttr();
  FailureOr<WeightShape> rhsShape = verifyQuantizedWeights(
      c, *this, getRhs(), "rhs", getRhsLayout(), "rhs_layout", quant);
  if (failed(rhsShape))
    return failure();
  int64_t numExperts = rhsShape->experts;
  int64_t n = rhsShape->columns;
  int64_t reduction = c.shape(getLhs())[1];
  if (rhsShape->reduction != reduction)
    return emitOpError() << "'rhs' has reduction size K = "
                         << rhsShape->reduction
                         << ", which must equal K, the width of 'lhs', "
                         << reduction;
  if (failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.isStatic(getOffsets(), "offsets", 0, "E + 1")))
    return failure();
  if (c.shape(getOffsets())[0] != numExperts + 1)
    return emitOpError() << "'offsets' must have length E + 1 = "
                         << numExperts + 1 << " for the " << numExperts
                         << " experts of 'rhs', got " << getOffsets().getType();
  if (failed(verifyLinearBias(c, getBias(), "bias", numExperts, "E", n, "N")) ||
      failed(verifyWeightQuantOperands(
          *this, getWeightQuantAttr(), *rhsShape, getRhs(), "rhs",
          getRhsScales(), "rhs_scales", getLhsScales(), "lhs_scales",
          getRhsZeroPoints(), "rhs_zero_points")))
    return failure();

  if (getGather() && !getRows())
    return emitOpError() << "'gather' needs the 'rows' operand";
  if (getRowScale() && !getRows())
    return emitOpError() << "'row_scale' needs the 'rows' operand";
  if (getRows() && !getGather() && !getRowScale())
    return emitOpError() << "'rows' is used only with 'gather' or 'row_scale'";
  if (getK() < 1)
    return emitOpError() << "k = " << getK() << " must be >= 1";
  int64_t numRows = c.shape(getLhs())[0];
  if (getRows()) {
    if (failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")))
      return failure();
    if (getGather())
      numRows = c.shape(getRows())[0];
    else if (failed(c.dimIs(getRows(), "rows", 0, numRows,
                            "M, the rows of 'lhs'")))
      return failure();
  }
  if (getRowScale() &&
      (failed(c.tensor(getRowScale(), "row_scale", 2, isF32,
                       "2-D f32 tensor [T, k]")) ||
       failed(c.dimIs(getRowScale(), "row_scale", 1, getK(), "k"))))
    return failure();
  if (Value tiles = getRowTiles();
      tiles && !rowTileShapesOver(tiles, getOffsets(), getRows()))
    return emitOpError() << "'row_tiles' must be a moe.row_tiles of this "
                            "op's 'offsets' and 'rows', or the 'row_tiles' "
                            "result of the moe.dispatch that returns them";

  int64_t width = n;
  if (auto epilogue = getEpilogue()) {
    if (failed(verifyGluWidth(*this, "rhs", n)) ||
        failed(verifyActivation(*this, getAlpha().convertToDouble(),
                                getLimit().convertToDouble())))
      return failure();
    width = n / 2;
  }
  if (failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, N]")) ||
      failed(c.dimIs(getInit(), "init", 0, numRows, "M")) ||
      failed(c.dimIs(getInit(), "init", 1, width,
                     getEpilogue() ? "N / 2 after the GLU epilogue" : "N")))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}
