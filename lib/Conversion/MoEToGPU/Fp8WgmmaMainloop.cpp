//===- Fp8WgmmaMainloop.cpp - e4m3 wgmma with per-K-tile promotion --------===//
//
// The wgmma_fp8 kernel (sm_90a prefill): f8E4M3FN weights W [E, N, K] with
// f32 block scales sw [E, ceil(N / bn), ceil(K / bk)], against the A rows
// that the activation quantization kernel (Fp8ActivationQuant.cpp) wrote as
// e4m3 bytes with their scales sa [rows, ceil(K / bk)].
//
// Blocks of three warpgroups: a producer and two consumers of 64 rows each,
// a 128-row by 128-weight-row block tile (128 output columns, or 64 gate
// and 64 up ones with a GLU), in K tiles of 128 bytes over `stages` stages
// (32 KiB each). The producer issues, per K tile, two TMA boxes of 64
// weight rows (the FP8 weights described to the copy engine as their
// bytes) and the cp.async copies of the gathered quantized A rows, 8 lanes
// per 128-byte row, both in the 128-byte swizzle; the stage's full
// mbarrier completes on the boxes' bytes and each producer thread's
// cp.async arrival (StageBarriers), its empty one on every consumer
// thread's release.
//
// A consumer warpgroup multiplies a K tile with four
// wgmma.mma_async.m64n128k32 e4m3 x e4m3 into f32 partial sums that start
// from zero (scale-d 0 on the first), waits for them, releases the stage,
// and adds `partial * sa[row, kb] * sw[e, n / bn, kb]` to its f32
// accumulators: DeepGEMM's promotion, so the tensor cores' reduced-precision
// FP8 accumulation never spans more than 128 of K. The selection admits K
// blocks of whole K tiles (bk a multiple of 128, or one block over K), so a
// tile's partial sums take one scale per row and weight block; the scales
// are loaded before the tile's wgmmas are issued. The weight scales of a
// tile are loaded once per group of 8-row B tiles that lie in one scale
// block whatever the block column (one per tile for [128, 128] blocks, two
// with a GLU). The epilogue (bias, GLU, routing weight) is the other
// tensor-core kernels'.
//
//===----------------------------------------------------------------------===//

#include "Fp8Matmul.h"
#include "SharedTileLayout.h"
#include "WgmmaKernelBase.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

// NVGPUDialect.h has a kWarpSize of its own.
using gpu_lowering::kWarpSize;

/// Weight rows of the block tile, bytes of K per tile (one 128-byte
/// swizzled row), K per wgmma step, and weight rows per TMA box.
constexpr int64_t kFp8WeightRows = 128, kFp8TileK = 128;
constexpr int64_t kFp8WgmmaStepK = 32, kFp8BoxRows = 64;
/// Bytes per cp.async chunk of a quantized A row.
constexpr int64_t kChunkBytes = 16;

class Fp8WgmmaKernel final : public WgmmaKernelBase {
public:
  Fp8WgmmaKernel(const GroupedMatmul &mm, const TensorCoreConfig &config,
                 int64_t stages)
      : WgmmaKernelBase(mm, config, stages), layout(*mm.fp8) {
    stagedRows = kWgmmaWarpgroups * kWgmmaRows;
    weightRows = kFp8WeightRows;
    tileK = kFp8TileK;
    aLayout = bLayout = SharedLayout::swizzle_128b;
    // The stages hold bytes; the weights' tensor map describes them as bytes
    // too (createWeightMap).
    stageElement = IntegerType::get(mm.rhsElement.getContext(), 8);
    boxRows = kFp8BoxRows;
  }

private:
  void computeTile(KernelBuilder &b, const TileWork &work,
                   Value blockColumn) override {
    ThreadPosition at = threadPosition(b);
    Value warpgroup = b.create<arith::DivUIOp>(
        at.warp, b.index(kWarpgroupThreads / kWarpSize));
    Value firstRow = b.create<arith::MulIOp>(warpgroup, b.index(kWgmmaRows));
    warpSpecialized(
        b, work, warpgroup, firstRow,
        [&](KernelBuilder &pb, Value tid) {
          produce(pb, work, blockColumn, tid);
        },
        [&](KernelBuilder &mb) {
          multiplyAndStore(mb, work, blockColumn, at, firstRow);
        });
  }

