//===- LossKernels.cpp - Router losses on the GPU -------------------------===//
//
// moe.aux_loss and moe.z_loss, the training-side scalars. Per-token values
// come from one thread per token; the sums over tokens are block reductions
// in a fixed order (each thread adds a strided set of tokens in ascending
// order, then a shared-memory tree halves the partial sums), so the loss is
// the same bit for bit run to run, with no atomics.
//
//   aux_loss = E * sum_e f_e * P_e = E / T^2 * sum_e count_e * colsum_e:
//     moe_aux_loss_token_stats   per token, the softmax's max and sum (the
//                                exponentials as softmaxExp computes them)
//     moe_aux_loss_experts       one block per expert: colsum_e (the sum of
//                                its probabilities) and count_e (its
//                                selections; ids outside [0, E) count for
//                                none), their product
//     moe_aux_loss_total         the products summed in expert order
//   z_loss = mean over tokens of logsumexp(logits[t])^2:
//     moe_z_loss_tokens          per token, logsumexp squared
//     moe_z_loss_mean            the block reduction, divided by T
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// Threads of a reducing block (a power of two).
constexpr int64_t kReduceThreads = 256;

constexpr double kInfinity = std::numeric_limits<double>::infinity();

MemRefType scratchType(KernelBuilder &b, Type element) {
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  return MemRefType::get({kReduceThreads}, element, MemRefLayoutAttrInterface(),
                         space);
}

/// sum over i in [0, n) of term(i): thread x adds i = x, x + kReduceThreads,
/// ... in order, then a tree over `scratch` adds the partial sums. Every
/// thread of the block must call it; the sum is valid in thread 0.
Value blockSum(KernelBuilder &b, Value scratch, Value n, Value zero,
               function_ref<Value(KernelBuilder &, Value)> term) {
  Value tid = b.threadId();
  Value partial =
      b.forLoop(tid, n, b.index(kReduceThreads), ValueRange{zero},
                [&](KernelBuilder &lb, Value i, ValueRange acc) {
                  Value x = term(lb, i);
                  Value sum = isa<FloatType>(x.getType())
                                  ? Value(lb.create<arith::AddFOp>(acc[0], x))
                                  : Value(lb.create<arith::AddIOp>(acc[0], x));
                  return SmallVector<Value>{sum};
                })
          .front();
  b.store(partial, scratch, tid);
  b.create<gpu::BarrierOp>();
  int64_t steps = llvm::Log2_64(kReduceThreads);
  b.forEach(b.index(0), b.index(steps), b.index(1),
            [&](KernelBuilder &lb, Value step) {
              Value half =
                  lb.create<arith::ShRUIOp>(lb.index(kReduceThreads / 2), step);
              lb.ifThen(lb.lessThan(tid, half), [&](KernelBuilder &sb) {
                Value mine = sb.load(scratch, tid);
                Value partner = sb.create<arith::AddIOp>(tid, half);
                Value other = sb.load(scratch, partner);
                Value sum = isa<FloatType>(mine.getType())
                                ? Value(sb.create<arith::AddFOp>(mine, other))
                                : Value(sb.create<arith::AddIOp>(mine, other));
                sb.store(sum, scratch, tid);
              });
              lb.create<gpu::BarrierOp>();
            });
  return b.load(scratch, b.index(0));
}

/// max over the row's logits.
Value rowMax(KernelBuilder &b, Value logits, Value t, Value experts) {
  return b
      .forLoop(b.index(0), experts, b.index(1), ValueRange{b.f32(-kInfinity)},
               [&](KernelBuilder &lb, Value e, ValueRange acc) {
                 return SmallVector<Value>{lb.create<arith::MaximumFOp>(
                     acc[0], lb.load(logits, {t, e}))};
               })
      .front();
}

/// sum over the row of softmaxExp(logit, max): as the route kernel and the
/// CPU lowering compute it, so an infinite logit reads as the exact limit
/// (+inf takes all the weight; a row of -inf is uniform), not NaN.
Value rowExpSum(KernelBuilder &b, Value logits, Value t, Value experts,
                Value max) {
  return b
      .forLoop(b.index(0), experts, b.index(1), ValueRange{b.f32(0.0)},
               [&](KernelBuilder &lb, Value e, ValueRange acc) {
                 Value x = softmaxExp(lb, lb.load(logits, {t, e}), max);
                 return SmallVector<Value>{lb.create<arith::AddFOp>(acc[0], x)};
               })
      .front();
}

Value tokensAsF32(KernelBuilder &b, Value tokens) {
  return b.create<arith::UIToFPOp>(
      b.getF32Type(), b.create<arith::IndexCastOp>(b.getI64Type(), tokens));
}

} // namespace

