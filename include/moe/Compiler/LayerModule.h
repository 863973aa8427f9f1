//===- LayerModule.h - The moe.layer module of a LayerSpec ------*- C++ -*-===//
//
// Builds the module moe-compile and the C API compile for a layer spec,
// with OpBuilder: no IR text is printed and parsed in between.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_LAYERMODULE_H
#define MOE_COMPILER_LAYERMODULE_H

#include "moe/Compiler/LayerSpec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir::moe {

/// A module with one function `@name` holding the layer as a moe.layer with
/// a dynamic token count: (x, router, w13, w2[, bias][, shared_w13,
/// shared_w2[, shared_gate]]) -> y (layerArgumentNames). The spec must have
/// passed validateLayerSpec; every op gets `loc`. Returns null, with the
/// verifier's diagnostics emitted, if the module does not verify.
OwningOpRef<ModuleOp> buildLayerModule(const LayerSpec &spec,
                                       llvm::StringRef name, Location loc);

} // namespace mlir::moe

#endif // MOE_COMPILER_LAYERMODULE_H
