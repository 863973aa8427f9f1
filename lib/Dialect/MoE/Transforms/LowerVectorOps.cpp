//===- LowerVectorOps.cpp - moe vector ops to LLVM intrinsic calls --------===//
//
// The moe dialect's vector ops are target instructions: each becomes a call
// of its LLVM intrinsic on the same vectors, after bufferization (which
// cannot analyze intrinsic calls) and before the conversion to LLVM.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToVector/MoEToVector.h"
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
  using MoELowerVectorOpsPassBase::MoELowerVectorOpsPassBase;

  void runOnOperation() override {
    X86PermuteWordsOp first;
    getOperation()->walk([&](X86PermuteWordsOp op) {
      first = op;
      return WalkResult::interrupt();
    });
    if (first) {
      FailureOr<bool> bw = hasX86Feature(targetCpu, "avx512bw");
      if (failed(bw)) {
        first.emitOpError()
            << "moe-lower-vector-ops: unknown target-cpu '" << targetCpu
            << "' (an LLVM x86-64 CPU name such as skylake-avx512, or native)";
        return signalPassFailure();
      }
      if (!*bw) {
        first.emitOpError() << "is vpermw, which needs AVX512BW; target-cpu '"
                            << targetCpu << "' has none";
        return signalPassFailure();
      }
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<PermuteWordsToIntrinsic>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
