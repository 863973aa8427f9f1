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

/// Launches the kernel that writes `schedule` for the tile rows of `shapes`
/// that the host picks (takesLargeTiles).
void scheduleTilesOfShapes(KernelBuilder &b, const ExpertRows &experts,
                           const TileSchedule &schedule,
                           const RowTileShapes &shapes);

/// The tile rows of `shapes` that the host picks, as an index.
Value pickTileRows(KernelBuilder &b, const ExpertRows &experts,
                   const RowTileShapes &shapes);

/// Where the block of a one-block kernel (kScanThreads threads) that has
/// sorted the rows by expert keeps them: `starts`, each expert's first row
/// (numExperts i32, workgroup memory visible to the whole block), and
/// `routed`, the end of the last expert's rows (i32); `tileCounts`
/// (numExperts i32) and `scratch` (scanScratchType) are workgroup buffers
/// the schedule may overwrite.
struct BlockExpertStarts {
  Value starts, routed;
  int64_t numExperts;
  Value tileCounts, scratch;
};

/// Writes, from inside such a block, the `schedule` the schedule kernel
/// would write for tiles of `tileRows` (an index) rows, with the same
/// entries; its per-expert tile counts are scanned by the block, so no
/// other launch is needed. Every thread of the block must call it, outside
/// any branch that depends on the thread.
void writeScheduleInBlock(KernelBuilder &b, const BlockExpertStarts &experts,
                          const TileSchedule &schedule, Value tileRows);

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
