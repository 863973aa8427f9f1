//===- RoutingKernels.cpp - Routing, dispatch and combine on the GPU ------===//
//
// Routing runs one thread per token: the k best experts are found in k
// passes over the scores (pass j takes the best expert ranking after pass
// j - 1's pick), so no per-token arrays are needed and the order of ties is
// the reference's. Dispatch is a stable counting sort in three kernels over
// chunks of selections; combine sums each token's rows in ascending slot
// order. Nothing uses atomics, so every result is the same run to run.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

/// Selections per dispatch chunk: one block counts and places them.
constexpr int64_t kChunk = 256;
/// Bytes of ys each combine thread loads at once where the rows allow it.
constexpr int64_t kWideBytes = 16;
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
      softmaxMax = reduceExperts(b.f32(-kInfinity), [&](KernelBuilder &nb,
                                                        Value e, Value acc) {
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
                                      selectF(nb, better, probability,
                                              acc[2])};
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
            return SmallVector<Value>{
                lb.create<arith::MaximumFOp>(acc[0], x), acc[1]};
          Value aboveFirst =
              lb.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, x, acc[0]);
          Value aboveSecond =
              lb.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, x, acc[1]);
          Value second = selectF(lb, aboveFirst, acc[0],
                                 selectF(lb, aboveSecond, x, acc[1]));
          return SmallVector<Value>{selectF(lb, aboveFirst, x, acc[0]),
                                    second};
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
                    return Value(rb.create<arith::AddIOp>(
                        count,
                        rb.boolToI32(before)));
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
    auto slot = [&](int64_t j) { return SmallVector<Value>{token, b.index(j)}; };
    // weights[token, j] = fn(weights[token, j]) for every slot j.
    auto forSlots = [&](function_ref<Value(KernelBuilder &, Value)> fn) {
      overSlots(ValueRange{}, [&](KernelBuilder &sb, Value j, ValueRange) {
        sb.store(fn(sb, sb.load(weights, {token, j})), weights, {token, j});
        return SmallVector<Value>{};
      });
    };
    // fn(acc, weights[token, j]) folded over the slots.
    auto foldSlots = [&](Value init,
                         function_ref<Value(KernelBuilder &, Value, Value)> fn) {
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
      Value keep = b.create<arith::CmpFOp>(
          arith::CmpFPredicate::OLT, u,
          b.create<arith::MulFOp>(second, b.f32(2.0)));
      b.store(selectF(b, keep, second, b.f32(0.0)), weights, slot(1));
      b.store(selectF(b, keep, b.load(ids, slot(1)), b.i32(-1)), ids,
              slot(1));
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
    valid = b.create<arith::AndIOp>(valid,
                                    b.inRange(expert, b.index(numLocal)));
  }
  return selectF(b, valid, expert, b.i32(-1));
}

} // namespace

LogicalResult gpu_lowering::lowerRoute(RouteOp op, KernelBuilder &b) {
  if (op.getNGroup() > 64)
    return op.emitOpError()
           << "on the GPU supports at most 64 expert groups, got "
           << op.getNGroup();
  Value logits = readBuffer(b, op.getLogits());
  Value bias = op.getBias() ? readBuffer(b, op.getBias()) : Value();
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
  op.getWeights().replaceAllUsesWith(weights.tensor);
  op.getIds().replaceAllUsesWith(ids.tensor);
  return success();
}

