//===- Routing.h - Scalar pieces of routing shared by lowerings -*- C++ -*-===//
//
// Routing steps that every lowering must compute bit for bit the same way,
// whatever it runs on.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_ROUTING_H
#define MOE_DIALECT_MOE_UTILS_ROUTING_H

#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

namespace mlir::moe {

/// The GShard draw u in [0, 1) for token t (an index): splitmix64 of
/// (seed, t), its top 24 bits as an f32.
Value gshardUniform(StructuredBuilder &b, Value token, int64_t seed);

/// exp(x - max) of a softmax over a row whose maximum is `max` (f32 scalars),
/// with exp(0) = 1 wherever x == max. Where max is +inf (a logit that
/// overflowed f32), x - max would be inf - inf = NaN; the limit of the exact
/// softmax gives those entries all the weight instead, so the result reads
/// +-inf or finite as the exact value would. A row of -inf logits is uniform.
/// NaN logits still give NaN.
Value softmaxExp(StructuredBuilder &b, Value x, Value max);

/// weight * value for f32 scalars or vectors of one type, and exactly 0 where
/// the weight is 0: a routing weight that underflowed to 0 contributes
/// nothing, as in exact arithmetic, even where the expert's output overflowed
/// f32 (0 * inf would make the whole token's row NaN).
Value weighted(StructuredBuilder &b, Value weight, Value value);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_ROUTING_H
