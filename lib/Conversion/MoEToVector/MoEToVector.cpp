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

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOVECTORPASS
#include "moe/Conversion/MoEToVector/MoEToVector.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct VectorizeGroupedMatmul : OpRewritePattern<GroupedMatmulOp> {
  VectorizeGroupedMatmul(MLIRContext *context, KernelShape shape)
      : OpRewritePattern(context), shape(shape) {}

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value result;
    if (op.getRhsLayout() == RhsLayout::nk)
      result = buildDotProductKernel(op, b, shape);
    else if (outerProductKernelApplies(op, shape))
      result = buildOuterProductKernel(op, b, shape);
    else
      return rewriter.notifyMatchFailure(
          op, "panels are not a multiple of the vector width; left to the "
              "reference lowering");
    rewriter.replaceOp(op, result);
    return success();
  }

  KernelShape shape;
};

struct ConvertMoEToVectorPass
    : moe::impl::ConvertMoEToVectorPassBase<ConvertMoEToVectorPass> {
  using Base::Base;

  void runOnOperation() override {
    if (vectorWidth < 1 || rowBlock < 1 || columnBlock < 1 || columnTile < 1 ||
        panelRowBlock < 1 || panelColumnTile < 1) {
      getOperation()->emitError()
          << "convert-moe-to-vector: vector-width, row-block, column-block, "
             "column-tile, panel-row-block and panel-column-tile must be >= 1";
      return signalPassFailure();
    }
    if (prefetchDistance < 0) {
      getOperation()->emitError()
          << "convert-moe-to-vector: prefetch-distance must be >= 0";
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<VectorizeGroupedMatmul>(
        &getContext(),
        KernelShape{vectorWidth, rowBlock, columnBlock, columnTile,
                    panelRowBlock, panelColumnTile, prefetchDistance});
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
