//===- RouteToLinalg.cpp - The reference lowering of moe.route ------------===//
//
// Scores (softmax, sigmoid or the logits), the bias, the group mask, then the
// k best experts per token by k selection passes in a loop, then the
// weights' softmax, renormalization, random second-expert drop and scale.
//
//===----------------------------------------------------------------------===//

#include "TensorHelpers.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::linalg_lowering;

namespace {

/// The offsets, sizes and strides of column `column` of a [T, k] tensor.
struct Column {
  SmallVector<OpFoldResult> offsets, sizes, strides;
  Column(StructuredBuilder &b, Value tensor, Value column)
      : offsets{b.getIndexAttr(0), column},
        sizes{b.dimSize(tensor, 0), b.getIndexAttr(1)},
        strides(2, b.getIndexAttr(1)) {}
};

/// Column `column` of a [T, k] tensor as a [T] tensor.
Value extractColumn(StructuredBuilder &b, Value from, Value column) {
  auto type = cast<RankedTensorType>(from.getType());
  Column c(b, from, column);
  auto columnType =
      RankedTensorType::get({type.getDimSize(0)}, type.getElementType());
  return b.create<tensor::ExtractSliceOp>(columnType, from, c.offsets, c.sizes,
                                          c.strides);
}

/// `into` with column `column` set to `values` [T].
Value insertColumn(StructuredBuilder &b, Value values, Value into,
                   Value column) {
  Column c(b, into, column);
  return b.create<tensor::InsertSliceOp>(values, into, c.offsets, c.sizes,
                                         c.strides);
}

/// Per token, the k best candidates of `scores` [T, N] (ids [T, k] i32) and
/// `values` [T, N] picked alongside (f32). Iteration j of an scf.for picks
/// the best candidate that ranks after iteration j - 1's pick (read back
/// from column j - 1), so the work is O(T * N * k) and the IR the same few
/// ops whatever k is: unrolled, a large k (up to E, which the verifier
/// allows) grew the IR and the compile time with it. Every result column is
/// written in place, so the loop bufferizes without copies.
std::pair<Value, Value> topK(StructuredBuilder &b, Value scores, Value values,
                             int64_t k) {
  OpFoldResult tokens = b.dimSize(scores, 0);
  SmallVector<OpFoldResult> selected = {tokens, b.getIndexAttr(k)};
  SmallVector<Value> inits = {b.empty(selected, b.getI32Type()),
                              b.empty(selected, b.getF32Type()),
                              b.empty(selected, b.getF32Type())};
  auto picks = b.create<scf::ForOp>(
      b.index(0), b.index(k), b.index(1), inits,
      [&](OpBuilder &nested, Location loc, Value j, ValueRange iter) {
        StructuredBuilder nb(loc, nested);
        Value ids = iter[0], picked = iter[1], pickedScores = iter[2];
        // Iteration 0 reads column 0 (not yet written) and ignores it.
        Value firstPick =
            nb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, j, nb.index(0));
        Value previous = nb.create<arith::SelectOp>(
            firstPick, nb.index(0), nb.create<arith::SubIOp>(j, nb.index(1)));
        auto best = nb.generic(
            {scores, values, extractColumn(nb, pickedScores, previous),
             extractColumn(nb, ids, previous)},
            {nb.filled({tokens}, nb.f32(0.0)), nb.filled({tokens}, nb.i32(-1)),
             nb.filled({tokens}, nb.f32(0.0))},
            2, {{0, 1}, {0, 1}, {0}, {0}, {0}, {0}, {0}}, {1},
            [&](StructuredBuilder &gb, ValueRange args) {
              Value score = args[0], value = args[1];
              Value previousScore = args[2], previousIndex = args[3];
              Value candidate = gb.fromIndex(gb.loopIndex(1), gb.getI32Type());
              ValueRange acc = args.take_back(3);
              Value bestScore = acc[0], bestIndex = acc[1], bestValue = acc[2];
              Value noneYet = gb.create<arith::CmpIOp>(
                  arith::CmpIPredicate::slt, bestIndex, gb.i32(0));
              Value better = gb.create<arith::OrIOp>(
                  noneYet,
                  gb.ranksBefore(score, candidate, bestScore, bestIndex));
              Value afterPrevious = gb.create<arith::OrIOp>(
                  firstPick, gb.ranksBefore(previousScore, previousIndex,
                                            score, candidate));
              better = gb.create<arith::AndIOp>(better, afterPrevious);
              return Body{
                  gb.create<arith::SelectOp>(better, score, bestScore),
                  gb.create<arith::SelectOp>(better, candidate, bestIndex),
                  gb.create<arith::SelectOp>(better, value, bestValue)};
            });
        nb.create<scf::YieldOp>(
            ValueRange{insertColumn(nb, best[1], ids, j),
                       insertColumn(nb, best[2], picked, j),
                       insertColumn(nb, best[0], pickedScores, j)});
      });
  return {picks.getResult(0), picks.getResult(1)};
}

