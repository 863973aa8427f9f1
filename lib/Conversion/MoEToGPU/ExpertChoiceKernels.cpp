//===- ExpertChoiceKernels.cpp - Expert-choice routing on the GPU ---------===//
//
// moe.expert_choice: every expert picks its C = min(capacity, T) best tokens
// by softmax probability. Three kernels:
//
//   1. moe_expert_choice_softmax: one thread per token writes its softmax
//      over the experts (max, then the sum of exponentials in expert order,
//      softmaxExp's, as moe.route computes it).
//   2. moe_expert_choice_select: one thread per (token, expert) counts the
//      tokens whose probability ranks before its own in the expert's column
//      (larger first, ties to the lower token, NaN last): the token is
//      chosen when fewer than C do. Ranks are distinct, so every expert
//      chooses exactly C tokens. This costs T comparisons per pair.
//   3. moe_expert_choice_place: one block per expert writes its chosen
//      tokens in ascending order, an exclusive scan of the chosen flags over
//      each tile of tokens giving every token its place.
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

/// Threads of the placing block: the tile of tokens one scan covers.
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

  // Probabilities, and the chosen flags expert-major ([E, T]) so that the
  // placing block of an expert reads its tokens contiguously.
  Value probs = b.create<memref::AllocOp>(
      MemRefType::get({ShapedType::kDynamic, numExperts}, f32),
      ValueRange{tokens});
  Value chosen = b.create<memref::AllocOp>(
      MemRefType::get({numExperts, ShapedType::kDynamic}, i32),
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

  Value tokenBlocks = b.ceilDiv(tokens, kBlockThreads);
  b.launch(
      "moe_expert_choice_softmax", tokenBlocks, b.index(1), kBlockThreads,
      [&](KernelBuilder &kb) {
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
                           probs, {t, e});
                     });
        });
      });

  b.launch(
      "moe_expert_choice_select", tokenBlocks, experts, kBlockThreads,
      [&](KernelBuilder &kb) {
        Value t = kb.globalThreadId(kBlockThreads);
        Value e = kb.blockId(gpu::Dimension::y);
        kb.ifThen(kb.lessThan(t, tokens), [&](KernelBuilder &tb) {
          Value own = tb.load(probs, {t, e});
          Value self = tb.fromIndex(t, i32);
          Value ahead =
              tb.forLoop(
                    tb.index(0), tokens, tb.index(1), ValueRange{tb.index(0)},
                    [&](KernelBuilder &lb, Value other, ValueRange acc) {
                      Value before =
                          lb.ranksBefore(lb.load(probs, {other, e}),
                                         lb.fromIndex(other, i32), own, self);
                      return SmallVector<Value>{lb.create<arith::AddIOp>(
                          acc[0],
                          lb.create<arith::IndexCastOp>(lb.getIndexType(),
                                                        lb.boolToI32(before)))};
                    })
                  .front();
          Value pick = tb.lessThan(ahead, perExpert);
          tb.store(tb.boolToI32(pick), chosen, {e, t});
          tb.store(tb.create<arith::SelectOp>(pick, own, tb.f32(0.0)),
                   weights.buffer, {t, e});
        });
      });

  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto scratchType =
      MemRefType::get({kScanThreads}, i32, MemRefLayoutAttrInterface(), space);
  b.launch(
      "moe_expert_choice_place", experts, b.index(1), kScanThreads,
      TypeRange{scratchType}, [&](KernelBuilder &kb, ValueRange shared) {
        Value e = kb.blockId(gpu::Dimension::x);
        Value tid = kb.threadId();
        Value expertI32 = kb.fromIndex(e, i32);
        Value first = kb.create<arith::MulIOp>(e, perExpert);
        // Every thread runs every tile (the scan has block barriers).
        kb.forLoop(
            kb.index(0), tokens, kb.index(kScanThreads), ValueRange{kb.i32(0)},
            [&](KernelBuilder &lb, Value tile, ValueRange placed) {
              Value t = lb.create<arith::AddIOp>(tile, tid);
              Value inside = lb.lessThan(t, tokens);
              Value safe = lb.create<arith::SelectOp>(inside, t, lb.index(0));
              Value flag = lb.create<arith::SelectOp>(
                  inside, lb.load(chosen, {e, safe}), lb.i32(0));
              Value before, total;
              std::tie(before, total) =
                  blockExclusiveScan(lb, shared.front(), flag);
              Value picked = lb.create<arith::CmpIOp>(arith::CmpIPredicate::ne,
                                                      flag, lb.i32(0));
              lb.ifThen(picked, [&](KernelBuilder &sb) {
                Value place = sb.create<arith::AddIOp>(
                    first,
                    sb.toIndex(sb.create<arith::AddIOp>(placed[0], before)));
                Value flat = sb.create<arith::AddIOp>(
                    sb.create<arith::MulIOp>(sb.fromIndex(t, i32),
                                             sb.i32(numExperts)),
                    expertI32);
                sb.store(flat, rows.buffer, place);
              });
              return SmallVector<Value>{
                  lb.create<arith::AddIOp>(placed[0], total)};
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
