//===- Fp8StagedDecodeMainloop.cpp - e4m3 mma.sync, staged, split-K -------===//
//
// The mma_sync_fp8 kernel with wide steps, register stages or split-K
// (k = 64, stages = 2 or split_k = 4; Fp8DecodeMainloop.cpp has k = 32,
// stages = 1, split_k = 1), on the pattern of the bf16 decode kernel
// (DecodeMainloop.cpp). Blocks of 4 warps, each of `16 * mTiles` rows and
// `warpColumns` output columns, or with split_k = 4, 4 warps that share
// their columns and each take a quarter of the K blocks, adding their sums
// through shared memory in a fixed order.
//
// A step is `k` of K: every lane loads k / 4 bytes (8 or 16) of each A row
// and weight row, bytes [c * k / 4, (c + 1) * k / 4) of the step, and feeds
// each 8 of them to one mma.sync.m16n8k32 (words 2j and 2j + 1 as the MMA's
// K quads 4c and 16 + 4c): the same permutation of K for A and B, which
// leaves the dot products unchanged. A group is `unroll` steps inside one
// K block, with the block's scales: the rows' activation scales and the
// weight blocks' scales of the warp's columns. Each group's MMAs sum into
// f32 partial sums of their own, which are then scaled into the f32
// accumulators (DeepGEMM's promotion): partial sums of one K block are never
// added to another's before the scale multiply; where a group is the whole
// K block (unroll = the block's steps, what moe-gpu-select-kernel-config
// picks) each block is promoted once. With stages = 2 the next group's
// loads, scales included, go out before this group's MMAs, so the loads
// stay in flight across them and ptxas cannot sink them behind the MMAs.
//
// K is a multiple of 8 (k = 32) or 16 (k = 64), so a lane's bytes are all
// inside K or all past it; those past K read as zeros, in A too (its rows
// are padded to whole 32-wide steps of a block, not 64-wide ones).
//
//===----------------------------------------------------------------------===//

#include "Fp8Matmul.h"
#include "TensorCoreKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

