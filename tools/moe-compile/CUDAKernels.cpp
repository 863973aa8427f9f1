//===- CUDAKernels.cpp - moe-compile's CUDA kernels -----------------------===//

#include "CUDAKernels.h"

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace llvm;
using namespace mlir;
using namespace mlir::moe;

/// The runtime archive CUDA artifacts link in: MOE_MLIR_CUDA_RUNTIME, else
/// lib/libmoe_cuda_runtime.a beside this executable's bin/. Both the build
/// tree and an installed package (moe_mlir/_native/) are laid out so, and
/// neither path is compiled in, so a moved or installed tool still finds it.
std::string mlir::moe::cudaRuntimeArchive() {
  if (const char *path = std::getenv("MOE_MLIR_CUDA_RUNTIME"))
    return path;
  std::string self = sys::fs::getMainExecutable(
      nullptr, reinterpret_cast<void *>(&cudaRuntimeArchive));
  SmallString<256> path(sys::path::parent_path(sys::path::parent_path(self)));
  sys::path::append(path, "lib", "libmoe_cuda_runtime.a");
  return std::string(path);
}

/// Lowers `module` through moe-lower-to-nvvm-pipeline, its kernels serialized
/// as `format` (fatbin or isa, i.e. PTX).
static LogicalResult lowerForCUDA(ModuleOp module, StringRef chipName,
                                  StringRef features, StringRef format) {
  // ptxas and fatbinary come from the CUDA toolkit the NVVM target finds
  // through CUDA_HOME.
  if (!std::getenv("CUDA_HOME") && !std::getenv("CUDA_ROOT") &&
      !std::getenv("CUDA_PATH"))
    setenv("CUDA_HOME", "/usr/local/cuda", /*overwrite=*/0);
  PassManager pm = PassManager::on<ModuleOp>(module.getContext());
  NVVMPipelineOptions options;
  options.chip = chipName.str();
  options.features = features.str();
  options.format = format.str();
  if (failed(
          buildMoELowerToNVVMPipeline(pm, options, [&](const Twine &message) {
            return emitError(module.getLoc()) << message;
          })))
    return failure();
  return pm.run(module);
}

/// The serialized kernels of a module lowered for CUDA.
static FailureOr<std::string> kernelImage(ModuleOp module) {
  std::string image;
  module.walk([&](gpu::BinaryOp binary) {
    for (mlir::Attribute object : binary.getObjects())
      if (auto gpuObject = dyn_cast<gpu::ObjectAttr>(object))
        image = gpuObject.getObject().str();
  });
  if (image.empty())
    return failure();
  return image;
}

/// Lowers `module` for CUDA with its kernels serialized as `format` and
/// returns them; a failure has been reported when it returns one.
FailureOr<std::string> mlir::moe::lowerKernelsForCUDA(ModuleOp module,
                                                      StringRef chipName,
                                                      StringRef features,
                                                      StringRef format) {
  if (failed(lowerForCUDA(module, chipName, features, format)))
    return failure();
  FailureOr<std::string> image = kernelImage(module);
  if (failed(image))
    errs() << "moe-compile: error: the lowering produced no GPU kernels\n";
  return image;
}
