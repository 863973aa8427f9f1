//===- MoEToVector.cpp - Parallel vectorized CPU grouped matmul -----------===//
//
// Rewrites moe.grouped_matmul into the CPU kernel for its weight layout
// (GroupedMatmulKernel.h). Everything stays on tensors; bufferization makes
// the scf.forall write its tiles in place, and the CPU pipeline maps it onto
// OpenMP threads.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToVector/MoEToVector.h"

#include "GroupedMatmulKernel.h"
#include "LowBitPanelKernel.h"

#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/X86TargetParser.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOVECTORPASS
#include "moe/Conversion/MoEToVector/MoEToVector.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

FailureOr<bool> mlir::moe::hasX86Feature(StringRef cpu, StringRef feature) {
  if (cpu == "native")
    return llvm::sys::getHostCPUFeatures().lookup(feature);
  if (llvm::X86::parseArchX86(cpu, /*Only64Bit=*/true) == llvm::X86::CK_None)
    return failure();
  SmallVector<StringRef> features;
  llvm::X86::getFeaturesForCPU(cpu, features);
  return llvm::is_contained(features, feature);
}

FailureOr<bool> mlir::moe::hasAVX512BF16(StringRef cpu) {
  return hasX86Feature(cpu, "avx512bf16");
}

namespace {

struct VectorizeGroupedMatmul : OpRewritePattern<GroupedMatmulOp> {
  VectorizeGroupedMatmul(MLIRContext *context, KernelShape shape)
      : OpRewritePattern(context), shape(shape) {}

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    std::string why;
    if (!quantizedKernelApplies(op, shape, why))
      return rewriter.notifyMatchFailure(
          op, why + "; left to the reference lowering");
    StructuredBuilder b(op.getLoc(), rewriter);
    Value result;
    if (op.getWeightQuantAttr() && op.getRhsLayout() == RhsLayout::panels)
      result = buildLowBitPanelKernel(op, b, shape);
    else if (op.getRhsLayout() == RhsLayout::nk)
      result = buildDotProductKernel(op, b, shape);
    else if (outerProductKernelApplies(op, shape))
      result = buildOuterProductKernel(op, b, shape);
    else
      return rewriter.notifyMatchFailure(
          op, "panels are not a multiple of the vector width (or panels_vnni "
              "weights are not bf16); left to the reference lowering");
    rewriter.replaceOp(op, result);
    return success();
  }

  KernelShape shape;
};

struct ConvertMoEToVectorPass
    : moe::impl::ConvertMoEToVectorPassBase<ConvertMoEToVectorPass> {
  using Base::Base;

  /// Each option within the range its kernels unroll over: past it a
  /// register block or vector would grow without bound at compile time.
  LogicalResult validateOptions() {
    Location loc = getOperation()->getLoc();
    auto inRange = [&](StringRef name, int64_t value, int64_t lo,
                       int64_t hi) -> LogicalResult {
      if (value >= lo && value <= hi)
        return success();
      return emitError(loc)
             << "convert-moe-to-vector: " << name << " must be in [" << lo
             << ", " << hi << "], got " << value;
    };
    if (vectorWidth < 1 || vectorWidth > 64 ||
        !llvm::isPowerOf2_64(vectorWidth))
      return emitError(loc) << "convert-moe-to-vector: vector-width must be "
                               "a power of two in [1, 64], got "
                            << static_cast<int64_t>(vectorWidth);
    return success(
        succeeded(inRange("row-block", rowBlock, 1, 32)) &&
        succeeded(inRange("column-block", columnBlock, 1, 32)) &&
        succeeded(inRange("column-tile", columnTile, 1, 4096)) &&
        succeeded(inRange("panel-row-block", panelRowBlock, 1, 32)) &&
        succeeded(inRange("panel-column-block", panelColumnBlock, 1, 4)) &&
        succeeded(inRange("panel-column-tile", panelColumnTile, 1, 65536)) &&
        succeeded(inRange("prefetch-distance", prefetchDistance, 0, 4096)));
  }

  void runOnOperation() override {
    if (failed(validateOptions()))
      return signalPassFailure();
    FailureOr<bool> bf16DotProduct = hasAVX512BF16(targetCpu);
    if (failed(bf16DotProduct)) {
      getOperation()->emitError()
          << "convert-moe-to-vector: unknown target-cpu '" << targetCpu
          << "' (an LLVM x86-64 CPU name such as skylake-avx512, or native)";
      return signalPassFailure();
    }
    // The target-cpu is known to LLVM here (checked above).
    bool avx512 = *hasX86Feature(targetCpu, "avx512f");
    RewritePatternSet patterns(&getContext());
    patterns.add<VectorizeGroupedMatmul>(
        &getContext(), KernelShape{vectorWidth, rowBlock, columnBlock,
                                   columnTile, panelRowBlock, panelColumnBlock,
                                   panelColumnTile,
                                   prefetchDistance, *bf16DotProduct, avx512});
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
