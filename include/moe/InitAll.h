//===- InitAll.h - Registers every dialect and pass of the project -*- C++ -*-===//

#ifndef MOE_INITALL_H
#define MOE_INITALL_H

namespace mlir {
class DialectRegistry;
namespace moe {

/// Adds the moe dialect and the upstream dialects its pipelines produce.
void registerAllDialects(DialectRegistry &registry);

/// Registers the moe passes, the upstream passes the pipelines use, and the
/// pipelines themselves.
void registerAllPasses();

} // namespace moe
} // namespace mlir

#endif // MOE_INITALL_H
