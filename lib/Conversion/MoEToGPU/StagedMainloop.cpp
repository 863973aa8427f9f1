//===- StagedMainloop.cpp - Tiles staged through shared memory ------------===//
//
// mma_sync_staged, the prefill kernel off sm_90a: 128 x 128 block tiles of
// 8 warps (64 x 32 each); each 32-wide K tile of the block's gathered rows
// and weight rows is copied with cp.async into `stages` stages of dynamic
// shared memory (80 KiB at 4 stages; 120 KiB for f32 activations, which are
// rounded to the MMA type as fragments are read), `stages - 1` ahead, and
// read with ldmatrix into mma.sync.m16n8k16.
//
//===----------------------------------------------------------------------===//

#include "StagedMainloop.h"

#include "SharedTileLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

StagedKernel::StagedKernel(const GroupedMatmul &mm,
                           const TensorCoreConfig &config, int64_t stages)
    : TensorCoreKernel(mm, config) {
  stagedRows = 16 * kStagedMTiles * kStagedWarpsM;
  this->stages = stages;
}

void StagedKernel::prepareLaunch(KernelBuilder &b, SmallVector<Type> &,
                                 int64_t &dynamicBytes) {
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  lhsTile = MemRefType::get({stages, stagedRows, kPaddedK}, mm.lhsType,
                            MemRefLayoutAttrInterface(), space);
  rhsTile = MemRefType::get({stages, weightRows, kPaddedK}, mm.rhsElement,
                            MemRefLayoutAttrInterface(), space);
  dynamicBytes = bytes(lhsTile) + bytes(rhsTile);
}

void StagedKernel::bindSharedMemory(KernelBuilder &b, ValueRange) {
  // Both tiles are views of the block's dynamic shared memory.
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  Value all = b.create<gpu::DynamicSharedMemoryOp>(
      MemRefType::get({ShapedType::kDynamic}, b.getIntegerType(8),
                      MemRefLayoutAttrInterface(), space));
  stagedLhs = b.create<memref::ViewOp>(lhsTile, all, b.index(0), ValueRange{});
  stagedRhs = b.create<memref::ViewOp>(rhsTile, all, b.index(bytes(lhsTile)),
                                       ValueRange{});
}

Operand StagedKernel::stagedWeightRow(KernelBuilder &b, Value blockColumn,
                                      Value r) {
  Value row, column;
  if (mm.glu && !mm.interleaved) {
    Value half = b.index(weightRows / 2);
    Value isUp = b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, r, half);
    Value within = b.create<arith::RemUIOp>(r, half);
    column = b.create<arith::AddIOp>(blockColumn, within);
    row = b.create<arith::AddIOp>(
        column, b.create<arith::SelectOp>(isUp, b.index(mm.width), b.index(0)));
    Value valid = b.lessThan(column, b.index(mm.width));
    return {b.create<arith::SelectOp>(valid, row, b.index(0)), valid};
  }
  Value first = mm.interleaved
                    ? b.create<arith::MulIOp>(blockColumn, b.index(2))
                    : blockColumn;
  row = b.create<arith::AddIOp>(first, r);
  Value valid = b.lessThan(row, b.index(mm.n));
  return {b.create<arith::SelectOp>(valid, row, b.index(0)), valid};
}

Value StagedKernel::stagedTileRow(KernelBuilder &b, Value wn, int64_t u) {
  if (mm.glu && !mm.interleaved) {
    int64_t base = u < outputTiles ? 0 : weightRows / 2;
    return b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(wn, b.index(8 * outputTiles)),
        b.index(base + 8 * (u % outputTiles)));
  }
  return b.create<arith::AddIOp>(
      b.create<arith::MulIOp>(wn, b.index(8 * bTiles)), b.index(8 * u));
}

SmallVector<StagedKernel::Copy>
StagedKernel::planChunks(KernelBuilder &b, SharedLayout layout, Type element,
                         int64_t rows, function_ref<Operand(Value)> source,
                         Value tid, int64_t copyThreads) {
  SmallVector<Copy> copies;
  int64_t count = 16 * 8 / element.getIntOrFloatBitWidth();
  int64_t perRow = tileK / count;
  if (layout == SharedLayout::k_chunk_major) {
    // K-chunk-major tiles put a row's chunks `rows * 16` bytes apart,
    // in the same banks: each quarter-warp copies one chunk of 8
    // consecutive rows instead (conflict-free stores), and a warp the
    // two chunks of each 32-byte sector of 16 rows (whole sectors read).
    // Pass p covers chunk pair p of 16 rows per warp, for each group of
    // `warps * 16` of the block's rows.
    int64_t warps = copyThreads / kWarpSize;
    Value warp = b.create<arith::DivUIOp>(tid, b.index(kWarpSize));
    Value lane = b.create<arith::RemUIOp>(tid, b.index(kWarpSize));
    Value rowInWarp = b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(b.create<arith::DivUIOp>(lane, b.index(16)),
                                b.index(8)),
        b.create<arith::RemUIOp>(lane, b.index(8)));
    Value odd = b.create<arith::RemUIOp>(
        b.create<arith::DivUIOp>(lane, b.index(8)), b.index(2));
    for (int64_t group = 0; group < rows / (16 * warps); ++group) {
      Value r = b.create<arith::AddIOp>(
          b.create<arith::MulIOp>(
              b.create<arith::AddIOp>(warp, b.index(group * warps)),
              b.index(16)),
          rowInWarp);
      Operand from = source(r);
      for (int64_t pass = 0; pass < perRow / 2; ++pass) {
        Value k = b.create<arith::MulIOp>(
            b.create<arith::AddIOp>(odd, b.index(2 * pass)), b.index(count));
        copies.push_back({r, from, k, count});
      }
    }
    return copies;
  }
  int64_t rowsPerPass = copyThreads / perRow;
  Value first = b.create<arith::DivUIOp>(tid, b.index(perRow));
  Value k = b.create<arith::MulIOp>(
      b.create<arith::RemUIOp>(tid, b.index(perRow)), b.index(count));
  for (int64_t pass = 0; pass < rows / rowsPerPass; ++pass) {
    Value r = b.create<arith::AddIOp>(first, b.index(pass * rowsPerPass));
    copies.push_back({r, source(r), k, count});
  }
  return copies;
}

