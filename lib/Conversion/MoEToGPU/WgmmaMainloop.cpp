//===- WgmmaMainloop.cpp - wgmma with TMA weights (sm_90a prefill) --------===//
//
// The wgmma kernels: two consumer warpgroups per 128 x 256 block tile, each
// multiplying its 64 rows against all 256 weight rows with
// wgmma.mma_async.m64n256k16 from shared memory, K tiles of 64 in `stages`
// stages (192 KiB at 4). The weight tile comes by TMA, two boxes of 128
// rows x 64 K completing on the stage's full mbarrier, in the 128-byte
// swizzle; the gathered A rows come by cp.async in the a_layout of the
// #moe.matmul_tile: the same swizzle, 8 lanes per row, so each warp reads
// whole 128-byte lines and stores 512 contiguous bytes, or K-chunk-major,
// whose conflict-free stores take a warp 32-byte pieces of 16 rows (four
// times the L2 requests; on an H200 Mixtral T = 4096 7.0 against 5.2 ms).
//
// wgmma_warp_specialized adds a producer warpgroup that alone issues the
// copies, handing the stages over through full and empty mbarriers
// (StageBarriers); with wgmma, every warp copies and multiplies, passing two
// block barriers per K tile.
//
//===----------------------------------------------------------------------===//

#include "SharedTileLayout.h"
#include "WgmmaKernelBase.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

// NVGPUDialect.h has a kWarpSize of its own.
using gpu_lowering::kWarpSize;

/// Weight rows per TMA box.
constexpr int64_t kTmaBoxRows = 128;

class WgmmaKernel final : public WgmmaKernelBase {
public:
  WgmmaKernel(const GroupedMatmul &mm, const TensorCoreConfig &config,
              int64_t stages)
      : WgmmaKernelBase(mm, config, stages) {
    stagedRows = kWgmmaWarpgroups * kWgmmaRows;
    weightRows = kWgmmaWeightRows;
    tileK = kWgmmaTileK;
    aLayout = config.wgmmaSwizzledA ? SharedLayout::swizzle_128b
                                    : SharedLayout::k_chunk_major;
    bLayout = SharedLayout::swizzle_128b;
    stageElement = mm.rhsElement;
    boxRows = kTmaBoxRows;
  }

private:
  void computeTile(KernelBuilder &b, const TileWork &work,
                   Value blockColumn) override {
    computeWgmma(b, work, blockColumn);
  }

  /// The weights come by TMA: the first row of each box, and the thread
  /// that issues them.
  SmallVector<Copy> planWeightCopies(KernelBuilder &b, Value blockColumn,
                                     Value tid, int64_t) override {
    planWeightBoxes(b, blockColumn, tid);
    return {};
  }

  void issueWeightTile(KernelBuilder &b, Value tile, Value stage,
                       Value expert) override {
    loadWeightTile(b, tile, stage, expert);
  }

  /// The prefill kernel on sm_90a: two warpgroups per block tile, K tiles
  /// brought in `stages` stages (A by cp.async, the weights by TMA), then
  /// each 16-wide K step of a warpgroup is one wgmma.mma_async.m64n256k16
  /// reading both operands from shared memory. A K tile's multiplications
  /// stay in flight while the copies of a later tile start.
  ///
  /// With a producer warpgroup, it alone issues the copies: it waits for a
  /// stage's empty barrier (the consumer warps' release of the tile before),
  /// then the stage's full barrier completes on the TMA bytes and on each
  /// producer thread's cp.async arrival. The consumers wait only on full
  /// barriers, so neither side stops at a block barrier and the producer
  /// runs up to `stages` tiles ahead of the slower consumer warpgroup.
  void computeWgmma(KernelBuilder &b, const TileWork &work, Value blockColumn) {
    ThreadPosition at = threadPosition(b);
    Value warpgroup = b.create<arith::DivUIOp>(
        at.warp, b.index(kWarpgroupThreads / kWarpSize));
    Value firstRow = b.create<arith::MulIOp>(warpgroup, b.index(kWgmmaRows));
    MLIRContext *ctx = b.getContext();
    auto accType = LLVM::LLVMStructType::getLiteral(
        ctx, SmallVector<Type>(weightRows / 2, b.getF32Type()));
    Value zero = b.create<LLVM::ZeroOp>(accType);
    if (!config.wgmmaProducer) {
      barriers = StageBarriers::create(b, stages, /*fullArrivals=*/1,
                                       /*emptyArrivals=*/0);
      IssueFn issue = stagedCopies(b, work, blockColumn);
      Value acc = forEachStagedTile(
                      b, issue, ValueRange{zero}, /*asyncProxyReads=*/true,
                      [&](KernelBuilder &lb, Value stage, ValueRange iter) {
                        // This tile's group stays in flight; the previous
                        // tile's is done, and its stage is reloaded after the
                        // next barrier.
                        return SmallVector<Value>{
                            multiplyTile(lb, stage, iter[0], firstRow)};
                      })
                      .front();
      b.create<NVVM::WgmmaWaitGroupSyncOp>(0);
      storeWgmmaTile(b, work, blockColumn, acc, at, firstRow);
      return;
    }
    int64_t numTiles = kTiles();
    warpSpecialized(
        b, work, warpgroup, firstRow,
        [&](KernelBuilder &pb, Value tid) {
          IssueFn issue =
              stagedCopies(pb, work, blockColumn, tid, kWarpgroupThreads);
          pb.forEach(pb.index(0), pb.index(numTiles), pb.index(1),
                     [&](KernelBuilder &lb, Value tile) {
                       Value stage =
                           lb.create<arith::RemUIOp>(tile, lb.index(stages));
                       barriers.waitEmpty(lb, tile, stage);
                       issue(lb, tile, stage);
                       barriers.arriveOnCopies(lb, stage);
                     });
        },
        [&](KernelBuilder &mb) {
          multiplyAndStore(mb, work, blockColumn, zero, at, firstRow);
        });
  }

