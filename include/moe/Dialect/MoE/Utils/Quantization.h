//===- Quantization.h - FP8 values and activation quantization -*- C++ -*-===//
//
// The arithmetic of `#moe.weight_quant` (docs/quantization.md) as f32 and
// integer ops on scalars or vectors, shared by the reference lowering and
// the CPU kernels so they compute exactly the same values. The host has no
// FP8 arithmetic (and LLVM no FP8 types): e4m3 bytes are decoded with
// integer ops, and rounding to e4m3 is done in f32.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_QUANTIZATION_H
#define MOE_DIALECT_MOE_UTILS_QUANTIZATION_H

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

namespace mlir::moe {

/// `type` (a scalar or a vector) with `element` as its element type.
Type withElementType(Type type, Type element);

/// An integer or float constant shaped like `like` (scalar or vector).
Value splatConstant(StructuredBuilder &b, Type like, TypedAttr scalar);

/// The largest finite f8E4M3FN value.
constexpr double kE4M3Max = 448.0;

/// The exact f32 value of an f8E4M3FN scalar or vector (0x7F and 0xFF are
/// NaN).
Value decodeE4M3(StructuredBuilder &b, Value bits);

/// The f8E4M3FN value nearest to an f32 scalar or vector (ties to even),
/// as f32, after clamping to [-448, 448].
Value roundToE4M3(StructuredBuilder &b, Value x);

/// The A operand of a quantized grouped matmul as the values its product
/// uses: each row of `lhs` [M, K] quantized to e4m3 and scaled back, in a
/// new f32 [M, K] tensor. `dynamic`: per row and group of `bk` columns,
/// scale = amax(|a|) / 448 (1 for an all-zero group); `static`: the one
/// scale in `staticScale` [1]. Either way a / scale is rounded by
/// roundToE4M3 and multiplied by the scale again.
Value quantizeActivations(StructuredBuilder &b, Value lhs,
                          WeightQuantAttr quant, Value staticScale);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_QUANTIZATION_H
