//===- TileSchedule.h - Row tiles of a grouped matmul -----------*- C++ -*-===//
//
// The schedule of a grouped matmul's row tiles: a small kernel lists each
// tile's expert and first row from the real per-expert row counts, and each
// block of a tensor-core kernel looks its tile up there.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_TILESCHEDULE_H
#define MOE_LIB_CONVERSION_MOETOGPU_TILESCHEDULE_H

#include "GroupedMatmul.h"

namespace mlir::moe::gpu_lowering {

/// Where each row tile starts: tile t covers rows [tileStart[t],
/// min(tileStart[t] + tileRows, end of its expert)) of expert tileExpert[t];
/// tileCount[0] holds the number of tiles. One thread per expert writes its
/// own tiles after summing the tile counts of the experts below it (staged
/// in shared memory), so the matmul's blocks find their work with two loads
/// instead of a scan.
struct TileSchedule {
  Value expert, start, count;
};

/// Row tiles of at most `tileRows` rows: the rows' tiles, plus a partial
/// tile for each expert that has rows (at most min(E, M) of them), plus one
/// partial tile of unrouted rows.
Value maxTiles(KernelBuilder &b, const GroupedMatmul &mm, int64_t tileRows);

/// Buffers for the schedule of tiles of at least `minTileRows` rows; they
/// are allocated outside the host's choice of tile shape.
TileSchedule allocateSchedule(KernelBuilder &b, const GroupedMatmul &mm,
                              int64_t minTileRows);

/// Launches the kernel that writes `schedule` for tiles of `tileRows` rows.
void scheduleTiles(KernelBuilder &b, const GroupedMatmul &mm,
                   const TileSchedule &schedule, int64_t tileRows);

/// The work of one block: rows [start, end) of `expert`, or, for tiles past
/// the experts' ones, the unrouted rows [zeroStart, zeroEnd) to clear.
struct TileWork {
  Value isExpertTile, expert, start, end;
  Value zeroStart, zeroEnd;
};

/// The work of row tile `tile` (of `tileRows` rows) in `schedule`.
TileWork lookUpTile(KernelBuilder &b, const GroupedMatmul &mm,
                    const TileSchedule &schedule, Value tile, int64_t tileRows);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_TILESCHEDULE_H