  /// A consumer warpgroup's K loop over the stages the producer fills, each
  /// released once the multiplications reading it are done, then its store.
  void multiplyAndStore(KernelBuilder &cb, const TileWork &work,
                        Value blockColumn, Value zero, const ThreadPosition &at,
                        Value firstRow) {
    int64_t numTiles = kTiles();
    WgmmaRows rows = wgmmaRows(cb, work, at, firstRow, /*prefetch=*/true);
    auto step = [&](KernelBuilder &lb, Value tile, ValueRange iter) {
      Value stage = lb.create<arith::RemUIOp>(tile, lb.index(stages));
      barriers.waitFull(lb, tile, stage);
      // The A rows came by cp.async (the generic proxy); wgmma reads them
      // through the async one.
      StageBarriers::fenceIntoAsyncProxy(lb);
      Value d = multiplyTile(lb, stage, iter[0], firstRow);
      // The previous tile's multiplications are done: its stage can be
      // reloaded.
      Value release = lb.create<arith::CmpIOp>(arith::CmpIPredicate::ugt, tile,
                                               lb.index(0));
      lb.ifThen(release, [&](KernelBuilder &rb) {
        Value previous = rb.create<arith::RemUIOp>(
            rb.create<arith::SubIOp>(tile, rb.index(1)), rb.index(stages));
        barriers.release(rb, previous);
      });
      return SmallVector<Value>{d};
    };
    Value acc = cb.forLoop(cb.index(0), cb.index(numTiles), cb.index(1),
                           ValueRange{zero}, step)
                    .front();
    cb.create<NVVM::WgmmaWaitGroupSyncOp>(0);
    storeWgmmaTile(cb, work, blockColumn, acc, at, firstRow, &rows);
  }

  /// Issues the warpgroup's multiplications of the K tile in `stage` onto
  /// the accumulators `d`, then waits until at most this group is in
  /// flight.
  Value multiplyTile(KernelBuilder &b, Value stage, Value d, Value firstRow) {
    MLIRContext *ctx = b.getContext();
    auto wgmmaType =
        mm.rhsElement.isBF16() ? NVVM::WGMMATypes::bf16 : NVVM::WGMMATypes::f16;
    b.create<NVVM::WgmmaFenceAlignedOp>();
    for (int64_t step = 0; step < tileK / 16; ++step)
      d = b.create<NVVM::WgmmaMmaAsyncOp>(
          d.getType(), d,
          wgmmaDescriptor(b, aLayout, stagedLhs, stage, step, stagedRows,
                          firstRow, tileK),
          wgmmaDescriptor(b, bLayout, stagedRhs, stage, step, weightRows,
                          b.index(0), tileK),
          NVVM::MMAShapeAttr::get(ctx, 64, weightRows, 16), wgmmaType,
          wgmmaType, NVVM::WGMMATypes::f32, NVVM::WGMMAScaleOut::one,
          NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
          NVVM::MMALayout::row, NVVM::MMALayout::col,
          NVVM::MMAIntOverflowAttr());
    b.create<NVVM::WgmmaGroupSyncAlignedOp>();
    b.create<NVVM::WgmmaWaitGroupSyncOp>(1);
    return d;
  }
};

} // namespace

std::unique_ptr<TensorCoreKernel> gpu_lowering::createWgmmaKernel(
    const GroupedMatmul &mm, const TensorCoreConfig &config, int64_t stages) {
  return std::make_unique<WgmmaKernel>(mm, config, stages);
}
