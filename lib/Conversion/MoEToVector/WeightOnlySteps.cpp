//===- WeightOnlySteps.cpp - Weight-only formats in the nk kernel ---------===//

#include "WeightOnlySteps.h"

#include "moe/Dialect/MoE/Utils/WeightDequantization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;

/// The f4E2M1FN values by code (docs/quantization.md).
static constexpr float kE2M1Values[16] = {
    0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/// The lanes of vpermps: one table of 16 f32.
static constexpr int64_t kTableLanes = 16;

bool mlir::moe::isWeightOnlyFormat(WeightFormat format) {
  return format == WeightFormat::mxfp4 || format == WeightFormat::int4 ||
         format == WeightFormat::int8;
}

WeightOnlySteps::WeightOnlySteps(GroupedMatmulOp op, KernelShape shape)
    : op(op), format(op.getWeightQuantAttr().getFormat()),
      vw(shape.vectorWidth), groupSize(op.getWeightQuantAttr().getBlockK()),
      packed(isPackedWeightFormat(format)),
      permute(packed && shape.tablePermute && vw == kTableLanes) {}

bool WeightOnlySteps::applies(GroupedMatmulOp op, KernelShape shape,
                              std::string &why) {
  WeightQuantAttr quant = op.getWeightQuantAttr();
  if (quant.getActivation() != ActivationQuant::none) {
    why = "weight-only formats take the activations as they are "
          "(activation = none)";
    return false;
  }
  if (op.getRhsLayout() != RhsLayout::nk) {
    why = "weight-only formats are read by the nk kernel only";
    return false;
  }
  // A step of 2 x vector-width k must lie in one scale group, so that one
  // scale (and zero point) covers both of its weight vectors; the groups
  // (32, 64, 128) are powers of two like the width, so any step that is
  // not longer than a group lies in one.
  int64_t step = 2 * shape.vectorWidth;
  if (isPackedWeightFormat(quant.getFormat()) && step > quant.getBlockK()) {
    why = ("a step of 2 x vector-width = " + Twine(step) +
           " k spans more than one scale group of " + Twine(quant.getBlockK()))
              .str();
    return false;
  }
  return true;
}

StringRef WeightOnlySteps::decodeName() {
  switch (format) {
  case WeightFormat::mxfp4:
    return permute ? "mxfp4_table_permute" : "mxfp4_integer_ops";
  case WeightFormat::int4:
    return permute ? "int4_table_permute" : "int4_integer_ops";
  case WeightFormat::int8:
    return "int8_row_scale";
  case WeightFormat::fp8_e4m3:
    break;
  }
  llvm_unreachable("not a weight-only format");
}

SmallVector<Value> WeightOnlySteps::activations(StructuredBuilder &b, Value lhs,
                                                Value aRow, Value k,
                                                bool inBounds) {
  if (!packed)
    return {GroupedMatmulKernel::loadF32(b, lhs, {aRow, k}, vw, inBounds)};
  Value both =
      GroupedMatmulKernel::loadF32(b, lhs, {aRow, k}, 2 * vw, inBounds);
  SmallVector<int64_t> even, odd;
  for (int64_t i = 0; i < vw; ++i) {
    even.push_back(2 * i);
    odd.push_back(2 * i + 1);
  }
  return {b.create<vector::ShuffleOp>(both, both, even),
          b.create<vector::ShuffleOp>(both, both, odd)};
}

SmallVector<Value> WeightOnlySteps::weights(StructuredBuilder &b, Value expert,
                                            Value row, Value k, bool inBounds) {
  Value rhs = op.getRhs();
  auto bytesType = VectorType::get({vw}, b.getI8Type());
  auto wordsType = VectorType::get({vw}, b.getI32Type());
  auto f32Type = VectorType::get({vw}, b.getF32Type());
  Value zeroByte = b.create<arith::ConstantOp>(b.getI8IntegerAttr(0));
  if (!packed) {
    Value q = b.create<vector::TransferReadOp>(
        bytesType, rhs, ValueRange{expert, row, k}, zeroByte,
        ArrayRef<bool>{inBounds});
    return {b.create<arith::SIToFPOp>(f32Type, q)};
  }
  // The step's vw bytes: byte j holds k + 2j (low nibble) and k + 2j + 1.
  Value byteIndex = b.create<arith::DivUIOp>(k, b.index(2));
  Value bytes = b.create<vector::TransferReadOp>(
      bytesType, rhs, ValueRange{expert, row, byteIndex}, zeroByte,
      ArrayRef<bool>{inBounds});
  Value low = b.create<arith::ExtUIOp>(wordsType, bytes);
  Value high = b.create<arith::ShRUIOp>(
      low, b.create<arith::ConstantOp>(
               DenseElementsAttr::get(wordsType, b.getI32IntegerAttr(4))));
  Value group = b.create<arith::DivUIOp>(k, b.index(groupSize));
  if (!permute)
    return {decodeCodes(b, low, expert, row, group),
            decodeCodes(b, high, expert, row, group)};
  // Each lane reads the table at its code: extracts at dynamic positions
  // gathered into one vector, the pattern that LLVM's x86 backend selects
  // as one vpermps on AVX-512. The low nibble is masked to a valid index
  // (the high one is below 16 already).
  low = b.create<arith::AndIOp>(
      low, b.create<arith::ConstantOp>(
               DenseElementsAttr::get(wordsType, b.getI32IntegerAttr(15))));
  Value table = codeTable(b, expert, row, group);
  auto lookUp = [&](Value codes) -> Value {
    SmallVector<Value> lanes;
    for (int64_t lane = 0; lane < vw; ++lane) {
      Value code = b.create<vector::ExtractOp>(codes, lane);
      Value position = b.create<arith::IndexCastUIOp>(b.getIndexType(), code);
      lanes.push_back(
          b.create<vector::ExtractOp>(table, ArrayRef<OpFoldResult>{position}));
    }
    return b.create<vector::FromElementsOp>(f32Type, lanes);
  };
  return {lookUp(low), lookUp(high)};
}

Value WeightOnlySteps::rowFactor(StructuredBuilder &b, Value expert,
                                 Value row) {
  if (format != WeightFormat::int8)
    return Value();
  return b.create<tensor::ExtractOp>(op.getRhsScales(),
                                     ValueRange{expert, row, b.index(0)});
}

/// The scale and, for int4, the zero point of the step's group, as f32
/// scalars (the zero point 8 without zero points).
static std::pair<Value, Value> groupScale(StructuredBuilder &b,
                                          GroupedMatmulOp op,
                                          WeightFormat format, Value expert,
                                          Value row, Value group) {
  Value scale = b.create<tensor::ExtractOp>(op.getRhsScales(),
                                            ValueRange{expert, row, group});
  if (format == WeightFormat::mxfp4)
    return {decodeE8M0(b, scale), Value()};
  Value zero = b.f32(8.0);
  if (Value zeroPoints = op.getRhsZeroPoints())
    zero = b.create<arith::SIToFPOp>(
        b.getF32Type(), b.create<tensor::ExtractOp>(
                            zeroPoints, ValueRange{expert, row, group}));
  return {scale, zero};
}

Value WeightOnlySteps::codeTable(StructuredBuilder &b, Value expert, Value row,
                                 Value group) {
  auto tableType = VectorType::get({kTableLanes}, b.getF32Type());
  auto [scale, zero] = groupScale(b, op, format, expert, row, group);
  Value scales = b.create<vector::BroadcastOp>(tableType, scale);
  if (format == WeightFormat::mxfp4) {
    // e2m1 times a power of two: exact unless it leaves the f32 range, as
    // in the reference lowering.
    Value values = b.create<arith::ConstantOp>(DenseElementsAttr::get(
        tableType, ArrayRef<float>(kE2M1Values, kTableLanes)));
    return b.create<arith::MulFOp>(values, scales);
  }
  // (c - z) is exact in f32; times s it is rounded once, as in the
  // reference lowering.
  SmallVector<float> codes;
  for (int64_t c = 0; c < kTableLanes; ++c)
    codes.push_back(static_cast<float>(c));
  Value iota = b.create<arith::ConstantOp>(
      DenseElementsAttr::get(tableType, ArrayRef<float>(codes)));
  Value centered = b.create<arith::SubFOp>(
      iota, b.create<vector::BroadcastOp>(tableType, zero));
  return b.create<arith::MulFOp>(centered, scales);
}

Value WeightOnlySteps::decodeCodes(StructuredBuilder &b, Value codes,
                                   Value expert, Value row, Value group) {
  auto wordsType = cast<VectorType>(codes.getType());
  auto f32Type = wordsType.clone(b.getF32Type());
  auto [scale, zero] = groupScale(b, op, format, expert, row, group);
  Value scales = b.create<vector::BroadcastOp>(f32Type, scale);
  if (format == WeightFormat::mxfp4)
    return b.create<arith::MulFOp>(decodeE2M1(b, codes), scales);
  Value code = b.create<arith::AndIOp>(
      codes, b.create<arith::ConstantOp>(
                 DenseElementsAttr::get(wordsType, b.getI32IntegerAttr(15))));
  Value centered =
      b.create<arith::SubFOp>(b.create<arith::UIToFPOp>(f32Type, code),
                              b.create<vector::BroadcastOp>(f32Type, zero));
  return b.create<arith::MulFOp>(centered, scales);
}
