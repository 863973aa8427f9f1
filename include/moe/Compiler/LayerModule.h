//===- LayerModule.h - The modules of a LayerSpec ---------------*- C++ -*-===//
//
// Builds the modules moe-compile and the C API compile for a layer spec,
// with OpBuilder: no IR text is printed and parsed in between. The whole
// layer (routing inside) and its expert half (the routing given) are the
// two entries of moe-compile (--entry=layer, --entry=experts).
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
/// a dynamic token count: (x, router, w13, w2[, bias][, router_bias][,
/// w13_bias, w2_bias][, shared_w13, shared_w2[, shared_gate]][, w13_scales,
/// w2_scales[, w13_input_scale, w2_input_scale]]) -> y (layerArgumentNames);
/// the Linear biases have the layer's dtype, the FP8 scales are f32. The spec
/// must have passed validateLayerSpec; every op gets `loc`. Returns null, with
/// the verifier's diagnostics emitted, if the module does not verify.
OwningOpRef<ModuleOp> buildLayerModule(const LayerSpec &spec,
                                       llvm::StringRef name, Location loc);

/// A module with one function `@name` holding the layer's routed experts
/// with the routing given, for engines that own the router: (x [T, H],
/// topk_ids [T, k] i32, topk_weights [T, k] f32, w13, w2[, w13_bias
/// [E, 2I], w2_bias [E, H]][, the FP8 scales as the layer's]) -> y [T, H]
/// (expertsArgumentNames), with a
/// dynamic T. It is the expert half of
/// buildLayerModule's layer, as moe-decompose-layer writes it: dispatch
/// (with the spec's capacity), permute, the gate/up grouped matmul, the
/// GLU, the down grouped matmul and the weighted combine, which
/// moe-fuse-routing fuses like the layer's. Ids outside [0, E) get no row
/// (moe.dispatch), so such a selection adds nothing. The router settings and
/// the shared expert are not part of it. Same preconditions and failure as
/// buildLayerModule.
OwningOpRef<ModuleOp> buildExpertsModule(const LayerSpec &spec,
                                         llvm::StringRef name, Location loc);

} // namespace mlir::moe

#endif // MOE_COMPILER_LAYERMODULE_H