Replacements gpu_lowering::lowerZLoss(ZLossOp op, ZLossOp::Adaptor operands,
                                      KernelBuilder &b) {
  Value logits = readBuffer(b, operands.getLogits());
  Value tokens = b.create<memref::DimOp>(logits, 0);
  Value experts = b.create<memref::DimOp>(logits, 1);
  Type f32 = b.getF32Type();
  Value squares = b.create<memref::AllocOp>(
      MemRefType::get({ShapedType::kDynamic}, f32), ValueRange{tokens});
  OutputBuffer loss =
      allocate(b, cast<RankedTensorType>(op.getLoss().getType()), {});
  b.launch(
      "moe_z_loss_tokens", b.ceilDiv(tokens, kBlockThreads), b.index(1),
      kBlockThreads, [&](KernelBuilder &kb) {
        Value t = kb.globalThreadId(kBlockThreads);
        kb.ifThen(kb.lessThan(t, tokens), [&](KernelBuilder &tb) {
          Value max = rowMax(tb, logits, t, experts);
          Value lse = tb.create<arith::AddFOp>(
              tb.create<math::LogOp>(rowExpSum(tb, logits, t, experts, max)),
              max);
          tb.store(tb.create<arith::MulFOp>(lse, lse), squares, t);
        });
      });
  Value count = tokensAsF32(b, tokens);
  b.launch("moe_z_loss_mean", b.index(1), b.index(1), kReduceThreads,
           TypeRange{scratchType(b, f32)},
           [&](KernelBuilder &kb, ValueRange shared) {
             Value sum = blockSum(kb, shared.front(), tokens, kb.f32(0.0),
                                  [&](KernelBuilder &lb, Value t) {
                                    return lb.load(squares, t);
                                  });
             Value lead = kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                                   kb.threadId(), kb.index(0));
             kb.ifThen(lead, [&](KernelBuilder &tb) {
               tb.store(tb.create<arith::DivFOp>(sum, count), loss.buffer,
                        ValueRange{});
             });
           });
  return SmallVector<Value>{loss.tensor};
}

Replacements gpu_lowering::lowerAuxLoss(AuxLossOp op,
                                        AuxLossOp::Adaptor operands,
                                        KernelBuilder &b) {
  Value logits = readBuffer(b, operands.getLogits());
  Value ids = readBuffer(b, operands.getIds());
  int64_t numExperts =
      cast<RankedTensorType>(op.getLogits().getType()).getDimSize(1);
  Value experts = b.index(numExperts);
  Value tokens = b.create<memref::DimOp>(logits, 0);
  Value k = b.create<memref::DimOp>(ids, 1);
  Value selections = b.create<arith::MulIOp>(tokens, k);
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  auto perToken = MemRefType::get({ShapedType::kDynamic}, f32);
  Value maxes = b.create<memref::AllocOp>(perToken, ValueRange{tokens});
  Value sums = b.create<memref::AllocOp>(perToken, ValueRange{tokens});
  Value products =
      b.create<memref::AllocOp>(MemRefType::get({numExperts}, f32));
  OutputBuffer loss =
      allocate(b, cast<RankedTensorType>(op.getLoss().getType()), {});

  // The softmax as moe.route and the CPU lowering compute it:
  // exp(l - max) / sum.
  b.launch("moe_aux_loss_token_stats", b.ceilDiv(tokens, kBlockThreads),
           b.index(1), kBlockThreads, [&](KernelBuilder &kb) {
             Value t = kb.globalThreadId(kBlockThreads);
             kb.ifThen(kb.lessThan(t, tokens), [&](KernelBuilder &tb) {
               Value max = rowMax(tb, logits, t, experts);
               tb.store(max, maxes, t);
               tb.store(rowExpSum(tb, logits, t, experts, max), sums, t);
             });
           });

  b.launch(
      "moe_aux_loss_experts", experts, b.index(1), kReduceThreads,
      TypeRange{scratchType(b, f32), scratchType(b, i32)},
      [&](KernelBuilder &kb, ValueRange shared) {
        Value e = kb.blockId(gpu::Dimension::x);
        Value expertI32 = kb.fromIndex(e, i32);
        Value colSum = blockSum(
            kb, shared[0], tokens, kb.f32(0.0),
            [&](KernelBuilder &lb, Value t) {
              Value exp =
                  softmaxExp(lb, lb.load(logits, {t, e}), lb.load(maxes, t));
              return Value(lb.create<arith::DivFOp>(exp, lb.load(sums, t)));
            });
        Value count = blockSum(kb, shared[1], selections, kb.i32(0),
                               [&](KernelBuilder &lb, Value f) {
                                 Value t = lb.create<arith::DivUIOp>(f, k);
                                 Value j = lb.create<arith::RemUIOp>(f, k);
                                 Value hit = lb.create<arith::CmpIOp>(
                                     arith::CmpIPredicate::eq,
                                     lb.load(ids, {t, j}), expertI32);
                                 return lb.boolToI32(hit);
                               });
        Value lead = kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                              kb.threadId(), kb.index(0));
        kb.ifThen(lead, [&](KernelBuilder &tb) {
          Value countF = tb.create<arith::SIToFPOp>(f32, count);
          tb.store(tb.create<arith::MulFOp>(countF, colSum), products, e);
        });
      });

  Value count = tokensAsF32(b, tokens);
  b.launch(
      "moe_aux_loss_total", b.index(1), b.index(1), 1, [&](KernelBuilder &kb) {
        Value dot =
            kb.forLoop(kb.index(0), experts, kb.index(1),
                       ValueRange{kb.f32(0.0)},
                       [&](KernelBuilder &lb, Value e, ValueRange acc) {
                         return SmallVector<Value>{lb.create<arith::AddFOp>(
                             acc[0], lb.load(products, e))};
                       })
                .front();
        // (dot / T) / T * E, the CPU lowering's order.
        Value mean = kb.create<arith::DivFOp>(
            kb.create<arith::DivFOp>(dot, count), count);
        kb.store(kb.create<arith::MulFOp>(
                     mean, kb.f32(static_cast<double>(numExperts))),
                 loss.buffer, ValueRange{});
      });
  return SmallVector<Value>{loss.tensor};
}