LogicalResult gpu_lowering::lowerDispatch(DispatchOp op, KernelBuilder &b,
                                          InverseRows &inverses) {
  if (op.getCapacity() || op.getCapacityFactor())
    return lowerCapacityDispatch(op, b, inverses);
  Value ids = readBuffer(b, op.getIds());
  Value expertMap =
      op.getExpertMap() ? readBuffer(b, op.getExpertMap()) : Value();
  int64_t k = cast<RankedTensorType>(op.getIds().getType()).getDimSize(1);
  int64_t numExperts = op.getNumExperts();
  int64_t numLocal =
      cast<RankedTensorType>(op.getOffsets().getType()).getDimSize(0) - 1;
  Value tokens = b.create<memref::DimOp>(ids, 0);
  Value selections = b.create<arith::MulIOp>(tokens, b.index(k));
  auto rowsType = cast<RankedTensorType>(op.getRows().getType());
  OutputBuffer rows =
      allocate(b, rowsType,
               rowsType.isDynamicDim(0) ? ValueRange{selections} : ValueRange{});
  OutputBuffer offsets =
      allocate(b, cast<RankedTensorType>(op.getOffsets().getType()), {});
  Value chunks = b.ceilDiv(selections, kChunk);
  // before[c, e]: selections of expert e in chunks below c (a count first).
  Value before = b.create<memref::AllocOp>(
      MemRefType::get({ShapedType::kDynamic, numLocal}, b.getI32Type()),
      ValueRange{chunks});
  Value rowOf = b.create<memref::AllocOp>(
      MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
      ValueRange{selections});
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
  auto stageChunk = [&](KernelBuilder &kb, Value staged, Value from,
                        Value to) {
    Value f = kb.create<arith::AddIOp>(from, kb.threadId());
    kb.ifThen(kb.lessThan(f, to), [&](KernelBuilder &tb) {
      tb.store(local(tb, f), staged, tb.threadId());
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
                       arith::CmpIPredicate::eq, chunk.expertOf(lb, f),
                       expert);
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
  // Rows past the kept ones are padding, and dropped selections have no row.
  auto markUnused = [&](KernelBuilder &kb, Value from, Value to) {
    Value kept = kb.toIndex(kb.load(offsets.buffer, kb.index(numLocal)));
    Value mine = kb.create<arith::AddIOp>(from, kb.threadId());
    kb.forEach(mine, to, kb.index(kChunk), [&](KernelBuilder &lb, Value f) {
      lb.ifThen(
          lb.create<arith::CmpIOp>(arith::CmpIPredicate::uge, f, kept),
          [&](KernelBuilder &sb) { sb.store(sb.i32(-1), rows.buffer, f); });
      Value dropped = lb.create<arith::CmpIOp>(arith::CmpIPredicate::slt,
                                               local(lb, f), lb.i32(0));
      lb.ifThen(dropped,
                [&](KernelBuilder &sb) { sb.store(sb.i32(-1), rowOf, f); });
    });
  };
  // Totals in `counts` become exclusive starts in place, and the offsets.
  auto scanTotals = [&](KernelBuilder &kb, Value counts) {
    Value first = kb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                           kb.threadId(), kb.index(0));
    kb.ifThen(first, [&](KernelBuilder &tb) {
      Value end = tb.forLoop(tb.index(0), tb.index(numLocal), tb.index(1),
                             ValueRange{tb.i32(0)},
                             [&](KernelBuilder &lb, Value e, ValueRange acc) {
                               Value total = lb.load(counts, e);
                               lb.store(acc[0], counts, e);
                               if (counts != offsets.buffer)
                                 lb.store(acc[0], offsets.buffer, e);
                               return SmallVector<Value>{
                                   lb.create<arith::AddIOp>(acc[0], total)};
                             })
                      .front();
      tb.store(end, offsets.buffer, tb.index(numLocal));
    });
  };

  // Decode-sized dispatches (one chunk of selections) run in one block, one
  // launch: the counts and starts stay in shared memory.
  Value oneChunk = b.create<arith::CmpIOp>(arith::CmpIPredicate::ule,
                                           selections, b.index(kChunk));
  auto startsType = MemRefType::get({numLocal}, b.getI32Type(),
                                    MemRefLayoutAttrInterface(), space);
  b.ifThenElse(
      oneChunk,
      [&](KernelBuilder &ob) {
        ob.launch("moe_dispatch_block", ob.index(1), ob.index(1), kChunk,
                  TypeRange{startsType, chunkExpertsType},
                  [&](KernelBuilder &kb, ValueRange shared) {
                    Value starts = shared.front();
                    Value from = kb.index(0);
                    StagedChunk chunk =
                        stageChunk(kb, shared[1], from, selections);
                    forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                      eb.store(countOf(eb, e, chunk), starts, e);
                    });
                    kb.create<gpu::BarrierOp>();
                    scanTotals(kb, starts);
                    kb.create<gpu::BarrierOp>();
                    forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                      placeFrom(eb, e, eb.load(starts, e), chunk);
                    });
                    markUnused(kb, from, selections);
                  });
      },
      [&](KernelBuilder &cb) {
        cb.launch("moe_dispatch_count", chunks, cb.index(1), kChunk,
                  TypeRange{chunkExpertsType},
                  [&](KernelBuilder &kb, ValueRange shared) {
                    Value chunk = kb.blockId(gpu::Dimension::x);
                    auto range = chunkRange(kb, chunk);
                    StagedChunk staged = stageChunk(kb, shared.front(),
                                                    range.first, range.second);
                    forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                      eb.store(countOf(eb, e, staged), before, {chunk, e});
                    });
                  });

        cb.launch(
            "moe_dispatch_scan", cb.index(1), cb.index(1), kChunk,
            [&](KernelBuilder &kb) {
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
              scanTotals(kb, offsets.buffer);
            });

        cb.launch("moe_dispatch_place", chunks, cb.index(1), kChunk,
                  TypeRange{chunkExpertsType},
                  [&](KernelBuilder &kb, ValueRange shared) {
                    Value chunk = kb.blockId(gpu::Dimension::x);
                    auto range = chunkRange(kb, chunk);
                    StagedChunk staged = stageChunk(kb, shared.front(),
                                                    range.first, range.second);
                    forExpertsOfThread(kb, [&](KernelBuilder &eb, Value e) {
                      Value start =
                          eb.create<arith::AddIOp>(eb.load(offsets.buffer, e),
                                                   eb.load(before, {chunk, e}));
                      placeFrom(eb, e, start, staged);
                    });
                    markUnused(kb, range.first, range.second);
                  });
      });

  inverses[rows.tensor] = rowOf;
  op.getRows().replaceAllUsesWith(rows.tensor);
  op.getOffsets().replaceAllUsesWith(offsets.tensor);
  return success();
}