//===----------------------------------------------------------------------===//
// moe.route
//===----------------------------------------------------------------------===//

/// Experts of groups outside the topk_group best become -inf.
Value maskGroups(StructuredBuilder &b, RouteOp op, Value scores,
                 int64_t numExperts) {
  int64_t nGroup = op.getNGroup();
  int64_t groupSize = numExperts / nGroup;
  MLIRContext *ctx = b.getContext();
  OpFoldResult tokens = b.dimSize(scores, 0);
  SmallVector<OpFoldResult> groupSizes = {tokens, b.getIndexAttr(nGroup)};
  // View the scores as [T, n_group, groupSize]; loops (t, g, i).
  auto groupedType = RankedTensorType::get(
      {cast<RankedTensorType>(scores.getType()).getDimSize(0), nGroup,
       groupSize},
      b.getF32Type());
  Value grouped = b.create<tensor::ExpandShapeOp>(
      groupedType, scores, SmallVector<ReassociationIndices>{{0}, {1, 2}},
      SmallVector<OpFoldResult>{tokens, b.getIndexAttr(nGroup),
                                b.getIndexAttr(groupSize)});
  AffineMap member = AffineMap::getMultiDimIdentityMap(3, ctx);
  AffineMap group = AffineMap::getMultiDimMapWithTargets(3, {0, 1}, ctx);
  Value first = b.filled(groupSizes, b.f32(-kInfinity));
  Value groupScore;
  if (op.getGroupScore() == GroupScore::max) {
    groupScore = b.generic({grouped}, {first}, {member, group}, {2},
                           [](StructuredBuilder &nb, ValueRange args) {
                             return Body{maxF(nb, args[1], args[0])};
                           })
                     .front();
  } else {
    // The two largest scores of the group, kept as (first, second).
    Value second = b.filled(groupSizes, b.f32(-kInfinity));
    auto top2 = b.generic(
        {grouped}, {first, second}, {member, group, group}, {2},
        [](StructuredBuilder &nb, ValueRange args) {
          Value x = args[0], m1 = args[1], m2 = args[2];
          Value aboveFirst =
              nb.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, x, m1);
          Value aboveSecond =
              nb.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, x, m2);
          Value newSecond = nb.create<arith::SelectOp>(
              aboveFirst, m1, nb.create<arith::SelectOp>(aboveSecond, x, m2));
          Value newFirst = nb.create<arith::SelectOp>(aboveFirst, x, m1);
          return Body{newFirst, newSecond};
        });
    groupScore = map2d(b, {top2[0], top2[1]},
                       [](StructuredBuilder &nb, ValueRange args) -> Value {
                         return nb.create<arith::AddFOp>(args[0], args[1]);
                       });
  }
  Value groupRank = b.rankRows(groupScore);
  AffineExpr e = getAffineDimExpr(1, ctx);
  AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
  AffineMap groupOfExpert =
      AffineMap::get(2, 0, {getAffineDimExpr(0, ctx), e.floorDiv(groupSize)},
                     ctx);
  int64_t keep = op.getTopkGroup();
  return b
      .generic({scores, groupRank},
               {b.empty({tokens, b.getIndexAttr(numExperts)}, b.getF32Type())},
               {identity, groupOfExpert, identity}, {},
               [&](StructuredBuilder &nb, ValueRange args) {
                 Value kept = nb.create<arith::CmpIOp>(
                     arith::CmpIPredicate::slt, args[1], nb.i32(keep));
                 return Body{nb.create<arith::SelectOp>(
                     kept, args[0], nb.f32(-kInfinity))};
               })
      .front();
}

