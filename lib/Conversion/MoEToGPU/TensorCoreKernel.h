//===- TensorCoreKernel.h - The grouped matmul on tensor cores --*- C++ -*-===//
//
// What every tensor-core kernel of a grouped matmul shares: its grid (row
// tiles from the tile schedule by column blocks, optionally in grouped
// order), the clearing of unrouted rows, and the epilogue that stores a
// warp's accumulators (GLU, row scale, pairs). Each main loop is a subclass
// in a file of its own, chosen by the op's #moe.matmul_tile:
//
//   mma_sync                 DecodeMainloop.cpp
//   mma_sync_staged          StagedMainloop.cpp
//   wgmma, wgmma_warp_...    WgmmaMainloop.cpp
//   mma_sync_fp8, ..._f16    Fp8DecodeMainloop.cpp (k = 32, stages = 1,
//                            split_k = 1), else Fp8StagedDecodeMainloop.cpp
//   wgmma_fp8                Fp8WgmmaMainloop.cpp
//   mma_sync_wonly           WeightOnlyDecodeMainloop.cpp
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_TENSORCOREKERNEL_H
#define MOE_LIB_CONVERSION_MOETOGPU_TENSORCOREKERNEL_H

#include "GroupedMatmul.h"
#include "MmaFragments.h"
#include "TileSchedule.h"

#include <memory>

namespace mlir::moe::gpu_lowering {

/// The staged mma.sync kernel: 2 x 4 warps of 64 rows and 32 weight rows
/// each, so a block computes 128 rows against 128 weight rows; tiles of 32
/// of K go through dynamic shared memory, rows padded by 8 elements so that
/// a warp's fragment reads hit different banks.
constexpr int64_t kStagedWarpsM = 2, kStagedWarpsN = 4, kStagedMTiles = 4;
constexpr int64_t kTileK = 32, kPaddedK = kTileK + 8;

/// The wgmma kernels: two consumer warpgroups per 128 x 256 block tile, each
/// multiplying its 64 rows against all 256 weight rows (m64n256k16), K tiles
/// of 64.
constexpr int64_t kWarpgroupThreads = 128, kWgmmaWarpgroups = 2;
constexpr int64_t kWgmmaRows = 64, kWgmmaWeightRows = 256, kWgmmaTileK = 64;

class TensorCoreKernel {
public:
  virtual ~TensorCoreKernel() = default;

  /// The kernel that `tile` names; moe.gpu_kernels' verifier has checked
  /// that it fits the op.
  static std::unique_ptr<TensorCoreKernel> create(const GroupedMatmul &mm,
                                                  MatmulTileAttr tile);

  int64_t tileRows() const;
  int64_t blockColumns() const;
  int64_t threads() const;

  /// Launches the kernel; `scheduled`: `schedule` already holds this tile
  /// shape's tiles of the same rows.
  void launch(KernelBuilder &b, StringRef name, const TileSchedule &schedule,
              bool scheduled, MatmulTileAttr tile);

protected:
  TensorCoreKernel(const GroupedMatmul &mm, const TensorCoreConfig &config);

  /// Host side, before the launch: the workgroup buffers and dynamic shared
  /// memory the kernel needs (and host values such as TMA descriptors).
  virtual void prepareLaunch(KernelBuilder &b, SmallVector<Type> &workgroup,
                             int64_t &dynamicBytes) {}
  /// Inside the kernel, first: views of its shared memory.
  virtual void bindSharedMemory(KernelBuilder &b, ValueRange workgroup) {}
  /// The main loop and epilogue of one row tile's block.
  virtual void computeTile(KernelBuilder &b, const TileWork &work,
                           Value blockColumn) = 0;

  int64_t numAcc() const { return config.mTiles * bTiles * 4; }
  /// The weight row that B tile u of a warp from `warpColumn` reads for
  /// fragment row `g` (gate tiles, then up tiles, for a GLU).
  Value weightRow(KernelBuilder &b, Value warpColumn, int64_t u, Value g) const;
  /// A decode warp's rows: for m tile i, rows g and g + 8 of `work`, as
  /// A operands (their source row, valid where inside the tile and routed)
  /// and as output rows (valid where inside the tile).
  struct WarpRows {
    SmallVector<Operand> a;
    SmallVector<Value> out, outValid;
  };
  WarpRows warpRows(KernelBuilder &b, const TileWork &work, Value g) const;
  /// The B operands of a decode warp from `warpColumn` for fragment row
  /// `g`: weightRow of each B tile, valid below N (row 0 where not).
  SmallVector<Operand> warpWeightRows(KernelBuilder &b, Value warpColumn,
                                      Value g) const;
  /// The decode kernels (DecodeWarpParts.cpp). Calls `warpBody(b,
  /// warpColumn, part)` for the thread's warp `warp`: with split_k > 1
  /// every warp has the block's columns and part = its warp; else its own
  /// columns (where inside the width) and part 0.
  void forWarpPart(KernelBuilder &b, Value blockColumn, Value warp,
                   function_ref<void(KernelBuilder &, Value, Value)> warpBody);
  /// The first of `count` items that part `part` of config.splitK takes.
  Value partStart(KernelBuilder &b, Value part, int64_t count) const;
  /// The workgroup buffer of the split-K sum; none where split_k = 1.
  void addSplitKBuffer(KernelBuilder &b, SmallVector<Type> &workgroup) const;
  /// Where split_k > 1, adds the parts' accumulators in part 0 in a fixed
  /// order through `partials` (addSplitKBuffer's) and calls `store` there
  /// with the sum; else calls `store` with `acc`.
  void sumSplitK(KernelBuilder &b, ArrayRef<Value> acc, Value part, Value lane,
                 Value partials,
                 function_ref<void(KernelBuilder &, ArrayRef<Value>)> store);
  /// A group's loaded values, from its index.
  using GroupLoad = function_ref<SmallVector<Value>(KernelBuilder &, Value)>;
  /// The carried values after multiplying a group's loaded values.
  using GroupCompute = function_ref<SmallVector<Value>(
      KernelBuilder &, ArrayRef<Value>, ValueRange)>;
  /// for (i = begin; i < end; i += step) carried = compute(load(i),
  /// carried), with `registerStages` groups in registers: with S > 1,
  /// group i + (S - 1) * step is loaded before group i is computed. `last`:
  /// the last group of the whole loop, which bounds the prologue's loads.
  SmallVector<Value> stagedLoop(KernelBuilder &b, int64_t registerStages,
                                Value begin, Value end, int64_t step,
                                Value last, ValueRange init, GroupLoad load,
                                GroupCompute compute);