LogicalResult gpu_lowering::lowerCombine(CombineOp op, KernelBuilder &b,
                                         const InverseRows &inverses) {
  Value ys = readBuffer(b, op.getYs());
  Value weights = readBuffer(b, op.getWeights());
  int64_t k = cast<RankedTensorType>(op.getWeights().getType()).getDimSize(1);
  OutputBuffer out = allocateLike(b, op.getInit());
  Value tokens = b.create<memref::DimOp>(weights, 0);
  Value selections = b.create<arith::MulIOp>(tokens, b.index(k));
  int64_t hidden = cast<RankedTensorType>(op.getYs().getType()).getDimSize(1);

  Value rowOf = inverses.lookup(op.getRows());
  if (!rowOf) {
    // Rows from elsewhere: invert them here (-1 first, then each row).
    Value rows = readBuffer(b, op.getRows());
    Value numRows = b.create<memref::DimOp>(rows, 0);
    rowOf = b.create<memref::AllocOp>(
        MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
        ValueRange{selections});
    b.launch("moe_combine_clear", b.ceilDiv(selections, kBlockThreads),
             b.index(1), kBlockThreads, [&](KernelBuilder &kb) {
               Value f = kb.globalThreadId(kBlockThreads);
               kb.ifThen(kb.lessThan(f, selections), [&](KernelBuilder &tb) {
                 tb.store(tb.i32(-1), rowOf, f);
               });
             });
    b.launch("moe_combine_invert", b.ceilDiv(numRows, kBlockThreads),
             b.index(1), kBlockThreads, [&](KernelBuilder &kb) {
               Value r = kb.globalThreadId(kBlockThreads);
               kb.ifThen(kb.lessThan(r, numRows), [&](KernelBuilder &tb) {
                 auto selection =
                     tb.decodeSelection(tb.load(rows, r), tokens, k);
                 tb.ifThen(selection.valid, [&](KernelBuilder &sb) {
                   Value flat = sb.create<arith::AddIOp>(
                       sb.create<arith::MulIOp>(selection.token, sb.index(k)),
                       selection.slot);
                   sb.store(sb.fromIndex(r, sb.getI32Type()), rowOf, flat);
                 });
               });
             });
  }

  bool prescaled = op.getPrescaled();
  Type outType = cast<RankedTensorType>(op.getInit().getType()).getElementType();
  Type ysType = cast<RankedTensorType>(op.getYs().getType()).getElementType();
  Value ysRows = b.create<memref::DimOp>(ys, 0);
  // One thread per `width` adjacent columns of a token: 16-byte loads of ys
  // for width > 1, in the same f32 arithmetic per column as width 1.
  auto launchCombine = [&](KernelBuilder &hb, StringRef name, int64_t width) {
    int64_t groups = hidden / width;
    Type f32 = hb.getF32Type();
    auto shaped = [&](Type element) -> Type {
      return width == 1 ? element : VectorType::get({width}, element);
    };
    // f32 <-> the element types, for scalars and vectors alike.
    auto convert = [&](KernelBuilder &cb, Value value, Type from, Type to) {
      if (from == to)
        return value;
      if (from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth())
        return cb.create<arith::ExtFOp>(shaped(to), value).getResult();
      return cb.create<arith::TruncFOp>(shaped(to), value).getResult();
    };
    hb.launch(
        name, hb.ceilDiv(hb.index(groups), kBlockThreads), tokens,
        kBlockThreads, [&](KernelBuilder &kb) {
          Value group = kb.globalThreadId(kBlockThreads);
          Value token = kb.blockId(gpu::Dimension::y);
          kb.ifThen(
              kb.lessThan(group, kb.index(groups)), [&](KernelBuilder &tb) {
                Value column = tb.create<arith::MulIOp>(group, tb.index(width));
                auto splat = [&](KernelBuilder &sb, Value scalar) {
                  return width == 1 ? scalar
                                    : sb.create<vector::BroadcastOp>(
                                            shaped(f32), scalar)
                                          .getResult();
                };
                // acc + w[token, j] * ys[row of (token, j)], j an index.
                auto addSlot = [&](KernelBuilder &sb, Value j, Value acc) {
                  Value flat = sb.create<arith::AddIOp>(
                      sb.create<arith::MulIOp>(token, sb.index(k)), j);
                  Value row = sb.load(rowOf, flat);
                  // In [0, rows of ys): not -1 (no row), and never past the end
                  // whatever the inverse holds.
                  Value valid = sb.inRange(row, ysRows);
                  Value safe = sb.create<arith::SelectOp>(
                      valid, sb.toIndex(row), sb.index(0));
                  Value loaded = width == 1
                                     ? sb.load(ys, {safe, column})
                                     : sb.create<vector::LoadOp>(
                                             cast<VectorType>(shaped(ysType)),
                                             ys, ValueRange{safe, column},
                                             /*nontemporal=*/false,
                                             llvm::MaybeAlign(kWideBytes))
                                           .getResult();
                  Value y = convert(sb, loaded, ysType, f32);
                  Value w = splat(sb, prescaled ? sb.f32(1.0)
                                                : sb.load(weights, {token, j}));
                  Value sum = sb.create<arith::AddFOp>(acc, weighted(sb, w, y));
                  return selectF(sb, valid, sum, acc);
                };
                Value acc = splat(tb, tb.f32(0.0));
                if (k <= kMaxUnrolledSlots) {
                  for (int64_t j = 0; j < k; ++j)
                    acc = addSlot(tb, tb.index(j), acc);
                } else {
                  acc = tb.forLoop(tb.index(0), tb.index(k), tb.index(1),
                                   ValueRange{acc},
                                   [&](KernelBuilder &lb, Value j,
                                       ValueRange carried) {
                                     return SmallVector<Value>{
                                         addSlot(lb, j, carried[0])};
                                   })
                            .front();
                }
                Value result = convert(tb, acc, f32, outType);
                if (width == 1)
                  tb.store(result, out.buffer, {token, column});
                else
                  tb.create<vector::StoreOp>(
                      result, out.buffer, ValueRange{token, column},
                      /*nontemporal=*/false,
                      llvm::MaybeAlign(std::min<int64_t>(
                          kWideBytes,
                          width * outType.getIntOrFloatBitWidth() / 8)));
              });
        });
  };
  int64_t wide = kWideBytes * 8 / ysType.getIntOrFloatBitWidth();
  if (hidden % wide != 0) {
    launchCombine(b, "moe_combine", 1);
  } else {
    // The wide loads and stores need ys and the output 16-byte aligned, which
    // a caller's buffers, aligned to their element only, may not be.
    b.ifThenElse(
        b.create<arith::AndIOp>(b.alignedTo(ys, kWideBytes),
                                b.alignedTo(out.buffer, kWideBytes)),
        [&](KernelBuilder &wb) { launchCombine(wb, "moe_combine_wide", wide); },
        [&](KernelBuilder &nb) { launchCombine(nb, "moe_combine", 1); });
  }
  op.getResult().replaceAllUsesWith(out.tensor);
  return success();
}

