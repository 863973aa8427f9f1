//===- GroupedMatmulKernel.cpp - Work items of the CPU grouped matmul -----===//

#include "GroupedMatmulKernel.h"

#include "moe/Dialect/MoE/Utils/Quantization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::blockedLoop(
    StructuredBuilder &b, Value count, ArrayRef<int64_t> blocks, Value init,
    function_ref<Value(StructuredBuilder &, Value, int64_t, Value)> body) {
  assert(!blocks.empty() && blocks.back() == 1 && "blocks must end with 1");
  Value start = b.index(0);
  Value result = init;
  for (int64_t block : blocks) {
    Value end = count;
    if (block > 1) {
      Value remaining = b.create<arith::SubIOp>(count, start);
      end = b.create<arith::SubIOp>(
          count, b.create<arith::RemUIOp>(remaining, b.index(block)));
    }
    result = b.create<scf::ForOp>(
                  start, end, b.index(block), ValueRange{result},
                  [&](OpBuilder &nested, Location loc, Value step,
                      ValueRange iter) {
                    StructuredBuilder nb(loc, nested);
                    nb.create<scf::YieldOp>(body(nb, step, block, iter[0]));
                  })
                 .getResult(0);
    start = end;
  }
  return result;
}

GroupedMatmulKernel::GroupedMatmulKernel(GroupedMatmulOp op,
                                         StructuredBuilder &b,
                                         KernelShape shape, int64_t columnTile)
    : op(op), b(b), shape(shape), columnTile(columnTile) {
  WeightShape weights = weightShape(
      cast<RankedTensorType>(op.getRhs().getType()), op.getRhsLayout());
  numExperts = weights.experts;
  n = weights.columns;
  reduction = weights.reduction;
  panelWidth = weights.panelWidth;
  glu = op.getEpilogue().has_value();
  width = glu ? n / 2 : n;
  outType = cast<RankedTensorType>(op.getInit().getType()).getElementType();
}

Value GroupedMatmulKernel::build() {
  Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(outType));
  Value cleared = b.create<linalg::FillOp>(zero, op.getInit()).getResult(0);
  int64_t numTiles = llvm::divideCeil(width, columnTile);
  auto forall = b.create<scf::ForallOp>(
      ArrayRef<OpFoldResult>{b.getIndexAttr(numTiles * numExperts)},
      ValueRange{cleared}, std::nullopt, nullptr);
  Block *body = forall.getBody();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(body->getTerminator());
  Value item = body->getArgument(0);
  Value shared = body->getArgument(1);

  // Column-tile-major items: consecutive items are different experts, so a
  // static split over threads stays balanced when one expert is hot.
  Value expert = b.create<arith::RemUIOp>(item, b.index(numExperts));
  Value tileIndex = b.create<arith::DivUIOp>(item, b.index(numExperts));
  Value numRows = b.dimValue(op.getInit(), 0);
  Value lo = clampedOffset(expert, numRows, b.index(0));
  Value hi = clampedOffset(b.create<arith::AddIOp>(expert, b.index(1)),
                           numRows, lo);
  Value rowCount = b.create<arith::SubIOp>(hi, lo);
  Value col0 = b.create<arith::MulIOp>(tileIndex, b.index(columnTile));
  Value colCount =
      b.create<arith::MinUIOp>(b.index(columnTile),
                               b.create<arith::SubIOp>(b.index(width), col0));

  // The tile starts as its own slice of the result, so bufferization
  // computes it in place.
  SmallVector<OpFoldResult> offsets{lo, col0}, sizes{rowCount, colCount},
      strides{b.getIndexAttr(1), b.getIndexAttr(1)};
  Value tile =
      b.create<tensor::ExtractSliceOp>(shared, offsets, sizes, strides);
  tile = computeTile(b, expert, lo, rowCount, col0, colCount, tile);

  auto terminator = cast<scf::InParallelOp>(body->getTerminator());
  b.setInsertionPointToStart(terminator.getBody());
  b.create<tensor::ParallelInsertSliceOp>(tile, shared, offsets, sizes,
                                          strides);
  return forall.getResult(0);
}

Value GroupedMatmulKernel::clampedOffset(Value i, Value numRows,
                                         Value lower) {
  Value raw =
      b.toIndex(b.create<tensor::ExtractOp>(op.getOffsets(), ValueRange{i}));
  // Negative offsets read as huge unsigned values; clamp through signed max.
  Value atLeast = b.create<arith::MaxSIOp>(raw, lower);
  return b.create<arith::MinSIOp>(atLeast, numRows);
}

BlockRow GroupedMatmulKernel::blockRow(StructuredBuilder &nb, Value row) {
  BlockRow result{row, nb.f32(1.0)};
  Value rows = op.getRows();
  if (!rows)
    return result;
  Value tokens = op.getGather() ? nb.dimValue(op.getLhs(), 0)
                                : nb.dimValue(op.getRowScale(), 0);
  auto selection = nb.decodeSelection(
      nb.create<tensor::ExtractOp>(rows, ValueRange{row}), tokens, op.getK());
  if (op.getGather())
    result.aRow = selection.token;
  Value scale =
      nb.create<arith::SelectOp>(selection.valid, nb.f32(1.0), nb.f32(0.0));
  if (Value weights = op.getRowScale()) {
    Value weight = nb.create<tensor::ExtractOp>(
        weights, ValueRange{selection.token, selection.slot});
    scale = nb.create<arith::MulFOp>(scale, weight);
  }
  result.scale = scale;
  return result;
}

Value GroupedMatmulKernel::loadF32(StructuredBuilder &nb, Value source,
                                   ArrayRef<Value> indices, int64_t width,
                                   bool inBounds) {
  Type element = cast<RankedTensorType>(source.getType()).getElementType();
  auto type = VectorType::get({width}, element);
  Value pad = nb.create<arith::ConstantOp>(nb.getZeroAttr(element));
  Value v = nb.create<vector::TransferReadOp>(type, source, indices, pad,
                                              ArrayRef<bool>{inBounds});
  if (element.isF32())
    return v;
  if (isa<Float8E4M3FNType>(element))
    return decodeE4M3(nb, v);
  return nb.create<arith::ExtFOp>(VectorType::get({width}, nb.getF32Type()),
                                  v);
}

Value GroupedMatmulKernel::biasTerm(StructuredBuilder &nb, Value expert,
                                    Value column) {
  Value bias = op.getBias();
  if (!bias)
    return Value();
  return nb.castFloat(
      nb.create<tensor::ExtractOp>(bias, ValueRange{expert, column}),
      nb.getF32Type());
}

Value GroupedMatmulKernel::biasVector(StructuredBuilder &nb, Value expert,
                                      Value column, int64_t width,
                                      bool inBounds) {
  Value bias = op.getBias();
  if (!bias)
    return Value();
  return loadF32(nb, bias, {expert, column}, width, inBounds);
}

Value GroupedMatmulKernel::addBias(StructuredBuilder &nb, Value value,
                                   Value term) {
  return term ? nb.create<arith::AddFOp>(value, term).getResult() : value;
}
