//===- CUDAKernels.h - moe-compile's CUDA kernels ---------------*- C++ -*-===//
//
// A CUDA artifact's kernels: the module lowered through
// moe-lower-to-nvvm-pipeline and serialized (fatbin or PTX), and the runtime
// archive its library links in.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_MOE_COMPILE_CUDAKERNELS_H
#define MOE_TOOLS_MOE_COMPILE_CUDAKERNELS_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mlir::moe {

/// The runtime archive CUDA artifacts link in: MOE_MLIR_CUDA_RUNTIME, else
/// lib/libmoe_cuda_runtime.a beside this executable's bin/.
std::string cudaRuntimeArchive();

/// Lowers `module` for CUDA (`chipName`, PTX `features`) with its kernels
/// serialized as `format` (fatbin or isa, i.e. PTX) and returns them; a
/// failure has been reported when it returns one.
FailureOr<std::string> lowerKernelsForCUDA(ModuleOp module, StringRef chipName,
                                           StringRef features,
                                           StringRef format);

} // namespace mlir::moe

#endif // MOE_TOOLS_MOE_COMPILE_CUDAKERNELS_H
