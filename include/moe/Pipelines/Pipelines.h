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
  PassOptions::Option<bool> vectorize{
      *this, "vectorize",
      llvm::cl::desc("Lower grouped matmuls with convert-moe-to-vector "
                     "instead of the reference linalg lowering"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes of the grouped matmul kernel (16: AVX-512, "
                     "8: AVX2)"),
      llvm::cl::init(16)};
  PassOptions::Option<bool> approximateMath{
      *this, "approximate-math",
      llvm::cl::desc("Inline polynomial approximations of exp, erf and tanh "
                     "instead of libm calls"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> threads{
      *this, "threads",
      llvm::cl::desc("Run the grouped matmul work items on OpenMP threads"),
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
