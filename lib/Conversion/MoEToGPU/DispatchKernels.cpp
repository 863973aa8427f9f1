//===- DispatchKernels.cpp - Uncapped moe.dispatch on the GPU -------------===//
//
// Dispatch is a stable counting sort: up to one chunk of selections in one
// block and one launch, beyond it three kernels over chunks of selections
// (count per chunk and expert, scan, place). It also writes each
// selection's row, so the matching combine needs no inversion, and, where
// the op returns them, the grouped matmuls' row tiles: the one-block sort
// from the starts it holds in shared memory, the chunked one by the
// schedule kernel after it. No atomics: every result is the same run to
// run.
//
// A chunk ranks its selections by warps: match.any gives each selection
// the lanes of its warp with the same expert, so its rank among them, and
// a table of each warp's count per expert gives the selections of that
// expert in the warps below. Each thread then places its own selection: a
// few steps whatever the chunk, where a thread per expert walking the chunk
// took one step per selection (25 us for Qwen3's 256 selections on an
// H100). Past kWarpRankedExperts local experts the table would not fit in
// shared memory beside the starts, and the walk stays.
//
//===----------------------------------------------------------------------===//

#include "BlockScan.h"
#include "Lowerings.h"
#include "TileSchedule.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// Selections per dispatch chunk: one block counts and places them, and
/// scans the experts' counts.
constexpr int64_t kChunk = kScanThreads;
constexpr int64_t kChunkWarps = kChunk / kWarpSize;
/// Local experts up to which chunks rank selections by warps: the table of
/// counts per warp and expert takes kChunkWarps * 4 bytes an expert (32 KiB
/// here), the one-block kernel's starts and tile counts 8 more.
constexpr int64_t kWarpRankedExperts = 1024;

Value selectF(KernelBuilder &b, Value condition, Value a, Value c) {
  return b.create<arith::SelectOp>(condition, a, c);
}

/// The local expert of flat selection f, or -1 when it has none.
Value localExpert(KernelBuilder &b, Value ids, Value expertMap,
                  int64_t numExperts, int64_t numLocal, int64_t k, Value f) {
  Value token = b.create<arith::DivUIOp>(f, b.index(k));
  Value slot = b.create<arith::RemUIOp>(f, b.index(k));
  Value id = b.load(ids, {token, slot});
  Value valid = b.inRange(id, b.index(numExperts));
  Value expert = id;
  if (expertMap) {
    Value safe = selectF(b, valid, id, b.i32(0));
    expert = b.load(expertMap, b.toIndex(safe));
    valid =
        b.create<arith::AndIOp>(valid, b.inRange(expert, b.index(numLocal)));
  }
  return selectF(b, valid, expert, b.i32(-1));
}

} // namespace

Replacements gpu_lowering::lowerDispatch(DispatchOp op,
                                         DispatchOp::Adaptor operands,
                                         KernelBuilder &b) {
  if (op.getCapacity() || op.getCapacityFactor())
    return lowerCapacityDispatch(op, operands, b);
  SortedSelections sorted = sortByExpert(
      b, operands.getIds(), operands.getExpertMap(), op.getNumExperts(),
      cast<RankedTensorType>(op.getRows().getType()),
      cast<RankedTensorType>(op.getOffsets().getType()), rowTileShapesOf(op));
  SmallVector<Value> results = {sorted.rows, sorted.offsets};
  if (op.getRowOf())
    results.push_back(sorted.rowOf);
  if (op.getRowTiles())
    results.push_back(sorted.rowTiles);
  return results;
}

std::optional<RowTileShapes> gpu_lowering::rowTileShapesOf(DispatchOp op) {
  if (!op.getRowTiles())
    return std::nullopt;
  return rowTileShapesOver(op.getRowTiles(), op.getOffsets(), op.getRows());
}

