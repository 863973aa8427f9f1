//===- Activation.cpp - Scalar GLU activations in f32 ---------------------===//

#include "moe/Dialect/MoE/Utils/Activation.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::sigmoid(StructuredBuilder &b, Value x) {
  Value one = b.f32(1.0);
  Value denominator = b.create<arith::AddFOp>(
      one, b.create<math::ExpOp>(b.create<arith::NegFOp>(x)));
  return b.create<arith::DivFOp>(one, denominator);
}

Value mlir::moe::gluScalar(StructuredBuilder &b, Value gate, Value up,
                Activation activation, double alpha, double limit) {
  switch (activation) {
  case Activation::silu:
    return b.create<arith::MulFOp>(
        b.create<arith::MulFOp>(gate, sigmoid(b, gate)), up);
  case Activation::gelu: {
    Value scaled = b.create<arith::MulFOp>(gate, b.f32(M_SQRT1_2));
    Value onePlus =
        b.create<arith::AddFOp>(b.f32(1.0), b.create<math::ErfOp>(scaled));
    Value gelu = b.create<arith::MulFOp>(
        b.create<arith::MulFOp>(b.f32(0.5), gate), onePlus);
    return b.create<arith::MulFOp>(gelu, up);
  }
  case Activation::gelu_tanh: {
    Value cube = b.create<arith::MulFOp>(b.create<arith::MulFOp>(gate, gate),
                                         gate);
    Value inner = b.create<arith::AddFOp>(
        gate, b.create<arith::MulFOp>(b.f32(0.044715), cube));
    Value tanh = b.create<math::TanhOp>(
        b.create<arith::MulFOp>(b.f32(std::sqrt(2.0 / M_PI)), inner));
    Value gelu = b.create<arith::MulFOp>(
        b.create<arith::MulFOp>(b.f32(0.5), gate),
        b.create<arith::AddFOp>(b.f32(1.0), tanh));
    return b.create<arith::MulFOp>(gelu, up);
  }
  case Activation::relu: {
    Value positive = b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, gate,
                                             b.f32(0.0));
    Value relu = b.create<arith::SelectOp>(positive, gate, b.f32(0.0));
    return b.create<arith::MulFOp>(relu, up);
  }
  case Activation::swiglu_oai: {
    Value clampedGate = b.create<arith::MinimumFOp>(gate, b.f32(limit));
    Value clampedUp = b.create<arith::MaximumFOp>(
        b.create<arith::MinimumFOp>(up, b.f32(limit)), b.f32(-limit));
    Value glu = b.create<arith::MulFOp>(
        clampedGate,
        sigmoid(b, b.create<arith::MulFOp>(b.f32(alpha), clampedGate)));
    return b.create<arith::MulFOp>(
        glu, b.create<arith::AddFOp>(clampedUp, b.f32(1.0)));
  }
  }
  llvm_unreachable("unknown activation");
}