Operand StagedKernel::gatheredRow(KernelBuilder &b, const TileWork &work,
                                  Value r) {
  Value aRow = b.create<arith::AddIOp>(work.start, r);
  Value inside = b.lessThan(aRow, work.end);
  auto [source, exists] =
      mm.sourceRow(b, b.create<arith::SelectOp>(inside, aRow, work.start));
  Value valid = b.create<arith::AndIOp>(inside, exists);
  return Operand{b.create<arith::SelectOp>(valid, source, b.index(0)), valid};
}

SmallVector<StagedKernel::Copy>
StagedKernel::planWeightCopies(KernelBuilder &b, Value blockColumn, Value tid,
                               int64_t copyThreads) {
  return planChunks(
      b, bLayout, mm.rhsElement, weightRows,
      [&](Value r) { return stagedWeightRow(b, blockColumn, r); }, tid,
      copyThreads);
}

StagedKernel::IssueFn StagedKernel::stagedCopies(KernelBuilder &b,
                                                 const TileWork &work,
                                                 Value blockColumn, Value tid,
                                                 int64_t copyThreads) {
  Value expert = work.expert;
  SmallVector<Copy> aCopies = planChunks(
      b, aLayout, mm.lhsType, stagedRows,
      [&](Value r) { return gatheredRow(b, work, r); }, tid, copyThreads);
  SmallVector<Copy> bCopies =
      planWeightCopies(b, blockColumn, tid, copyThreads);
  return [=](KernelBuilder &ib, Value tile, Value stage) {
    issueWeightTile(ib, tile, stage, expert);
    Value k0 = ib.create<arith::MulIOp>(tile, ib.index(tileK));
    auto copy = [&](const Copy &chunk, SharedLayout layout, Value dst,
                    Value src, ValueRange prefix) {
      Value k = ib.create<arith::AddIOp>(k0, chunk.k);
      Value kInside = ib.lessThan(k, ib.index(mm.reduction));
      SmallVector<Value> indices(prefix);
      indices.append({chunk.from.row,
                      ib.create<arith::SelectOp>(kInside, k, ib.index(0))});
      SmallVector<Value> at =
          chunkIndices(ib, layout, stage, chunk.row, chunk.k, chunk.count);
      copyChunk(ib, dst, at, src, indices, chunk.count,
                ib.create<arith::AndIOp>(chunk.from.valid, kInside));
    };
    for (const Copy &chunk : aCopies)
      copy(chunk, aLayout, stagedLhs, mm.lhs, {});
    for (const Copy &chunk : bCopies)
      copy(chunk, bLayout, stagedRhs, mm.rhs, {expert});
  };
}

SmallVector<Value> StagedKernel::forEachStagedTile(
    KernelBuilder &b, const IssueFn &issue, ValueRange init,
    bool asyncProxyReads,
    function_ref<SmallVector<Value>(KernelBuilder &, Value, ValueRange)> step) {
  int64_t numTiles = kTiles();
  for (int64_t s = 0; s + 1 < stages; ++s) {
    if (s < numTiles)
      issue(b, b.index(s), b.index(s));
    b.create<NVVM::CpAsyncCommitGroupOp>();
  }
  SmallVector<Value> results = b.forLoop(
      b.index(0), b.index(numTiles), b.index(1), init,
      [&](KernelBuilder &lb, Value tile, ValueRange iter) {
        Value stage = lb.create<arith::RemUIOp>(tile, lb.index(stages));
        lb.create<NVVM::CpAsyncWaitGroupOp>(stages - 2);
        if (barriers)
          barriers.waitFull(lb, tile, stage);
        if (asyncProxyReads)
          StageBarriers::fenceIntoAsyncProxy(lb);
        lb.create<gpu::BarrierOp>();
        auto issueNext = [&]() {
          Value next = lb.create<arith::AddIOp>(tile, lb.index(stages - 1));
          lb.ifThen(lb.lessThan(next, lb.index(numTiles)),
                    [&](KernelBuilder &ib) {
                      issue(ib, next,
                            ib.create<arith::RemUIOp>(next, ib.index(stages)));
                    });
          lb.create<NVVM::CpAsyncCommitGroupOp>();
        };
        if (!asyncProxyReads)
          issueNext();
        SmallVector<Value> carried = step(lb, stage, iter);
        if (asyncProxyReads) {
          lb.create<gpu::BarrierOp>();
          issueNext();
        }
        return carried;
      });
  b.create<NVVM::CpAsyncWaitGroupOp>(0);
  return results;
}

