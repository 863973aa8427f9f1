//===- ExpertChoiceKernels.cpp - Expert-choice routing on the GPU ---------===//
//
// moe.expert_choice: every expert picks its C = min(capacity, T) best tokens
// by softmax probability (larger first, ties to the lower token, NaN last).
// Two kernels:
//
//   1. moe_expert_choice_softmax: one thread per token writes its softmax
//      over the experts (max, then the sum of exponentials in expert order,
//      softmaxExp's, as moe.route computes it), expert-major.
//   2. moe_expert_choice_select: one block per expert. Each probability maps
//      to a 32-bit key whose unsigned order is the ranking order (NaN
//      lowest); a radix select finds the C-th largest key K in 32 passes,
//      one bit each, and how many tokens with key K are taken. A last sweep
//      over tiles of 256 tokens takes every key above K and, in token order
//      (a block scan), the first of those equal to K, and places the chosen
//      tokens in ascending order (a second scan). Linear in T per expert.
//
// No atomics; every value is written by one thread.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// Threads of an expert's block: the tile of tokens one scan covers.
constexpr int64_t kScanThreads = 256;

/// The exclusive prefix sum of each thread's `value` (i32) over the block,
/// through `scratch` (kScanThreads i32 of shared memory), and the block's
/// total. A Hillis-Steele scan in a loop of log2(kScanThreads) steps.
std::pair<Value, Value> blockExclusiveScan(KernelBuilder &b, Value scratch,
                                           Value value) {
  Value tid = b.threadId();
  b.store(value, scratch, tid);
  b.create<gpu::BarrierOp>();
  int64_t steps = llvm::Log2_64(kScanThreads);
  b.forEach(b.index(0), b.index(steps), b.index(1),
            [&](KernelBuilder &lb, Value step) {
              Value distance = lb.create<arith::ShLIOp>(lb.index(1), step);
              Value has = lb.create<arith::CmpIOp>(arith::CmpIPredicate::uge,
                                                   tid, distance);
              Value from = lb.create<arith::SelectOp>(
                  has, lb.create<arith::SubIOp>(tid, distance), tid);
              Value add = lb.create<arith::SelectOp>(
                  has, lb.load(scratch, from), lb.i32(0));
              lb.create<gpu::BarrierOp>();
              lb.store(lb.create<arith::AddIOp>(lb.load(scratch, tid), add),
                       scratch, tid);
              lb.create<gpu::BarrierOp>();
            });
  Value inclusive = b.load(scratch, tid);
  Value total = b.load(scratch, b.index(kScanThreads - 1));
  // Every thread has read the total before the scratch is reused.
  b.create<gpu::BarrierOp>();
  return {b.create<arith::SubIOp>(inclusive, value), total};
}

/// An i32 whose unsigned order is the ranking order of probability `p`:
/// the IEEE bits with the sign bit flipped for positive values and every bit
/// flipped for negative ones; NaN maps to 0, below every number, and -0 to
/// +0's key (they tie).
Value orderKey(KernelBuilder &b, Value p) {
  Type i32 = b.getI32Type();
  Value bits = b.create<arith::BitcastOp>(i32, p);
  Value signBit = b.i32(std::numeric_limits<int32_t>::min());
  Value negative =
      b.create<arith::CmpIOp>(arith::CmpIPredicate::slt, bits, b.i32(0));
  Value flipped = b.create<arith::SelectOp>(
      negative, b.create<arith::XOrIOp>(bits, b.i32(-1)),
      b.create<arith::XOrIOp>(bits, signBit));
  Value zero =
      b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, p, b.f32(0.0));
  Value nan = b.create<arith::CmpFOp>(arith::CmpFPredicate::UNO, p, p);
  return b.create<arith::SelectOp>(
      nan, b.i32(0), b.create<arith::SelectOp>(zero, signBit, flipped));
}

} // namespace