  /// The FP8 kernels' weight scale block (n / blockN) of the accumulator
  /// columns 2c and 2c + 1 of each B tile u of a warp from `warpColumn`, in
  /// the order (u, column).
  SmallVector<Value> weightScaleBlocks(KernelBuilder &b, Value warpColumn,
                                       Value c, int64_t blockN) const;
  /// K tiles of the staged kernels.
  int64_t kTiles() const { return llvm::divideCeil(mm.reduction, tileK); }
  static int64_t bytes(MemRefType type) {
    return type.getNumElements() * type.getElementTypeBitWidth() / 8;
  }

  /// The epilogue of a warp's accumulators: accumulator q of the MMA tile
  /// accIndex(i, u) holds row g + 8 * (q / 2), column 2c + q % 2 of B tile
  /// u; rows `outRows` (valid where `outValid`) of expert `expert`, columns
  /// from `warpColumn`. `factors`, if given, are the rows' routing weights,
  /// loaded earlier.
  void storeTile(KernelBuilder &b, ArrayRef<Value> acc,
                 function_ref<int64_t(int64_t, int64_t)> accIndex,
                 ArrayRef<Value> outRows, ArrayRef<Value> outValid,
                 Value warpColumn, Value c, Value expert,
                 ArrayRef<Value> factors = {});

  const GroupedMatmul &mm;
  TensorCoreConfig config;
  MmaFragments fragments;
  // B tiles per warp: gate and up tiles for a GLU, else output tiles.
  int64_t outputTiles, bTiles;
  int64_t stages = 0;       // K tiles the staged kernels keep in flight
  int64_t stagedRows = 0;   // rows of the staged kernels' block tile
  int64_t weightRows = 128; // weight rows of the staged kernels' tile
  int64_t tileK = kTileK;   // K of a staged tile

private:
  void body(KernelBuilder &b, const TileSchedule &schedule, Value numTiles);
  std::pair<Value, Value> groupedOrder(KernelBuilder &b, Value y, Value x,
                                       Value numTiles);
  void clearRows(KernelBuilder &b, const TileWork &work, Value blockColumn);
};

/// A decode kernel whose warps may split K (split_k = 4): the workgroup
/// buffer of the parts' sums, and each warp's columns and part
/// (DecodeWarpParts.cpp).
class DecodeKernelBase : public TensorCoreKernel {
protected:
  using TensorCoreKernel::TensorCoreKernel;

  /// One warp's main loop and epilogue: columns from `warpColumn`, part
  /// `part` of K (0 where split_k = 1), sums added with sumSplitK.
  virtual void computeWarp(KernelBuilder &b, const TileWork &work,
                           Value warpColumn, Value part, Value lane, Value g,
                           Value c) = 0;

  Value partials; // workgroup memory of the K parts' sums (split_k > 1)

private:
  void prepareLaunch(KernelBuilder &b, SmallVector<Type> &workgroup,
                     int64_t &dynamicBytes) override;
  void bindSharedMemory(KernelBuilder &b, ValueRange workgroup) override;
  void computeTile(KernelBuilder &b, const TileWork &work,
                   Value blockColumn) override;
};

std::unique_ptr<TensorCoreKernel>
createDecodeKernel(const GroupedMatmul &mm, const TensorCoreConfig &config);
std::unique_ptr<TensorCoreKernel>
createStagedKernel(const GroupedMatmul &mm, const TensorCoreConfig &config,
                   int64_t stages);
std::unique_ptr<TensorCoreKernel>
createFp8DecodeKernel(const GroupedMatmul &mm, const TensorCoreConfig &config);
std::unique_ptr<TensorCoreKernel>
createFp8StagedDecodeKernel(const GroupedMatmul &mm,
                            const TensorCoreConfig &config);
std::unique_ptr<TensorCoreKernel>
createWeightOnlyDecodeKernel(const GroupedMatmul &mm,
                             const TensorCoreConfig &config);
std::unique_ptr<TensorCoreKernel>
createWgmmaKernel(const GroupedMatmul &mm, const TensorCoreConfig &config,
                  int64_t stages);
std::unique_ptr<TensorCoreKernel>
createFp8WgmmaKernel(const GroupedMatmul &mm, const TensorCoreConfig &config,
                     int64_t stages);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_TENSORCOREKERNEL_H
