//===- ShareRowTiles.cpp - Routing state the GPU kernels share -----------===//
//
// moe-gpu-share-row-tiles: makes the state that a layer's GPU kernels would
// otherwise each rebuild into SSA values they share. A combine of a
// dispatch's rows reads the inverse rows the dispatch's sort writes
// (`row_of`), and every tensor-core grouped matmul over routed rows reads
// its row tiles from a moe.row_tiles of its offsets and rows, which CSE
// then merges across the matmuls of the same rows.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUSHAREROWTILESPASS
#include "moe/Conversion/MoEToGPU/MoEToGPU.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// `dispatch` with its inverse rows as a third result (itself if it has
/// them already).
DispatchOp withInverseRows(IRRewriter &rewriter, DispatchOp dispatch) {
  if (dispatch.getRowOf())
    return dispatch;
  auto ids = cast<RankedTensorType>(dispatch.getIds().getType());
  int64_t selections = ShapedType::kDynamic;
  if (ids.hasStaticShape())
    selections = ids.getDimSize(0) * ids.getDimSize(1);
  rewriter.setInsertionPoint(dispatch);
  auto replacement = DispatchOp::create(
      rewriter, dispatch.getLoc(), dispatch.getRows().getType(),
      dispatch.getOffsets().getType(),
      RankedTensorType::get({selections}, rewriter.getI32Type()),
      dispatch.getIds(), dispatch.getWeights(), dispatch.getExpertMap(),
      dispatch.getNumExpertsAttr(), dispatch.getCapacityAttr(),
      dispatch.getCapacityFactorAttr(), dispatch.getDropPolicyAttr());
  replacement->setDiscardableAttrs(dispatch->getDiscardableAttrDictionary());
  rewriter.replaceOp(dispatch, replacement.getResults().take_front(2));
  return replacement;
}

/// Whether `combine` reads selections of the same shape [T, k] as
/// `dispatch` sorted, so that the dispatch's inverse rows cover it.
bool sameSelections(CombineOp combine, DispatchOp dispatch) {
  auto ids = cast<RankedTensorType>(dispatch.getIds().getType());
  auto weights = cast<RankedTensorType>(combine.getWeights().getType());
  return ids.getDimSize(1) == weights.getDimSize(1) &&
         ids.getDimSize(0) == weights.getDimSize(0);
}

struct ShareRowTilesPass
    : public moe::impl::MoEGPUShareRowTilesPassBase<ShareRowTilesPass> {
  using MoEGPUShareRowTilesPassBase::MoEGPUShareRowTilesPassBase;

  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<CombineOp> combines;
    getOperation().walk([&](CombineOp combine) {
      if (!combine.getRowOf())
        combines.push_back(combine);
    });
    for (CombineOp combine : combines) {
      auto dispatch = combine.getRows().getDefiningOp<DispatchOp>();
      if (!dispatch || combine.getRows() != dispatch.getRows() ||
          !sameSelections(combine, dispatch))
        continue;
      dispatch = withInverseRows(rewriter, dispatch);
      rewriter.modifyOpInPlace(combine, [&] {
        combine.getRowOfMutable().assign(dispatch.getRowOf());
      });
    }

    getOperation().walk([&](GroupedMatmulOp matmul) {
      auto kernels = matmul->getAttrOfType<GroupedMatmulKernelsAttr>(
          MoEDialect::getGpuKernelsAttrName());
      if (!kernels || !matmul.getRows() || matmul.getRowTiles() ||
          kernels.getSmall().getKernel() == MatmulKernel::simt)
        return;
      rewriter.setInsertionPoint(matmul);
      Value tiles = RowTilesOp::create(
          rewriter, matmul.getLoc(),
          RankedTensorType::get({ShapedType::kDynamic}, rewriter.getI32Type()),
          matmul.getOffsets(), matmul.getRows(), kernels.getSmall().getRows(),
          kernels.getLarge().getRows(), kernels.getLargeRowsPerExpert());
      rewriter.modifyOpInPlace(
          matmul, [&] { matmul.getRowTilesMutable().assign(tiles); });
    });
  }
};

} // namespace
