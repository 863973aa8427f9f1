//===- Fp8DecodeMainloop.cpp - e4m3 mma.sync with per-block promotion -----===//
//
// The mma_sync_fp8 kernel: f8E4M3FN weights W [E, N, K] with f32 block
// scales sw [E, ceil(N / bn), ceil(K / bk)], against the A rows quantized
// to e4m3 with their scales sa [rows, ceil(K / bk)] by the activation
// quantization kernel (Fp8ActivationQuant.cpp). Blocks of 4 warps, each of
// `16 * mTiles` rows and `warpColumns` output columns, load their fragments
// from global memory, as the mma_sync kernel does. For each K block of bk
// columns a warp accumulates `mma.sync.m16n8k32.row.col.f32.e4m3.e4m3.f32`
// products into f32 partial sums and then adds
// `partial * sa[row, kb] * sw[e, n / bn, kb]` to its f32 accumulators:
// DeepGEMM's promotion, so the tensor cores' FP8 accumulation never spans
// K blocks and each scale applies once per block. For each 32-wide K step
// every lane loads 8 bytes of each A row and weight row; bytes 0-3 serve
// as the MMA's K quad 4c and bytes 4-7 as quad 16 + 4c, the same
// permutation of K for A and B, which leaves the dot products unchanged.
// `unroll` steps of loads are issued before their MMAs. The epilogue (bias,
// GLU, routing weight) is the other tensor-core kernels'.
// This is the kernel of k = 32, stages = 1, split_k = 1; the others are
// Fp8StagedDecodeMainloop.cpp's.
//
//===----------------------------------------------------------------------===//

#include "Fp8Matmul.h"
#include "TensorCoreKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

// NVGPUDialect.h has a kWarpSize of its own.
using gpu_lowering::kWarpSize;

class Fp8DecodeKernel final : public TensorCoreKernel {
public:
  Fp8DecodeKernel(const GroupedMatmul &mm, const TensorCoreConfig &config)
      : TensorCoreKernel(mm, config), layout(*mm.fp8) {}

private:
  void computeTile(KernelBuilder &b, const TileWork &work,
                   Value blockColumn) override {
    ThreadPosition at = threadPosition(b);
    Value warpColumn = b.create<arith::AddIOp>(
        blockColumn,
        b.create<arith::MulIOp>(at.warp, b.index(config.warpColumns)));
    b.ifThen(b.lessThan(warpColumn, b.index(mm.width)), [&](KernelBuilder &wb) {
      computeWarp(wb, work, warpColumn, at.g, at.c);
    });
  }

