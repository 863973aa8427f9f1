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

/// The panel width whose 4-bit rows (mxfp4, int4 in the panels layout) are
/// stored in the word order: column 16 b + d, weight k = 2j + h, is nibble
/// b % 2 of byte 4 d + 2 h + b / 2 of row j (docs/quantization.md). Read as
/// 32 little-endian words, word 2 d + h holds weight k of columns d, 16 + d,
/// 32 + d and 48 + d in bits 0-3, 4-7, 8-11 and 12-15. Narrower panels keep
/// byte c of a row for column c.
inline constexpr int64_t kWordOrderPanelWidth = 64;

/// [E, N / 64, K / 2, 64] panels of 4-bit codes in the word order as the
/// same panels with byte c of each row holding column c's k-pair (the low
/// nibble k = 2j, the high one 2j + 1).
Value panelNibblesFromWordOrder(StructuredBuilder &b, Value panels);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_WEIGHTDEQUANTIZATION_H
