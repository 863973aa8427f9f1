//===- MoEToLinalg.cpp - Reference lowering of moe ops to linalg ----------===//
//
// The pass: every op becomes a few linalg.generic ops on tensors, by the
// patterns of RouteToLinalg, DispatchToLinalg, GroupedMatmulToLinalg and
// LossToLinalg. Selections (top-k,
// groups, capacity, expert choice) are computed by ranking: a candidate's
// rank is the number of candidates that come strictly before it, so slot j
// holds the candidate of rank j and a budget C keeps the ranks below C. This
// costs quadratic work in the candidates, which is fine for a reference and
// leaves no room for an ordering bug.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "TensorHelpers.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALGPASS
#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::linalg_lowering;

namespace {

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct ConvertMoEToLinalgPass
    : moe::impl::ConvertMoEToLinalgPassBase<ConvertMoEToLinalgPass> {
  void runOnOperation() override {
    Operation *root = getOperation();
    WalkResult layers =
        root->walk([](LayerOp layer) {
          layer.emitOpError()
              << "must be decomposed first: run moe-decompose-layer";
          return WalkResult::interrupt();
        });
    if (layers.wasInterrupted())
      return signalPassFailure();
    // The schedule of the GPU kernels' row tiles has no meaning here.
    WalkResult tiled = root->walk([](DispatchOp dispatch) {
      if (!dispatch.getRowTiles())
        return WalkResult::advance();
      dispatch.emitOpError()
          << "returns 'row_tiles', the GPU kernels' row-tile "
             "schedule, which has no linalg lowering";
      return WalkResult::interrupt();
    });
    if (tiled.wasInterrupted())
      return signalPassFailure();

    RewritePatternSet patterns(&getContext());
    populateRouteToLinalgPatterns(patterns);
    populateDispatchToLinalgPatterns(patterns);
    populateGroupedMatmulToLinalgPatterns(patterns);
    populateLossToLinalgPatterns(patterns);
    if (failed(applyPatternsGreedily(root, std::move(patterns))))
      return signalPassFailure();
    // The vector ops of the kernels stay for moe-lower-vector-ops.
    WalkResult left = root->walk([](Operation *op) {
      if (isa<MoEDialect>(op->getDialect()) && !isa<X86PermuteWordsOp>(op)) {
        op->emitOpError() << "was not lowered to linalg";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
