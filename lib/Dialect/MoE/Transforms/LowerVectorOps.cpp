//===- LowerVectorOps.cpp - moe vector ops to LLVM intrinsic calls --------===//
//
// The moe dialect's vector ops are target instructions: each becomes a call
// of its LLVM intrinsic on the same vectors, after bufferization (which
// cannot analyze intrinsic calls) and before the conversion to LLVM.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERVECTOROPSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct PermuteWordsToIntrinsic : OpRewritePattern<X86PermuteWordsOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(X86PermuteWordsOp op,
                                PatternRewriter &rewriter) const override {
    // vpermw on zmm: the data first, then the indices.
    rewriter.replaceOpWithNewOp<LLVM::CallIntrinsicOp>(
        op, op.getType(),
        rewriter.getStringAttr("llvm.x86.avx512.permvar.hi.512"),
        ValueRange{op.getTable(), op.getIndices()});
    return success();
  }
};

struct MoELowerVectorOpsPass
    : moe::impl::MoELowerVectorOpsPassBase<MoELowerVectorOpsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<PermuteWordsToIntrinsic>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
