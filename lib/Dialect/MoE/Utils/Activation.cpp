//===- Activation.cpp - GLU activations in f32 ----------------------------===//

#include "moe/Dialect/MoE/Utils/Activation.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

/// `value` as a constant of `like`'s type: an f32 scalar or an f32 vector.
static Value constantLike(StructuredBuilder &b, Value like, double value) {
  auto vector = dyn_cast<VectorType>(like.getType());
  if (!vector)
    return b.f32(value);
  return b.create<arith::ConstantOp>(DenseElementsAttr::get(
      vector, b.getF32FloatAttr(static_cast<float>(value))));
}

Value mlir::moe::sigmoid(StructuredBuilder &b, Value x) {
  Value one = constantLike(b, x, 1.0);
  Value denominator = b.create<arith::AddFOp>(
      one, b.create<math::ExpOp>(b.create<arith::NegFOp>(x)));
  return b.create<arith::DivFOp>(one, denominator);
}

Value mlir::moe::gluActivation(StructuredBuilder &b, Value gate, Value up,
                               Activation activation, double alpha,
                               double limit) {
  auto c = [&](double value) { return constantLike(b, gate, value); };
  switch (activation) {
  case Activation::silu:
    return b.create<arith::MulFOp>(
        b.create<arith::MulFOp>(gate, sigmoid(b, gate)), up);
  case Activation::gelu: {
    Value scaled = b.create<arith::MulFOp>(gate, c(M_SQRT1_2));
    Value onePlus =
        b.create<arith::AddFOp>(c(1.0), b.create<math::ErfOp>(scaled));
    Value gelu = b.create<arith::MulFOp>(
        b.create<arith::MulFOp>(c(0.5), gate), onePlus);
    return b.create<arith::MulFOp>(gelu, up);
  }
  case Activation::gelu_tanh: {
    Value cube = b.create<arith::MulFOp>(b.create<arith::MulFOp>(gate, gate),
                                         gate);
    Value inner = b.create<arith::AddFOp>(
        gate, b.create<arith::MulFOp>(c(0.044715), cube));
    Value tanh = b.create<math::TanhOp>(
        b.create<arith::MulFOp>(c(std::sqrt(2.0 / M_PI)), inner));
    Value gelu = b.create<arith::MulFOp>(
        b.create<arith::MulFOp>(c(0.5), gate),
        b.create<arith::AddFOp>(c(1.0), tanh));
    return b.create<arith::MulFOp>(gelu, up);
  }
  case Activation::relu: {
    Value positive = b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, gate,
                                             c(0.0));
    Value relu = b.create<arith::SelectOp>(positive, gate, c(0.0));
    return b.create<arith::MulFOp>(relu, up);
  }
  case Activation::swiglu_oai: {
    Value clampedGate = b.create<arith::MinimumFOp>(gate, c(limit));
    Value clampedUp = b.create<arith::MaximumFOp>(
        b.create<arith::MinimumFOp>(up, c(limit)), c(-limit));
    Value glu = b.create<arith::MulFOp>(
        clampedGate,
        sigmoid(b, b.create<arith::MulFOp>(c(alpha), clampedGate)));
    return b.create<arith::MulFOp>(
        glu, b.create<arith::AddFOp>(clampedUp, c(1.0)));
  }
  }
  llvm_unreachable("unknown activation");
}

