//===- WeightDequantization.h - Weight-only formats as f32 ------*- C++ -*-===//
//
// The weight-only formats of `#moe.weight_quant` (mxfp4, int4, int8;
// docs/quantization.md) dequantized into f32 weights by the reference
// lowering, in f32: an mxfp4 weight (e2m1 value times a power of two) is
// exact unless it leaves the f32 range; an int4 or int8 weight (a small
// integer times an f32 scale) is rounded once.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_WEIGHTDEQUANTIZATION_H
#define MOE_DIALECT_MOE_UTILS_WEIGHTDEQUANTIZATION_H

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

namespace mlir::moe {

/// The f32 value of an f4E2M1FN code in the low 4 bits of an i32 scalar, or
/// of each lane of an i32 vector (the bits above are ignored).
Value decodeE2M1(StructuredBuilder &b, Value code);

/// 2^(s - 127) as f32 for an f8E8M0FNU scalar `s` (s = 0 gives 2^-127, an
/// f32 subnormal; 0xFF is NaN).
Value decodeE8M0(StructuredBuilder &b, Value scale);

/// The f32 weights [E, N, K] of `weights` stored in `quant`'s weight-only
/// format (nk layout; [E, N, K / 2] bytes for the packed 4-bit formats),
/// with `scales` [E, N, ceil(K / bk)] and, for int4, `zeroPoints` of the
/// same shape or null (symmetric: z = 8).
Value dequantizeWeights(StructuredBuilder &b, WeightQuantAttr quant,
                        Value weights, Value scales, Value zeroPoints);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_WEIGHTDEQUANTIZATION_H