  void computeWarp(KernelBuilder &b, const TileWork &work, Value warpColumn,
                   Value g, Value c) {
    // A rows: for m tile i, rows g and g + 8, read from the quantized rows
    // of their source (the token, with a gather).
    WarpRows rows = warpRows(b, work, g);
    ArrayRef<Operand> aRows = rows.a;
    ArrayRef<Value> outRows = rows.out, outValid = rows.outValid;
    // B rows: the weight row of tile u for lane group g; and the scale
    // block (n / bn) of the accumulator columns 2c and 2c + 1 of tile u.
    SmallVector<Operand> bRows = warpWeightRows(b, warpColumn, g);
    SmallVector<Value> scaleBlocks =
        weightScaleBlocks(b, warpColumn, c, layout.blockN);
    Value expert = work.expert;
    auto accIndex = [&](int64_t i, int64_t u) { return (i * bTiles + u) * 4; };
    SmallVector<Value> zeros(numAcc(), b.f32(0.0));
    Value laneK = b.create<arith::MulIOp>(c, b.index(8));
    Type i8 = b.getI8Type();

    // `steps` 32-wide steps from k0, loads first, into `partial`.
    auto steps = [&](KernelBuilder &lb, Value k0, int64_t count,
                     ValueRange partial) {
      SmallVector<SmallVector<Value>> aWords, bWords;
      for (int64_t s = 0; s < count; ++s) {
        Value k = lb.create<arith::AddIOp>(
            k0, lb.create<arith::AddIOp>(laneK, lb.index(s * kFp8StepK)));
        // The quantized rows are zero-padded to whole steps; the weights
        // end at K (a multiple of 8, so a lane's 8 bytes are all inside or
        // all past it).
        Value inside = lb.lessThan(k, lb.index(mm.reduction));
        Value weightK = lb.create<arith::SelectOp>(inside, k, lb.index(0));
        SmallVector<Value> aStep, bStep;
        for (const Operand &row : aRows)
          aStep.push_back(
              loadFp8Words(lb, mm.quantLhs, {row.row, k}, i8, 8, row.valid));
        for (const Operand &row : bRows)
          bStep.push_back(loadFp8Words(
              lb, mm.rhs, {expert, row.row, weightK}, mm.rhsElement, 8,
              lb.create<arith::AndIOp>(row.valid, inside)));
        aWords.push_back(aStep);
        bWords.push_back(bStep);
      }
      SmallVector<Value> next(partial);
      for (int64_t s = 0; s < count; ++s)
        for (int64_t i = 0; i < config.mTiles; ++i) {
          Value lo = aWords[s][2 * i], hi = aWords[s][2 * i + 1];
          SmallVector<Value> a = {fp8Word(lb, lo, 0), fp8Word(lb, hi, 0),
                                  fp8Word(lb, lo, 1), fp8Word(lb, hi, 1)};
          for (int64_t u = 0; u < bTiles; ++u) {
            SmallVector<Value> bFrag = {fp8Word(lb, bWords[s][u], 0),
                                        fp8Word(lb, bWords[s][u], 1)};
            MutableArrayRef<Value> slot(next.data() + accIndex(i, u), 4);
            fp8MmaSync(lb, a, bFrag, slot, config.fp8ViaF16);
          }
        }
      return next;
    };

    int64_t unroll = config.unroll;
    SmallVector<Value> acc = b.forLoop(
        b.index(0), b.index(layout.kBlocks), b.index(1), zeros,
        [&](KernelBuilder &kb, Value block, ValueRange iter) {
          Value blockStart =
              kb.create<arith::MulIOp>(block, kb.index(layout.blockK));
          SmallVector<Value> partial = kb.forLoop(
              kb.index(0), kb.index(layout.stepsPerBlock), kb.index(unroll),
              zeros, [&](KernelBuilder &lb, Value step, ValueRange p) {
                Value k0 = lb.create<arith::AddIOp>(
                    blockStart,
                    lb.create<arith::MulIOp>(step, lb.index(kFp8StepK)));
                return steps(lb, k0, unroll, p);
              });
          // Promotion: the block's partial sums, scaled by the row's and
          // the weight block's scales, into the f32 accumulators.
          SmallVector<Value> rowScales;
          for (const Operand &row : aRows)
            rowScales.push_back(kb.load(mm.quantScales, {row.row, block}));
          SmallVector<Value> next(iter);
          for (int64_t u = 0; u < bTiles; ++u)
            for (int64_t q = 0; q < 2; ++q) {
              Value weightScale = promotionWeightScale(
                  kb,
                  kb.load(mm.rhsScales,
                          {expert, scaleBlocks[2 * u + q], block}),
                  config.fp8ViaF16);
              for (int64_t i = 0; i < config.mTiles; ++i)
                for (int64_t half = 0; half < 2; ++half) {
                  int64_t at = accIndex(i, u) + 2 * half + q;
                  Value scale = kb.create<arith::MulFOp>(
                      rowScales[2 * i + half], weightScale);
                  next[at] = kb.create<arith::AddFOp>(
                      next[at], kb.create<arith::MulFOp>(partial[at], scale));
                }
            }
          return next;
        });
    storeTile(b, acc, accIndex, outRows, outValid, warpColumn, c, expert);
  }

  const Fp8Layout &layout;
};

} // namespace

std::unique_ptr<TensorCoreKernel>
gpu_lowering::createFp8DecodeKernel(const GroupedMatmul &mm,
                                    const TensorCoreConfig &config) {
  return std::make_unique<Fp8DecodeKernel>(mm, config);
}
