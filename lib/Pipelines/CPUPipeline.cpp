//===- CPUPipeline.cpp - moe ops to the LLVM dialect for the host ---------===//

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Conversion/MoEToVector/MoEToVector.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

using namespace mlir;

LogicalResult mlir::moe::validateCPUPipelineOptions(
    const CPUPipelineOptions &options,
    function_ref<LogicalResult(const Twine &)> errorHandler) {
  auto fail = [&](const Twine &message) {
    return errorHandler("moe-lower-to-cpu-pipeline: " + message);
  };
  if (failed(hasAVX512BF16(options.targetCpu)))
    return fail("unknown target-cpu '" + options.targetCpu +
                "' (an LLVM x86-64 CPU name such as skylake-avx512, or "
                "native)");
  if (options.vectorize)
    return success();
  for (const llvm::cl::Option *option :
       {static_cast<const llvm::cl::Option *>(&options.vectorWidth),
        static_cast<const llvm::cl::Option *>(&options.panelRowBlock),
        static_cast<const llvm::cl::Option *>(&options.panelColumnBlock),
        static_cast<const llvm::cl::Option *>(&options.panelColumnTile),
        static_cast<const llvm::cl::Option *>(&options.prefetchDistance)})
    if (option->getNumOccurrences())
      return fail(option->ArgStr + " applies to the vectorized kernel; it "
                                   "has no effect with vectorize=false");
  return success();
}

void mlir::moe::buildMoELowerToCPUPipeline(OpPassManager &pm,
                                           const CPUPipelineOptions &options) {
  // The down projection of bf16 weight-only layers takes the bf16 GLU output
  // (the dot-product decodings of the quantized panels).
  MoEDecomposeLayerPassOptions decompose;
  decompose.bf16WeightOnlyGlu = true;
  pm.addPass(createMoEDecomposeLayerPass(decompose));
  if (options.fuseRouting)
    pm.addPass(createMoEFuseRoutingPass());
  if (options.vectorize) {
    // The kernels dequantize FP8 weights; the quantized A rows are computed
    // once before them.
    pm.addPass(createMoEQuantizeActivationsPass());
    ConvertMoEToVectorPassOptions kernel;
    kernel.vectorWidth = options.vectorWidth;
    kernel.panelRowBlock = options.panelRowBlock;
    kernel.panelColumnBlock = options.panelColumnBlock;
    kernel.panelColumnTile = options.panelColumnTile;
    kernel.prefetchDistance = options.prefetchDistance;
    kernel.targetCpu = options.targetCpu;
    pm.addPass(createConvertMoEToVectorPass(kernel));
  }
  pm.addPass(createConvertMoEToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  // Function arguments and results become plain (identity layout) memrefs,
  // and results become out-parameters, so C callers pass every buffer.
  bufferization::OneShotBufferizePassOptions bufferization;
  bufferization.bufferizeFunctionBoundaries = true;
  bufferization.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferization));
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.modifyPublicFunctions = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createMoELowerStridedCopiesPass());
  MoELowerVectorOpsPassOptions vectorOps;
  vectorOps.targetCpu = options.targetCpu;
  pm.addPass(createMoELowerVectorOpsPass(vectorOps));

  // Only the module's own functions get C wrappers, not the libm
  // declarations the math lowering adds later.
  if (options.cInterface)
    pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());
  pm.addPass(createForallToParallelLoopPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  if (options.threads)
    pm.addPass(createConvertSCFToOpenMPPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  // x86vector.avx512.dot (vdpbf16ps) becomes its LLVM intrinsic.
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.x86Vector = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  // Before scf-to-cf: the OpenMP regions hold alloca scopes that must still
  // have a single block when memrefs are lowered.
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createSCFToControlFlowPass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  if (options.approximateMath)
    pm.addPass(createMoEApproximateMathPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  // math-to-libm calls a vector's erf (GELU without approximate-math) lane
  // by lane, through vector.extract and vector.insert: those go to LLVM too.
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}