LogicalResult gpu_lowering::lowerPermute(PermuteOp op, KernelBuilder &b) {
  Value x = readBuffer(b, op.getX());
  Value rows = readBuffer(b, op.getRows());
  OutputBuffer out = allocateLike(b, op.getInit());
  int64_t k = op.getK();
  int64_t hidden = cast<RankedTensorType>(op.getX().getType()).getDimSize(1);
  Type outType = cast<RankedTensorType>(op.getInit().getType()).getElementType();
  Value tokens = b.create<memref::DimOp>(x, 0);
  Value numRows = b.create<memref::DimOp>(rows, 0);
  b.launch("moe_permute", b.ceilDiv(b.index(hidden), kBlockThreads), numRows,
           kBlockThreads, [&](KernelBuilder &kb) {
             Value column = kb.globalThreadId(kBlockThreads);
             Value row = kb.blockId(gpu::Dimension::y);
             kb.ifThen(kb.lessThan(column, kb.index(hidden)),
                       [&](KernelBuilder &tb) {
                         auto selection =
                             tb.decodeSelection(tb.load(rows, row), tokens, k);
                         Value v = tb.castFloat(
                             tb.load(x, {selection.token, column}), outType);
                         Value zero = tb.create<arith::ConstantOp>(
                             tb.getZeroAttr(outType));
                         tb.store(selectF(tb, selection.valid, v, zero),
                                  out.buffer, {row, column});
                       });
           });
  op.getResult().replaceAllUsesWith(out.tensor);
  return success();
}

