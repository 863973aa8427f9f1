//===- RouteKernel.cpp - moe.route on the GPU -----------------------------===//
//
// Routing runs one thread per token: the k best experts are found in k
// passes over the scores (pass j takes the best expert ranking after pass
// j - 1's pick), so no per-token arrays are needed and the order of ties is
// the reference's. No atomics: every result is the same run to run.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

/// Per-slot code is unrolled up to this k (every model's k) and loops past
/// it, so the kernels' size and compile time stay bounded in k (k = E is
/// legal).
constexpr int64_t kMaxUnrolledSlots = 8;

Value selectF(KernelBuilder &b, Value condition, Value a, Value c) {
  return b.create<arith::SelectOp>(condition, a, c);
}

/// The per-token routing of one thread.
class TokenRouter {
public:
  TokenRouter(RouteOp op, KernelBuilder &b, Value logits, Value bias,
              Value token)
      : op(op), b(b), logits(logits), bias(bias), token(token) {
    numExperts = cast<MemRefType>(logits.getType()).getDimSize(1);
  }

  void route(Value weights, Value ids) {
    Scoring scoring = op.getScoring();
    if (scoring == Scoring::softmax) {
      softmaxMax = reduceExperts(
          b.f32(-kInfinity), [&](KernelBuilder &nb, Value e, Value acc) {
            return Value(nb.create<arith::MaximumFOp>(acc, logit(nb, e)));
          });
      softmaxSum =
          reduceExperts(b.f32(0.0), [&](KernelBuilder &nb, Value e, Value acc) {
            return Value(nb.create<arith::AddFOp>(
                acc, softmaxExp(nb, logit(nb, e), softmaxMax)));
          });
    }
    if (op.getNGroup() > 1)
      keptGroups = groupMask();

    // Pass j: the best expert that ranks after pass j - 1's pick, carrying
    // (its score, its index, the sum of the picked probabilities).
    auto pass = [&](KernelBuilder &pb, Value j, ValueRange carried) {
      Value previousScore = carried[0], previousIndex = carried[1];
      // Pass 0 has no previous pick (index -1).
      Value firstPick = pb.create<arith::CmpIOp>(arith::CmpIPredicate::slt,
                                                 previousIndex, pb.i32(0));
      auto best = pb.forLoop(
          pb.index(0), pb.index(numExperts), pb.index(1),
          ValueRange{pb.f32(0.0), pb.i32(-1), pb.f32(0.0)},
          [&](KernelBuilder &nb, Value e, ValueRange acc) {
            Value candidate = nb.fromIndex(e, nb.getI32Type());
            Value probability = prob(nb, e);
            Value s = maskedScore(nb, e, probability);
            Value noneYet = nb.create<arith::CmpIOp>(arith::CmpIPredicate::slt,
                                                     acc[1], nb.i32(0));
            Value better = nb.create<arith::OrIOp>(
                noneYet, nb.ranksBefore(s, candidate, acc[0], acc[1]));
            Value afterPrevious = nb.create<arith::OrIOp>(
                firstPick,
                nb.ranksBefore(previousScore, previousIndex, s, candidate));
            better = nb.create<arith::AndIOp>(better, afterPrevious);
            return SmallVector<Value>{selectF(nb, better, s, acc[0]),
                                      selectF(nb, better, candidate, acc[1]),
                                      selectF(nb, better, probability, acc[2])};
          });
      pb.store(best[1], ids, {token, j});
      pb.store(best[2], weights, {token, j});
      return SmallVector<Value>{best[0], best[1],
                                pb.create<arith::AddFOp>(carried[2], best[2])};
    };
    Value sum =
        overSlots(ValueRange{b.f32(0.0), b.i32(-1), b.f32(0.0)}, pass)[2];
    finishWeights(weights, ids, sum);
  }

private:
  using ReduceFn = function_ref<Value(KernelBuilder &, Value, Value)>;

  /// `body(j, carried)` over the slots j = 0 ..< k from `inits`: unrolled
  /// up to kMaxUnrolledSlots, an scf.for past it.
  SmallVector<Value> overSlots(ValueRange inits, KernelBuilder::LoopFn body) {
    int64_t k = op.getK();
    if (k > kMaxUnrolledSlots)
      return b.forLoop(b.index(0), b.index(k), b.index(1), inits, body);
    SmallVector<Value> carried(inits);
    for (int64_t j = 0; j < k; ++j)
      carried = body(b, b.index(j), carried);
    return carried;
  }

