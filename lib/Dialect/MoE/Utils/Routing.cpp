//===- Routing.cpp - Scalar pieces of routing shared by lowerings ---------===//

#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::gshardUniform(StructuredBuilder &b, Value token,
                               int64_t seed) {
  Value t = b.create<arith::IndexCastOp>(b.getI64Type(), token);
  Value z = b.create<arith::AddIOp>(
      b.i64(seed),
      b.create<arith::MulIOp>(b.create<arith::AddIOp>(t, b.i64(1)),
                              b.i64(static_cast<int64_t>(0x9E3779B97F4A7C15ULL))));
  auto mix = [&](Value v, int64_t shift, uint64_t multiplier) -> Value {
    Value x = b.create<arith::XOrIOp>(
        v, b.create<arith::ShRUIOp>(v, b.i64(shift)));
    return b.create<arith::MulIOp>(x, b.i64(static_cast<int64_t>(multiplier)));
  };
  z = mix(z, 30, 0xBF58476D1CE4E5B9ULL);
  z = mix(z, 27, 0x94D049BB133111EBULL);
  z = b.create<arith::XOrIOp>(z, b.create<arith::ShRUIOp>(z, b.i64(31)));
  Value top24 = b.create<arith::ShRUIOp>(z, b.i64(40));
  Value asFloat = b.create<arith::UIToFPOp>(b.getF32Type(), top24);
  return b.create<arith::MulFOp>(asFloat, b.f32(1.0 / 16777216.0));
}

Value mlir::moe::softmaxExp(StructuredBuilder &b, Value x, Value max) {
  Value atMax = b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, x, max);
  Value shifted = b.create<arith::SelectOp>(atMax, b.f32(0.0),
                                            b.create<arith::SubFOp>(x, max));
  return b.create<math::ExpOp>(shifted);
}

Value mlir::moe::weighted(StructuredBuilder &b, Value weight, Value value) {
  Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(value.getType()));
  Value isZero =
      b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, weight, zero);
  return b.create<arith::SelectOp>(isZero, zero,
                                   b.create<arith::MulFOp>(weight, value));
}
