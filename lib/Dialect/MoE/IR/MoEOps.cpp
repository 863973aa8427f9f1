//===- MoEOps.cpp - Verifiers of the moe operations -----------------------===//
//
// Every diagnostic names the offending operand or attribute and says what was
// expected, so a user can fix the IR without reading this file.
//
//===----------------------------------------------------------------------===//

#include "TensorChecks.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::checks;

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

LogicalResult RouteOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")) ||
      failed(c.isStatic(getLogits(), "logits", 1, "E")))
    return failure();
  int64_t tokens = c.shape(getLogits())[0];
  int64_t numExperts = c.shape(getLogits())[1];
  if (failed(verifyRouting(
          *this, numExperts, getK(), getNGroup(), getTopkGroup(),
          getGroupScore(), getSecondExpertPolicy(), getRenormalize(),
          getRenormEpsilon().convertToDouble(), getScale().convertToDouble())))
    return failure();
  if (getBias() &&
      (failed(c.tensor(getBias(), "bias", 1, isF32, "1-D f32 tensor [E]")) ||
       failed(c.dimIs(getBias(), "bias", 0, numExperts, "E"))))
    return failure();
  if (failed(c.tensor(getWeights(), "weights", 2, isF32,
                      "2-D f32 tensor [T, k]")) ||
      failed(c.dimIs(getWeights(), "weights", 0, tokens, "T")) ||
      failed(c.dimIs(getWeights(), "weights", 1, getK(), "k")) ||
      failed(c.tensor(getIds(), "ids", 2, isI32, "2-D i32 tensor [T, k]")) ||
      failed(c.dimIs(getIds(), "ids", 0, tokens, "T")) ||
      failed(c.dimIs(getIds(), "ids", 1, getK(), "k")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertChoiceOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertChoiceOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")) ||
      failed(c.isStatic(getLogits(), "logits", 1, "E")))
    return failure();
  int64_t tokens = c.shape(getLogits())[0];
  int64_t numExperts = c.shape(getLogits())[1];
  int64_t perExpert = ShapedType::isDynamic(tokens)
                          ? ShapedType::kDynamic
                          : std::min<int64_t>(getCapacity(), tokens);
  int64_t numRows = ShapedType::isDynamic(perExpert) ? ShapedType::kDynamic
                                                     : numExperts * perExpert;
  if (failed(c.tensor(getWeights(), "weights", 2, isF32,
                      "2-D f32 tensor [T, E]")) ||
      failed(c.dimIs(getWeights(), "weights", 0, tokens, "T")) ||
      failed(c.dimIs(getWeights(), "weights", 1, numExperts, "E")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32,
                      "1-D i32 tensor [E * min(capacity, T)]")) ||
      failed(c.dimIs(getRows(), "rows", 0, numRows, "E * min(capacity, T)")) ||
      failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.dimIs(getOffsets(), "offsets", 0, numExperts + 1, "E + 1")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

/// The row_tiles result and the attributes that describe it come together.
static LogicalResult verifyRowTilesResult(DispatchOp op) {
  int given = op.getSmallTileRows().has_value() +
              op.getLargeTileRows().has_value() +
              op.getLargeRowsPerExpert().has_value();
  if (!op.getRowTiles()) {
    if (given)
      return op.emitOpError()
             << "small_tile_rows, large_tile_rows and large_rows_per_expert "
                "describe the 'row_tiles' result, which the op does not "
                "return";
    return success();
  }
  if (given != 3)
    return op.emitOpError() << "'row_tiles' needs small_tile_rows, "
                               "large_tile_rows and large_rows_per_expert";
  TensorChecker c(op);
  if (failed(c.tensor(op.getRowTiles(), "row_tiles", 1, isI32,
                      "1-D i32 tensor [1 + 2 * tiles]")))
    return failure();
  // As moe.row_tiles's: the size is a bound only the host knows.
  if (!ShapedType::isDynamic(c.shape(op.getRowTiles())[0]))
    return op.emitOpError() << "'row_tiles' must have a dynamic size, got "
                            << op.getRowTiles().getType();
  return success();
}

LogicalResult DispatchOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getIds(), "ids", 2, isI32, "2-D i32 tensor [T, k]")) ||
      failed(c.isStatic(getIds(), "ids", 1, "k")))
    return failure();
  int64_t tokens = c.shape(getIds())[0];
  int64_t k = c.shape(getIds())[1];
  int64_t numExperts = getNumExperts();
  if (failed(verifyCapacity(*this, getCapacity(), getCapacityFactor())))
    return failure();
  if (getWeights() &&
      (failed(c.tensor(getWeights(), "weights", 2, isF32,
                       "2-D f32 tensor [T, k]")) ||
       failed(c.dimIs(getWeights(), "weights", 0, tokens, "T")) ||
       failed(c.dimIs(getWeights(), "weights", 1, k, "k"))))
    return failure();
  if (getDropPolicy() == DropPolicy::score && !getWeights())
    return emitOpError() << "drop_policy = score needs the 'weights' operand";
  if (getExpertMap() &&
      (failed(c.tensor(getExpertMap(), "expert_map", 1, isI32,
                       "1-D i32 tensor [E]")) ||
       failed(c.isStatic(getExpertMap(), "expert_map", 0, "E")) ||
       failed(c.dimIs(getExpertMap(), "expert_map", 0, numExperts, "E"))))
    return failure();
  int64_t numRows =
      ShapedType::isDynamic(tokens) ? ShapedType::kDynamic : tokens * k;
  if (failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [T * k]")) ||
      failed(c.dimIs(getRows(), "rows", 0, numRows, "T * k")) ||
      failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.isStatic(getOffsets(), "offsets", 0, "experts + 1")))
    return failure();
  // Without an expert map every expert is local.
  if (!getExpertMap() &&
      failed(c.dimIs(getOffsets(), "offsets", 0, numExperts + 1, "E + 1")))
    return failure();
  if (c.shape(getOffsets())[0] < 2)
    return emitOpError() << "'offsets' must have at least 2 entries, got "
                         << getOffsets().getType();
  if (getRowOf() &&
      (failed(c.tensor(getRowOf(), "row_of", 1, isI32,
                       "1-D i32 tensor [T * k]")) ||
       failed(c.dimIs(getRowOf(), "row_of", 0, numRows, "T * k"))))
    return failure();
  return verifyRowTilesResult(*this);
}

