//===- QuantizeActivations.cpp - Explicit FP8 activation quantization -----===//
//
// Moves the activation quantization of FP8 grouped matmuls out of the op
// into linalg IR before it, so the CPU kernels see weight-only quantized
// matmuls and the quantized A rows are computed once, not per column tile.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Utils/Quantization.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEQUANTIZEACTIVATIONSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct QuantizeActivations : OpRewritePattern<GroupedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    WeightQuantAttr quant = op.getWeightQuantAttr();
    if (!quant || quant.getActivation() == ActivationQuant::none)
      return rewriter.notifyMatchFailure(op, "no activation quantization");
    StructuredBuilder b(op.getLoc(), rewriter);
    // With a gather the A operand is x [T, K]: quantizing its rows is the
    // same as quantizing the gathered ones.
    Value quantized =
        quantizeActivations(b, op.getLhs(), quant, op.getLhsScales());
    auto weightOnly =
        WeightQuantAttr::get(op.getContext(), quant.getFormat(),
                             quant.getBlock(), ActivationQuant::none);
    rewriter.modifyOpInPlace(op, [&] {
      op.getLhsMutable().assign(quantized);
      op.getLhsScalesMutable().clear();
      op.setWeightQuantAttr(weightOnly);
    });
    return success();
  }
};

struct MoEQuantizeActivationsPass
    : moe::impl::MoEQuantizeActivationsPassBase<MoEQuantizeActivationsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<QuantizeActivations>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
