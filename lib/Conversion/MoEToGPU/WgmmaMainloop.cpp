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
#include "StagedMainloop.h"

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

class WgmmaKernel final : public StagedKernel {
public:
  WgmmaKernel(const GroupedMatmul &mm, const TensorCoreConfig &config,
              int64_t stages)
      : StagedKernel(mm, config, stages) {
    stagedRows = kWgmmaWarpgroups * kWgmmaRows;
    weightRows = kWgmmaWeightRows;
    tileK = kWgmmaTileK;
    aLayout = config.wgmmaSwizzledA ? SharedLayout::swizzle_128b
                                    : SharedLayout::k_chunk_major;
    bLayout = SharedLayout::swizzle_128b;
  }

private:
  void prepareLaunch(KernelBuilder &b, SmallVector<Type> &,
                     int64_t &dynamicBytes) override {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    // The swizzled A stages follow the weight stages, so they start at a
    // multiple of the atom size too.
    lhsTile =
        aLayout == SharedLayout::swizzle_128b
            ? MemRefType::get({stages, stagedRows, tileK}, mm.rhsElement,
                              MemRefLayoutAttrInterface(), space)
            : MemRefType::get({stages, tileK / 8, stagedRows, 8}, mm.rhsElement,
                              MemRefLayoutAttrInterface(), space);
    rhsTile = MemRefType::get({stages, weightRows, tileK}, mm.rhsElement,
                              MemRefLayoutAttrInterface(), space);
    // The swizzled weight stages start at a multiple of the atom size,
    // found in the kernel: room for the shift that takes.
    dynamicBytes = kSwizzleAtomBytes + bytes(lhsTile) + bytes(rhsTile);
    weightMap = createWeightMap(b);
  }

  void bindSharedMemory(KernelBuilder &kb, ValueRange) override {
    auto space = gpu::AddressSpaceAttr::get(kb.getContext(),
                                            gpu::AddressSpace::Workgroup);
    dynamicShared = kb.create<gpu::DynamicSharedMemoryOp>(
        MemRefType::get({ShapedType::kDynamic}, kb.getIntegerType(8),
                        MemRefLayoutAttrInterface(), space));
    Value address =
        kb.create<memref::ExtractAlignedPointerAsIndexOp>(dynamicShared);
    Value atom = kb.index(kSwizzleAtomBytes);
    rhsShift = kb.create<arith::RemUIOp>(
        kb.create<arith::SubIOp>(atom,
                                 kb.create<arith::RemUIOp>(address, atom)),
        atom);
    stagedRhs = kb.create<memref::ViewOp>(rhsTile, dynamicShared, rhsShift,
                                          ValueRange{});
    stagedLhs = kb.create<memref::ViewOp>(
        lhsTile, dynamicShared,
        kb.create<arith::AddIOp>(rhsShift, kb.index(bytes(rhsTile))),
        ValueRange{});
  }

  void computeTile(KernelBuilder &b, const TileWork &work,
                   Value blockColumn) override {
    computeWgmma(b, work, blockColumn);
  }

