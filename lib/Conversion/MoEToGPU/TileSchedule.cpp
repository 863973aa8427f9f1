//===- TileSchedule.cpp - Row tiles of a grouped matmul -------------------===//
//
// The schedule kernel, the same schedule written by a one-block kernel
// that holds the experts' starts (the decode-sized dispatch), the tile
// look-up of the tensor-core kernels, and moe.row_tiles, the schedule as a
// value the matmuls of a layer share.
//
//===----------------------------------------------------------------------===//

#include "TileSchedule.h"

#include "BlockScan.h"
#include "Lowerings.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

Value gpu_lowering::maxTiles(KernelBuilder &b, Value numRows,
                             int64_t numExperts, int64_t tileRows) {
  Value partial = b.minIndex(numRows, b.index(numExperts));
  return b.create<arith::AddIOp>(
      b.create<arith::AddIOp>(b.ceilDiv(numRows, tileRows), partial),
      b.index(1));
}

OutputBuffer gpu_lowering::allocateSchedule(KernelBuilder &b,
                                            const ExpertRows &experts,
                                            int64_t minTileRows) {
  Value tiles = maxTiles(b, experts.numRows, experts.numExperts, minTileRows);
  Value size = b.create<arith::AddIOp>(
      b.create<arith::MulIOp>(tiles, b.index(2)), b.index(1));
  return allocate(
      b, RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type()), size);
}

Value gpu_lowering::takesLargeTiles(KernelBuilder &b, const ExpertRows &experts,
                                    int64_t largeRowsPerExpert) {
  Value average =
      b.create<arith::DivUIOp>(experts.numRows, b.index(experts.numExperts));
  return b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, average,
                                 b.index(largeRowsPerExpert));
}

/// The first row of expert e and its number of row tiles.
static std::pair<Value, Value> expertTiles(KernelBuilder &b,
                                           const ExpertRows &experts, Value e,
                                           int64_t tileRows) {
  auto [lo, hi] = experts.range(b, e);
  return {lo, b.ceilDiv(b.create<arith::SubIOp>(hi, lo), tileRows)};
}

/// The positions of tile t's expert and first row in the schedule.
static std::pair<Value, Value> tileSlots(KernelBuilder &b, Value t) {
  Value expert = b.create<arith::AddIOp>(b.create<arith::MulIOp>(t, b.index(2)),
                                         b.index(1));
  return {expert, b.create<arith::AddIOp>(expert, b.index(1))};
}

void gpu_lowering::scheduleTiles(KernelBuilder &b, const ExpertRows &experts,
                                 const TileSchedule &schedule,
                                 int64_t tileRows) {
  int64_t numExperts = experts.numExperts;
  Value grid = b.index(llvm::divideCeil(numExperts, kScanThreads));
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto countsType = MemRefType::get({numExperts}, b.getI32Type(),
                                    MemRefLayoutAttrInterface(), space);
  b.launch(
      "moe_tile_schedule", grid, b.index(1), kScanThreads,
      TypeRange{countsType, scanScratchType(b.getContext())},
      [&](KernelBuilder &kb, ValueRange shared) {
        // Every block counts every expert's tiles into shared memory, a
        // strided share per thread, and scans them as a block: each
        // expert's first tile in log2(kScanThreads) steps, where a loop
        // over the experts below it would take E.
        Value counts = shared[0];
        kb.forEach(kb.threadId(), kb.index(numExperts), kb.index(kScanThreads),
                   [&](KernelBuilder &lb, Value j) {
                     Value tiles = expertTiles(lb, experts, j, tileRows).second;
                     lb.store(lb.fromIndex(tiles, lb.getI32Type()), counts, j);
                   });
        kb.create<gpu::BarrierOp>();
        Value total = scanInPlace(kb, shared[1], counts, numExperts);
        Value e = kb.globalThreadId(kScanThreads);
        kb.ifThen(kb.lessThan(e, kb.index(numExperts)), [&](KernelBuilder &tb) {
          Value before = tb.toIndex(tb.load(counts, e));
          std::pair<Value, Value> range = expertTiles(tb, experts, e, tileRows);
          Value firstRow = range.first, tiles = range.second;
          Value expert = tb.fromIndex(e, tb.getI32Type());
          tb.forEach(
              tb.index(0), tiles, tb.index(1), [&](KernelBuilder &lb, Value t) {
                auto [expertSlot, startSlot] =
                    tileSlots(lb, lb.create<arith::AddIOp>(before, t));
                Value start = lb.create<arith::AddIOp>(
                    firstRow, lb.create<arith::MulIOp>(t, lb.index(tileRows)));
                lb.store(expert, schedule.buffer, expertSlot);
                lb.store(lb.fromIndex(start, lb.getI32Type()), schedule.buffer,
                         startSlot);
              });
        });
        Value first =
            kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, e, kb.index(0));
        kb.ifThen(first, [&](KernelBuilder &tb) {
          tb.store(total, schedule.buffer, tb.index(0));
        });
      });
}

void gpu_lowering::scheduleTilesOfShapes(KernelBuilder &b,
                                         const ExpertRows &experts,
                                         const TileSchedule &schedule,
                                         const RowTileShapes &shapes) {
  b.ifThenElse(
      takesLargeTiles(b, experts, shapes.largeRowsPerExpert),
      [&](KernelBuilder &tb) {
        scheduleTiles(tb, experts, schedule, shapes.largeTileRows);
      },
      [&](KernelBuilder &eb) {
        scheduleTiles(eb, experts, schedule, shapes.smallTileRows);
      });
}

