//===- CapacityDispatchKernels.cpp - Capacity-limited dispatch on the GPU -===//
//
// A dispatch with a capacity C keeps at most C selections per expert. It is
// built from the uncapped counting sort (lowerDispatch) and two small
// kernels, so the grouped layout, its expert map handling and the inverse
// rows for the combine come from one place:
//
//   1. Sort the selections by expert in priority order. For the position
//      policy the sort runs over the ids transposed to slot-major order
//      (row p = j * T + t), so its stable order within an expert is the
//      policy's priority: a row's rank is its distance from the expert's
//      first row. For the score policy the sort runs over the ids as they
//      are, so each expert's rows are in flat order t * k + j.
//   2. Keep the selections ranked below C: the kept ids are the ids with
//      every dropped selection set to -1. Position: one thread per sorted
//      row. Score: one block per expert selects the C largest weights of
//      its rows (BlockSelection; ties to the lower flat index, NaN last),
//      linear in the expert's rows.
//   3. Sort the kept ids without a capacity: the result (rows in (t, j)
//      order within each expert, offsets, inverse rows) is the op's.
//
// No atomics: every value is written by one thread, so the result is the
// same run to run.
//
//===----------------------------------------------------------------------===//

#include "BlockSelection.h"
#include "Lowerings.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// The capacity C on the host, as an index: the `capacity` attribute, or
/// ceil(f * T * k / E) evaluated in f64 in that order (as the CPU lowering
/// does), clamped to [0, T * k] before the conversion so that no factor can
/// overflow it.
Value hostCapacity(DispatchOp op, KernelBuilder &b, Value tokens, int64_t k,
                   Value selections) {
  if (std::optional<uint64_t> fixed = op.getCapacity())
    return b.minIndex(b.index(static_cast<int64_t>(*fixed)), selections);
  auto toF64 = [&](Value index) {
    return b.create<arith::SIToFPOp>(
        b.getF64Type(), b.create<arith::IndexCastOp>(b.getI64Type(), index));
  };
  double factor = op.getCapacityFactor()->convertToDouble();
  Value product = b.create<arith::MulFOp>(
      b.create<arith::MulFOp>(b.f64(factor), toF64(tokens)),
      b.f64(static_cast<double>(k)));
  Value quotient = b.create<arith::DivFOp>(
      product, b.f64(static_cast<double>(op.getNumExperts())));
  Value ceiling = b.create<math::CeilOp>(quotient);
  Value clamped = b.create<arith::MinimumFOp>(
      b.create<arith::MaximumFOp>(ceiling, b.f64(0.0)), toF64(selections));
  return b.create<arith::IndexCastOp>(
      b.getIndexType(), b.create<arith::FPToSIOp>(b.getI64Type(), clamped));
}

/// The expert e of a sorted row r < offsets[L]: the one with
/// offsets[e] <= r < offsets[e + 1], by a binary search over the
/// (nondecreasing) offsets in a loop of ceil(log2(L + 1)) steps.
Value expertOfRow(KernelBuilder &b, Value offsets, int64_t numLocal,
                  Value row) {
  int64_t steps = llvm::Log2_64_Ceil(numLocal + 1);
  Value rowI32 = b.fromIndex(row, b.getI32Type());
  auto found = b.forLoop(
      b.index(0), b.index(steps), b.index(1),
      ValueRange{b.index(0), b.index(numLocal)},
      [&](KernelBuilder &lb, Value, ValueRange range) {
        Value lo = range[0], hi = range[1];
        Value active = lb.lessThan(lo, hi);
        Value mid = lb.create<arith::ShRUIOp>(lb.create<arith::AddIOp>(lo, hi),
                                              lb.index(1));
        Value safeMid = lb.minIndex(mid, lb.index(numLocal - 1));
        Value next = lb.create<arith::AddIOp>(safeMid, lb.index(1));
        Value end = lb.load(offsets, next);
        Value past =
            lb.create<arith::CmpIOp>(arith::CmpIPredicate::sle, end, rowI32);
        Value raise = lb.create<arith::AndIOp>(active, past);
        Value lower = lb.create<arith::AndIOp>(
            active,
            lb.create<arith::XOrIOp>(
                past, lb.create<arith::ConstantIntOp>(lb.getI1Type(), 1)));
        return SmallVector<Value>{
            lb.create<arith::SelectOp>(
                raise, lb.create<arith::AddIOp>(mid, lb.index(1)), lo),
            lb.create<arith::SelectOp>(lower, mid, hi)};
      });
  return found[0];
}

} // namespace