std::optional<RowTileShapes>
mlir::moe::rowTileShapesOver(Value tiles, Value offsets, Value rows) {
  if (auto schedule = tiles.getDefiningOp<RowTilesOp>()) {
    if (schedule.getOffsets() != offsets || schedule.getRows() != rows)
      return std::nullopt;
    return RowTileShapes{
        static_cast<int64_t>(schedule.getSmallTileRows()),
        static_cast<int64_t>(schedule.getLargeTileRows()),
        static_cast<int64_t>(schedule.getLargeRowsPerExpert())};
  }
  auto dispatch = tiles.getDefiningOp<DispatchOp>();
  if (!dispatch || dispatch.getRowTiles() != tiles ||
      dispatch.getOffsets() != offsets || dispatch.getRows() != rows ||
      !dispatch.getSmallTileRows() || !dispatch.getLargeTileRows() ||
      !dispatch.getLargeRowsPerExpert())
    return std::nullopt;
  return RowTileShapes{static_cast<int64_t>(*dispatch.getSmallTileRows()),
                       static_cast<int64_t>(*dispatch.getLargeTileRows()),
                       static_cast<int64_t>(*dispatch.getLargeRowsPerExpert())};
}

//===----------------------------------------------------------------------===//
// RowTilesOp
//===----------------------------------------------------------------------===//