  /// The weights come by TMA: the first row of each box, and the thread
  /// that issues them.
  SmallVector<Copy> planWeightCopies(KernelBuilder &b, Value blockColumn,
                                     Value tid, int64_t) override {
    boxRows.clear();
    for (int64_t box = 0; box < weightRows / kTmaBoxRows; ++box)
      boxRows.push_back(weightBoxRow(b, blockColumn, box));
    issuer = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, tid, b.index(0));
    return {};
  }

  void issueWeightTile(KernelBuilder &b, Value tile, Value stage,
                       Value expert) override {
    loadWeightTile(b, tile, stage, expert, boxRows, issuer);
  }

  /// The first weight row of TMA box `box` of the block's B tile (rows past
  /// N read as zeros; gate rows past the GLU width read up rows, whose
  /// columns are never stored).
  Value weightBoxRow(KernelBuilder &b, Value blockColumn, int64_t box) {
    if (mm.glu && !mm.interleaved)
      return box == 0 ? blockColumn
                      : b.create<arith::AddIOp>(blockColumn, b.index(mm.width));
    Value first = mm.interleaved
                      ? b.create<arith::MulIOp>(blockColumn, b.index(2))
                      : blockColumn;
    return b.create<arith::AddIOp>(first, b.index(box * kTmaBoxRows));
  }

  /// The host's TMA descriptor of the weights [E, N, K]: boxes of one
  /// expert's 128 rows x 64 K, 128-byte swizzled, zeros past the edges.
  Value createWeightMap(KernelBuilder &b) {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    boxType = MemRefType::get({1, kTmaBoxRows, tileK}, mm.rhsElement,
                              MemRefLayoutAttrInterface(), space);
    auto mapType = nvgpu::TensorMapDescriptorType::get(
        b.getContext(), boxType, nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
        nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
        nvgpu::TensorMapOOBKind::OOB_ZERO,
        nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
    Value unranked = b.create<memref::CastOp>(
        UnrankedMemRefType::get(mm.rhsElement, Attribute()), mm.rhs);
    return b.create<nvgpu::TmaCreateDescriptorOp>(
        mapType, unranked,
        ValueRange{b.index(1), b.index(kTmaBoxRows), b.index(tileK)});
  }

  /// Thread 0 issues the TMA boxes of K tile `tile` of `expert`'s weights
  /// into `stage`, announcing their bytes on the stage's mbarrier.
  void loadWeightTile(KernelBuilder &b, Value tile, Value stage, Value expert,
                      ArrayRef<Value> boxRows, Value issuer) {
    int64_t boxBytes = bytes(boxType);
    barriers.expectBytes(b, boxBytes * boxRows.size(), stage, issuer);
    Value k0 = b.create<arith::MulIOp>(tile, b.index(tileK));
    int64_t stageBytes = weightRows * tileK * 2;
    for (auto [box, row] : llvm::enumerate(boxRows)) {
      Value offset = b.create<arith::AddIOp>(
          rhsShift, b.create<arith::AddIOp>(
                        b.create<arith::MulIOp>(stage, b.index(stageBytes)),
                        b.index(box * boxBytes)));
      Value dst = b.create<memref::ViewOp>(boxType, dynamicShared, offset,
                                           ValueRange{});
      b.create<nvgpu::TmaAsyncLoadOp>(dst, barriers.full, weightMap,
                                      ValueRange{k0, row, expert}, stage,
                                      Value(), issuer);
    }
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
    int64_t consumerThreads = kWgmmaWarpgroups * kWarpgroupThreads;
    // Every consumer thread releases a stage, so that no branch on the lane
    // sits between the wgmmas (ptxas serializes them on divergent paths).
    barriers = StageBarriers::create(b, stages,
                                     /*fullArrivals=*/1 + kWarpgroupThreads,
                                     /*emptyArrivals=*/consumerThreads);
    // The two roles branch on the warpgroup index read from lane 0.
    Type i32 = b.getI32Type();
    Value isProducer = b.create<arith::CmpIOp>(
        arith::CmpIPredicate::uge,
        fromLane0(b, b.create<arith::IndexCastOp>(i32, warpgroup)),
        b.create<arith::ConstantIntOp>(i32, kWgmmaWarpgroups));
    int64_t numTiles = kTiles();
    b.ifThenElse(
        isProducer,
        [&](KernelBuilder &pb) {
          Value tid = pb.create<arith::SubIOp>(pb.threadId(),
                                               pb.index(consumerThreads));
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
        [&](KernelBuilder &cb) {
          // A warpgroup whose 64 rows are all past the tile's rows (the last
          // tile of an expert) multiplies nothing (on an H200, Qwen3 T = 4096
          // 0.87 -> 0.81 ms, Mixtral T = 512 1.13 -> 0.95 ms). It still waits
          // for each stage before releasing it, so that its arrivals count
          // towards that stage's round and no later one.
          Value rowsInTile = cb.create<arith::SubIOp>(work.end, work.start);
          Value idle = cb.create<arith::CmpIOp>(arith::CmpIPredicate::uge,
                                                firstRow, rowsInTile);
          // Read from lane 0, like the role.
          cb.ifThenElse(
              cb.create<arith::CmpIOp>(
                  arith::CmpIPredicate::ne,
                  fromLane0(cb, cb.create<arith::ExtUIOp>(i32, idle)),
                  cb.create<arith::ConstantIntOp>(i32, 0)),
              [&](KernelBuilder &ib) {
                ib.forEach(ib.index(0), ib.index(numTiles), ib.index(1),
                           [&](KernelBuilder &lb, Value tile) {
                             Value stage = lb.create<arith::RemUIOp>(
                                 tile, lb.index(stages));
                             barriers.waitFull(lb, tile, stage);
                             barriers.release(lb, stage);
                           });
              },
              [&](KernelBuilder &mb) {
                multiplyAndStore(mb, work, blockColumn, zero, at, firstRow);
              });
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

  /// `value` (i32) as lane 0 of the warp holds it, which ptxas knows is the
  /// same in all of the warp's lanes: a branch on it around wgmmas is then
  /// not a divergent path, on which ptxas would serialize them.
  static Value fromLane0(KernelBuilder &b, Value value) {
    Type i32 = b.getI32Type();
    return b
        .create<gpu::ShuffleOp>(value, b.create<arith::ConstantIntOp>(i32, 0),
                                b.create<arith::ConstantIntOp>(i32, kWarpSize),
                                gpu::ShuffleMode::IDX)
        .getShuffleResult();
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

  /// The output rows of a consumer thread's accumulators: warp w of its
  /// warpgroup holds rows 16w + g (+ 8) of every 8-column tile, as mma.sync.
  /// With `prefetch`, their routing weights too, loaded before the K loop
  /// so that the store does not wait on them (where the store takes them
  /// per row: the paired stores of a row-scaled output).
  struct WgmmaRows {
    SmallVector<Value> rows, valid, factors;
  };
  WgmmaRows wgmmaRows(KernelBuilder &b, const TileWork &work,
                      const ThreadPosition &at, Value firstRow, bool prefetch) {
    Value warpInGroup = b.create<arith::RemUIOp>(
        at.warp, b.index(kWarpgroupThreads / kWarpSize));
    WgmmaRows out;
    bool perRow = mm.scale && mm.storesPairs();
    for (int64_t half = 0; half < 2; ++half) {
      Value r = b.create<arith::AddIOp>(
          work.start,
          b.create<arith::AddIOp>(
              b.create<arith::AddIOp>(
                  firstRow, b.create<arith::MulIOp>(warpInGroup, b.index(16))),
              b.create<arith::AddIOp>(at.g, b.index(8 * half))));
      Value valid = b.lessThan(r, work.end);
      out.rows.push_back(r);
      out.valid.push_back(valid);
      if (prefetch && perRow)
        out.factors.push_back(
            mm.rowScale(b, b.create<arith::SelectOp>(valid, r, work.start)));
    }
    return out;
  }

  /// The epilogue of a consumer warpgroup's 64 rows.
  void storeWgmmaTile(KernelBuilder &b, const TileWork &work, Value blockColumn,
                      Value acc, const ThreadPosition &at, Value firstRow,
                      const WgmmaRows *known = nullptr) {
    SmallVector<Value> values;
    for (int64_t q = 0; q < weightRows / 2; ++q)
      values.push_back(
          b.create<LLVM::ExtractValueOp>(acc, ArrayRef<int64_t>{q}));
    auto accIndex = [&](int64_t, int64_t u) { return u * 4; };
    WgmmaRows rows =
        known ? *known : wgmmaRows(b, work, at, firstRow, /*prefetch=*/false);
    storeTile(b, values, accIndex, rows.rows, rows.valid, blockColumn, at.c,
              work.expert, rows.factors);
  }

  // The weights' TMA descriptor (host), the box type, the block's dynamic
  // shared memory and the weight stages' byte shift in it, and the boxes'
  // first rows and issuing thread.
  Value weightMap, dynamicShared, rhsShift, issuer;
  MemRefType boxType;
  SmallVector<Value> boxRows;
};

} // namespace

std::unique_ptr<TensorCoreKernel> gpu_lowering::createWgmmaKernel(
    const GroupedMatmul &mm, const TensorCoreConfig &config, int64_t stages) {
  return std::make_unique<WgmmaKernel>(mm, config, stages);
}
