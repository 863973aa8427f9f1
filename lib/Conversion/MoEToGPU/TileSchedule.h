//===- TileSchedule.h - Row tiles of a grouped matmul -----------*- C++ -*-===//
//
// The schedule of a grouped matmul's row tiles: a small kernel lists each
// tile's expert and first row from the real per-expert row counts, and each
// block of a tensor-core kernel looks its tile up there.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_TILESCHEDULE_H
#define MOE_LIB_CONVERSION_MOETOGPU_TILESCHEDULE_H

#include "KernelBuilder.h"

namespace mlir::moe::gpu_lowering {

/// Where each row tile starts, in one i32 buffer (a moe.row_tiles):
/// [0] holds the number of tiles, then tile t's expert at 1 + 2t and its
/// first row at 2 + 2t; tile t covers rows [first, min(first + tileRows, end
/// of its expert)). One thread per expert writes its own tiles after summing
/// the tile counts of the experts below it (staged in shared memory), so the
/// matmul's blocks find their work with adjacent loads instead of a scan.
struct TileSchedule {
  Value buffer;
};

/// Row tiles of at most `tileRows` rows: the rows' tiles, plus a partial
/// tile for each expert that has rows (at most min(E, M) of them), plus one
/// partial tile of unrouted rows.
Value maxTiles(KernelBuilder &b, Value numRows, int64_t numExperts,
               int64_t tileRows);

/// A buffer for the schedule of tiles of at least `minTileRows` rows, and
/// its tensor.
OutputBuffer allocateSchedule(KernelBuilder &b, const ExpertRows &experts,
                              int64_t minTileRows);

/// Launches the kernel that writes `schedule` for tiles of `tileRows` rows.
void scheduleTiles(KernelBuilder &b, const ExpertRows &experts,
                   const TileSchedule &schedule, int64_t tileRows);

/// Whether the host takes the large tile shape: at least
/// `largeRowsPerExpert` rows per expert on average.
Value takesLargeTiles(KernelBuilder &b, const ExpertRows &experts,
                      int64_t largeRowsPerExpert);

/// The work of one block: rows [start, end) of `expert`, or, for tiles past
/// the experts' ones, the unrouted rows [zeroStart, zeroEnd) to clear.
struct TileWork {
  Value isExpertTile, expert, start, end;
  Value zeroStart, zeroEnd;
};

/// The work of row tile `tile` (of `tileRows` rows) in `schedule`.
TileWork lookUpTile(KernelBuilder &b, const ExpertRows &experts,
                    const TileSchedule &schedule, Value tile, int64_t tileRows);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_TILESCHEDULE_H