Replacements gpu_lowering::lowerCapacityDispatch(DispatchOp op,
                                                 DispatchOp::Adaptor operands,
                                                 KernelBuilder &b) {
  bool byScore = op.getDropPolicy() == DropPolicy::score;
  if (byScore && !op.getWeights())
    return op.emitOpError()
           << "drop_policy = score needs the 'weights' operand";
  auto idsType = cast<RankedTensorType>(op.getIds().getType());
  auto offsetsType = cast<RankedTensorType>(op.getOffsets().getType());
  int64_t k = idsType.getDimSize(1);
  int64_t numLocal = offsetsType.getDimSize(0) - 1;
  Value ids = readBuffer(b, operands.getIds());
  Value weights = byScore ? readBuffer(b, operands.getWeights()) : Value();
  Value tokens = b.create<memref::DimOp>(ids, 0);
  Value selections = b.create<arith::MulIOp>(tokens, b.index(k));
  Value capacity = hostCapacity(op, b, tokens, k, selections);
  Value blocks = b.ceilDiv(selections, kBlockThreads);
  Type i32 = b.getI32Type();
  auto dynamicRows = RankedTensorType::get({ShapedType::kDynamic}, i32);

  // 1. The selections sorted by expert in priority order.
  Value priorityIds = operands.getIds();
  if (!byScore) {
    // Slot-major: row j * T + t of a [T * k, 1] tensor holds ids[t, j].
    OutputBuffer slotMajor = allocate(
        b, RankedTensorType::get({ShapedType::kDynamic, 1}, i32), selections);
    b.launch("moe_dispatch_slot_major", blocks, b.index(1), kBlockThreads,
             [&](KernelBuilder &kb) {
               Value f = kb.globalThreadId(kBlockThreads);
               kb.ifThen(kb.lessThan(f, selections), [&](KernelBuilder &tb) {
                 Value t = tb.create<arith::DivUIOp>(f, tb.index(k));
                 Value j = tb.create<arith::RemUIOp>(f, tb.index(k));
                 Value p = tb.create<arith::AddIOp>(
                     tb.create<arith::MulIOp>(j, tokens), t);
                 tb.store(tb.load(ids, {t, j}), slotMajor.buffer,
                          {p, tb.index(0)});
               });
             });
    priorityIds = slotMajor.tensor;
  }
  SortedSelections sorted =
      sortByExpert(b, priorityIds, operands.getExpertMap(), op.getNumExperts(),
                   dynamicRows, offsetsType, /*tiles=*/std::nullopt);
  Value rows = readBuffer(b, sorted.rows);
  Value offsets = readBuffer(b, sorted.offsets);

  // 2. The kept ids: -1 everywhere, then each kept selection's id, written
  // by the thread of its sorted row.
  OutputBuffer kept = allocateLike(b, operands.getIds());
  b.launch("moe_dispatch_capacity_clear", blocks, b.index(1), kBlockThreads,
           [&](KernelBuilder &kb) {
             Value f = kb.globalThreadId(kBlockThreads);
             kb.ifThen(kb.lessThan(f, selections), [&](KernelBuilder &tb) {
               Value t = tb.create<arith::DivUIOp>(f, tb.index(k));
               Value j = tb.create<arith::RemUIOp>(f, tb.index(k));
               tb.store(tb.i32(-1), kept.buffer, {t, j});
             });
           });
  auto keep = [&](KernelBuilder &sb, Value t, Value j) {
    sb.store(sb.load(ids, {t, j}), kept.buffer, {t, j});
  };
  if (byScore) {
    // One block per local expert keeps its C largest weights, over its rows
    // in flat order (ties to the lower t * k + j).
    b.launch(
        "moe_dispatch_capacity_keep_score", b.index(numLocal), b.index(1),
        kSelectThreads, TypeRange{selectionScratchType(b.getContext())},
        [&](KernelBuilder &kb, ValueRange shared) {
          Value e = kb.blockId(gpu::Dimension::x);
          Value first = kb.toIndex(kb.load(offsets, e));
          Value next = kb.create<arith::AddIOp>(e, kb.index(1));
          Value last = kb.create<arith::MaxUIOp>(
              kb.toIndex(kb.load(offsets, next)), first);
          Value count =
              kb.minIndex(capacity, kb.create<arith::SubIOp>(last, first));
          // The rows below offsets[L] hold selections; a malformed value
          // would score NaN and index nothing.
          auto selectionOf = [&](KernelBuilder &lb, Value r) {
            return lb.decodeSelection(lb.load(rows, r), tokens, k);
          };
          auto weight = [&](KernelBuilder &lb, Value r) {
            auto selection = selectionOf(lb, r);
            Value w = lb.load(weights, {selection.token, selection.slot});
            return Value(lb.create<arith::SelectOp>(
                selection.valid, w,
                lb.f32(std::numeric_limits<double>::quiet_NaN())));
          };
          BlockSelection best = BlockSelection::select(
              kb, shared.front(), first, last, count, weight);
          best.sweep(kb, [&](KernelBuilder &vb, Value r, Value picked, Value) {
            auto selection = selectionOf(vb, r);
            vb.ifThen(vb.create<arith::AndIOp>(picked, selection.valid),
                      [&](KernelBuilder &sb) {
                        keep(sb, selection.token, selection.slot);
                      });
          });
        });
  } else {
    // One thread per sorted row: its rank is its distance from its expert's
    // first row.
    b.launch(
        "moe_dispatch_capacity_keep_position", blocks, b.index(1),
        kBlockThreads, [&](KernelBuilder &kb) {
          Value r = kb.globalThreadId(kBlockThreads);
          Value sortedEnd = kb.toIndex(kb.load(offsets, kb.index(numLocal)));
          Value inside = kb.create<arith::AndIOp>(kb.lessThan(r, sortedEnd),
                                                  kb.lessThan(r, selections));
          kb.ifThen(inside, [&](KernelBuilder &tb) {
            // The row's value is p = j * T + t; the check keeps a malformed
            // value from indexing out of bounds.
            Value value = tb.load(rows, r);
            tb.ifThen(tb.inRange(value, selections), [&](KernelBuilder &vb) {
              Value e = expertOfRow(vb, offsets, numLocal, r);
              Value rank =
                  vb.create<arith::SubIOp>(r, vb.toIndex(vb.load(offsets, e)));
              Value p = vb.toIndex(value);
              Value t = vb.create<arith::RemUIOp>(p, tokens);
              Value j = vb.create<arith::DivUIOp>(p, tokens);
              vb.ifThen(vb.lessThan(rank, capacity),
                        [&](KernelBuilder &sb) { keep(sb, t, j); });
            });
          });
        });
  }

  // 3. The kept selections sorted by expert: the op's results.
  SortedSelections result =
      sortByExpert(b, kept.tensor, operands.getExpertMap(), op.getNumExperts(),
                   cast<RankedTensorType>(op.getRows().getType()), offsetsType,
                   rowTileShapesOf(op));
  SmallVector<Value> results = {result.rows, result.offsets};
  if (op.getRowOf())
    results.push_back(result.rowOf);
  if (op.getRowTiles())
    results.push_back(result.rowTiles);
  return results;
}
