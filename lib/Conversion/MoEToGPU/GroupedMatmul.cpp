//===- GroupedMatmul.cpp - A grouped matmul as its kernels see it ---------===//

#include "GroupedMatmul.h"

#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

GroupedMatmul::GroupedMatmul(GroupedMatmulOp op,
                             GroupedMatmulOp::Adaptor operands,
                             KernelBuilder &b)
    : op(op) {
  auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
  // K counts weights: two per stored byte for the packed 4-bit formats.
  WeightShape weights = logicalWeightShape(
      op.getWeightQuantAttr(), weightShape(rhsType, op.getRhsLayout()));
  numExperts = weights.experts;
  kn = op.getRhsLayout() == RhsLayout::kn;
  reduction = weights.reduction;
  n = weights.columns;
  glu = op.getEpilogue().has_value();
  interleaved = glu && op.getGluLayout() == GluLayout::interleaved;
  width = glu ? n / 2 : n;
  outType = cast<RankedTensorType>(op.getInit().getType()).getElementType();
  lhsType = cast<RankedTensorType>(op.getLhs().getType()).getElementType();
  rhsElement = rhsType.getElementType();

  lhs = readBuffer(b, operands.getLhs());
  rhs = readBuffer(b, operands.getRhs());
  offsets = OffsetsSource::fromTensor(b, operands.getOffsets());
  if (operands.getRows())
    rows = readBuffer(b, operands.getRows());
  if (operands.getRowScale())
    scale = readBuffer(b, operands.getRowScale());
  if (operands.getBias())
    bias = readBuffer(b, operands.getBias());
  if ((quant = op.getWeightQuantAttr())) {
    if (quant.getFormat() == WeightFormat::fp8_e4m3)
      fp8.emplace(quant, n, reduction);
    rhsScales = readBuffer(b, operands.getRhsScales());
    if (operands.getLhsScales())
      lhsScales = readBuffer(b, operands.getLhsScales());
    if (operands.getRhsZeroPoints())
      rhsZeroPoints = readBuffer(b, operands.getRhsZeroPoints());
  }
  out = allocateLike(b, operands.getInit());
  numRows = b.create<memref::DimOp>(out.buffer, 0);
  if (op.getGather())
    gatherTokens = b.create<memref::DimOp>(lhs, 0);
  if (scale)
    scaleTokens = b.create<memref::DimOp>(scale, 0);
}

std::pair<Value, Value> GroupedMatmul::sourceRow(KernelBuilder &b,
                                                 Value r) const {
  if (!op.getGather())
    return {r, b.create<arith::ConstantIntOp>(b.getI1Type(), 1)};
  auto selection = b.decodeSelection(b.load(rows, r), gatherTokens, op.getK());
  return {selection.token, selection.valid};
}

Value GroupedMatmul::rowScale(KernelBuilder &b, Value r) const {
  if (!scale)
    return Value();
  auto selection = b.decodeSelection(b.load(rows, r), scaleTokens, op.getK());
  Value w = b.load(scale, {selection.token, selection.slot});
  return b.create<arith::SelectOp>(selection.valid, w, b.f32(0.0));
}

Value GroupedMatmul::epilogue(KernelBuilder &b, Value expert, Value column,
                              Value value, Value up, Value factor) const {
  if (bias) {
    // The bias is indexed by weight column: the output column's gate and up
    // columns for a GLU.
    auto add = [&](Value acc, Value weightColumn) -> Value {
      Value term =
          b.castFloat(b.load(bias, {expert, weightColumn}), b.getF32Type());
      return b.create<arith::AddFOp>(acc, term);
    };
    Value gateColumn =
        interleaved ? b.create<arith::MulIOp>(column, b.index(2)) : column;
    value = add(value, gateColumn);
    if (glu)
      up = add(up, b.create<arith::AddIOp>(gateColumn,
                                           b.index(interleaved ? 1 : width)));
  }
  if (glu)
    value = gluActivation(b, value, up, *op.getEpilogue(),
                          op.getAlpha().convertToDouble(),
                          op.getLimit().convertToDouble());
  // A routing weight of exactly 0 adds nothing, even where the expert's
  // output overflowed (0 * inf would make the token NaN).
  if (factor)
    value = weighted(b, factor, value);
  return value;
}

void GroupedMatmul::storeOutput(KernelBuilder &b, Value expert, Value r,
                                Value column, Value value, Value up) const {
  value = epilogue(b, expert, column, value, up, rowScale(b, r));
  b.store(b.castFloat(value, outType), out.buffer, {r, column});
}

void GroupedMatmul::storePair(KernelBuilder &b, Value aligned, Value r,
                              Value column, Value first, Value second) const {
  Value cast[2] = {b.castFloat(first, outType), b.castFloat(second, outType)};
  int64_t bytes = pairBytes();
  b.ifThenElse(
      aligned,
      [&](KernelBuilder &vb) {
        Value pair = vb.create<vector::FromElementsOp>(
            VectorType::get({2}, outType), ValueRange{cast[0], cast[1]});
        vb.create<vector::StoreOp>(pair, out.buffer, ValueRange{r, column},
                                   false, llvm::MaybeAlign(bytes));
      },
      [&](KernelBuilder &sb) {
        sb.store(cast[0], out.buffer, {r, column});
        sb.store(cast[1], out.buffer,
                 {r, sb.create<arith::AddIOp>(column, sb.index(1))});
      });
}