  /// The producer warpgroup: for each K tile, once its stage is free, the
  /// weight boxes by TMA and the quantized A rows by cp.async (zeros past
  /// the tile's rows and past each row's padded bytes).
  void produce(KernelBuilder &pb, const TileWork &work, Value blockColumn,
               Value tid) {
    planWeightBoxes(pb, blockColumn, tid);
    SmallVector<Copy> aCopies = planChunks(
        pb, aLayout, pb.getI8Type(), stagedRows,
        [&](Value r) { return gatheredRow(pb, work, r); }, tid,
        kWarpgroupThreads);
    pb.forEach(pb.index(0), pb.index(kTiles()), pb.index(1),
               [&](KernelBuilder &lb, Value tile) {
                 Value stage =
                     lb.create<arith::RemUIOp>(tile, lb.index(stages));
                 barriers.waitEmpty(lb, tile, stage);
                 loadWeightTile(lb, tile, stage, work.expert);
                 Value k0 = lb.create<arith::MulIOp>(tile, lb.index(tileK));
                 for (const Copy &chunk : aCopies) {
                   Value k = lb.create<arith::AddIOp>(k0, chunk.k);
                   // A quantized row holds `stride` bytes, zeros past K.
                   Value inRow = lb.lessThan(k, lb.index(layout.stride));
                   SmallVector<Value> at = chunkIndices(
                       lb, aLayout, stage, chunk.row, chunk.k, kChunkBytes);
                   SmallVector<Value> from = {
                       chunk.from.row,
                       lb.create<arith::SelectOp>(inRow, k, lb.index(0))};
                   copyChunk(lb, stagedLhs, at, mm.quantLhs, from, kChunkBytes,
                             lb.create<arith::AndIOp>(chunk.from.valid, inRow));
                 }
                 barriers.arriveOnCopies(lb, stage);
               });
  }

  /// 8-row B tiles per weight-scale load: the most consecutive tiles (within
  /// the gate or the up half of a GLU's tiles) whose rows always lie in one
  /// scale block of bn rows, whatever the block column; 0 where an 8-row
  /// tile may straddle two blocks (bn, or the up rows' offset, the GLU
  /// width, not a multiple of 8), and each column takes its own scale.
  int64_t tilesPerScale() const {
    bool halves = mm.glu && !mm.interleaved;
    if (layout.blockN % 8 || (halves && mm.width % 8))
      return 0;
    int64_t group = halves ? outputTiles : bTiles;
    while (group > 1 &&
           (layout.blockN % (8 * group) || (halves && mm.width % (8 * group))))
      group /= 2;
    return group;
  }

