//===- DecodeMainloop.cpp - mma.sync from global memory (decode) ----------===//
//
// The mma_sync kernel, for decode-sized problems: blocks of 4 warps, each of
// `16 * mTiles` rows and `warpColumns` output columns, or, with split_k = 4,
// 4 warps that share their columns and each take a quarter of K, adding
// their sums through shared memory in a fixed order (4x the warps, and the
// bytes in flight, that a short, wide expert matrix would otherwise get).
// For each 32-wide step of K, every lane loads 16 bytes of each of its A
// rows (gathered through `rows`) and weight rows and feeds them to two
// mma.sync.m16n8k16 steps with f32 accumulators; K is permuted the same way
// for A and B inside each step, which leaves the dot products unchanged and
// lets every load be 16 bytes wide. A group of `unroll` steps' loads is
// issued before their MMAs, and with stages = 2 the next group's loads go
// out before this group's MMAs, so enough bytes stay in flight to stream
// the weights.
//
//===----------------------------------------------------------------------===//

#include "TensorCoreKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

// NVGPUDialect.h has a kWarpSize of its own.
using gpu_lowering::kWarpSize;

/// K per step of the wide loads: two m16n8k16 MMAs.
constexpr int64_t kStepK = 32;

class DecodeKernel final : public DecodeKernelBase {
public:
  DecodeKernel(const GroupedMatmul &mm, const TensorCoreConfig &config)
      : DecodeKernelBase(mm, config) {}

private:
  /// Computes the tile's columns from warpColumn over part `part` of K (of
  /// config.splitK), then sums the parts and stores.
  void computeWarp(KernelBuilder &b, const TileWork &work, Value warpColumn,
                   Value part, Value lane, Value g, Value c) override {
    // A rows: for m tile i, rows g and g + 8.
    WarpRows rows = warpRows(b, work, g);
    ArrayRef<Operand> aRows = rows.a;
    ArrayRef<Value> outRows = rows.out, outValid = rows.outValid;
    SmallVector<Operand> bRows = warpWeightRows(b, warpColumn, g);
    Value expert = work.expert;
    Value lastPart = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, part,
                                             b.index(config.splitK - 1));

    SmallVector<Value> init(numAcc(), b.f32(0.0));
    auto accIndex = [&](int64_t i, int64_t u) { return (i * bTiles + u) * 4; };