LogicalResult gpu_lowering::lowerExpertChoice(ExpertChoiceOp op,
                                              KernelBuilder &b) {
  Value logits = readBuffer(b, op.getLogits());
  auto logitsType = cast<RankedTensorType>(op.getLogits().getType());
  int64_t numExperts = logitsType.getDimSize(1);
  Value tokens = b.create<memref::DimOp>(logits, 0);
  Value perExpert = b.minIndex(b.index(op.getCapacity()), tokens);
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  Value experts = b.index(numExperts);

  // Probabilities expert-major ([E, T]): an expert's block reads its tokens
  // contiguously, in every pass.
  Value probs = b.create<memref::AllocOp>(
      MemRefType::get({numExperts, ShapedType::kDynamic}, f32),
      ValueRange{tokens});
  OutputBuffer weights = allocateLike(b, op.getLogits());
  auto rowsType = cast<RankedTensorType>(op.getRows().getType());
  OutputBuffer rows =
      allocate(b, rowsType,
               rowsType.isDynamicDim(0)
                   ? ValueRange{b.create<arith::MulIOp>(perExpert, experts)}
                   : ValueRange{});
  OutputBuffer offsets =
      allocate(b, cast<RankedTensorType>(op.getOffsets().getType()), {});

  b.launch(
      "moe_expert_choice_softmax", b.ceilDiv(tokens, kBlockThreads), b.index(1),
      kBlockThreads, [&](KernelBuilder &kb) {
        Value t = kb.globalThreadId(kBlockThreads);
        kb.ifThen(kb.lessThan(t, tokens), [&](KernelBuilder &tb) {
          auto reduce =
              [&](Value init,
                  function_ref<Value(KernelBuilder &, Value, Value)> fn) {
                return tb
                    .forLoop(tb.index(0), experts, tb.index(1),
                             ValueRange{init},
                             [&](KernelBuilder &lb, Value e, ValueRange acc) {
                               return SmallVector<Value>{fn(lb, e, acc[0])};
                             })
                    .front();
              };
          Value max =
              reduce(tb.f32(-std::numeric_limits<double>::infinity()),
                     [&](KernelBuilder &lb, Value e, Value acc) -> Value {
                       return lb.create<arith::MaximumFOp>(
                           acc, lb.load(logits, {t, e}));
                     });
          // As the route kernel and the CPU lowering: an infinite logit
          // reads as the exact limit, not NaN.
          auto shiftedExp = [&](KernelBuilder &lb, Value e) -> Value {
            return softmaxExp(lb, lb.load(logits, {t, e}), max);
          };
          Value sum = reduce(
              tb.f32(0.0), [&](KernelBuilder &lb, Value e, Value acc) -> Value {
                return lb.create<arith::AddFOp>(acc, shiftedExp(lb, e));
              });
          tb.forEach(tb.index(0), experts, tb.index(1),
                     [&](KernelBuilder &lb, Value e) {
                       lb.store(
                           lb.create<arith::DivFOp>(shiftedExp(lb, e), sum),
                           probs, {e, t});
                     });
        });
      });

  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto scratchType =
      MemRefType::get({kScanThreads}, i32, MemRefLayoutAttrInterface(), space);
  b.launch(
      "moe_expert_choice_select", experts, b.index(1), kScanThreads,
      TypeRange{scratchType}, [&](KernelBuilder &kb, ValueRange shared) {
        Value scratch = shared.front();
        Value e = kb.blockId(gpu::Dimension::x);
        Value tid = kb.threadId();
        auto keyOf = [&](KernelBuilder &lb, Value t) {
          return orderKey(lb, lb.load(probs, {e, t}));
        };
        // Radix select, from the top bit down: `prefix` holds the bits of
        // K found so far, `remaining` how many tokens are still to be taken
        // among the keys that start with them.
        auto found = kb.forLoop(
            kb.index(0), kb.index(32), kb.index(1),
            ValueRange{kb.i32(0), kb.fromIndex(perExpert, i32)},
            [&](KernelBuilder &lb, Value step, ValueRange acc) {
              Value bit =
                  lb.create<arith::SubIOp>(lb.i32(31), lb.fromIndex(step, i32));
              Value candidate = lb.create<arith::OrIOp>(
                  acc[0], lb.create<arith::ShLIOp>(lb.i32(1), bit));
              Value high = lb.create<arith::ShRUIOp>(candidate, bit);
              Value mine =
                  lb.forLoop(tid, tokens, lb.index(kScanThreads),
                             ValueRange{lb.i32(0)},
                             [&](KernelBuilder &cb, Value t, ValueRange n) {
                               Value match = cb.create<arith::CmpIOp>(
                                   arith::CmpIPredicate::eq,
                                   cb.create<arith::ShRUIOp>(keyOf(cb, t), bit),
                                   high);
                               return SmallVector<Value>{
                                   cb.create<arith::AddIOp>(
                                       n[0], cb.boolToI32(match))};
                             })
                      .front();
              Value count = blockExclusiveScan(lb, scratch, mine).second;
              Value take = lb.create<arith::CmpIOp>(arith::CmpIPredicate::sge,
                                                    count, acc[1]);
              return SmallVector<Value>{
                  lb.create<arith::SelectOp>(take, candidate, acc[0]),
                  lb.create<arith::SelectOp>(
                      take, acc[1], lb.create<arith::SubIOp>(acc[1], count))};
            });
        Value threshold = found[0], ofThreshold = found[1];

        Value expertI32 = kb.fromIndex(e, i32);
        Value first = kb.create<arith::MulIOp>(e, perExpert);
        // Every thread runs every tile (the scans have block barriers),
        // carrying the keys equal to K seen and the tokens placed.
        kb.forLoop(
            kb.index(0), tokens, kb.index(kScanThreads),
            ValueRange{kb.i32(0), kb.i32(0)},
            [&](KernelBuilder &lb, Value tile, ValueRange seen) {
              Value t = lb.create<arith::AddIOp>(tile, tid);
              Value inside = lb.lessThan(t, tokens);
              Value safe = lb.create<arith::SelectOp>(inside, t, lb.index(0));
              Value p = lb.load(probs, {e, safe});
              Value key = orderKey(lb, p);
              Value equal = lb.create<arith::AndIOp>(
                  inside, lb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                                   key, threshold));
              Value above = lb.create<arith::AndIOp>(
                  inside, lb.create<arith::CmpIOp>(arith::CmpIPredicate::ugt,
                                                   key, threshold));
              Value equalBefore, equalHere;
              std::tie(equalBefore, equalHere) =
                  blockExclusiveScan(lb, scratch, lb.boolToI32(equal));
              Value early = lb.create<arith::CmpIOp>(
                  arith::CmpIPredicate::slt,
                  lb.create<arith::AddIOp>(seen[0], equalBefore), ofThreshold);
              Value pick = lb.create<arith::OrIOp>(
                  above, lb.create<arith::AndIOp>(equal, early));
              lb.ifThen(inside, [&](KernelBuilder &sb) {
                sb.store(sb.create<arith::SelectOp>(pick, p, sb.f32(0.0)),
                         weights.buffer, {t, e});
              });
              Value before, total;
              std::tie(before, total) =
                  blockExclusiveScan(lb, scratch, lb.boolToI32(pick));
              lb.ifThen(pick, [&](KernelBuilder &sb) {
                Value place = sb.create<arith::AddIOp>(
                    first,
                    sb.toIndex(sb.create<arith::AddIOp>(seen[1], before)));
                Value flat = sb.create<arith::AddIOp>(
                    sb.create<arith::MulIOp>(sb.fromIndex(t, i32),
                                             sb.i32(numExperts)),
                    expertI32);
                sb.store(flat, rows.buffer, place);
              });
              return SmallVector<Value>{
                  lb.create<arith::AddIOp>(seen[0], equalHere),
                  lb.create<arith::AddIOp>(seen[1], total)};
            });
        Value lead = kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, tid,
                                              kb.index(0));
        kb.ifThen(lead, [&](KernelBuilder &tb) {
          tb.store(tb.fromIndex(first, i32), offsets.buffer, e);
          Value last = tb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, e,
                                                tb.index(numExperts - 1));
          tb.ifThen(last, [&](KernelBuilder &lb) {
            lb.store(
                lb.fromIndex(lb.create<arith::MulIOp>(experts, perExpert), i32),
                offsets.buffer, lb.index(numExperts));
          });
        });
      });

  op.getWeights().replaceAllUsesWith(weights.tensor);
  op.getRows().replaceAllUsesWith(rows.tensor);
  op.getOffsets().replaceAllUsesWith(offsets.tensor);
  return success();
}
