//===- ShareRowTiles.cpp - Routing state the GPU kernels share -----------===//
//
// moe-gpu-share-row-tiles: makes the state that a layer's GPU kernels would
// otherwise each rebuild into SSA values they share. A combine of a
// dispatch's rows reads the inverse rows the dispatch's sort writes
// (`row_of`), and every tensor-core grouped matmul over routed rows reads
// its row tiles from the dispatch of those rows (`row_tiles`, which its
// one-block sort writes at decode sizes without a launch of its own), or
// from a moe.row_tiles of its offsets and rows, which CSE then merges
// across the matmuls of the same rows.
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

/// `dispatch` rebuilt to return its inverse rows where `rowOf` says so (or
/// it returns them already) and the row tiles of `tiles` (or those it
/// returns already); the results it had keep their uses.
DispatchOp rebuildDispatch(IRRewriter &rewriter, DispatchOp dispatch,
                           bool rowOf, std::optional<RowTileShapes> tiles) {
  rowOf |= static_cast<bool>(dispatch.getRowOf());
  if (dispatch.getRowTiles())
    tiles = rowTileShapesOver(dispatch.getRowTiles(), dispatch.getOffsets(),
                              dispatch.getRows());
  if (rowOf == static_cast<bool>(dispatch.getRowOf()) &&
      tiles.has_value() == static_cast<bool>(dispatch.getRowTiles()))
    return dispatch;
  auto ids = cast<RankedTensorType>(dispatch.getIds().getType());
  int64_t selections = ShapedType::kDynamic;
  if (ids.hasStaticShape())
    selections = ids.getDimSize(0) * ids.getDimSize(1);
  auto i32 = rewriter.getI32Type();
  // Results the op had keep their types, so their uses stay valid.
  Type rowOfType = dispatch.getRowOf() ? dispatch.getRowOf().getType()
                   : rowOf ? RankedTensorType::get({selections}, i32)
                           : Type();
  Type tilesType =
      tiles ? RankedTensorType::get({ShapedType::kDynamic}, i32) : Type();
  auto attr = [&](int64_t RowTileShapes::*shape) {
    return tiles ? rewriter.getI64IntegerAttr(*tiles.*shape) : IntegerAttr();
  };
  rewriter.setInsertionPoint(dispatch);
  auto replacement = DispatchOp::create(
      rewriter, dispatch.getLoc(), dispatch.getRows().getType(),
      dispatch.getOffsets().getType(), rowOfType, tilesType, dispatch.getIds(),
      dispatch.getWeights(), dispatch.getExpertMap(),
      dispatch.getNumExpertsAttr(), dispatch.getCapacityAttr(),
      dispatch.getCapacityFactorAttr(), dispatch.getDropPolicyAttr(),
      attr(&RowTileShapes::smallTileRows), attr(&RowTileShapes::largeTileRows),
      attr(&RowTileShapes::largeRowsPerExpert));
  replacement->setDiscardableAttrs(dispatch->getDiscardableAttrDictionary());
  rewriter.replaceAllUsesWith(dispatch.getRows(), replacement.getRows());
  rewriter.replaceAllUsesWith(dispatch.getOffsets(), replacement.getOffsets());
  if (Value old = dispatch.getRowOf())
    rewriter.replaceAllUsesWith(old, replacement.getRowOf());
  if (Value old = dispatch.getRowTiles())
    rewriter.replaceAllUsesWith(old, replacement.getRowTiles());
  rewriter.eraseOp(dispatch);
  return replacement;
}

/// The row tiles of `matmul` from the dispatch that returns its rows and
/// offsets: its `row_tiles`, added if it has none. Null where the matmul's
/// rows are no dispatch's, or its dispatch schedules other tile shapes (for
/// another matmul over the same rows).
Value tilesFromDispatch(IRRewriter &rewriter, GroupedMatmulOp matmul,
                        const RowTileShapes &shapes) {
  auto dispatch = matmul.getRows().getDefiningOp<DispatchOp>();
  if (!dispatch || dispatch.getRows() != matmul.getRows() ||
      dispatch.getOffsets() != matmul.getOffsets())
    return Value();
  dispatch = rebuildDispatch(rewriter, dispatch, /*rowOf=*/false, shapes);
  std::optional<RowTileShapes> scheduled = rowTileShapesOver(
      dispatch.getRowTiles(), dispatch.getOffsets(), dispatch.getRows());
  if (scheduled->smallTileRows != shapes.smallTileRows ||
      scheduled->largeTileRows != shapes.largeTileRows ||
      scheduled->largeRowsPerExpert != shapes.largeRowsPerExpert)
    return Value();
  return dispatch.getRowTiles();
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
      dispatch =
          rebuildDispatch(rewriter, dispatch, /*rowOf=*/true, std::nullopt);
      rewriter.modifyOpInPlace(combine, [&] {
        combine.getRowOfMutable().assign(dispatch.getRowOf());
      });
    }

    SmallVector<GroupedMatmulOp> matmuls;
    getOperation().walk([&](GroupedMatmulOp matmul) {
      auto kernels = matmul->getAttrOfType<GroupedMatmulKernelsAttr>(
          MoEDialect::getGpuKernelsAttrName());
      if (kernels && matmul.getRows() && !matmul.getRowTiles() &&
          kernels.getSmall().getKernel() != MatmulKernel::simt)
        matmuls.push_back(matmul);
    });
    for (GroupedMatmulOp matmul : matmuls) {
      auto kernels = matmul->getAttrOfType<GroupedMatmulKernelsAttr>(
          MoEDialect::getGpuKernelsAttrName());
      RowTileShapes shapes{kernels.getSmall().getRows(),
                           kernels.getLarge().getRows(),
                           kernels.getLargeRowsPerExpert()};
      Value tiles;
      if (dispatchRowTiles)
        tiles = tilesFromDispatch(rewriter, matmul, shapes);
      if (!tiles) {
        rewriter.setInsertionPoint(matmul);
        tiles = RowTilesOp::create(rewriter, matmul.getLoc(),
                                   RankedTensorType::get({ShapedType::kDynamic},
                                                         rewriter.getI32Type()),
                                   matmul.getOffsets(), matmul.getRows(),
                                   shapes.smallTileRows, shapes.largeTileRows,
                                   shapes.largeRowsPerExpert);
      }
      rewriter.modifyOpInPlace(
          matmul, [&] { matmul.getRowTilesMutable().assign(tiles); });
    }
  }
};

} // namespace
