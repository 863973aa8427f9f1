//===- BlockSelection.cpp - One block picks the best of a range -----------===//
//
// Keys: an f32 score maps to an i32 whose unsigned order is the ranking
// order (the IEEE bits with the sign bit flipped for positive values and
// every bit flipped for negative ones; NaN to 0, below every number; -0 to
// +0's key, as they tie). The radix select finds the C-th largest key K from
// the top bit down, one bit per pass, each pass a count over the range; it
// also leaves how many elements with key K are picked. The sweep then picks
// every key above K and, in order (an exclusive scan), the first of those
// equal to K, and numbers the picked ones (a second scan).
//
//===----------------------------------------------------------------------===//

#include "BlockSelection.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

Value orderKey(KernelBuilder &b, Value score) {
  Type i32 = b.getI32Type();
  Value bits = b.create<arith::BitcastOp>(i32, score);
  Value signBit = b.i32(std::numeric_limits<int32_t>::min());
  Value negative =
      b.create<arith::CmpIOp>(arith::CmpIPredicate::slt, bits, b.i32(0));
  Value flipped = b.create<arith::SelectOp>(
      negative, b.create<arith::XOrIOp>(bits, b.i32(-1)),
      b.create<arith::XOrIOp>(bits, signBit));
  Value zero =
      b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, score, b.f32(0.0));
  Value nan = b.create<arith::CmpFOp>(arith::CmpFPredicate::UNO, score, score);
  return b.create<arith::SelectOp>(
      nan, b.i32(0), b.create<arith::SelectOp>(zero, signBit, flipped));
}

} // namespace

BlockSelection BlockSelection::select(KernelBuilder &b, Value scratch,
                                      Value from, Value to, Value count,
                                      ScoreFn scoreOf) {
  Type i32 = b.getI32Type();
  Value tid = b.threadId();
  Value first = b.create<arith::AddIOp>(from, tid);
  // From the top bit down: `prefix` holds the bits of K found so far,
  // `remaining` how many elements are still to be picked among the keys
  // that start with them.
  auto found = b.forLoop(
      b.index(0), b.index(32), b.index(1),
      ValueRange{b.i32(0), b.fromIndex(count, i32)},
      [&](KernelBuilder &lb, Value step, ValueRange acc) {
        Value bit =
            lb.create<arith::SubIOp>(lb.i32(31), lb.fromIndex(step, i32));
        Value candidate = lb.create<arith::OrIOp>(
            acc[0], lb.create<arith::ShLIOp>(lb.i32(1), bit));
        Value high = lb.create<arith::ShRUIOp>(candidate, bit);
        Value mine =
            lb.forLoop(first, to, lb.index(kSelectThreads),
                       ValueRange{lb.i32(0)},
                       [&](KernelBuilder &cb, Value i, ValueRange n) {
                         Value key = orderKey(cb, scoreOf(cb, i));
                         Value match = cb.create<arith::CmpIOp>(
                             arith::CmpIPredicate::eq,
                             cb.create<arith::ShRUIOp>(key, bit), high);
                         return SmallVector<Value>{cb.create<arith::AddIOp>(
                             n[0], cb.boolToI32(match))};
                       })
                .front();
        Value matching = blockExclusiveScan(lb, scratch, mine).second;
        Value take = lb.create<arith::CmpIOp>(arith::CmpIPredicate::sge,
                                              matching, acc[1]);
        return SmallVector<Value>{
            lb.create<arith::SelectOp>(take, candidate, acc[0]),
            lb.create<arith::SelectOp>(
                take, acc[1], lb.create<arith::SubIOp>(acc[1], matching))};
      });
  BlockSelection selection;
  selection.scratch = scratch;
  selection.from = from;
  selection.to = to;
  selection.scoreOf = scoreOf;
  selection.threshold = found[0];
  selection.ofThreshold = found[1];
  return selection;
}

void BlockSelection::sweep(KernelBuilder &b, VisitFn visit) const {
  Value tid = b.threadId();
  // Every thread runs every tile (the scans have block barriers), carrying
  // the elements with key K seen and the elements picked.
  b.forLoop(
      from, to, b.index(kSelectThreads), ValueRange{b.i32(0), b.i32(0)},
      [&](KernelBuilder &lb, Value tile, ValueRange seen) {
        Value i = lb.create<arith::AddIOp>(tile, tid);
        Value inside = lb.lessThan(i, to);
        Value safe = lb.create<arith::SelectOp>(inside, i, tile);
        Value key = orderKey(lb, scoreOf(lb, safe));
        Value equal = lb.create<arith::AndIOp>(
            inside,
            lb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, key, threshold));
        Value above = lb.create<arith::AndIOp>(
            inside, lb.create<arith::CmpIOp>(arith::CmpIPredicate::ugt, key,
                                             threshold));
        Value equalBefore, equalHere;
        std::tie(equalBefore, equalHere) =
            blockExclusiveScan(lb, scratch, lb.boolToI32(equal));
        Value early = lb.create<arith::CmpIOp>(
            arith::CmpIPredicate::slt,
            lb.create<arith::AddIOp>(seen[0], equalBefore), ofThreshold);
        Value picked = lb.create<arith::OrIOp>(
            above, lb.create<arith::AndIOp>(equal, early));
        Value before, total;
        std::tie(before, total) =
            blockExclusiveScan(lb, scratch, lb.boolToI32(picked));
        Value place = lb.create<arith::AddIOp>(seen[1], before);
        lb.ifThen(inside,
                  [&](KernelBuilder &vb) { visit(vb, i, picked, place); });
        return SmallVector<Value>{lb.create<arith::AddIOp>(seen[0], equalHere),
                                  lb.create<arith::AddIOp>(seen[1], total)};
      });
}
