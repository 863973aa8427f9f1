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

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_ROUTING_H
