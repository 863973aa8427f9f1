//===- TileSchedule.cpp - Row tiles of a grouped matmul -------------------===//

#include "TileSchedule.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

Value gpu_lowering::maxTiles(KernelBuilder &b, const GroupedMatmul &mm,
                             int64_t tileRows) {
  Value partial = b.minIndex(mm.numRows, b.index(mm.numExperts));
  return b.create<arith::AddIOp>(
      b.create<arith::AddIOp>(b.ceilDiv(mm.numRows, tileRows), partial),
      b.index(1));
}

TileSchedule gpu_lowering::allocateSchedule(KernelBuilder &b,
                                            const GroupedMatmul &mm,
                                            int64_t minTileRows) {
  auto i32Buffer = [&](Value size) {
    return b.create<memref::AllocOp>(
        MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
        ValueRange{size});
  };
  Value size = maxTiles(b, mm, minTileRows);
  return {i32Buffer(size), i32Buffer(size), i32Buffer(b.index(1))};
}

/// The first row of expert e and its number of row tiles.
static std::pair<Value, Value> expertTiles(KernelBuilder &b,
                                           const GroupedMatmul &mm, Value e,
                                           int64_t tileRows) {
  auto [lo, hi] = mm.expertRange(b, e);
  return {lo, b.ceilDiv(b.create<arith::SubIOp>(hi, lo), tileRows)};
}

void gpu_lowering::scheduleTiles(KernelBuilder &b, const GroupedMatmul &mm,
                                 const TileSchedule &schedule,
                                 int64_t tileRows) {
  int64_t numExperts = mm.numExperts;
  Value grid = b.index(llvm::divideCeil(numExperts, kBlockThreads));
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto countsType = MemRefType::get({numExperts}, b.getI32Type(),
                                    MemRefLayoutAttrInterface(), space);
  b.launch(
      "moe_tile_schedule", grid, b.index(1), kBlockThreads,
      TypeRange{countsType}, [&](KernelBuilder &kb, ValueRange shared) {
        // Every block first counts every expert's tiles into shared memory,
        // a strided share per thread: the loads of the offsets go out
        // together, where a thread summing the experts below it from
        // global memory would wait on each in turn.
        Value counts = shared.front();
        kb.forEach(kb.threadId(), kb.index(numExperts), kb.index(kBlockThreads),
                   [&](KernelBuilder &lb, Value j) {
                     Value tiles = expertTiles(lb, mm, j, tileRows).second;
                     lb.store(lb.fromIndex(tiles, lb.getI32Type()), counts, j);
                   });
        kb.create<gpu::BarrierOp>();
        Value e = kb.globalThreadId(kBlockThreads);
        kb.ifThen(kb.lessThan(e, kb.index(numExperts)), [&](KernelBuilder &tb) {
          // A loop over all experts (a constant trip count) with the ones
          // below e selected, so the shared-memory reads can overlap.
          Value before =
              tb.forLoop(tb.index(0), tb.index(numExperts), tb.index(1),
                         ValueRange{tb.index(0)},
                         [&](KernelBuilder &lb, Value j, ValueRange acc) {
                           Value tiles = lb.toIndex(lb.load(counts, j));
                           Value below = lb.lessThan(j, e);
                           Value added =
                               lb.create<arith::AddIOp>(acc[0], tiles);
                           return SmallVector<Value>{lb.create<arith::SelectOp>(
                               below, added, acc[0])};
                         })
                  .front();
          Value firstRow = expertTiles(tb, mm, e, tileRows).first;
          Value tiles = tb.toIndex(tb.load(counts, e));
          Value expert = tb.fromIndex(e, tb.getI32Type());
          tb.forEach(
              tb.index(0), tiles, tb.index(1), [&](KernelBuilder &lb, Value t) {
                Value at = lb.create<arith::AddIOp>(before, t);
                Value start = lb.create<arith::AddIOp>(
                    firstRow, lb.create<arith::MulIOp>(t, lb.index(tileRows)));
                lb.store(expert, schedule.expert, at);
                lb.store(lb.fromIndex(start, lb.getI32Type()), schedule.start,
                         at);
              });
          Value last = tb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, e,
                                                tb.index(numExperts - 1));
          tb.ifThen(last, [&](KernelBuilder &lb) {
            Value total = lb.create<arith::AddIOp>(before, tiles);
            lb.store(lb.fromIndex(total, lb.getI32Type()), schedule.count,
                     lb.index(0));
          });
        });
      });
}

TileWork gpu_lowering::lookUpTile(KernelBuilder &b, const GroupedMatmul &mm,
                                  const TileSchedule &schedule, Value tile,
                                  int64_t tileRows) {
  Value total = b.toIndex(b.load(schedule.count, b.index(0)));
  Value isExpertTile = b.lessThan(tile, total);
  Value safe = b.create<arith::SelectOp>(isExpertTile, tile, b.index(0));
  TileWork work;
  work.isExpertTile = isExpertTile;
  // Clamped into [0, E): with no tile at all, slot 0 was never written.
  work.expert = b.toIndex(b.create<arith::MinSIOp>(
      b.create<arith::MaxSIOp>(b.load(schedule.expert, safe), b.i32(0)),
      b.i32(mm.numExperts - 1)));
  work.start = b.toIndex(
      b.create<arith::MaxSIOp>(b.load(schedule.start, safe), b.i32(0)));
  work.end = mm.expertRange(b, work.expert).second;
  Value routedEnd =
      mm.offsets.at(b, b.index(mm.numExperts), b.index(0), mm.numRows);
  Value beyond =
      b.create<arith::SubIOp>(b.create<arith::MaxUIOp>(tile, total), total);
  work.zeroStart = b.create<arith::AddIOp>(
      routedEnd, b.create<arith::MulIOp>(beyond, b.index(tileRows)));
  work.zeroEnd = b.minIndex(
      b.create<arith::AddIOp>(work.zeroStart, b.index(tileRows)), mm.numRows);
  return work;
}