LogicalResult gpu_lowering::lowerGlu(GluOp op, KernelBuilder &b) {
  Value h = readBuffer(b, op.getH());
  OutputBuffer out = allocateLike(b, op.getInit());
  int64_t width = cast<RankedTensorType>(op.getInit().getType()).getDimSize(1);
  bool interleaved = op.getGluLayout() == GluLayout::interleaved;
  Type outType = cast<RankedTensorType>(op.getInit().getType()).getElementType();
  Value numRows = b.create<memref::DimOp>(h, 0);
  b.launch(
      "moe_glu", b.ceilDiv(b.index(width), kBlockThreads), numRows,
      kBlockThreads, [&](KernelBuilder &kb) {
        Value column = kb.globalThreadId(kBlockThreads);
        Value row = kb.blockId(gpu::Dimension::y);
        kb.ifThen(kb.lessThan(column, kb.index(width)), [&](KernelBuilder &tb) {
          Value gateColumn =
              interleaved ? tb.create<arith::MulIOp>(column, tb.index(2))
                          : column;
          Value upColumn = tb.create<arith::AddIOp>(
              gateColumn, tb.index(interleaved ? 1 : width));
          Value gate = tb.castFloat(tb.load(h, {row, gateColumn}),
                                    tb.getF32Type());
          Value up =
              tb.castFloat(tb.load(h, {row, upColumn}), tb.getF32Type());
          Value v = gluActivation(tb, gate, up, op.getActivation(),
                                  op.getAlpha().convertToDouble(),
                                  op.getLimit().convertToDouble());
          tb.store(tb.castFloat(v, outType), out.buffer, {row, column});
        });
      });
  op.getResult().replaceAllUsesWith(out.tensor);
  return success();
}