void StagedKernel::computeTile(KernelBuilder &b, const TileWork &work,
                               Value blockColumn) {
  ThreadPosition at = threadPosition(b);
  Value warp = at.warp, lane = at.lane, g = at.g, c = at.c;
  Value wm = b.create<arith::DivUIOp>(warp, b.index(kStagedWarpsN));
  Value wn = b.create<arith::RemUIOp>(warp, b.index(kStagedWarpsN));
  IssueFn issue = stagedCopies(b, work, blockColumn);
  SmallVector<Value> init(numAcc(), b.f32(0.0));
  auto accIndex = [&](int64_t i, int64_t u) { return (i * bTiles + u) * 4; };
  // ldmatrix.x4 addresses: lanes 16-31 point at the second half of K (A)
  // or at the second 8-row tile of a pair (B).
  Value rowInTile = b.create<arith::RemUIOp>(lane, b.index(16));
  Value upperLanes = b.create<arith::MulIOp>(
      b.create<arith::DivUIOp>(lane, b.index(16)), b.index(8));
  Value bRowInTile = b.create<arith::RemUIOp>(lane, b.index(8));
  Value bKHalf = b.create<arith::MulIOp>(
      b.create<arith::RemUIOp>(b.create<arith::DivUIOp>(lane, b.index(8)),
                               b.index(2)),
      b.index(8));
  SmallVector<Value> acc = forEachStagedTile(
      b, issue, init, /*asyncProxyReads=*/false,
      [&](KernelBuilder &lb, Value stage, ValueRange iter) {
        SmallVector<Value> sums(iter);
        for (int64_t ks = 0; ks < kTileK / 16; ++ks) {
          SmallVector<SmallVector<Value>> aFrags, bFrags(bTiles);
          for (int64_t i = 0; i < config.mTiles; ++i) {
            Value tileRow = lb.create<arith::AddIOp>(
                lb.create<arith::MulIOp>(wm, lb.index(16 * config.mTiles)),
                lb.index(16 * i));
            if (mm.lhsType.isF32()) {
              aFrags.push_back(fragments.loadF32Fragment(
                  lb, stagedLhs, stage, tileRow, lb.index(16 * ks), g, c));
              continue;
            }
            Value row = lb.create<arith::AddIOp>(tileRow, rowInTile);
            Value k = lb.create<arith::AddIOp>(upperLanes, lb.index(16 * ks));
            aFrags.push_back(
                fragments.loadMatrix(lb, stagedLhs, {stage, row, k}));
          }
          for (int64_t u = 0; u < bTiles; u += 2) {
            Value row = lb.create<arith::AddIOp>(
                stagedTileRow(lb, wn, u),
                lb.create<arith::AddIOp>(upperLanes, bRowInTile));
            Value k = lb.create<arith::AddIOp>(bKHalf, lb.index(16 * ks));
            SmallVector<Value> m =
                fragments.loadMatrix(lb, stagedRhs, {stage, row, k});
            bFrags[u] = {m[0], m[1]};
            bFrags[u + 1] = {m[2], m[3]};
          }
          for (int64_t i = 0; i < config.mTiles; ++i)
            for (int64_t u = 0; u < bTiles; ++u) {
              MutableArrayRef<Value> slot(sums.data() + accIndex(i, u), 4);
              fragments.mma(lb, aFrags[i], bFrags[u], slot);
            }
        }
        return sums;
      });

  SmallVector<Value> outRows, outValid;
  for (int64_t i = 0; i < config.mTiles; ++i)
    for (int64_t half = 0; half < 2; ++half) {
      Value r = b.create<arith::AddIOp>(
          work.start,
          b.create<arith::AddIOp>(
              b.create<arith::MulIOp>(wm, b.index(16 * config.mTiles)),
              b.create<arith::AddIOp>(g, b.index(16 * i + 8 * half))));
      outRows.push_back(r);
      outValid.push_back(b.lessThan(r, work.end));
    }
  Value warpColumn = b.create<arith::AddIOp>(
      blockColumn, b.create<arith::MulIOp>(wn, b.index(config.warpColumns)));
  storeTile(b, acc, accIndex, outRows, outValid, warpColumn, c, work.expert);
}

std::unique_ptr<TensorCoreKernel> gpu_lowering::createStagedKernel(
    const GroupedMatmul &mm, const TensorCoreConfig &config, int64_t stages) {
  return std::make_unique<StagedKernel>(mm, config, stages);
}
