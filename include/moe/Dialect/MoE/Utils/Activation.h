//===- Activation.h - GLU activations in f32 --------------------*- C++ -*-===//
//
// The activations of the dialect as f32 arithmetic on scalars or vectors,
// shared by every lowering so they all compute exactly the same function.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_ACTIVATION_H
#define MOE_DIALECT_MOE_UTILS_ACTIVATION_H

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

namespace mlir::moe {

/// 1 / (1 + exp(-x)) for an f32 scalar or vector.
Value sigmoid(StructuredBuilder &b, Value x);

/// act(gate) * up for f32 scalars or vectors of one type; `alpha` and
/// `limit` are swiglu_oai's.
Value gluActivation(StructuredBuilder &b, Value gate, Value up,
                    Activation activation, double alpha, double limit);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_ACTIVATION_H
