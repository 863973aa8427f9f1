//===- Lowerings.h - The host side of each op's GPU kernels -----*- C++ -*-===//
//
// One function per op that becomes kernels: it builds, at the builder's
// insertion point, the host code (sizes, buffers, launches) that computes
// the op from `operands` (the op's operands as the conversion hands them
// over), and returns the tensors that replace the op's results. A failure
// has emitted a diagnostic at the op. The conversion patterns of
// MoEToGPU.cpp call these and replace the op through the rewriter.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_LOWERINGS_H
#define MOE_LIB_CONVERSION_MOETOGPU_LOWERINGS_H

#include "KernelBuilder.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::moe::gpu_lowering {

using Replacements = FailureOr<SmallVector<Value>>;

Replacements lowerRoute(RouteOp op, RouteOp::Adaptor operands,
                        KernelBuilder &b);
/// The rows, offsets and, where the op returns it, the inverse rows, which
/// the sort writes for free.
Replacements lowerDispatch(DispatchOp op, DispatchOp::Adaptor operands,
                           KernelBuilder &b);
/// The stable counting sort of `ids` ([N, k'] i32) by expert under
/// `expertMap` (or null), shared by both dispatch lowerings: the rows and
/// offsets of `rowsType` and `offsetsType`, the inverse rows
/// (rowOf[t * k' + j] is the row of selection (t, j), or -1), and, with
/// `tiles`, the schedule of row tiles over the rows (as moe.row_tiles
/// writes it), which the one-block sort writes itself.
struct SortedSelections {
  Value rows, offsets, rowOf, rowTiles;
};
SortedSelections sortByExpert(KernelBuilder &b, Value ids, Value expertMap,
                              int64_t numExperts, RankedTensorType rowsType,
                              RankedTensorType offsetsType,
                              std::optional<RowTileShapes> tiles);
/// The row-tile shapes of `op`'s `row_tiles` result, where it has one.
std::optional<RowTileShapes> rowTileShapesOf(DispatchOp op);
/// A dispatch with a capacity: the uncapped sort in priority order, the
/// selections past the capacity dropped, and the uncapped sort of the rest.
Replacements lowerCapacityDispatch(DispatchOp op, DispatchOp::Adaptor operands,
                                   KernelBuilder &b);
Replacements lowerCombine(CombineOp op, CombineOp::Adaptor operands,
                          KernelBuilder &b);
Replacements lowerPermute(PermuteOp op, PermuteOp::Adaptor operands,
                          KernelBuilder &b);
Replacements lowerExpertChoice(ExpertChoiceOp op,
                               ExpertChoiceOp::Adaptor operands,
                               KernelBuilder &b);
Replacements lowerAuxLoss(AuxLossOp op, AuxLossOp::Adaptor operands,
                          KernelBuilder &b);
Replacements lowerZLoss(ZLossOp op, ZLossOp::Adaptor operands,
                        KernelBuilder &b);
Replacements lowerGlu(GluOp op, GluOp::Adaptor operands, KernelBuilder &b);
/// The schedule of row tiles for the tile rows the host picks.
Replacements lowerRowTiles(RowTilesOp op, RowTilesOp::Adaptor operands,
                           KernelBuilder &b);
/// The kernels the op's `moe.gpu_kernels` attribute names, reading their
/// tiles from `row_tiles` where it is given, else scheduling them first.
Replacements lowerGroupedMatmul(GroupedMatmulOp op,
                                GroupedMatmulOp::Adaptor operands,
                                KernelBuilder &b);
/// A linalg.generic with only parallel loops (the shared expert's sum, its
/// gate): one thread per element.
Replacements lowerElementwise(linalg::GenericOp op, ValueRange operands,
                              KernelBuilder &b);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_LOWERINGS_H
