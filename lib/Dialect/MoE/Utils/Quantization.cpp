//===- Quantization.cpp - FP8 values and activation quantization ----------===//

#include "moe/Dialect/MoE/Utils/Quantization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;

Type mlir::moe::withElementType(Type type, Type element) {
  if (auto vector = dyn_cast<VectorType>(type))
    return vector.clone(element);
  return element;
}

Value mlir::moe::splatConstant(StructuredBuilder &b, Type like,
                               TypedAttr scalar) {
  if (auto vector = dyn_cast<VectorType>(like))
    return b.create<arith::ConstantOp>(
        DenseElementsAttr::get(vector.clone(scalar.getType()), scalar));
  return b.create<arith::ConstantOp>(scalar);
}

Value mlir::moe::decodeE4M3(StructuredBuilder &b, Value bits) {
  Type type = bits.getType();
  Type i32 = withElementType(type, b.getI32Type());
  Type f32 = withElementType(type, b.getF32Type());
  auto i32Const = [&](int64_t value) {
    return splatConstant(b, i32,
                         b.getI32IntegerAttr(static_cast<int32_t>(value)));
  };
  Value byte =
      b.create<arith::BitcastOp>(withElementType(type, b.getI8Type()), bits);
  Value word = b.create<arith::ExtUIOp>(i32, byte);
  // Sign to bit 31; exponent and mantissa (7 bits) to the top of the f32
  // exponent and mantissa fields, so the f32 read from the word is the e4m3
  // value times 2^(7 - 127) for normal and subnormal e4m3 alike.
  Value magnitude = b.create<arith::AndIOp>(word, i32Const(0x7F));
  Value sign = b.create<arith::ShLIOp>(
      b.create<arith::AndIOp>(word, i32Const(0x80)), i32Const(24));
  Value shifted = b.create<arith::OrIOp>(
      sign, b.create<arith::ShLIOp>(magnitude, i32Const(20)));
  Value value = b.create<arith::MulFOp>(
      b.create<arith::BitcastOp>(f32, shifted),
      splatConstant(b, f32, b.getF32FloatAttr(0x1p120f)));
  Value isNaN = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, magnitude,
                                        i32Const(0x7F));
  Value nan = splatConstant(
      b, f32, b.getF32FloatAttr(std::numeric_limits<float>::quiet_NaN()));
  return b.create<arith::SelectOp>(isNaN, nan, value);
}

Value mlir::moe::roundToE4M3(StructuredBuilder &b, Value x) {
  Type f32 = x.getType();
  Type i32 = withElementType(f32, b.getI32Type());
  auto i32Const = [&](int64_t value) {
    return splatConstant(b, i32,
                         b.getI32IntegerAttr(static_cast<int32_t>(value)));
  };
  Value clamped = b.create<arith::MaximumFOp>(
      b.create<arith::MinimumFOp>(
          x, splatConstant(b, f32, b.getF32FloatAttr(448.0f))),
      splatConstant(b, f32, b.getF32FloatAttr(-448.0f)));
  // The spacing of e4m3 values around x is 2^(e - 3) for x's exponent e,
  // and 2^-9 (the subnormal spacing) below 2^-6: x / spacing rounded to an
  // integer, ties to even, times the spacing. Every step is exact in f32.
  Value word = b.create<arith::BitcastOp>(i32, clamped);
  Value exponent = b.create<arith::AndIOp>(
      b.create<arith::ShRUIOp>(word, i32Const(23)), i32Const(0xFF));
  exponent = b.create<arith::MaxSIOp>(exponent, i32Const(127 - 6));
  Value spacing = b.create<arith::BitcastOp>(
      f32, b.create<arith::ShLIOp>(
               b.create<arith::SubIOp>(exponent, i32Const(3)), i32Const(23)));
  Value steps =
      b.create<math::RoundEvenOp>(b.create<arith::DivFOp>(clamped, spacing));
  return b.create<arith::MulFOp>(steps, spacing);
}

