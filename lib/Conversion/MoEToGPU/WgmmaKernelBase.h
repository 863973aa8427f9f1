//===- WgmmaKernelBase.h - What the wgmma main loops share ------*- C++ -*-===//
//
// The parts of a warpgroup kernel that the bf16 wgmma main loop
// (WgmmaMainloop.cpp) and the FP8 one (Fp8WgmmaMainloop.cpp) share: the
// stages in the block's dynamic shared memory (weights first, at a multiple
// of the swizzle atom, then the A rows) and their views, the weight tile
// brought by TMA from a host tensor map of [E, N, K] in boxes of `boxRows`
// rows completing on the stages' full mbarriers, the warp-specialized
// block's producer and consumer roles, the output rows of a consumer
// warpgroup's accumulators and their store, and the warp-uniform reads
// around which ptxas keeps wgmmas unserialized.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_WGMMAKERNELBASE_H
#define MOE_LIB_CONVERSION_MOETOGPU_WGMMAKERNELBASE_H

#include "StagedMainloop.h"

namespace mlir::moe::gpu_lowering {

class WgmmaKernelBase : public StagedKernel {
protected:
  using StagedKernel::StagedKernel;

  /// Plans the stages in the block's dynamic shared memory: the weights'
  /// [stages, weightRows, tileK] and the A rows' in aLayout ([stages,
  /// stagedRows, tileK] swizzled, [stages, tileK / 8, stagedRows, 8]
  /// K-chunk-major), both of `stageElement`, with room for the shift to the
  /// first multiple of the swizzle atom; and the weights' TMA descriptor
  /// (createWeightMap).
  void prepareLaunch(KernelBuilder &b, SmallVector<Type> &workgroup,
                     int64_t &dynamicBytes) override;
  /// Views of the weight and A stages (rhsTile, lhsTile) in the block's
  /// dynamic shared memory, the weights from the first multiple of the
  /// swizzle atom.
  void bindSharedMemory(KernelBuilder &b, ValueRange workgroup) override;

  /// The host's TMA descriptor of `weights` [E, N, K] (`element`s): boxes
  /// of one expert's `boxRows` rows x tileK, 128-byte swizzled, zeros past
  /// the edges.
  Value createWeightMap(KernelBuilder &b, Value weights, Type element);
  /// The first weight row of TMA box `box` of the block's weight tile
  /// (rows past N read as zeros; gate rows past the GLU width read up
  /// rows, whose columns are never stored).
  Value weightBoxRow(KernelBuilder &b, Value blockColumn, int64_t box) const;
  /// Plans the block's boxes: their first rows, and thread `tid` == 0 as
  /// the one that issues them.
  void planWeightBoxes(KernelBuilder &b, Value blockColumn, Value tid);
  /// The issuing thread's TMA boxes of K tile `tile` of `expert`'s weights
  /// into `stage`, announcing their bytes on the stage's full mbarrier.
  void loadWeightTile(KernelBuilder &b, Value tile, Value stage, Value expert);

  /// `value` (i32) as lane 0 of the warp holds it, which ptxas knows is the
  /// same in all of the warp's lanes: a branch on it around wgmmas is then
  /// not a divergent path, on which ptxas would serialize them.
  static Value fromLane0(KernelBuilder &b, Value value);

  /// The warp-specialized block: kWgmmaWarpgroups consumer warpgroups of
  /// kWgmmaRows rows from `firstRow`, then one producer warpgroup, the roles
  /// branching on `warpgroup` read from lane 0. A stage's full barrier
  /// completes on the producer's TMA bytes and each producer thread's
  /// cp.async arrival, its empty one on every consumer thread's release (so
  /// that no branch on the lane sits between the wgmmas: ptxas serializes
  /// them on divergent paths). `produce` runs in the producer with its
  /// thread index from 0; `consume` in a consumer warpgroup with rows in
  /// the tile. One whose rows all lie past the tile's rows (the last tile
  /// of an expert) multiplies nothing (for wgmma on an H200, Qwen3 T = 4096
  /// 0.87 -> 0.81 ms, Mixtral T = 512 1.13 -> 0.95 ms), but still waits for
  /// and releases each stage, so that its arrivals count towards that
  /// stage's round and no later one.
  void warpSpecialized(KernelBuilder &b, const TileWork &work, Value warpgroup,
                       Value firstRow,
                       function_ref<void(KernelBuilder &, Value)> produce,
                       function_ref<void(KernelBuilder &)> consume);

  /// The output rows of a consumer thread's accumulators: warp w of its
  /// warpgroup holds rows 16w + g (+ 8) of every 8-column tile, as
  /// mma.sync. With `prefetch`, their routing weights too, loaded before
  /// the K loop so that the store does not wait on them (where the store
  /// takes them per row: the paired stores of a row-scaled output).
  struct WgmmaRows {
    SmallVector<Value> rows, valid, factors;
  };
  WgmmaRows wgmmaRows(KernelBuilder &b, const TileWork &work,
                      const ThreadPosition &at, Value firstRow, bool prefetch);

  /// The epilogue of a consumer warpgroup's 64 rows from its accumulator
  /// struct (weightRows / 2 f32 values).
  void storeWgmmaTile(KernelBuilder &b, const TileWork &work, Value blockColumn,
                      Value acc, const ThreadPosition &at, Value firstRow,
                      const WgmmaRows *known = nullptr);

  // The weights' TMA descriptor (host), the box type, the block's dynamic
  // shared memory and the weight stages' byte shift in it, and the boxes'
  // first rows and issuing thread.
  Value weightMap, dynamicShared, rhsShift, issuer;
  MemRefType boxType;
  /// What a kernel sets in its constructor: the element of its shared
  /// stages and the weight rows of a TMA box.
  Type stageElement;
  int64_t boxRows = 128;
  SmallVector<Value> boxFirstRows;
};

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_WGMMAKERNELBASE_H