class Fp8StagedDecodeKernel final : public DecodeKernelBase {
public:
  Fp8StagedDecodeKernel(const GroupedMatmul &mm, const TensorCoreConfig &config)
      : DecodeKernelBase(mm, config), layout(*mm.fp8), stepK(config.stepK),
        laneBytes(config.stepK / 4),
        groupsPerBlock(llvm::divideCeil(layout.blockK, config.stepK) /
                       config.unroll) {}

private:
  void computeWarp(KernelBuilder &b, const TileWork &work, Value warpColumn,
                   Value part, Value lane, Value g, Value c) override {
    WarpRows rows = warpRows(b, work, g);
    ArrayRef<Operand> aRows = rows.a;
    ArrayRef<Value> outRows = rows.out, outValid = rows.outValid;
    SmallVector<Operand> bRows = warpWeightRows(b, warpColumn, g);
    SmallVector<Value> scaleBlocks =
        weightScaleBlocks(b, warpColumn, c, layout.blockN);
    Value expert = work.expert;
    auto accIndex = [&](int64_t i, int64_t u) { return (i * bTiles + u) * 4; };
    Value laneK = b.create<arith::MulIOp>(c, b.index(laneBytes));
    Type i8 = b.getI8Type();
    int64_t unroll = config.unroll;
    int64_t perStep = aRows.size() + bRows.size() + 1;

    // A group's values: per step the A rows' words, the weight rows', then
    // whether the lane's bytes of the step are inside K; then the A rows'
    // scales and the weight scales of (u, q). The words are masked where
    // the MMAs take them, not here: with two stages that is the next
    // iteration, so the loads stay in flight across the loop's back edge
    // (a select beside the load would make the loading iteration wait).
    auto load = [&](KernelBuilder &lb, Value group) {
      Value block = lb.create<arith::DivUIOp>(group, lb.index(groupsPerBlock));
      Value within = lb.create<arith::RemUIOp>(group, lb.index(groupsPerBlock));
      Value k0 = lb.create<arith::AddIOp>(
          lb.create<arith::MulIOp>(block, lb.index(layout.blockK)),
          lb.create<arith::MulIOp>(within, lb.index(unroll * stepK)));
      SmallVector<Value> values;
      for (int64_t s = 0; s < unroll; ++s) {
        Value k = lb.create<arith::AddIOp>(
            k0, lb.create<arith::AddIOp>(laneK, lb.index(s * stepK)));
        Value inside = lb.lessThan(k, lb.index(mm.reduction));
        Value safeK = lb.create<arith::SelectOp>(inside, k, lb.index(0));
        for (const Operand &row : aRows)
          values.push_back(loadFp8WordsUnmasked(
              lb, mm.quantLhs, {row.row, safeK}, i8, laneBytes));
        for (const Operand &row : bRows)
          values.push_back(loadFp8WordsUnmasked(
              lb, mm.rhs, {expert, row.row, safeK}, mm.rhsElement, laneBytes));
        values.push_back(inside);
      }
      for (const Operand &row : aRows)
        values.push_back(lb.load(mm.quantScales, {row.row, block}));
      for (Value scaleBlock : scaleBlocks)
        values.push_back(lb.load(mm.rhsScales, {expert, scaleBlock, block}));
      return values;
    };

    // The group's MMAs into zeroed partial sums, then the promotion.
    SmallVector<Value> zeros(numAcc(), b.f32(0.0));
    auto compute = [&](KernelBuilder &lb, ArrayRef<Value> values,
                       ValueRange acc) {
      SmallVector<Value> partial(zeros);
      for (int64_t s = 0; s < unroll; ++s) {
        Value inside = values[(s + 1) * perStep - 1];
        auto masked = [&](ArrayRef<Operand> rows, int64_t first) {
          SmallVector<Value> words;
          for (auto [r, row] : llvm::enumerate(rows))
            words.push_back(
                maskFp8Words(lb, values[s * perStep + first + r],
                             lb.create<arith::AndIOp>(row.valid, inside)));
          return words;
        };
        SmallVector<Value> aWords = masked(aRows, 0);
        SmallVector<Value> bWords = masked(bRows, aRows.size());
        for (int64_t j = 0; j < laneBytes / 8; ++j)
          for (int64_t i = 0; i < config.mTiles; ++i) {
            Value lo = aWords[2 * i], hi = aWords[2 * i + 1];
            SmallVector<Value> a = {
                fp8Word(lb, lo, 2 * j), fp8Word(lb, hi, 2 * j),
                fp8Word(lb, lo, 2 * j + 1), fp8Word(lb, hi, 2 * j + 1)};
            for (int64_t u = 0; u < bTiles; ++u) {
              SmallVector<Value> bFrag = {fp8Word(lb, bWords[u], 2 * j),
                                          fp8Word(lb, bWords[u], 2 * j + 1)};
              MutableArrayRef<Value> slot(partial.data() + accIndex(i, u), 4);
              fp8MmaSync(lb, a, bFrag, slot, config.fp8ViaF16);
            }
          }
      }
      ArrayRef<Value> scales = values.drop_front(unroll * perStep);
      ArrayRef<Value> rowScales = scales.take_front(aRows.size());
      SmallVector<Value> weightScales;
      for (Value scale : scales.drop_front(aRows.size()))
        weightScales.push_back(
            promotionWeightScale(lb, scale, config.fp8ViaF16));
      SmallVector<Value> next(acc);
      for (int64_t u = 0; u < bTiles; ++u)
        for (int64_t q = 0; q < 2; ++q)
          for (int64_t i = 0; i < config.mTiles; ++i)
            for (int64_t half = 0; half < 2; ++half) {
              int64_t at = accIndex(i, u) + 2 * half + q;
              Value scale = lb.create<arith::MulFOp>(rowScales[2 * i + half],
                                                     weightScales[2 * u + q]);
              next[at] = lb.create<arith::AddFOp>(
                  next[at], lb.create<arith::MulFOp>(partial[at], scale));
            }
      return next;
    };

    // Part p takes the groups of K blocks [p * kBlocks / splitK, (p + 1) *
    // kBlocks / splitK): split on whole K blocks.
    auto partGroups = [&](Value p) {
      return b.create<arith::MulIOp>(partStart(b, p, layout.kBlocks),
                                     b.index(groupsPerBlock));
    };
    Value begin = partGroups(part);
    Value end = partGroups(b.create<arith::AddIOp>(part, b.index(1)));
    int64_t groups = layout.kBlocks * groupsPerBlock;
    SmallVector<Value> acc =
        stagedLoop(b, config.registerStages, begin, end, /*step=*/1,
                   b.index(groups - 1), zeros, load, compute);
    sumSplitK(b, acc, part, lane, partials,
              [&](KernelBuilder &sb, ArrayRef<Value> sum) {
                storeTile(sb, sum, accIndex, outRows, outValid, warpColumn, c,
                          expert);
              });
  }

  const Fp8Layout &layout;
  int64_t stepK;          // K per step: 32 or 64
  int64_t laneBytes;      // bytes per lane and row of a step: 8 or 16
  int64_t groupsPerBlock; // groups of `unroll` steps per K block
};

} // namespace

std::unique_ptr<TensorCoreKernel>
gpu_lowering::createFp8StagedDecodeKernel(const GroupedMatmul &mm,
                                          const TensorCoreConfig &config) {
  return std::make_unique<Fp8StagedDecodeKernel>(mm, config);
}
