//===- ExpertChoiceKernels.cpp - Expert-choice routing on the GPU ---------===//
//
// moe.expert_choice: every expert picks its C = min(capacity, T) best tokens
// by softmax probability (larger first, ties to the lower token, NaN last).
// Two kernels:
//
//   1. moe_expert_choice_softmax: one thread per token writes its softmax
//      over the experts (max, then the sum of exponentials in expert order,
//      softmaxExp's, as moe.route computes it), expert-major.
//   2. moe_expert_choice_select: one block per expert selects its C best
//      tokens (BlockSelection: a radix select, then a sweep in token order),
//      writes its column of weights and places the chosen tokens in
//      ascending order. Linear in T per expert.
//
// No atomics; every value is written by one thread.
//
//===----------------------------------------------------------------------===//

#include "BlockSelection.h"
#include "Lowerings.h"

#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

Replacements gpu_lowering::lowerExpertChoice(ExpertChoiceOp op,
                                             ExpertChoiceOp::Adaptor operands,
                                             KernelBuilder &b) {
  Value logits = readBuffer(b, operands.getLogits());
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
  OutputBuffer weights = allocateLike(b, operands.getLogits());
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

  b.launch(
      "moe_expert_choice_select", experts, b.index(1), kSelectThreads,
      TypeRange{selectionScratchType(b.getContext())},
      [&](KernelBuilder &kb, ValueRange shared) {
        Value e = kb.blockId(gpu::Dimension::x);
        auto probability = [&](KernelBuilder &lb, Value t) {
          return lb.load(probs, {e, t});
        };
        BlockSelection chosen = BlockSelection::select(
            kb, shared.front(), kb.index(0), tokens, perExpert, probability);
        Value expertI32 = kb.fromIndex(e, i32);
        Value first = kb.create<arith::MulIOp>(e, perExpert);
        chosen.sweep(
            kb, [&](KernelBuilder &vb, Value t, Value picked, Value place) {
              vb.store(vb.create<arith::SelectOp>(picked, probability(vb, t),
                                                  vb.f32(0.0)),
                       weights.buffer, {t, e});
              vb.ifThen(picked, [&](KernelBuilder &sb) {
                // The flat selection t * E + e, at e * C + its place.
                Value flat = sb.create<arith::AddIOp>(
                    sb.create<arith::MulIOp>(sb.fromIndex(t, i32),
                                             sb.i32(numExperts)),
                    expertI32);
                Value at = sb.create<arith::AddIOp>(first, sb.toIndex(place));
                sb.store(flat, rows.buffer, at);
              });
            });
        Value lead = kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                              kb.threadId(), kb.index(0));
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

  return SmallVector<Value>{weights.tensor, rows.tensor, offsets.tensor};
}