    // Main loop: `unroll` wide steps per iteration, loads first. A group's
    // fragments are, per step, the A rows' then the weight rows'.
    int64_t fullK = mm.reduction - mm.reduction % kStepK;
    int64_t unrolledK = fullK - fullK % (kStepK * config.unroll);
    Value laneK = b.create<arith::MulIOp>(c, b.index(8));
    int64_t perStep = aRows.size() + bRows.size();
    auto loadSteps = [&](KernelBuilder &lb, Value k0, int64_t steps) {
      SmallVector<Value> frags;
      for (int64_t s = 0; s < steps; ++s) {
        Value k = lb.create<arith::AddIOp>(
            k0, lb.create<arith::AddIOp>(laneK, lb.index(s * kStepK)));
        for (const Operand &row : aRows)
          frags.push_back(
              fragments.wideLoad(lb, mm.lhs, {}, row, k, mm.lhsType));
        for (const Operand &row : bRows)
          frags.push_back(
              fragments.wideLoad(lb, mm.rhs, {expert}, row, k, mm.rhsElement));
      }
      return frags;
    };
    auto mmaSteps = [&](KernelBuilder &lb, ArrayRef<Value> frags, int64_t steps,
                        ValueRange acc) {
      SmallVector<Value> next(acc);
      for (int64_t s = 0; s < steps; ++s) {
        ArrayRef<Value> aFrags = frags.slice(s * perStep, aRows.size());
        ArrayRef<Value> bFrags =
            frags.slice(s * perStep + aRows.size(), bRows.size());
        for (int64_t half = 0; half < 2; ++half)
          for (int64_t i = 0; i < config.mTiles; ++i) {
            Value lo = aFrags[2 * i], hi = aFrags[2 * i + 1];
            SmallVector<Value> a = {fragments.element(lb, lo, 2 * half),
                                    fragments.element(lb, hi, 2 * half),
                                    fragments.element(lb, lo, 2 * half + 1),
                                    fragments.element(lb, hi, 2 * half + 1)};
            for (int64_t u = 0; u < bTiles; ++u) {
              Value bw = bFrags[u];
              SmallVector<Value> bFrag = {
                  fragments.element(lb, bw, 2 * half),
                  fragments.element(lb, bw, 2 * half + 1)};
              MutableArrayRef<Value> slot(next.data() + accIndex(i, u), 4);
              fragments.mma(lb, a, bFrag, slot);
            }
          }
      }
      return next;
    };
    auto wideSteps = [&](KernelBuilder &lb, Value k0, int64_t steps,
                         ValueRange acc) {
      return mmaSteps(lb, loadSteps(lb, k0, steps), steps, acc);
    };
    // Part p takes unrolled steps [p * U / splitK, (p + 1) * U / splitK);
    // the last part also takes the single steps and the tail.
    int64_t unrolledStep = kStepK * config.unroll;
    int64_t steps = unrolledK / unrolledStep;
    auto partStartK = [&](Value p) {
      return b.create<arith::MulIOp>(partStart(b, p, steps),
                                     b.index(unrolledStep));
    };
    Value kBegin = partStartK(part);
    Value kEnd = partStartK(b.create<arith::AddIOp>(part, b.index(1)));
    int64_t registerStages = steps == 0 ? 1 : config.registerStages;
    Value lastGroup =
        registerStages > 1 ? b.index(unrolledK - unrolledStep) : Value();
    SmallVector<Value> acc = stagedLoop(
        b, registerStages, kBegin, kEnd, unrolledStep, lastGroup, init,
        [&](KernelBuilder &lb, Value k0) {
          return loadSteps(lb, k0, config.unroll);
        },
        [&](KernelBuilder &lb, ArrayRef<Value> frags, ValueRange iter) {
          return mmaSteps(lb, frags, config.unroll, iter);
        });
    if (unrolledK < fullK) {
      Value from = b.create<arith::SelectOp>(lastPart, b.index(unrolledK),
                                             b.index(fullK));
      acc = b.forLoop(from, b.index(fullK), b.index(kStepK), acc,
                      [&](KernelBuilder &lb, Value k0, ValueRange iter) {
                        return wideSteps(lb, k0, 1, iter);
                      });
    }
    // Other parts read the tail as zeros.
    auto inLastPart = [&](Operand row) {
      return Operand{row.row, b.create<arith::AndIOp>(row.valid, lastPart)};
    };
    // The tail of K in plain k16 steps with masked element loads.
    Value pairK = b.create<arith::MulIOp>(c, b.index(2));
    for (int64_t k0 = fullK; k0 < mm.reduction; k0 += 16) {
      Value k = b.create<arith::AddIOp>(pairK, b.index(k0));
      Value k8 = b.create<arith::AddIOp>(k, b.index(8));
      for (int64_t i = 0; i < config.mTiles; ++i) {
        Operand lo = inLastPart(aRows[2 * i]);
        Operand hi = inLastPart(aRows[2 * i + 1]);
        SmallVector<Value> a = {fragments.tailPair(b, mm.lhs, {}, lo, k),
                                fragments.tailPair(b, mm.lhs, {}, hi, k),
                                fragments.tailPair(b, mm.lhs, {}, lo, k8),
                                fragments.tailPair(b, mm.lhs, {}, hi, k8)};
        for (int64_t u = 0; u < bTiles; ++u) {
          SmallVector<Value> bFrag = {
              fragments.tailPair(b, mm.rhs, {expert}, bRows[u], k),
              fragments.tailPair(b, mm.rhs, {expert}, bRows[u], k8)};
          MutableArrayRef<Value> slot(acc.data() + accIndex(i, u), 4);
          fragments.mma(b, a, bFrag, slot);
        }
      }
    }
    sumSplitK(b, acc, part, lane, partials,
              [&](KernelBuilder &sb, ArrayRef<Value> sum) {
                storeTile(sb, sum, accIndex, outRows, outValid, warpColumn, c,
                          expert);
              });
  }
};

} // namespace

std::unique_ptr<TensorCoreKernel>
gpu_lowering::createDecodeKernel(const GroupedMatmul &mm,
                                 const TensorCoreConfig &config) {
  return std::make_unique<DecodeKernel>(mm, config);
}
