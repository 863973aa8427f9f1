//===- WeightDequantization.cpp - Weight-only formats as f32 --------------===//

#include "moe/Dialect/MoE/Utils/WeightDequantization.h"
#include "moe/Dialect/MoE/Utils/Quantization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::decodeE2M1(StructuredBuilder &b, Value code) {
  Type i32Type = code.getType();
  Type f32 = withElementType(i32Type, b.getF32Type());
  auto i32 = [&](int64_t v) {
    return splatConstant(b, i32Type,
                         b.getI32IntegerAttr(static_cast<int32_t>(v)));
  };
  // e2m1: sign (bit 3), exponent (bits 1..2, bias 1), mantissa (bit 0).
  // Normal codes (exponent e > 0) are 2^(e - 1) * (1 + m / 2): the f32 with
  // exponent field e + 126 and the mantissa bit at bit 22. Subnormal codes
  // (e = 0) are m / 2.
  Value magnitude = b.create<arith::AndIOp>(code, i32(7));
  Value exponent = b.create<arith::ShRUIOp>(magnitude, i32(1));
  Value mantissa = b.create<arith::AndIOp>(magnitude, i32(1));
  Value normalBits = b.create<arith::OrIOp>(
      b.create<arith::ShLIOp>(b.create<arith::AddIOp>(exponent, i32(126)),
                              i32(23)),
      b.create<arith::ShLIOp>(mantissa, i32(22)));
  Value normal = b.create<arith::BitcastOp>(f32, normalBits);
  Value subnormal =
      b.create<arith::MulFOp>(b.create<arith::UIToFPOp>(f32, mantissa),
                              splatConstant(b, f32, b.getF32FloatAttr(0.5f)));
  Value isNormal =
      b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, exponent, i32(0));
  Value value = b.create<arith::SelectOp>(isNormal, normal, subnormal);
  Value negative = b.create<arith::CmpIOp>(
      arith::CmpIPredicate::ne, b.create<arith::AndIOp>(code, i32(8)), i32(0));
  return b.create<arith::SelectOp>(negative, b.create<arith::NegFOp>(value),
                                   value);
}

Value mlir::moe::decodeE8M0(StructuredBuilder &b, Value scale) {
  Type f32 = b.getF32Type();
  Value byte = b.create<arith::BitcastOp>(b.getI8Type(), scale);
  Value s = b.create<arith::ExtUIOp>(b.getI32Type(), byte);
  // 2^(s - 127) is the f32 with exponent field s for s in [1, 254]; s = 0 is
  // 2^-127, the f32 subnormal 0x00400000; s = 0xFF is NaN.
  Value bits = b.create<arith::ShLIOp>(s, b.i32(23));
  bits = b.create<arith::SelectOp>(
      b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, s, b.i32(0)),
      b.i32(0x00400000), bits);
  bits = b.create<arith::SelectOp>(
      b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, s, b.i32(0xFF)),
      b.i32(0x7FC00000), bits);
  return b.create<arith::BitcastOp>(f32, bits);
}