  Value reduceExperts(Value init, ReduceFn fn) {
    return reduceRange(b, b.index(0), b.index(numExperts), init, fn);
  }
  static Value reduceRange(KernelBuilder &b, Value from, Value to, Value init,
                           ReduceFn fn) {
    return b
        .forLoop(from, to, b.index(1), ValueRange{init},
                 [&](KernelBuilder &nb, Value e, ValueRange acc) {
                   return SmallVector<Value>{fn(nb, e, acc[0])};
                 })
        .front();
  }

  Value logit(KernelBuilder &nb, Value expert) {
    return nb.load(logits, {token, expert});
  }

  /// The expert's probability: what its weight is taken from.
  Value prob(KernelBuilder &nb, Value expert) {
    Value l = logit(nb, expert);
    switch (op.getScoring()) {
    case Scoring::softmax:
      return nb.create<arith::DivFOp>(softmaxExp(nb, l, softmaxMax),
                                      softmaxSum);
    case Scoring::sigmoid:
      return sigmoid(nb, l);
    case Scoring::softmax_topk:
    case Scoring::none:
      return l;
    }
    llvm_unreachable("unknown scoring");
  }

  /// The selection score: probability plus bias.
  Value score(KernelBuilder &nb, Value expert, Value probability) {
    if (!bias)
      return probability;
    return nb.create<arith::AddFOp>(probability, nb.load(bias, expert));
  }

  /// The score, or -inf for experts of groups that were not kept.
  Value maskedScore(KernelBuilder &nb, Value expert, Value probability) {
    Value s = score(nb, expert, probability);
    if (!keptGroups)
      return s;
    int64_t groupSize = numExperts / op.getNGroup();
    Value group = nb.create<arith::DivUIOp>(expert, nb.index(groupSize));
    Value bit = nb.create<arith::ShRUIOp>(
        keptGroups, nb.create<arith::IndexCastOp>(nb.getI64Type(), group));
    Value kept = nb.create<arith::TruncIOp>(nb.getI1Type(), bit);
    return selectF(nb, kept, s, nb.f32(-kInfinity));
  }

