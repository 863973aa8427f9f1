//===- MoEResultShapes.cpp - Result sizes of the routing ops --------------===//
//
// The sizes of moe.route's and moe.dispatch's results in terms of their
// operands' (ReifyRankedShapedTypeOpInterface), so that a `tensor.dim` of a
// result resolves without running the op: the size checks a caller runs
// before a call (moe-export-result-sizes) then need no routing.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe;

/// The sizes of `type` with its dynamic ones taken from `dynamic`, in order.
static SmallVector<OpFoldResult> sizesOf(OpBuilder &b, RankedTensorType type,
                                         ArrayRef<OpFoldResult> dynamic) {
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    sizes.push_back(type.isDynamicDim(d) ? dynamic[d]
                                         : b.getIndexAttr(type.getDimSize(d)));
  return sizes;
}

// weights and ids are [T, k]: T the logits' rows.
LogicalResult
RouteOp::reifyResultShapes(OpBuilder &b,
                           ReifiedRankedShapedTypeDims &reifiedShapes) {
  OpFoldResult tokens = tensor::getMixedSize(b, getLoc(), getLogits(), 0);
  for (Value result : getResults()) {
    auto type = cast<RankedTensorType>(result.getType());
    reifiedShapes.push_back(
        sizesOf(b, type, {tokens, b.getIndexAttr(getK())}));
  }
  return success();
}

// rows and row_of hold one entry per selection, T * k of them (dropped and
// non-local selections leave -1 entries, not fewer rows); offsets is
// static. The row tiles' count depends on the ids: not reified.
LogicalResult
DispatchOp::reifyResultShapes(OpBuilder &b,
                              ReifiedRankedShapedTypeDims &reifiedShapes) {
  if (getRowTiles())
    return failure();
  auto idsType = cast<RankedTensorType>(getIds().getType());
  if (idsType.getRank() != 2 || idsType.isDynamicDim(1))
    return failure();
  Location loc = getLoc();
  OpFoldResult tokens = tensor::getMixedSize(b, loc, getIds(), 0);
  OpFoldResult selections;
  if (auto t = getConstantIntValue(tokens)) {
    selections = b.getIndexAttr(*t * idsType.getDimSize(1));
  } else {
    Value k = arith::ConstantIndexOp::create(b, loc, idsType.getDimSize(1));
    selections =
        arith::MulIOp::create(b, loc, cast<Value>(tokens), k).getResult();
  }
  for (Value result : getResults()) {
    auto type = cast<RankedTensorType>(result.getType());
    reifiedShapes.push_back(sizesOf(b, type, {selections}));
  }
  return success();
}