Value gpu_lowering::pickTileRows(KernelBuilder &b, const ExpertRows &experts,
                                 const RowTileShapes &shapes) {
  return b.create<arith::SelectOp>(
      takesLargeTiles(b, experts, shapes.largeRowsPerExpert),
      b.index(shapes.largeTileRows), b.index(shapes.smallTileRows));
}

void gpu_lowering::writeScheduleInBlock(KernelBuilder &b,
                                        const BlockExpertStarts &experts,
                                        const TileSchedule &schedule,
                                        Value tileRows) {
  Value rowsPerTile = b.fromIndex(tileRows, b.getI32Type());
  // Expert e's rows [first, end) and its tiles, ceil((end - first) / rows):
  // the starts come from counts, so they never decrease and end at routed,
  // and the schedule kernel's clamps to [0, M] change none of them.
  auto expertTiles = [&](KernelBuilder &eb, Value e) {
    Value first = eb.load(experts.starts, e);
    Value next = eb.create<arith::AddIOp>(e, eb.index(1));
    Value isLast = eb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, next,
                                            eb.index(experts.numExperts));
    Value safeNext = eb.create<arith::SelectOp>(isLast, eb.index(0), next);
    Value end = eb.create<arith::SelectOp>(isLast, experts.routed,
                                           eb.load(experts.starts, safeNext));
    Value rows = eb.create<arith::SubIOp>(end, first);
    Value tiles = eb.create<arith::DivUIOp>(
        eb.create<arith::AddIOp>(
            rows, eb.create<arith::SubIOp>(rowsPerTile, eb.i32(1))),
        rowsPerTile);
    return std::make_pair(first, tiles);
  };
  auto forExpertsOfThread = [&](function_ref<void(KernelBuilder &, Value)> fn) {
    b.forEach(b.threadId(), b.index(experts.numExperts), b.index(kScanThreads),
              fn);
  };
  forExpertsOfThread([&](KernelBuilder &eb, Value e) {
    eb.store(expertTiles(eb, e).second, experts.tileCounts, e);
  });
  b.create<gpu::BarrierOp>();
  // Each expert's first tile, as the schedule kernel's block scan has it.
  Value total =
      scanInPlace(b, experts.scratch, experts.tileCounts, experts.numExperts);
  forExpertsOfThread([&](KernelBuilder &eb, Value e) {
    Value before = eb.toIndex(eb.load(experts.tileCounts, e));
    std::pair<Value, Value> range = expertTiles(eb, e);
    Value first = range.first;
    Value expert = eb.fromIndex(e, eb.getI32Type());
    eb.forEach(eb.index(0), eb.toIndex(range.second), eb.index(1),
               [&](KernelBuilder &lb, Value t) {
                 auto [expertSlot, startSlot] =
                     tileSlots(lb, lb.create<arith::AddIOp>(before, t));
                 Value start = lb.create<arith::AddIOp>(
                     first, lb.create<arith::MulIOp>(
                                lb.fromIndex(t, lb.getI32Type()), rowsPerTile));
                 lb.store(expert, schedule.buffer, expertSlot);
                 lb.store(start, schedule.buffer, startSlot);
               });
  });
  Value first = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, b.threadId(),
                                        b.index(0));
  b.ifThen(first, [&](KernelBuilder &tb) {
    tb.store(total, schedule.buffer, tb.index(0));
  });
}

TileWork gpu_lowering::lookUpTile(KernelBuilder &b, const ExpertRows &experts,
                                  const TileSchedule &schedule, Value tile,
                                  int64_t tileRows) {
  Value total = b.toIndex(b.load(schedule.buffer, b.index(0)));
  Value isExpertTile = b.lessThan(tile, total);
  Value safe = b.create<arith::SelectOp>(isExpertTile, tile, b.index(0));
  auto [expertSlot, startSlot] = tileSlots(b, safe);
  TileWork work;
  work.isExpertTile = isExpertTile;
  // Clamped into [0, E): with no tile at all, tile 0 was never written.
  work.expert = b.toIndex(b.create<arith::MinSIOp>(
      b.create<arith::MaxSIOp>(b.load(schedule.buffer, expertSlot), b.i32(0)),
      b.i32(experts.numExperts - 1)));
  work.start = b.toIndex(
      b.create<arith::MaxSIOp>(b.load(schedule.buffer, startSlot), b.i32(0)));
  work.end = experts.range(b, work.expert).second;
  Value routedEnd = experts.routedEnd(b);
  Value beyond =
      b.create<arith::SubIOp>(b.create<arith::MaxUIOp>(tile, total), total);
  work.zeroStart = b.create<arith::AddIOp>(
      routedEnd, b.create<arith::MulIOp>(beyond, b.index(tileRows)));
  work.zeroEnd =
      b.minIndex(b.create<arith::AddIOp>(work.zeroStart, b.index(tileRows)),
                 experts.numRows);
  return work;
}

Replacements gpu_lowering::lowerRowTiles(RowTilesOp op,
                                         RowTilesOp::Adaptor operands,
                                         KernelBuilder &b) {
  ExpertRows experts{
      OffsetsSource::fromTensor(b, operands.getOffsets()),
      b.dimValue(operands.getRows(), 0),
      static_cast<int64_t>(
          cast<RankedTensorType>(op.getOffsets().getType()).getDimSize(0)) -
          1};
  RowTileShapes shapes{static_cast<int64_t>(op.getSmallTileRows()),
                       static_cast<int64_t>(op.getLargeTileRows()),
                       static_cast<int64_t>(op.getLargeRowsPerExpert())};
  OutputBuffer schedule = allocateSchedule(
      b, experts, std::min(shapes.smallTileRows, shapes.largeTileRows));
  scheduleTilesOfShapes(b, experts, {schedule.buffer}, shapes);
  return SmallVector<Value>{schedule.tensor};
}