Value mlir::moe::quantizeActivations(StructuredBuilder &b, Value lhs,
                                     WeightQuantAttr quant, Value staticScale) {
  auto type = cast<RankedTensorType>(lhs.getType());
  int64_t reduction = type.getDimSize(1);
  OpFoldResult rows = b.dimSize(lhs, 0);
  Type f32 = b.getF32Type();
  Value out = b.empty({rows, b.getIndexAttr(reduction)}, f32);

  if (quant.getActivation() == ActivationQuant::static_) {
    Value scale =
        b.create<tensor::ExtractOp>(staticScale, ValueRange{b.index(0)});
    return b
        .generic(
            {lhs}, {out}, 2, {{0, 1}, {0, 1}}, {},
            [&](StructuredBuilder &nb, ValueRange args) {
              Value a = nb.castFloat(args[0], f32);
              Value q = roundToE4M3(nb, nb.create<arith::DivFOp>(a, scale));
              return SmallVector<Value>{nb.create<arith::MulFOp>(q, scale)};
            })
        .front();
  }

  // amax[m, g] over the columns g * bk ..< min((g + 1) * bk, K); the loop
  // over a group's columns takes its extent from an empty [bk] operand.
  int64_t groupSize = std::min(quant.getBlockK(), reduction);
  int64_t groups = llvm::divideCeil(reduction, groupSize);
  Value groupExtent = b.empty({b.getIndexAttr(groupSize)}, f32);
  Value amax =
      b.generic(
           {groupExtent},
           {b.filled({rows, b.getIndexAttr(groups)}, b.f32(0.0))}, 3,
           {{2}, {0, 1}}, {2},
           [&](StructuredBuilder &nb, ValueRange args) {
             Value column = nb.create<arith::AddIOp>(
                 nb.create<arith::MulIOp>(nb.loopIndex(1), nb.index(groupSize)),
                 nb.loopIndex(2));
             Value inside = nb.create<arith::CmpIOp>(
                 arith::CmpIPredicate::ult, column, nb.index(reduction));
             Value safe =
                 nb.create<arith::MinUIOp>(column, nb.index(reduction - 1));
             Value a = nb.castFloat(nb.create<tensor::ExtractOp>(
                                        lhs, ValueRange{nb.loopIndex(0), safe}),
                                    f32);
             Value magnitude = nb.create<arith::SelectOp>(
                 inside, nb.create<math::AbsFOp>(a), nb.f32(0.0));
             return SmallVector<Value>{
                 nb.create<arith::MaximumFOp>(args[1], magnitude)};
           })
          .front();
  Value scales =
      b.generic({amax}, {b.empty({rows, b.getIndexAttr(groups)}, f32)}, 2,
                {{0, 1}, {0, 1}}, {},
                [&](StructuredBuilder &nb, ValueRange args) {
                  Value zero = nb.create<arith::CmpFOp>(
                      arith::CmpFPredicate::OEQ, args[0], nb.f32(0.0));
                  Value scale =
                      nb.create<arith::DivFOp>(args[0], nb.f32(kE4M3Max));
                  return SmallVector<Value>{
                      nb.create<arith::SelectOp>(zero, nb.f32(1.0), scale)};
                })
          .front();
  return b
      .generic({lhs}, {out}, 2, {{0, 1}, {0, 1}}, {},
               [&](StructuredBuilder &nb, ValueRange args) {
                 Value group = nb.create<arith::DivUIOp>(nb.loopIndex(1),
                                                         nb.index(groupSize));
                 Value scale = nb.create<tensor::ExtractOp>(
                     scales, ValueRange{nb.loopIndex(0), group});
                 Value a = nb.castFloat(args[0], f32);
                 Value q = roundToE4M3(nb, nb.create<arith::DivFOp>(a, scale));
                 return SmallVector<Value>{nb.create<arith::MulFOp>(q, scale)};
               })
      .front();
}
