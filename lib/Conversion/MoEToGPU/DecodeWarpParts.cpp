//===- DecodeWarpParts.cpp - What the decode main loops share -------------===//
//
// The decode kernels (mma_sync, mma_sync_wonly, mma_sync_fp8) load their
// fragments from global memory, warp by warp. They share:
//   - register stages: with 2, each iteration issues the next group's
//     loads before it multiplies the group loaded one iteration before, so
//     a warp's loads stay in flight across its MMAs (ptxas cannot sink
//     them behind the MMAs that need their registers' previous values);
//   - split-K: the 4 warps of a block share its columns and each takes a
//     part of K; part 0 adds the others' sums from shared memory in a fixed
//     order (1, 2, 3), so the result does not depend on timing.
//
//===----------------------------------------------------------------------===//

#include "TensorCoreKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

void TensorCoreKernel::forWarpPart(
    KernelBuilder &b, Value blockColumn, Value warp,
    function_ref<void(KernelBuilder &, Value, Value)> warpBody) {
  if (config.splitK > 1) {
    // Every warp has the block's columns (in range, by the grid), so all
    // reach the barrier of the sum.
    warpBody(b, blockColumn, warp);
    return;
  }
  Value warpColumn = b.create<arith::AddIOp>(
      blockColumn, b.create<arith::MulIOp>(warp, b.index(config.warpColumns)));
  b.ifThen(b.lessThan(warpColumn, b.index(mm.width)),
           [&](KernelBuilder &wb) { warpBody(wb, warpColumn, b.index(0)); });
}

Value TensorCoreKernel::partStart(KernelBuilder &b, Value part,
                                  int64_t count) const {
  return b.create<arith::DivUIOp>(b.create<arith::MulIOp>(part, b.index(count)),
                                  b.index(config.splitK));
}

void TensorCoreKernel::addSplitKBuffer(KernelBuilder &b,
                                       SmallVector<Type> &workgroup) const {
  if (config.splitK == 1)
    return;
  // The accumulators of every warp but the first, lane-minor.
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  workgroup.push_back(
      MemRefType::get({(config.splitK - 1) * numAcc() * kWarpSize},
                      b.getF32Type(), MemRefLayoutAttrInterface(), space));
}

void TensorCoreKernel::sumSplitK(
    KernelBuilder &b, ArrayRef<Value> acc, Value part, Value lane,
    Value partials,
    function_ref<void(KernelBuilder &, ArrayRef<Value>)> store) {
  if (config.splitK == 1) {
    store(b, acc);
    return;
  }
  auto slot = [&](KernelBuilder &sb, Value p, int64_t j) -> Value {
    // (p - 1, j, lane): consecutive lanes, consecutive words.
    Value base =
        sb.create<arith::MulIOp>(sb.create<arith::SubIOp>(p, sb.index(1)),
                                 sb.index(numAcc() * kWarpSize));
    return sb.create<arith::AddIOp>(
        base, sb.create<arith::AddIOp>(lane, sb.index(j * kWarpSize)));
  };
  Value first =
      b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, part, b.index(0));
  Value later =
      b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, part, b.index(0));
  b.ifThen(later, [&](KernelBuilder &sb) {
    for (int64_t j = 0; j < numAcc(); ++j)
      sb.store(acc[j], partials, slot(sb, part, j));
  });
  b.create<gpu::BarrierOp>();
  b.ifThen(first, [&](KernelBuilder &sb) {
    SmallVector<Value> sum(acc);
    for (int64_t p = 1; p < config.splitK; ++p)
      for (int64_t j = 0; j < numAcc(); ++j)
        sum[j] = sb.create<arith::AddFOp>(
            sum[j], sb.load(partials, slot(sb, sb.index(p), j)));
    store(sb, sum);
  });
}

SmallVector<Value> TensorCoreKernel::stagedLoop(KernelBuilder &b,
                                                int64_t registerStages,
                                                Value begin, Value end,
                                                int64_t step, Value last,
                                                ValueRange init, GroupLoad load,
                                                GroupCompute compute) {
  if (registerStages == 1)
    return b.forLoop(begin, end, b.index(step), init,
                     [&](KernelBuilder &lb, Value i, ValueRange iter) {
                       return compute(lb, load(lb, i), iter);
                     });
  // `registerStages` groups in registers: group i + (stages - 1) * step is
  // loaded before group i is computed, so stages - 1 groups' loads are in
  // flight across each group's MMAs. Past the range's end the group being
  // computed is loaded again (cached, in bounds) and not used; the prologue
  // loads groups up to `last`, the whole loop's last group, the same way.
  int64_t ahead = registerStages - 1;
  SmallVector<Value> iters(init);
  for (int64_t j = 0; j < ahead; ++j)
    llvm::append_range(
        iters,
        load(b, b.minIndex(b.create<arith::AddIOp>(begin, b.index(j * step)),
                           last)));
  int64_t numCarried = init.size();
  int64_t perGroup = (iters.size() - numCarried) / ahead;
  SmallVector<Value> results = b.forLoop(
      begin, end, b.index(step), iters,
      [&](KernelBuilder &lb, Value i, ValueRange iter) {
        Value target = lb.create<arith::AddIOp>(i, lb.index(ahead * step));
        SmallVector<Value> next =
            load(lb, lb.create<arith::SelectOp>(lb.lessThan(target, end),
                                                target, i));
        ValueRange groups = iter.drop_front(numCarried);
        SmallVector<Value> out =
            compute(lb, SmallVector<Value>(groups.take_front(perGroup)),
                    iter.take_front(numCarried));
        llvm::append_range(out, groups.drop_front(perGroup));
        llvm::append_range(out, next);
        return out;
      });
  results.resize(numCarried);
  return results;
}

SmallVector<Value> TensorCoreKernel::weightScaleBlocks(KernelBuilder &b,
                                                       Value warpColumn,
                                                       Value c,
                                                       int64_t blockN) const {
  SmallVector<Value> blocks;
  Value pairColumn = b.create<arith::MulIOp>(c, b.index(2));
  for (int64_t u = 0; u < bTiles; ++u)
    for (int64_t q = 0; q < 2; ++q) {
      Value n = weightRow(b, warpColumn, u,
                          b.create<arith::AddIOp>(pairColumn, b.index(q)));
      Value clamped = b.minIndex(n, b.index(mm.n - 1));
      blocks.push_back(b.create<arith::DivUIOp>(clamped, b.index(blockN)));
    }
  return blocks;
}

void DecodeKernelBase::prepareLaunch(KernelBuilder &b,
                                     SmallVector<Type> &workgroup,
                                     int64_t &dynamicBytes) {
  addSplitKBuffer(b, workgroup);
}

void DecodeKernelBase::bindSharedMemory(KernelBuilder &b,
                                        ValueRange workgroup) {
  if (!workgroup.empty())
    partials = workgroup.front();
}

void DecodeKernelBase::computeTile(KernelBuilder &b, const TileWork &work,
                                   Value blockColumn) {
  ThreadPosition at = threadPosition(b);
  forWarpPart(b, blockColumn, at.warp,
              [&](KernelBuilder &wb, Value warpColumn, Value part) {
                computeWarp(wb, work, warpColumn, part, at.lane, at.g, at.c);
              });
}