struct LowerRoute : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value logits = op.getLogits();
    int64_t numExperts =
        cast<RankedTensorType>(logits.getType()).getDimSize(1);
    int64_t k = op.getK();
    Scoring scoring = op.getScoring();

    Value probs = logits;
    if (scoring == Scoring::softmax)
      probs = softmaxRows(b, logits);
    else if (scoring == Scoring::sigmoid)
      probs = map2d(b, {logits}, [](StructuredBuilder &nb, ValueRange args) {
        return sigmoid(nb, args[0]);
      });

    Value scores = probs;
    if (Value bias = op.getBias()) {
      SmallVector<OpFoldResult> sizes = {b.dimSize(probs, 0),
                                         b.dimSize(probs, 1)};
      scores = b.generic({probs, bias}, {b.empty(sizes, b.getF32Type())}, 2,
                         {{0, 1}, {1}, {0, 1}}, {},
                         [](StructuredBuilder &nb, ValueRange args) {
                           return Body{
                               nb.create<arith::AddFOp>(args[0], args[1])};
                         })
                   .front();
    }
    if (op.getNGroup() > 1)
      scores = maskGroups(b, op, scores, numExperts);

    auto [ids, weights] = topK(b, scores, probs, k);

    if (scoring == Scoring::softmax_topk)
      weights = softmaxRows(b, weights);
    if (op.getRenormalize()) {
      Value sums = reduceRows(b, weights, 0.0, addF);
      double epsilon = op.getRenormEpsilon().convertToDouble();
      weights = mapWithRow(
          b, weights, sums, [&](StructuredBuilder &nb, Value w, Value s) {
            Value denominator = nb.create<arith::AddFOp>(s, nb.f32(epsilon));
            return Value(nb.create<arith::DivFOp>(w, denominator));
          });
    }
    if (op.getSecondExpertPolicy() == SecondExpertPolicy::random)
      std::tie(ids, weights) =
          dropSecondAtRandom(b, ids, weights, op.getSeed());
    double scale = op.getScale().convertToDouble();
    if (scale != 1.0)
      weights = map2d(b, {weights}, [&](StructuredBuilder &nb, ValueRange a) {
        return Value(nb.create<arith::MulFOp>(a[0], nb.f32(scale)));
      });
    rewriter.replaceOp(op, {weights, ids});
    return success();
  }

  /// GShard: keep the second choice of token t only if u(t) < 2 * w2.
  static std::pair<Value, Value> dropSecondAtRandom(StructuredBuilder &b,
                                                    Value ids, Value weights,
                                                    int64_t seed) {
    SmallVector<OpFoldResult> sizes = {b.dimSize(ids, 0), b.dimSize(ids, 1)};
    MLIRContext *ctx = b.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
    AffineMap secondSlot = AffineMap::get(
        2, 0, {getAffineDimExpr(0, ctx), getAffineConstantExpr(1, ctx)}, ctx);
    auto results = b.generic(
        {ids, weights, weights},
        {b.empty(sizes, b.getI32Type()), b.empty(sizes, b.getF32Type())},
        {identity, identity, secondSlot, identity, identity}, {},
        [&](StructuredBuilder &nb, ValueRange args) {
          Value u = gshardUniform(nb, nb.loopIndex(0), seed);
          Value twiceSecond =
              nb.create<arith::MulFOp>(args[2], nb.f32(2.0));
          Value keep = nb.create<arith::CmpFOp>(arith::CmpFPredicate::OLT, u,
                                                twiceSecond);
          Value isSecond = nb.create<arith::CmpIOp>(
              arith::CmpIPredicate::eq, nb.loopIndex(1), nb.index(1));
          Value drop = nb.create<arith::AndIOp>(
              isSecond, nb.create<arith::XOrIOp>(
                            keep, nb.create<arith::ConstantIntOp>(
                                      nb.getI1Type(), 1)));
          return Body{nb.create<arith::SelectOp>(drop, nb.i32(-1), args[0]),
                      nb.create<arith::SelectOp>(drop, nb.f32(0.0), args[1])};
        });
    return {results[0], results[1]};
  }
};

} // namespace

void linalg_lowering::populateRouteToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LowerRoute>(patterns.getContext());
}