SortedSelections gpu_lowering::sortByExpert(
    KernelBuilder &b, Value idsTensor, Value expertMapTensor,
    int64_t numExperts, RankedTensorType rowsType, RankedTensorType offsetsType,
    std::optional<RowTileShapes> tiles) {
  Value ids = readBuffer(b, idsTensor);
  Value expertMap = expertMapTensor ? readBuffer(b, expertMapTensor) : Value();
  int64_t k = cast<RankedTensorType>(idsTensor.getType()).getDimSize(1);
  int64_t numLocal = offsetsType.getDimSize(0) - 1;
  Value tokens = b.create<memref::DimOp>(ids, 0);
  Value selections = b.create<arith::MulIOp>(tokens, b.index(k));
  OutputBuffer rows = allocate(b, rowsType,
                               rowsType.isDynamicDim(0) ? ValueRange{selections}
                                                        : ValueRange{});
  OutputBuffer offsets = allocate(b, offsetsType, {});
  Value chunks = b.ceilDiv(selections, kChunk);
  // before[c, e]: selections of expert e in chunks below c (a count first).
  Value before = b.create<memref::AllocOp>(
      MemRefType::get({ShapedType::kDynamic, numLocal}, b.getI32Type()),
      ValueRange{chunks});
  OutputBuffer inverse =
      allocate(b, RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type()),
               {selections});
  Value rowOf = inverse.buffer;
  auto local = [&](KernelBuilder &nb, Value f) {
    return localExpert(nb, ids, expertMap, numExperts, numLocal, k, f);
  };
  auto chunkRange = [&](KernelBuilder &nb, Value chunk) {
    Value from = nb.create<arith::MulIOp>(chunk, nb.index(kChunk));
    Value to = nb.minIndex(nb.create<arith::AddIOp>(from, nb.index(kChunk)),
                           selections);
    return std::make_pair(from, to);
  };
  auto forExpertsOfThread = [&](KernelBuilder &nb,
                                function_ref<void(KernelBuilder &, Value)> fn) {
    nb.forEach(nb.threadId(), nb.index(numLocal), nb.index(kChunk), fn);
  };

  // The steps, shared by the one-block and the chunked kernels. A block
  // first stages the local experts of its chunk [from, to) in shared memory
  // (one selection per thread), so the per-expert scans below read shared
  // memory instead of waiting on global loads one selection at a time.
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto chunkExpertsType = MemRefType::get({kChunk}, b.getI32Type(),
                                          MemRefLayoutAttrInterface(), space);
  // The local experts of selections [from, to) in shared memory `experts`.
  struct StagedChunk {
    Value experts, from, to;

    Value expertOf(KernelBuilder &lb, Value f) const {
      Value at = lb.create<arith::SubIOp>(f, from);
      return lb.load(experts, at);
    }
  };
  // Threads past the chunk's end stage -1, no expert.
  auto stageChunk = [&](KernelBuilder &kb, Value staged, Value from, Value to) {
    Value f = kb.create<arith::AddIOp>(from, kb.threadId());
    kb.ifThenElse(
        kb.lessThan(f, to),
        [&](KernelBuilder &tb) {
          tb.store(local(tb, f), staged, tb.threadId());
        },
        [&](KernelBuilder &eb) {
          eb.store(eb.i32(-1), staged, eb.threadId());
        });
    kb.create<gpu::BarrierOp>();
    return StagedChunk{staged, from, to};
  };
  // Selections of expert e in the staged chunk.
  auto countOf = [&](KernelBuilder &eb, Value e, const StagedChunk &chunk) {
    Value expert = eb.fromIndex(e, eb.getI32Type());
    return eb
        .forLoop(chunk.from, chunk.to, eb.index(1), ValueRange{eb.i32(0)},
                 [&](KernelBuilder &lb, Value f, ValueRange acc) {
                   Value match = lb.create<arith::CmpIOp>(
                       arith::CmpIPredicate::eq, chunk.expertOf(lb, f), expert);
                   return SmallVector<Value>{
                       lb.create<arith::AddIOp>(acc[0], lb.boolToI32(match))};
                 })
        .front();
  };
  // Writes the rows of expert e's selections in the staged chunk, from row
  // start. Ids that changed since they were counted (a caller writing them
  // on another stream during the call) can push a row past the end: it is
  // not written.
  auto placeFrom = [&](KernelBuilder &eb, Value e, Value start,
                       const StagedChunk &chunk) {
    Value expert = eb.fromIndex(e, eb.getI32Type());
    Value numRows = eb.create<memref::DimOp>(rows.buffer, 0);
    eb.forLoop(chunk.from, chunk.to, eb.index(1), ValueRange{start},
               [&](KernelBuilder &lb, Value f, ValueRange acc) {
                 Value match = lb.create<arith::AndIOp>(
                     lb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                              chunk.expertOf(lb, f), expert),
                     lb.inRange(acc[0], numRows));
                 lb.ifThen(match, [&](KernelBuilder &sb) {
                   Value at = sb.toIndex(acc[0]);
                   sb.store(sb.fromIndex(f, sb.getI32Type()), rows.buffer, at);
                   sb.store(acc[0], rowOf, f);
                 });
                 return SmallVector<Value>{
                     lb.create<arith::AddIOp>(acc[0], lb.boolToI32(match))};
               });
  };
  // Ranking by warps (see the file comment). `table` holds kChunkWarps rows
  // of numLocal counts; each chunk zeroes it before it stages, so the
  // staging barrier orders the zeroes before the counts.
  bool rankByWarps = numLocal <= kWarpRankedExperts;
  auto warpTableType = MemRefType::get({kChunkWarps * numLocal}, b.getI32Type(),
                                       MemRefLayoutAttrInterface(), space);
  auto zeroTable = [&](KernelBuilder &kb, Value table) {
    kb.forEach(
        kb.threadId(), kb.index(kChunkWarps * numLocal), kb.index(kChunk),
        [&](KernelBuilder &lb, Value j) { lb.store(lb.i32(0), table, j); });
  };
  auto tableSlot = [&](KernelBuilder &kb, Value warp, Value expert) -> Value {
    return kb.create<arith::AddIOp>(
        kb.create<arith::MulIOp>(warp, kb.index(numLocal)), expert);
  };
  // This thread's selection: its expert (-1 for none) and its rank among
  // the selections of that expert in its warp. The first lane of each
  // expert writes the warp's count into the table. Every thread of the
  // block calls it (match.sync takes whole warps).
  struct WarpRank {
    Value expert, rank, warp;
  };
  auto rankInWarp = [&](KernelBuilder &kb, const StagedChunk &chunk,
                        Value table) {
    Type i32 = kb.getI32Type();
    Value expert = kb.load(chunk.experts, kb.threadId());
    Value same = kb.create<NVVM::MatchSyncOp>(i32, kb.i32(-1), expert,
                                              NVVM::MatchSyncKind::any);
    Value below =
        kb.create<arith::AndIOp>(same, kb.create<NVVM::LaneMaskLtOp>(i32));
    Value warp = kb.create<arith::DivUIOp>(kb.threadId(), kb.index(kWarpSize));
    Value leads = kb.create<arith::AndIOp>(
        kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, below, kb.i32(0)),
        kb.create<arith::CmpIOp>(arith::CmpIPredicate::sge, expert, kb.i32(0)));
    kb.ifThen(leads, [&](KernelBuilder &tb) {
      tb.store(tb.create<LLVM::CtPopOp>(i32, same), table,
               tableSlot(tb, warp, tb.toIndex(expert)));
    });
    kb.create<gpu::BarrierOp>();
    return WarpRank{expert, kb.create<LLVM::CtPopOp>(i32, below), warp};
  };
  // Expert e's counts per warp become the counts in the warps below it, in
  // place; returns the chunk's count of e.
  auto countOverWarps = [&](KernelBuilder &eb, Value e, Value table) {
    Value running = eb.i32(0);
    for (int64_t w = 0; w < kChunkWarps; ++w) {
      Value slot = tableSlot(eb, eb.index(w), e);
      Value count = eb.load(table, slot);
      eb.store(running, table, slot);
      running = eb.create<arith::AddIOp>(running, count);
    }
    return running;
  };
  // Writes this thread's selection at row start(expert) + its rank in the
  // chunk (the table after countOverWarps); as in placeFrom, a row past the
  // end is not written.
  auto placeRanked = [&](KernelBuilder &kb, const WarpRank &mine, Value from,
                         Value table,
                         function_ref<Value(KernelBuilder &, Value)> start) {
    Value numRows = kb.create<memref::DimOp>(rows.buffer, 0);
    Value routed = kb.create<arith::CmpIOp>(arith::CmpIPredicate::sge,
                                            mine.expert, kb.i32(0));
    kb.ifThen(routed, [&](KernelBuilder &tb) {
      Value e = tb.toIndex(mine.expert);
      Value row = tb.create<arith::AddIOp>(
          tb.create<arith::AddIOp>(start(tb, e),
                                   tb.load(table, tableSlot(tb, mine.warp, e))),
          mine.rank);
      tb.ifThen(tb.inRange(row, numRows), [&](KernelBuilder &sb) {
        Value f = sb.create<arith::AddIOp>(from, sb.threadId());
        sb.store(sb.fromIndex(f, sb.getI32Type()), rows.buffer,
                 sb.toIndex(row));
        sb.store(row, rowOf, f);
      });
    });
  };
  // A chunk staged in shared memory `experts` and, where it ranks by warps
  // (`table`, else null), ranked; every thread of the block calls it.
  struct RankedChunk {
    StagedChunk staged;
    Value table;
    std::optional<WarpRank> mine;
  };
  auto stageAndRank = [&](KernelBuilder &kb, Value experts, Value table,
                          Value from, Value to) {
    if (rankByWarps)
      zeroTable(kb, table);
    RankedChunk chunk{stageChunk(kb, experts, from, to), table, std::nullopt};
    if (rankByWarps)
      chunk.mine = rankInWarp(kb, chunk.staged, table);
    return chunk;
  };
  // The chunk's count of expert e (by warps: the table then holds the counts
  // in the warps below, as placeChunk needs).
  auto countInChunk = [&](KernelBuilder &eb, Value e,
                          const RankedChunk &chunk) {
    return rankByWarps ? countOverWarps(eb, e, chunk.table)
                       : countOf(eb, e, chunk.staged);
  };
  // Writes the chunk's selections from row start(e) of each expert e; by
  // warps, after countInChunk and a barrier.
  auto placeChunk = [&](KernelBuilder &kb, const RankedChunk &chunk,
                        function_ref<Value(KernelBuilder &, Value)> start) {
    if (rankByWarps) {
      placeRanked(kb, *chunk.mine, chunk.staged.from, chunk.table, start);
      return;
    }
    forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
      placeFrom(eb, e, start(eb, e), chunk.staged);
    });
  };
  // Rows past the kept ones are padding, and dropped selections have no row.
  // A chunk holds at most one selection per thread, whose expert it staged.
  auto markUnused = [&](KernelBuilder &kb, const StagedChunk &chunk,
                        Value keptRows) {
    Value kept = kb.toIndex(keptRows);
    Value f = kb.create<arith::AddIOp>(chunk.from, kb.threadId());
    kb.ifThen(kb.lessThan(f, chunk.to), [&](KernelBuilder &lb) {
      lb.ifThen(
          lb.create<arith::CmpIOp>(arith::CmpIPredicate::uge, f, kept),
          [&](KernelBuilder &sb) { sb.store(sb.i32(-1), rows.buffer, f); });
      Value dropped = lb.create<arith::CmpIOp>(
          arith::CmpIPredicate::slt, chunk.expertOf(lb, f), lb.i32(0));
      lb.ifThen(dropped,
                [&](KernelBuilder &sb) { sb.store(sb.i32(-1), rowOf, f); });
    });
  };
  // Totals in `counts` become exclusive starts in place (a scan by the whole
  // block, in log2(kChunk) steps whatever the number of experts), and the
  // offsets. Returns the total (i32).
  auto scanTotals = [&](KernelBuilder &kb, Value counts, Value scratch) {
    Value end = scanInPlace(kb, scratch, counts, numLocal);
    if (counts != offsets.buffer)
      forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
        eb.store(eb.load(counts, e), offsets.buffer, e);
      });
    Value first = kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                           kb.threadId(), kb.index(0));
    kb.ifThen(first, [&](KernelBuilder &tb) {
      tb.store(end, offsets.buffer, tb.index(numLocal));
    });
    return end;
  };

  // The row tiles' schedule, with the tile rows the host picks from the
  // rows per expert, as moe.row_tiles would schedule it.
  std::optional<ExpertRows> sortedExperts;
  OutputBuffer schedule;
  Value tileRows;
  if (tiles) {
    sortedExperts =
        ExpertRows{OffsetsSource::fromTensor(b, offsets.tensor),
                   b.create<memref::DimOp>(rows.buffer, 0), numLocal};
    schedule =
        allocateSchedule(b, *sortedExperts,
                         std::min(tiles->smallTileRows, tiles->largeTileRows));
    tileRows = pickTileRows(b, *sortedExperts, *tiles);
  }

  // Decode-sized dispatches (one chunk of selections) run in one block, one
  // launch: the counts and starts stay in shared memory.
  Value oneChunk = b.create<arith::CmpIOp>(arith::CmpIPredicate::ule,
                                           selections, b.index(kChunk));
  auto startsType = MemRefType::get({numLocal}, b.getI32Type(),
                                    MemRefLayoutAttrInterface(), space);
  SmallVector<Type> blockShared = {startsType, chunkExpertsType,
                                   scanScratchType(b.getContext())};
  // With the row tiles, the block also counts each expert's tiles.
  if (tiles)
    blockShared.push_back(startsType);
  if (rankByWarps)
    blockShared.push_back(warpTableType);
  b.ifThenElse(
      oneChunk,
      [&](KernelBuilder &ob) {
        ob.launch(tiles ? "moe_dispatch_block_row_tiles" : "moe_dispatch_block",
                  ob.index(1), ob.index(1), kChunk, blockShared,
                  [&](KernelBuilder &kb, ValueRange shared) {
                    Value starts = shared.front();
                    RankedChunk chunk = stageAndRank(
                        kb, shared[1], rankByWarps ? shared.back() : Value(),
                        kb.index(0), selections);
                    forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                      eb.store(countInChunk(eb, e, chunk), starts, e);
                    });
                    kb.create<gpu::BarrierOp>();
                    Value routed = scanTotals(kb, starts, shared[2]);
                    kb.create<gpu::BarrierOp>();
                    placeChunk(kb, chunk, [&](KernelBuilder &tb, Value e) {
                      return tb.load(starts, e);
                    });
                    markUnused(kb, chunk.staged, routed);
                    if (tiles)
                      writeScheduleInBlock(
                          kb, {starts, routed, numLocal, shared[3], shared[2]},
                          {schedule.buffer}, tileRows);
                  });
      },
      [&](KernelBuilder &cb) {
        SmallVector<Type> chunkShared = {chunkExpertsType};
        if (rankByWarps)
          chunkShared.push_back(warpTableType);
        // The chunk of this block, staged and ranked (count and place).
        auto rankBlockChunk = [&](KernelBuilder &kb, ValueRange shared) {
          Value chunk = kb.blockId(gpu::Dimension::x);
          auto range = chunkRange(kb, chunk);
          return std::make_pair(
              chunk, stageAndRank(kb, shared.front(),
                                  rankByWarps ? shared.back() : Value(),
                                  range.first, range.second));
        };
        cb.launch("moe_dispatch_count", chunks, cb.index(1), kChunk,
                  chunkShared, [&](KernelBuilder &kb, ValueRange shared) {
                    auto [chunk, ranked] = rankBlockChunk(kb, shared);
                    forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                      eb.store(countInChunk(eb, e, ranked), before, {chunk, e});
                    });
                  });

        cb.launch(
            "moe_dispatch_scan", cb.index(1), cb.index(1), kChunk,
            TypeRange{scanScratchType(cb.getContext())},
            [&](KernelBuilder &kb, ValueRange shared) {
              // Each step loads kScanBatch chunks' counts before it stores
              // their starts: one load in flight per chunk would make a
              // 65536-token dispatch wait on 2048 loads in turn (32 at a
              // time makes ptxas spill).
              constexpr int64_t kScanBatch = 16;
              forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                Value total =
                    eb.forLoop(
                          eb.index(0), chunks, eb.index(kScanBatch),
                          ValueRange{eb.i32(0)},
                          [&](KernelBuilder &lb, Value c0, ValueRange acc) {
                            SmallVector<Value> chunkOf, inside, counts;
                            for (int64_t i = 0; i < kScanBatch; ++i) {
                              Value c =
                                  lb.create<arith::AddIOp>(c0, lb.index(i));
                              Value in = lb.lessThan(c, chunks);
                              Value safe = lb.create<arith::SelectOp>(
                                  in, c, lb.index(0));
                              chunkOf.push_back(c);
                              inside.push_back(in);
                              counts.push_back(lb.create<arith::SelectOp>(
                                  in, lb.load(before, {safe, e}), lb.i32(0)));
                            }
                            Value start = acc[0];
                            for (int64_t i = 0; i < kScanBatch; ++i) {
                              Value at = start;
                              lb.ifThen(inside[i], [&](KernelBuilder &sb) {
                                sb.store(at, before, {chunkOf[i], e});
                              });
                              start =
                                  lb.create<arith::AddIOp>(start, counts[i]);
                            }
                            return SmallVector<Value>{start};
                          })
                        .front();
                eb.store(total, offsets.buffer, e);
              });
              kb.create<gpu::BarrierOp>();
              scanTotals(kb, offsets.buffer, shared.front());
            });

        cb.launch("moe_dispatch_place", chunks, cb.index(1), kChunk,
                  chunkShared, [&](KernelBuilder &kb, ValueRange shared) {
                    auto [chunk, ranked] = rankBlockChunk(kb, shared);
                    auto start = [&](KernelBuilder &eb, Value e) -> Value {
                      return eb.create<arith::AddIOp>(
                          eb.load(offsets.buffer, e),
                          eb.load(before, {chunk, e}));
                    };
                    if (rankByWarps) {
                      // The table's counts become the counts in the warps
                      // below (the count kernel's totals are not needed).
                      forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                        countInChunk(eb, e, ranked);
                      });
                      kb.create<gpu::BarrierOp>();
                    }
                    placeChunk(kb, ranked, start);
                    markUnused(kb, ranked.staged,
                               kb.load(offsets.buffer, kb.index(numLocal)));
                  });
        if (tiles)
          scheduleTilesOfShapes(cb, *sortedExperts, {schedule.buffer}, *tiles);
      });

  return {rows.tensor, offsets.tensor, inverse.tensor,
          tiles ? schedule.tensor : Value()};
}
