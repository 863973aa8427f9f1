//===- Pipelines.h - Pipelines from moe ops to executable code --*- C++ -*-===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
namespace moe {

/// Options of `moe-lower-to-cpu-pipeline`.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  PassOptions::Option<bool> cInterface{
      *this, "c-interface",
      llvm::cl::desc("Emit _mlir_ciface_ wrappers so C and ctypes callers "
                     "pass memref descriptors by pointer"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> fuseRouting{
      *this, "fuse-routing",
      llvm::cl::desc("Run moe-fuse-routing: gather, GLU and routing weights "
                     "in the grouped matmuls"),
      llvm::cl::init(true)};
};

/// Lowers a module of moe ops (on tensors) to the LLVM dialect for the host
/// CPU: decompose layers, the linalg lowering, bufferization, loops, LLVM.
void buildMoELowerToCPUPipeline(OpPassManager &pm,
                                const CPUPipelineOptions &options);

/// Registers every pipeline of the project with the pass registry.
void registerMoEPipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