  /// A consumer warpgroup's K loop over the stages the producer fills, its
  /// promotion of each tile's partial sums, then its store.
  void multiplyAndStore(KernelBuilder &cb, const TileWork &work,
                        Value blockColumn, const ThreadPosition &at,
                        Value firstRow) {
    WgmmaRows rows = wgmmaRows(cb, work, at, firstRow, /*prefetch=*/true);
    // The rows of the activation scales: each output row's source row.
    SmallVector<Value> scaleRows;
    for (int64_t half = 0; half < 2; ++half) {
      auto [source, exists] =
          mm.sourceRow(cb, cb.create<arith::SelectOp>(
                               rows.valid[half], rows.rows[half], work.start));
      scaleRows.push_back(
          cb.create<arith::SelectOp>(exists, source, cb.index(0)));
    }
    // The scale block (n / bn, n clamped to N) of each group of B tiles, or
    // of each of the thread's columns 2c and 2c + 1 of every tile.
    int64_t group = tilesPerScale();
    SmallVector<Value> scaleBlocks;
    auto scaleBlock = [&](int64_t u, Value g) {
      Value n =
          cb.minIndex(weightRow(cb, blockColumn, u, g), cb.index(mm.n - 1));
      scaleBlocks.push_back(
          cb.create<arith::DivUIOp>(n, cb.index(layout.blockN)));
    };
    Value pairColumn = cb.create<arith::MulIOp>(at.c, cb.index(2));
    for (int64_t u = 0; u < bTiles; u += std::max<int64_t>(group, 1)) {
      if (group)
        scaleBlock(u, cb.index(0));
      else
        for (int64_t q = 0; q < 2; ++q)
          scaleBlock(u, cb.create<arith::AddIOp>(pairColumn, cb.index(q)));
    }
    auto scaleIndex = [&](int64_t u, int64_t q) {
      return group ? u / group : 2 * u + q;
    };
    int64_t values = weightRows / 2;
    SmallVector<Value> zeros(values, cb.f32(0.0));
    SmallVector<Value> acc = cb.forLoop(
        cb.index(0), cb.index(kTiles()), cb.index(1), zeros,
        [&](KernelBuilder &lb, Value tile, ValueRange iter) {
          Value stage = lb.create<arith::RemUIOp>(tile, lb.index(stages));
          // The tile's K block, and its scales, loaded while the tile's
          // bytes land and its multiplications run.
          Value block = lb.create<arith::DivUIOp>(
              lb.create<arith::MulIOp>(tile, lb.index(tileK)),
              lb.index(layout.blockK));
          SmallVector<Value> rowScales, weightScales;
          for (Value row : scaleRows)
            rowScales.push_back(lb.load(mm.quantScales, {row, block}));
          for (Value n : scaleBlocks)
            weightScales.push_back(
                lb.load(mm.rhsScales, {work.expert, n, block}));
          barriers.waitFull(lb, tile, stage);
          // The A rows came by cp.async (the generic proxy); wgmma reads
          // them through the async one.
          StageBarriers::fenceIntoAsyncProxy(lb);
          Value partial = multiplyTile(lb, stage, firstRow);
          barriers.release(lb, stage);
          // Promotion: acc += partial * sa[row] * sw[weight block].
          SmallVector<Value> next(iter);
          // sa * sw, once per row and weight scale.
          SmallVector<Value> scales(2 * weightScales.size());
          auto scaleOf = [&](int64_t half, int64_t index) {
            Value &scale = scales[2 * index + half];
            if (!scale)
              scale = lb.create<arith::MulFOp>(rowScales[half],
                                               weightScales[index]);
            return scale;
          };
          for (int64_t u = 0; u < bTiles; ++u)
            for (int64_t half = 0; half < 2; ++half) {
              for (int64_t q = 0; q < 2; ++q) {
                Value scale = scaleOf(half, scaleIndex(u, q));
                int64_t i = 4 * u + 2 * half + q;
                Value sum = lb.create<LLVM::ExtractValueOp>(
                    partial, ArrayRef<int64_t>{i});
                next[i] = lb.create<math::FmaOp>(sum, scale, next[i]);
              }
            }
          return next;
        });
    auto accIndex = [&](int64_t, int64_t u) { return u * 4; };
    storeTile(cb, acc, accIndex, rows.rows, rows.valid, blockColumn, at.c,
              work.expert, rows.factors);
  }

  /// The warpgroup's f32 partial sums of the K tile in `stage`: four
  /// wgmma.mma_async.m64n128k32 e4m3 x e4m3, the first starting from zero,
  /// waited for before they are returned.
  Value multiplyTile(KernelBuilder &b, Value stage, Value firstRow) {
    MLIRContext *ctx = b.getContext();
    auto partialType = LLVM::LLVMStructType::getLiteral(
        ctx, SmallVector<Type>(weightRows / 2, b.getF32Type()));
    Value d = b.create<LLVM::PoisonOp>(partialType);
    b.create<NVVM::WgmmaFenceAlignedOp>();
    for (int64_t step = 0; step < tileK / kFp8WgmmaStepK; ++step)
      d = b.create<NVVM::WgmmaMmaAsyncOp>(
          partialType, d,
          wgmmaDescriptor(b, aLayout, stagedLhs, stage, step, stagedRows,
                          firstRow, tileK, /*elementBytes=*/1),
          wgmmaDescriptor(b, bLayout, stagedRhs, stage, step, weightRows,
                          b.index(0), tileK, /*elementBytes=*/1),
          NVVM::MMAShapeAttr::get(ctx, 64, weightRows, kFp8WgmmaStepK),
          NVVM::WGMMATypes::e4m3, NVVM::WGMMATypes::e4m3, NVVM::WGMMATypes::f32,
          step == 0 ? NVVM::WGMMAScaleOut::zero : NVVM::WGMMAScaleOut::one,
          NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
          NVVM::MMALayout::row, NVVM::MMALayout::col,
          NVVM::MMAIntOverflowAttr());
    b.create<NVVM::WgmmaGroupSyncAlignedOp>();
    b.create<NVVM::WgmmaWaitGroupSyncOp>(0);
    return d;
  }

  const Fp8Layout &layout;
};

} // namespace

std::unique_ptr<TensorCoreKernel> gpu_lowering::createFp8WgmmaKernel(
    const GroupedMatmul &mm, const TensorCoreConfig &config, int64_t stages) {
  return std::make_unique<Fp8WgmmaKernel>(mm, config, stages);
}