  /// The score of group g: the sum of its two best scores, or its best.
  Value groupScore(KernelBuilder &nb, Value group) {
    int64_t groupSize = numExperts / op.getNGroup();
    Value from = nb.create<arith::MulIOp>(group, nb.index(groupSize));
    Value to = nb.create<arith::AddIOp>(from, nb.index(groupSize));
    Value negInf = nb.f32(-kInfinity);
    auto top2 = nb.forLoop(
        from, to, nb.index(1), ValueRange{negInf, negInf},
        [&](KernelBuilder &lb, Value e, ValueRange acc) {
          Value x = score(lb, e, prob(lb, e));
          if (op.getGroupScore() == GroupScore::max)
            return SmallVector<Value>{lb.create<arith::MaximumFOp>(acc[0], x),
                                      acc[1]};
          Value aboveFirst =
              lb.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, x, acc[0]);
          Value aboveSecond =
              lb.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, x, acc[1]);
          Value second = selectF(lb, aboveFirst, acc[0],
                                 selectF(lb, aboveSecond, x, acc[1]));
          return SmallVector<Value>{selectF(lb, aboveFirst, x, acc[0]), second};
        });
    if (op.getGroupScore() == GroupScore::max)
      return top2[0];
    return nb.create<arith::AddFOp>(top2[0], top2[1]);
  }

  /// Bit g is set when group g ranks among the topk_group best.
  Value groupMask() {
    int64_t nGroup = op.getNGroup();
    Value mask = b.i64(0);
    return b
        .forLoop(
            b.index(0), b.index(nGroup), b.index(1), ValueRange{mask},
            [&](KernelBuilder &nb, Value g, ValueRange acc) {
              Value own = groupScore(nb, g);
              Value self = nb.fromIndex(g, nb.getI32Type());
              Value rank = reduceRange(
                  nb, nb.index(0), nb.index(nGroup), nb.i32(0),
                  [&](KernelBuilder &rb, Value other, Value count) {
                    Value before = rb.ranksBefore(
                        groupScore(rb, other),
                        rb.fromIndex(other, rb.getI32Type()), own, self);
                    return Value(
                        rb.create<arith::AddIOp>(count, rb.boolToI32(before)));
                  });
              Value kept = nb.create<arith::CmpIOp>(
                  arith::CmpIPredicate::slt, rank, nb.i32(op.getTopkGroup()));
              Value bit = nb.create<arith::ShLIOp>(
                  nb.create<arith::ExtUIOp>(nb.getI64Type(), kept),
                  nb.create<arith::IndexCastOp>(nb.getI64Type(), g));
              return SmallVector<Value>{nb.create<arith::OrIOp>(acc[0], bit)};
            })
        .front();
  }

  /// softmax over the picks, renormalization, the GShard drop and the
  /// scale, in the reference's order, on the stored weights.
  void finishWeights(Value weights, Value ids, Value pickedSum) {
    auto slot = [&](int64_t j) {
      return SmallVector<Value>{token, b.index(j)};
    };
    // weights[token, j] = fn(weights[token, j]) for every slot j.
    auto forSlots = [&](function_ref<Value(KernelBuilder &, Value)> fn) {
      overSlots(ValueRange{}, [&](KernelBuilder &sb, Value j, ValueRange) {
        sb.store(fn(sb, sb.load(weights, {token, j})), weights, {token, j});
        return SmallVector<Value>{};
      });
    };
    // fn(acc, weights[token, j]) folded over the slots.
    auto foldSlots =
        [&](Value init, function_ref<Value(KernelBuilder &, Value, Value)> fn) {
          return overSlots(ValueRange{init},
                           [&](KernelBuilder &sb, Value j, ValueRange acc) {
                             return SmallVector<Value>{
                                 fn(sb, acc[0], sb.load(weights, {token, j}))};
                           })
              .front();
        };
    auto addF = [](KernelBuilder &sb, Value acc, Value w) -> Value {
      return sb.create<arith::AddFOp>(acc, w);
    };
    Value sum = pickedSum;
    if (op.getScoring() == Scoring::softmax_topk) {
      Value max = foldSlots(b.f32(-kInfinity),
                            [](KernelBuilder &sb, Value acc, Value w) -> Value {
                              return sb.create<arith::MaximumFOp>(acc, w);
                            });
      forSlots([&](KernelBuilder &sb, Value w) -> Value {
        return softmaxExp(sb, w, max);
      });
      Value total = foldSlots(b.f32(0.0), addF);
      forSlots([&](KernelBuilder &sb, Value e) -> Value {
        return sb.create<arith::DivFOp>(e, total);
      });
      sum = foldSlots(b.f32(0.0), addF);
    }
    if (op.getRenormalize()) {
      double epsilon = op.getRenormEpsilon().convertToDouble();
      Value denominator = b.create<arith::AddFOp>(sum, b.f32(epsilon));
      forSlots([&](KernelBuilder &sb, Value w) -> Value {
        return sb.create<arith::DivFOp>(w, denominator);
      });
    }
    if (op.getSecondExpertPolicy() == SecondExpertPolicy::random &&
        op.getK() > 1) {
      Value u = gshardUniform(b, token, op.getSeed());
      Value second = b.load(weights, slot(1));
      Value keep =
          b.create<arith::CmpFOp>(arith::CmpFPredicate::OLT, u,
                                  b.create<arith::MulFOp>(second, b.f32(2.0)));
      b.store(selectF(b, keep, second, b.f32(0.0)), weights, slot(1));
      b.store(selectF(b, keep, b.load(ids, slot(1)), b.i32(-1)), ids, slot(1));
    }
    double scale = op.getScale().convertToDouble();
    if (scale != 1.0)
      forSlots([&](KernelBuilder &sb, Value w) -> Value {
        return sb.create<arith::MulFOp>(w, sb.f32(scale));
      });
  }

  RouteOp op;
  KernelBuilder &b;
  Value logits, bias, token;
  int64_t numExperts;
  Value softmaxMax, softmaxSum, keptGroups;
};

} // namespace

Replacements gpu_lowering::lowerRoute(RouteOp op, RouteOp::Adaptor operands,
                                      KernelBuilder &b) {
  if (op.getNGroup() > 64)
    return op.emitOpError()
           << "on the GPU supports at most 64 expert groups, got "
           << op.getNGroup();
  Value logits = readBuffer(b, operands.getLogits());
  Value bias = operands.getBias() ? readBuffer(b, operands.getBias()) : Value();
  Value tokens = b.create<memref::DimOp>(logits, 0);
  auto tokenSizes = [&](Value result) {
    auto type = cast<RankedTensorType>(result.getType());
    return type.isDynamicDim(0) ? SmallVector<Value>{tokens}
                                : SmallVector<Value>{};
  };
  OutputBuffer weights =
      allocate(b, cast<RankedTensorType>(op.getWeights().getType()),
               tokenSizes(op.getWeights()));
  OutputBuffer ids = allocate(b, cast<RankedTensorType>(op.getIds().getType()),
                              tokenSizes(op.getIds()));
  b.launch("moe_route", b.ceilDiv(tokens, kBlockThreads), b.index(1),
           kBlockThreads, [&](KernelBuilder &kb) {
             Value token = kb.globalThreadId(kBlockThreads);
             kb.ifThen(kb.lessThan(token, tokens), [&](KernelBuilder &tb) {
               TokenRouter(op, tb, logits, bias, token)
                   .route(weights.buffer, ids.buffer);
             });
           });
  return SmallVector<Value>{weights.tensor, ids.tensor};
}
