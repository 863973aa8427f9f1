//===- MoEToGPU.cpp - moe ops to GPU kernels ------------------------------===//
//
// The conversion: one pattern per op that becomes kernels, each calling the
// op's lowering (Lowerings.h) and replacing the op through the rewriter, and
// the pass that applies them. The host side keeps only sizes, buffer
// allocations and launches.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "Lowerings.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOGPUPASS
#include "moe/Conversion/MoEToGPU/MoEToGPU.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// Replaces an `OpT` by what `Lower` builds for it.
template <typename OpT,
          Replacements (*Lower)(OpT, typename OpT::Adaptor, KernelBuilder &)>
struct KernelPattern : OpConversionPattern<OpT> {
  using OpConversionPattern<OpT>::OpConversionPattern;

  LogicalResult
  matchAndRewrite(OpT op, typename OpT::Adaptor operands,
                  ConversionPatternRewriter &rewriter) const override {
    KernelBuilder b(op.getLoc(), rewriter);
    Replacements replacements = Lower(op, operands, b);
    if (failed(replacements))
      return failure();
    rewriter.replaceOp(op, *replacements);
    return success();
  }
};

/// An element-wise linalg.generic (left by layer decomposition).
struct ElementwisePattern : OpConversionPattern<linalg::GenericOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(linalg::GenericOp op, OpAdaptor operands,
                  ConversionPatternRewriter &rewriter) const override {
    KernelBuilder b(op.getLoc(), rewriter);
    Replacements replacements = lowerElementwise(op, operands.getOperands(), b);
    if (failed(replacements))
      return failure();
    rewriter.replaceOp(op, *replacements);
    return success();
  }
};

/// moe.layer is decomposed before it reaches the GPU lowering.
struct UndecomposedLayerPattern : OpConversionPattern<LayerOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult matchAndRewrite(LayerOp op, OpAdaptor,
                                ConversionPatternRewriter &) const override {
    return op.emitOpError() << "must be decomposed first (moe-decompose-layer)";
  }
};

struct ConvertMoEToGPUPass
    : public moe::impl::ConvertMoEToGPUPassBase<ConvertMoEToGPUPass> {
  using ConvertMoEToGPUPassBase::ConvertMoEToGPUPassBase;

  void runOnOperation() override {
    MLIRContext *context = &getContext();
    ConversionTarget target(*context);
    target.addIllegalDialect<MoEDialect>();
    target.addIllegalOp<linalg::GenericOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(context);
    populateMoEToGPUConversionPatterns(patterns);
    // A lowering that refuses an op says why; the conversion's own
    // "failed to legalize" after it would only repeat the location.
    bool refused = false;
    ScopedDiagnosticHandler onlyTheReason(context, [&](Diagnostic &diag) {
      if (diag.getSeverity() != DiagnosticSeverity::Error)
        return failure();
      if (refused && StringRef(diag.str()).starts_with("failed to legalize"))
        return success();
      refused = true;
      return failure();
    });
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      return signalPassFailure();
    // Host-built offsets were passed to the kernels as scalars.
    getOperation().walk([](tensor::FromElementsOp op) {
      if (op->use_empty())
        op->erase();
    });
  }
};

} // namespace

void mlir::moe::populateMoEToGPUConversionPatterns(
    RewritePatternSet &patterns) {
  patterns
      .add<KernelPattern<RouteOp, lowerRoute>,
           KernelPattern<DispatchOp, lowerDispatch>,
           KernelPattern<CombineOp, lowerCombine>,
           KernelPattern<PermuteOp, lowerPermute>,
           KernelPattern<ExpertChoiceOp, lowerExpertChoice>,
           KernelPattern<AuxLossOp, lowerAuxLoss>,
           KernelPattern<ZLossOp, lowerZLoss>, KernelPattern<GluOp, lowerGlu>,
           KernelPattern<RowTilesOp, lowerRowTiles>,
           KernelPattern<GroupedMatmulOp, lowerGroupedMatmul>,
           ElementwisePattern, UndecomposedLayerPattern>(patterns.getContext());
}
