//===- NVVMPipeline.cpp - moe ops to host code launching NVVM kernels -----===//

#include "moe/Pipelines/Pipelines.h"

#include "moe/Pipelines/CUDATarget.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "moe/Conversion/MoEToGPU/MoEToGPU.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::moe;

/// The pipeline's own options in their ranges: a bad one stops here, with
/// its name, before any upstream pass meets it.
static LogicalResult
validateOptions(const NVVMPipelineOptions &options,
                function_ref<LogicalResult(const Twine &)> errorHandler) {
  auto fail = [&](const Twine &message) {
    return errorHandler("moe-lower-to-nvvm-pipeline: " + message);
  };
  if (llvm::Error error =
          checkCUDATarget(options.chip, options.features, "chip", "features"))
    return fail(toString(std::move(error)));
  if (!llvm::is_contained({"fatbin", "bin", "isa", "offloading"},
                          options.format.getValue()))
    return fail("format must be fatbin, bin, isa or offloading, got '" +
                options.format + "'");
  if (options.optLevel < 0 || options.optLevel > 3)
    return fail("opt-level must be in [0, 3], got " +
                Twine(static_cast<int>(options.optLevel)));
  // griddepcontrol is an sm_90 instruction: asked for below, ptxas would
  // refuse the kernels long after the option was the mistake.
  std::optional<GpuChip> chip = parseGpuChip(options.chip);
  if (options.pdl && chip && chip->version < 90)
    return fail("pdl=true needs sm_90 or newer (griddepcontrol), chip is '" +
                options.chip + "'");
  return success();
}

bool mlir::moe::defaultDispatchRowTiles() {
  return MoEGPUShareRowTilesPassOptions().dispatchRowTiles;
}

bool mlir::moe::usesProgrammaticLaunch(const NVVMPipelineOptions &options) {
  return options.pdl;
}

LogicalResult mlir::moe::buildMoELowerToNVVMPipeline(
    OpPassManager &pm, const NVVMPipelineOptions &options,
    function_ref<LogicalResult(const Twine &)> errorHandler) {
  if (failed(validateOptions(options, errorHandler)))
    return failure();
  // The kernel choices are the selection pass's options, parsed and
  // checked by the pass itself; the chip is the pipeline's, for both.
  std::unique_ptr<Pass> select = createMoEGPUSelectKernelConfigPass();
  StringRef kernelConfig = options.kernelConfig;
  if (kernelConfig.contains("chip") || kernelConfig.contains("ptx"))
    return errorHandler("moe-lower-to-nvvm-pipeline: kernel-config takes no "
                        "chip or ptx: the pipeline's chip and features "
                        "options set them");
  // The PTX version, so that a kernel that needs a newer one (the FP8
  // kernel's e4m3 mma.sync) is refused at its op.
  unsigned ptx = requestedPTXVersion(options.features);
  if (failed(select->initializeOptions(
          (kernelConfig + " chip=" + options.chip + " ptx=" + Twine(ptx)).str(),
          errorHandler)))
    return failure();

  pm.addPass(createMoEDecomposeLayerPass());
  if (options.fuseRouting)
    pm.addPass(createMoEFuseRoutingPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(std::move(select));
  MoEGPUShareRowTilesPassOptions share;
  share.dispatchRowTiles = options.dispatchRowTiles;
  pm.addPass(createMoEGPUShareRowTilesPass(share));
  pm.addPass(createCSEPass());
  pm.addPass(createConvertMoEToGPUPass());
  pm.addPass(createCanonicalizerPass());

  bufferization::OneShotBufferizePassOptions bufferization;
  bufferization.bufferizeFunctionBoundaries = true;
  bufferization.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferization));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createMoEGPUWorkspacePass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (options.cInterface)
    pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());
  // Activations and softmaxes as inline arithmetic, not libdevice calls.
  pm.addPass(createMoEApproximateMathPass());
  // Before outlining, as upstream's pipeline orders them: a TMA descriptor
  // captured by a launch must already be a pointer when it becomes a kernel
  // argument.
  pm.addPass(createConvertNVGPUToNVVMPass());
  // The kernels whose configuration asks for it (moe.inline_constants) see
  // the host's constants as constants, not as parameters.
  MoESinkLaunchConstantsPassOptions sink;
  sink.markedOnly = true;
  pm.addPass(createMoESinkLaunchConstantsPass(sink));
  // After the constants are in the bodies, so that the wait lands after the
  // index arithmetic on them.
  if (usesProgrammaticLaunch(options))
    pm.addPass(createMoEGPUProgrammaticLaunchPass());
  pm.addPass(createGpuKernelOutliningPass());

  gpu::GPUToNVVMPipelineOptions nvvm;
  nvvm.cubinChip = options.chip;
  nvvm.cubinFeatures = options.features;
  nvvm.cubinFormat = options.format;
  nvvm.optLevel = options.optLevel;
  gpu::buildLowerToNVVMPassPipeline(pm, nvvm);
  return success();
}

void mlir::moe::registerMoEPipelines() {
  registerPassPipeline(
      "moe-lower-to-cpu-pipeline",
      "Lowers moe ops on tensors to the LLVM dialect for the host CPU",
      [](OpPassManager &pm, StringRef text,
         function_ref<LogicalResult(const Twine &)> errorHandler) {
        CPUPipelineOptions options;
        if (failed(options.parseFromString(text)) ||
            failed(validateCPUPipelineOptions(options, errorHandler)))
          return failure();
        buildMoELowerToCPUPipeline(pm, options);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(CPUPipelineOptions());
      });
  registerPassPipeline(
      "moe-lower-to-nvvm-pipeline",
      "Lowers moe ops on tensors to host LLVM dialect code launching NVVM "
      "kernels from an embedded GPU binary",
      [](OpPassManager &pm, StringRef text,
         function_ref<LogicalResult(const Twine &)> errorHandler) {
        NVVMPipelineOptions options;
        if (failed(options.parseFromString(text)))
          return failure();
        return buildMoELowerToNVVMPipeline(pm, options, errorHandler);
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(NVVMPipelineOptions());
      });
}