LogicalResult RowTilesOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.isStatic(getOffsets(), "offsets", 0, "E + 1")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")) ||
      failed(c.tensor(getTiles(), "tiles", 1, isI32,
                      "1-D i32 tensor [1 + 2 * tiles]")))
    return failure();
  if (c.shape(getOffsets())[0] < 2)
    return emitOpError() << "'offsets' must have at least 2 entries, got "
                         << getOffsets().getType();
  // The tile count depends on the routed rows only through M; a static size
  // would have to be the bound for this M, so only a dynamic one is taken.
  if (!ShapedType::isDynamic(c.shape(getTiles())[0]))
    return emitOpError() << "'tiles' must have a dynamic size, got "
                         << getTiles().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// PermuteOp
//===----------------------------------------------------------------------===//

LogicalResult PermuteOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getX(), "x", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [T, H]")) ||
      failed(c.isStatic(getX(), "x", 1, "H")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")) ||
      failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, H]")) ||
      failed(c.dimIs(getInit(), "init", 0, c.shape(getRows())[0], "M")) ||
      failed(c.dimIs(getInit(), "init", 1, c.shape(getX())[1], "H")))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// GluOp
//===----------------------------------------------------------------------===//

LogicalResult GluOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getH(), "h", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, 2I]")) ||
      failed(c.isStatic(getH(), "h", 1, "2I")) ||
      failed(verifyGluWidth(*this, "h", c.shape(getH())[1])) ||
      failed(verifyActivation(*this, getAlpha().convertToDouble(),
                              getLimit().convertToDouble())) ||
      failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, I]")) ||
      failed(c.dimIs(getInit(), "init", 0, c.shape(getH())[0], "M")) ||
      failed(c.dimIs(getInit(), "init", 1, c.shape(getH())[1] / 2, "I")))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getYs(), "ys", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, H]")) ||
      failed(c.isStatic(getYs(), "ys", 1, "H")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")) ||
      failed(c.dimIs(getRows(), "rows", 0, c.shape(getYs())[0], "M")) ||
      failed(c.tensor(getWeights(), "weights", 2, isF32,
                      "2-D f32 tensor [T, k]")) ||
      failed(c.isStatic(getWeights(), "weights", 1, "k")) ||
      failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [T, H]")) ||
      failed(c.dimIs(getInit(), "init", 0, c.shape(getWeights())[0], "T")) ||
      failed(c.dimIs(getInit(), "init", 1, c.shape(getYs())[1], "H")))
    return failure();
  int64_t selections =
      ShapedType::isDynamic(c.shape(getWeights())[0])
          ? ShapedType::kDynamic
          : c.shape(getWeights())[0] * c.shape(getWeights())[1];
  if (getRowOf() &&
      (failed(c.tensor(getRowOf(), "row_of", 1, isI32,
                       "1-D i32 tensor [T * k]")) ||
       failed(c.dimIs(getRowOf(), "row_of", 0, selections, "T * k"))))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// AuxLossOp and ZLossOp
//===----------------------------------------------------------------------===//

static LogicalResult verifyScalarLoss(Operation *op, Value loss) {
  auto type = dyn_cast<RankedTensorType>(loss.getType());
  if (!type || type.getRank() != 0 || !type.getElementType().isF32())
    return op->emitOpError()
           << "'loss' must be a 0-D f32 tensor, got " << loss.getType();
  return success();
}

LogicalResult AuxLossOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")) ||
      failed(c.isStatic(getLogits(), "logits", 1, "E")) ||
      failed(c.tensor(getIds(), "ids", 2, isI32, "2-D i32 tensor [T, k]")) ||
      failed(c.dimIs(getIds(), "ids", 0, c.shape(getLogits())[0], "T")))
    return failure();
  return verifyScalarLoss(*this, getLoss());
}

LogicalResult ZLossOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")))
    return failure();
  return verifyScalarLoss(*this, getLoss());
}

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
