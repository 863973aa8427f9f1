//===- StagedMainloop.h - Tiles staged through shared memory ----*- C++ -*-===//
//
// The staged kernels' common half: the K tiles of a block's gathered A rows
// (and, for mma_sync_staged, its weight rows) copied into `stages` stages of
// shared memory with cp.async, `stages - 1` tiles ahead of the main loop.
// mma_sync_staged reads them with ldmatrix; the wgmma kernels
// (WgmmaMainloop.cpp) derive from it and bring the weights by TMA instead.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_STAGEDMAINLOOP_H
#define MOE_LIB_CONVERSION_MOETOGPU_STAGEDMAINLOOP_H

#include "StageBarriers.h"
#include "TensorCoreKernel.h"

#include <functional>

namespace mlir::moe::gpu_lowering {

class StagedKernel : public TensorCoreKernel {
public:
  StagedKernel(const GroupedMatmul &mm, const TensorCoreConfig &config,
               int64_t stages);

protected:
  /// One 16-byte cp.async of a K tile: row `row` of the shared tile, read
  /// from row `from` at K `k` within the tile.
  struct Copy {
    Value row;    // in the shared tile
    Operand from; // the row to read
    Value k;      // first element within the K tile
    int64_t count;
  };

  /// Issues the copies of K tile `tile` into `stage`.
  using IssueFn = std::function<void(KernelBuilder &, Value, Value)>;
  /// Plans the copies of the block's A rows (and, here, weight rows), in
  /// 16-byte chunks spread over the block's threads, zero-filled past the
  /// rows and K.
  IssueFn stagedCopies(KernelBuilder &b, const TileWork &work,
                       Value blockColumn) {
    return stagedCopies(b, work, blockColumn, b.threadId(), threads());
  }
  /// The same, issued by the `copyThreads` threads numbered `tid` from 0.
  IssueFn stagedCopies(KernelBuilder &b, const TileWork &work,
                       Value blockColumn, Value tid, int64_t copyThreads);

  /// The copies of `rows` rows of `element`s in `layout`, read from the rows
  /// `source` gives.
  SmallVector<Copy> planChunks(KernelBuilder &b, SharedLayout layout,
                               Type element, int64_t rows,
                               function_ref<Operand(Value)> source, Value tid,
                               int64_t copyThreads);
  /// Row `r` of the block's A tile: the row it gathers (the routed row's
  /// token, or the row itself) and whether it exists, inside the tile's
  /// rows and routed; row 0 where it does not.
  Operand gatheredRow(KernelBuilder &b, const TileWork &work, Value r);
  /// The weight tile's cp.async copies (none where TMA brings it).
  virtual SmallVector<Copy> planWeightCopies(KernelBuilder &b,
                                             Value blockColumn, Value tid,
                                             int64_t copyThreads);
  /// Issues what brings the weights of K tile `tile` other than cp.async.
  virtual void issueWeightTile(KernelBuilder &b, Value tile, Value stage,
                               Value expert) {}

  /// Runs `step` on every K tile once it is in shared memory, carrying
  /// `init`: `issue` copies tiles `stages - 1` ahead with cp.async. Before a
  /// tile is read the block waits for its copies (the newest group may still
  /// be in flight) and passes a barrier, after which no warp still reads the
  /// stage reloaded next. For wgmma, which reads shared memory through the
  /// async proxy, the copies are fenced into it first, and `step` leaves its
  /// tile's multiplications in flight: the stage that the previous tile's
  /// multiplications read is reloaded only after `step` (which waits for
  /// them) and a second barrier.
  SmallVector<Value> forEachStagedTile(
      KernelBuilder &b, const IssueFn &issue, ValueRange init,
      bool asyncProxyReads,
      function_ref<SmallVector<Value>(KernelBuilder &, Value, ValueRange)>
          step);

  /// The layouts of the A and weight tiles in shared memory.
  SharedLayout aLayout = SharedLayout::padded;
  SharedLayout bLayout = SharedLayout::padded;
  /// The shared-memory tiles (their types, and views of them in the
  /// kernel), and the stages' barriers where TMA fills them.
  MemRefType lhsTile, rhsTile;
  Value stagedLhs, stagedRhs;
  StageBarriers barriers;

private:
  void prepareLaunch(KernelBuilder &b, SmallVector<Type> &workgroup,
                     int64_t &dynamicBytes) override;
  void bindSharedMemory(KernelBuilder &b, ValueRange workgroup) override;
  void computeTile(KernelBuilder &b, const TileWork &work,
                   Value blockColumn) override;

  /// The weight row that row r of the block's B tile holds, and whether it
  /// exists: gate rows then up rows (concatenated GLU), or consecutive rows.
  Operand stagedWeightRow(KernelBuilder &b, Value blockColumn, Value r);
  /// The B tile u of warp column group wn, as a row of the block's B tile;
  /// tiles 2p and 2p + 1 are always 8 rows apart.
  Value stagedTileRow(KernelBuilder &b, Value wn, int64_t u);
};

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_STAGEDMAINLOOP_H
