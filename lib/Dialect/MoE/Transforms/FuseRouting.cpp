//===- FuseRouting.cpp - Fold routing into the grouped matmuls ------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSEROUTINGPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A grouped matmul with the same operands and attributes as `op`, except
/// for the ones `update` changes, producing `resultType` into `init`. A bias
/// is added before the epilogue and the row scale, so every fold below keeps
/// it as it is. A `row_tiles` schedule is not kept: it belongs to the old
/// rows.
GroupedMatmulOp cloneMatmul(PatternRewriter &rewriter, GroupedMatmulOp op,
                            Value lhs, Value rows, Value rowScale, Value init,
                            function_ref<void(GroupedMatmulOp)> update) {
  auto fused = GroupedMatmulOp::create(
      rewriter, op.getLoc(), init.getType(), lhs, op.getRhs(), op.getOffsets(),
      rows, rowScale, op.getBias(), op.getRhsScales(), op.getLhsScales(),
      op.getRhsZeroPoints(), /*row_tiles=*/Value(), init, op.getRhsLayoutAttr(), op.getGatherAttr(),
      op.getKAttr(), op.getEpilogueAttr(), op.getWeightQuantAttr(),
      op.getGluLayoutAttr(), op.getAlphaAttr(), op.getLimitAttr());
  update(fused);
  return fused;
}

/// permute + grouped_matmul -> grouped_matmul with `gather`.
struct FoldPermuteIntoGather : OpRewritePattern<GroupedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    auto permute = op.getLhs().getDefiningOp<PermuteOp>();
    if (!permute || op.getGather() || op.getRows())
      return rewriter.notifyMatchFailure(op, "lhs is not a plain permute");
    auto fused = cloneMatmul(rewriter, op, permute.getX(), permute.getRows(),
                             Value(), op.getInit(), [&](GroupedMatmulOp m) {
                               m.setGather(true);
                               m.setK(permute.getK());
                             });
    rewriter.replaceOp(op, fused.getResult());
    return success();
  }
};

/// grouped_matmul + glu -> grouped_matmul with a GLU epilogue.
struct FoldGluIntoEpilogue : OpRewritePattern<GluOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GluOp glu,
                                PatternRewriter &rewriter) const override {
    auto matmul = glu.getH().getDefiningOp<GroupedMatmulOp>();
    if (!matmul || matmul.getEpilogue() || matmul.getRowScale() ||
        !matmul->hasOneUse())
      return rewriter.notifyMatchFailure(glu, "input is not a plain matmul");
    auto fused =
        cloneMatmul(rewriter, matmul, matmul.getLhs(), matmul.getRows(),
                    Value(), glu.getInit(), [&](GroupedMatmulOp m) {
                      m.setEpilogueAttr(ActivationAttr::get(
                          rewriter.getContext(), glu.getActivation()));
                      m.setGluLayoutAttr(glu.getGluLayoutAttr());
                      m.setAlphaAttr(glu.getAlphaAttr());
                      m.setLimitAttr(glu.getLimitAttr());
                    });
    rewriter.replaceOp(glu, fused.getResult());
    rewriter.eraseOp(matmul);
    return success();
  }
};

/// grouped_matmul + combine -> grouped_matmul with row_scale + a prescaled
/// combine.
struct FoldWeightsIntoRowScale : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp combine,
                                PatternRewriter &rewriter) const override {
    auto matmul = combine.getYs().getDefiningOp<GroupedMatmulOp>();
    if (combine.getPrescaled() || !matmul || matmul.getRowScale() ||
        !matmul->hasOneUse())
      return rewriter.notifyMatchFailure(combine, "ys is not a plain matmul");
    if (matmul.getRows() && matmul.getRows() != combine.getRows())
      return rewriter.notifyMatchFailure(combine, "rows differ");
    int64_t k =
        cast<RankedTensorType>(combine.getWeights().getType()).getDimSize(1);
    if (matmul.getGather() && static_cast<int64_t>(matmul.getK()) != k)
      return rewriter.notifyMatchFailure(combine, "k differs");
    auto fused =
        cloneMatmul(rewriter, matmul, matmul.getLhs(), combine.getRows(),
                    combine.getWeights(), matmul.getInit(),
                    [&](GroupedMatmulOp m) { m.setK(k); });
    rewriter.modifyOpInPlace(combine, [&] {
      combine.getYsMutable().assign(fused.getResult());
      combine.setPrescaled(true);
    });
    rewriter.eraseOp(matmul);
    return success();
  }
};

struct MoEFuseRoutingPass
    : moe::impl::MoEFuseRoutingPassBase<MoEFuseRoutingPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FoldPermuteIntoGather, FoldGluIntoEpilogue,
                 FoldWeightsIntoRowScale>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