Value mlir::moe::dequantizeWeights(StructuredBuilder &b, WeightQuantAttr quant,
                                   Value weights, Value scales,
                                   Value zeroPoints) {
  auto type = cast<RankedTensorType>(weights.getType());
  int64_t perElement = quant.getWeightsPerElement();
  SmallVector<OpFoldResult> sizes = {
      b.getIndexAttr(type.getDimSize(0)), b.getIndexAttr(type.getDimSize(1)),
      b.getIndexAttr(type.getDimSize(2) * perElement)};
  Value out = b.empty(sizes, b.getF32Type());
  int64_t groupSize = quant.getBlockK();
  WeightFormat format = quant.getFormat();
  return b
      .generic(
          {}, {out}, 3, {{0, 1, 2}}, {},
          [&](StructuredBuilder &nb, ValueRange) {
            Value expert = nb.loopIndex(0), row = nb.loopIndex(1),
                  k = nb.loopIndex(2);
            Value group = nb.create<arith::DivUIOp>(k, nb.index(groupSize));
            Value column = k;
            if (perElement == 2)
              column = nb.create<arith::DivUIOp>(k, nb.index(2));
            Value byte = nb.create<tensor::ExtractOp>(
                weights, ValueRange{expert, row, column});
            Value scale = nb.create<tensor::ExtractOp>(
                scales, ValueRange{expert, row, group});
            Value code;
            if (perElement == 2) {
              // The low nibble holds the even k, the high nibble the odd k.
              Value word = nb.create<arith::ExtUIOp>(nb.getI32Type(), byte);
              Value odd = nb.fromIndex(nb.create<arith::AndIOp>(k, nb.index(1)),
                                       nb.getI32Type());
              Value shift = nb.create<arith::MulIOp>(odd, nb.i32(4));
              code = nb.create<arith::AndIOp>(
                  nb.create<arith::ShRUIOp>(word, shift), nb.i32(15));
            }
            Value value;
            switch (format) {
            case WeightFormat::mxfp4:
              value = nb.create<arith::MulFOp>(decodeE2M1(nb, code),
                                               decodeE8M0(nb, scale));
              break;
            case WeightFormat::int4: {
              Value zero = nb.i32(8);
              if (zeroPoints)
                zero = nb.create<arith::ExtSIOp>(
                    nb.getI32Type(),
                    nb.create<tensor::ExtractOp>(
                        zeroPoints, ValueRange{expert, row, group}));
              Value centered = nb.create<arith::SIToFPOp>(
                  nb.getF32Type(), nb.create<arith::SubIOp>(code, zero));
              value = nb.create<arith::MulFOp>(centered, scale);
              break;
            }
            case WeightFormat::int8:
              value = nb.create<arith::MulFOp>(
                  nb.create<arith::SIToFPOp>(nb.getF32Type(), byte), scale);
              break;
            case WeightFormat::fp8_e4m3:
              llvm_unreachable("fp8 weights are decoded in the matmul body");
            }
            return SmallVector<Value>{value};
          })
      .front();
}

Value mlir::moe::panelNibblesFromWordOrder(StructuredBuilder &b, Value panels) {
  auto type = cast<RankedTensorType>(panels.getType());
  SmallVector<OpFoldResult> sizes;
  for (int64_t size : type.getShape())
    sizes.push_back(b.getIndexAttr(size));
  return b
      .generic(
          {}, {b.empty(sizes, type.getElementType())}, 4, {{0, 1, 2, 3}}, {},
          [&](StructuredBuilder &nb, ValueRange) -> SmallVector<Value> {
            // Column c = 16 blk + d: its k-pair is nibble blk % 2 of bytes
            // 4d + blk / 2 (k = 2j) and 4d + 2 + blk / 2 (k = 2j + 1).
            Value c = nb.loopIndex(3);
            Value blk = nb.create<arith::DivUIOp>(c, nb.index(16));
            Value d = nb.create<arith::RemUIOp>(c, nb.index(16));
            Value first = nb.create<arith::AddIOp>(
                nb.create<arith::MulIOp>(d, nb.index(4)),
                nb.create<arith::DivUIOp>(blk, nb.index(2)));
            Value shift = nb.create<arith::MulIOp>(
                nb.create<arith::RemUIOp>(blk, nb.index(2)), nb.index(4));
            Value shiftI8 =
                nb.create<arith::IndexCastOp>(nb.getI8Type(), shift);
            auto nibble = [&](Value byteIndex) {
              Value byte = nb.create<tensor::ExtractOp>(
                  panels, ValueRange{nb.loopIndex(0), nb.loopIndex(1),
                                     nb.loopIndex(2), byteIndex});
              Value code = nb.create<arith::ShRUIOp>(byte, shiftI8);
              return nb.create<arith::AndIOp>(
                  code, nb.create<arith::ConstantOp>(nb.getI8IntegerAttr(15)));
            };
            Value low = nibble(first);
            Value high = nibble(nb.create<arith::AddIOp>(first, nb.index(2)));
            return {nb.create<arith::OrIOp>(
                low,
                nb.create<arith::ShLIOp>(high, nb.create<arith::ConstantOp>(
                                                   nb.getI8IntegerAttr(4))))};
          })
      .front();
}
