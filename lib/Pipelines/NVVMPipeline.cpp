//===- NVVMPipeline.cpp - moe ops to host code launching NVVM kernels -----===//

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "moe/Conversion/MoEToGPU/MoEToGPU.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

using namespace mlir;

void mlir::moe::buildMoELowerToNVVMPipeline(
    OpPassManager &pm, const NVVMPipelineOptions &options) {
  pm.addPass(createMoEDecomposeLayerPass());
  if (options.fuseRouting)
    pm.addPass(createMoEFuseRoutingPass());
  pm.addPass(createCanonicalizerPass());
  ConvertMoEToGPUPassOptions kernels;
  // wgmma exists on sm_90a only (not sm_90, nor later chips).
  bool wgmma = options.wgmma && options.chip == "sm_90a";
  // wgmma with TMA weights streams an expert's weights faster than the
  // decode shape from 8 rows on, though most of a 128-row tile is then
  // empty (on an H200, DeepSeek-V3 T = 512: 5.4 against 7.8 ms; Mixtral
  // T = 32: 0.70 against 0.79 ms); the staged mma.sync tile needs 64.
  kernels.largeRowsPerExpert =
      options.largeRowsPerExpert
          ? static_cast<int64_t>(options.largeRowsPerExpert)
          : (wgmma ? 8 : 64);
  kernels.smallUnroll = options.smallUnroll;
  kernels.smallSplitK = options.smallSplitK;
  kernels.smallSplitKFrom = options.smallSplitKFrom;
  kernels.largeStaged = options.largeStaged;
  kernels.wgmma = wgmma;
  kernels.wgmmaProducer = options.wgmmaProducer;
  kernels.wgmmaSwizzledA = options.wgmmaSwizzledA;
  kernels.largeTileGroup = options.largeTileGroup;
  pm.addPass(createConvertMoEToGPUPass(kernels));
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
  // The prefill matmul sees its constants as constants, not as parameters:
  // its K loop's stage arithmetic and descriptors then fold (1.2-1.3x at
  // prefill on an H200). The decode matmul measured slower so (DeepSeek-V3
  // T = 32: 4.9 against 3.9 ms), and keeps them as parameters.
  MoESinkLaunchConstantsPassOptions sink;
  sink.kernels = {"moe_grouped_matmul_large"};
  pm.addPass(createMoESinkLaunchConstantsPass(sink));
  pm.addPass(createGpuKernelOutliningPass());

  gpu::GPUToNVVMPipelineOptions nvvm;
  nvvm.cubinChip = options.chip;
  nvvm.cubinFeatures = options.features;
  nvvm.cubinFormat = options.format;
  nvvm.optLevel = options.optLevel;
  gpu::buildLowerToNVVMPassPipeline(pm, nvvm);
}

void mlir::moe::registerMoEPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "moe-lower-to-cpu-pipeline",
      "Lowers moe ops on tensors to the LLVM dialect for the host CPU",
      buildMoELowerToCPUPipeline);
  PassPipelineRegistration<NVVMPipelineOptions>(
      "moe-lower-to-nvvm-pipeline",
      "Lowers moe ops on tensors to host LLVM dialect code launching NVVM "
      "kernels from an embedded GPU binary",
      buildMoELowerToNVVMPipeline);
}
