//===- StructuredBuilder.cpp - Short-hands for building linalg IR ---------===//

#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;

Value StructuredBuilder::index(int64_t value) {
  return create<arith::ConstantIndexOp>(value);
}
Value StructuredBuilder::i32(int64_t value) {
  return create<arith::ConstantIntOp>(getI32Type(), value);
}
Value StructuredBuilder::i64(int64_t value) {
  return create<arith::ConstantIntOp>(getI64Type(), value);
}
Value StructuredBuilder::f32(double value) {
  return create<arith::ConstantFloatOp>(getF32Type(), APFloat((float)value));
}
Value StructuredBuilder::f64(double value) {
  return create<arith::ConstantFloatOp>(getF64Type(), APFloat(value));
}

Value StructuredBuilder::dimValue(Value tensor, int64_t dim) {
  return getValueOrCreateConstantIndexOp(*this, getLoc(),
                                         dimSize(tensor, dim));
}

OpFoldResult StructuredBuilder::dimSize(Value tensor, int64_t dim) {
  return tensor::getMixedSize(*this, getLoc(), tensor, dim);
}

Value StructuredBuilder::empty(ArrayRef<OpFoldResult> sizes,
                               Type elementType) {
  return create<tensor::EmptyOp>(sizes, elementType);
}

Value StructuredBuilder::filled(ArrayRef<OpFoldResult> sizes, Value scalar) {
  Value init = empty(sizes, scalar.getType());
  return create<linalg::FillOp>(scalar, init).getResult(0);
}

SmallVector<Value>
StructuredBuilder::generic(ValueRange inputs, ValueRange outputs,
                           unsigned numDims,
                           ArrayRef<SmallVector<unsigned>> maps,
                           ArrayRef<unsigned> reductionDims, BodyFn body) {
  SmallVector<AffineMap> affineMaps;
  for (ArrayRef<unsigned> dims : maps)
    affineMaps.push_back(
        AffineMap::getMultiDimMapWithTargets(numDims, dims, getContext()));
  return generic(inputs, outputs, affineMaps, reductionDims, body);
}

SmallVector<Value>
StructuredBuilder::generic(ValueRange inputs, ValueRange outputs,
                           ArrayRef<AffineMap> maps,
                           ArrayRef<unsigned> reductionDims, BodyFn body) {
  unsigned numDims = maps.front().getNumDims();
  SmallVector<utils::IteratorType> iterators(numDims,
                                             utils::IteratorType::parallel);
  for (unsigned dim : reductionDims)
    iterators[dim] = utils::IteratorType::reduction;
  auto op = create<linalg::GenericOp>(
      ValueRange(outputs).getTypes(), inputs, outputs, maps, iterators,
      [&](OpBuilder &nested, Location loc, ValueRange args) {
        StructuredBuilder b(loc, nested);
        SmallVector<Value> results = body(b, args);
        b.create<linalg::YieldOp>(results);
      });
  return op.getResults();
}

Value StructuredBuilder::loopIndex(unsigned dim) {
  return create<linalg::IndexOp>(dim);
}

Value StructuredBuilder::castFloat(Value value, Type type) {
  auto from = cast<FloatType>(value.getType());
  auto to = cast<FloatType>(type);
  if (from == to)
    return value;
  if (from.getWidth() < to.getWidth())
    return create<arith::ExtFOp>(to, value);
  return create<arith::TruncFOp>(to, value);
}

Value StructuredBuilder::toIndex(Value value) {
  if (value.getType().isIndex())
    return value;
  return create<arith::IndexCastOp>(getIndexType(), value);
}

Value StructuredBuilder::fromIndex(Value value, Type type) {
  return create<arith::IndexCastOp>(type, value);
}

Value StructuredBuilder::ranksBefore(Value aScore, Value aIndex, Value bScore,
                                     Value bIndex) {
  Value aNaN = create<arith::CmpFOp>(arith::CmpFPredicate::UNO, aScore, aScore);
  Value bNaN = create<arith::CmpFOp>(arith::CmpFPredicate::UNO, bScore, bScore);
  Value greater =
      create<arith::CmpFOp>(arith::CmpFPredicate::OGT, aScore, bScore);
  Value equal = create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, aScore, bScore);
  Value lowerIndex =
      create<arith::CmpIOp>(arith::CmpIPredicate::slt, aIndex, bIndex);
  Value byScore = create<arith::OrIOp>(
      greater, create<arith::AndIOp>(equal, lowerIndex));
  Value trueValue = create<arith::ConstantIntOp>(getI1Type(), 1);
  Value falseValue = create<arith::ConstantIntOp>(getI1Type(), 0);
  // Both NaN: by index. Only a is NaN: never first. Only b is NaN: always.
  Value ifANaN = create<arith::SelectOp>(bNaN, lowerIndex, falseValue);
  Value ifNotANaN = create<arith::SelectOp>(bNaN, trueValue, byScore);
  return create<arith::SelectOp>(aNaN, ifANaN, ifNotANaN);
}

Value StructuredBuilder::rankRows(Value scores) {
  SmallVector<OpFoldResult> sizes = {dimSize(scores, 0), dimSize(scores, 1)};
  Value zero = filled(sizes, i32(0));
  return generic({scores, scores}, {zero}, 3, {{0, 2}, {0, 1}, {0, 1}}, {2},
                 [](StructuredBuilder &b, ValueRange args) {
                   Value other = b.loopIndex(2), self = b.loopIndex(1);
                   Value before =
                       b.ranksBefore(args[0], other, args[1], self);
                   Value one = b.boolToI32(before);
                   return SmallVector<Value>{
                       b.create<arith::AddIOp>(args[2], one)};
                 })
      .front();
}

Value StructuredBuilder::boolToI32(Value flag) {
  return create<arith::ExtUIOp>(getI32Type(), flag);
}

Value StructuredBuilder::inRange(Value value, Value bound) {
  Value zero = create<arith::ConstantOp>(getZeroAttr(value.getType()));
  Value nonNegative =
      create<arith::CmpIOp>(arith::CmpIPredicate::sge, value, zero);
  Value below =
      create<arith::CmpIOp>(arith::CmpIPredicate::slt, toIndex(value), bound);
  return create<arith::AndIOp>(nonNegative, below);
}

StructuredBuilder::Selection
StructuredBuilder::decodeSelection(Value rowValue, Value numTokens,
                                   int64_t k) {
  Value limit = create<arith::MulIOp>(numTokens, index(k));
  Value valid = inRange(rowValue, limit);
  Value flat = create<arith::SelectOp>(valid, toIndex(rowValue), index(0));
  return {valid, create<arith::DivUIOp>(flat, index(k)),
          create<arith::RemUIOp>(flat, index(k))};
}
