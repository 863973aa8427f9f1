//===- LossToLinalg.cpp - moe.aux_loss and moe.z_loss
//-----------------------===//
//
// The reference lowerings of the training losses: each a mean over tokens of
// a per-token quantity computed from the router logits.
//
//===----------------------------------------------------------------------===//

#include "TensorHelpers.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::linalg_lowering;

namespace {

/// sum over t of values[t] into a 0-D tensor, divided by T.
Value meanOverTokens(StructuredBuilder &b, Value values) {
  MLIRContext *ctx = b.getContext();
  Value zero = b.filled({}, b.f32(0.0));
  Value sum = b.generic({values}, {zero},
                        {AffineMap::getMultiDimIdentityMap(1, ctx),
                         AffineMap::get(1, 0, {}, ctx)},
                        {0},
                        [](StructuredBuilder &nb, ValueRange args) {
                          return Body{addF(nb, args[1], args[0])};
                        })
                  .front();
  Value count = b.create<arith::UIToFPOp>(
      b.getF32Type(),
      b.create<arith::IndexCastOp>(b.getI64Type(), b.dimValue(values, 0)));
  return b
      .generic({}, {sum}, {AffineMap::get(0, 0, {}, ctx)}, {},
               [&](StructuredBuilder &nb, ValueRange args) {
                 return Body{nb.create<arith::DivFOp>(args[0], count)};
               })
      .front();
}

struct LowerZLoss : OpRewritePattern<ZLossOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ZLossOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value logits = op.getLogits();
    Value maximum = reduceRows(b, logits, -kInfinity, maxF);
    Value exps = mapWithRow(b, logits, maximum,
                            [](StructuredBuilder &nb, Value x, Value m) {
                              return softmaxExp(nb, x, m);
                            });
    Value sums = reduceRows(b, exps, 0.0, addF);
    Value squares = b.generic({sums, maximum},
                              {b.empty({b.dimSize(logits, 0)}, b.getF32Type())},
                              1, {{0}, {0}, {0}}, {},
                              [](StructuredBuilder &nb, ValueRange args) {
                                Value lse = nb.create<arith::AddFOp>(
                                    nb.create<math::LogOp>(args[0]), args[1]);
                                return Body{nb.create<arith::MulFOp>(lse, lse)};
                              })
                        .front();
    rewriter.replaceOp(op, meanOverTokens(b, squares));
    return success();
  }
};

struct LowerAuxLoss : OpRewritePattern<AuxLossOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AuxLossOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value logits = op.getLogits(), ids = op.getIds();
    int64_t numExperts = cast<RankedTensorType>(logits.getType()).getDimSize(1);
    Value probs = softmaxRows(b, logits);
    // perToken[t] = sum_e count(t, e) * p[t, e]; the loss is
    // E * sum_e (count_e / T) * (sum_t p[t, e] / T), computed as
    // E / T^2 * sum_e count_e * colsum_e.
    OpFoldResult experts = b.getIndexAttr(numExperts);
    Value colSum = b.generic({probs}, {b.filled({experts}, b.f32(0.0))}, 2,
                             {{1, 0}, {0}}, {1},
                             [](StructuredBuilder &nb, ValueRange args) {
                               return Body{addF(nb, args[1], args[0])};
                             })
                       .front();
    Value counts =
        b.generic(
             {ids}, {b.filled({experts}, b.f32(0.0))}, 3, {{1, 2}, {0}}, {1, 2},
             [](StructuredBuilder &nb, ValueRange args) {
               Value expert = nb.fromIndex(nb.loopIndex(0), nb.getI32Type());
               Value hit = nb.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                                    args[0], expert);
               Value one =
                   nb.create<arith::SelectOp>(hit, nb.f32(1.0), nb.f32(0.0));
               return Body{addF(nb, args[1], one)};
             })
            .front();
    MLIRContext *ctx = b.getContext();
    Value dot = b.generic({counts, colSum}, {b.filled({}, b.f32(0.0))},
                          {AffineMap::getMultiDimIdentityMap(1, ctx),
                           AffineMap::getMultiDimIdentityMap(1, ctx),
                           AffineMap::get(1, 0, {}, ctx)},
                          {0},
                          [](StructuredBuilder &nb, ValueRange args) {
                            return Body{addF(
                                nb, args[2],
                                nb.create<arith::MulFOp>(args[0], args[1]))};
                          })
                    .front();
    Value numTokens = b.create<arith::UIToFPOp>(
        b.getF32Type(),
        b.create<arith::IndexCastOp>(b.getI64Type(), b.dimValue(logits, 0)));
    Value loss =
        b.generic({}, {dot}, {AffineMap::get(0, 0, {}, ctx)}, {},
                  [&](StructuredBuilder &nb, ValueRange args) {
                    Value perToken =
                        nb.create<arith::DivFOp>(args[0], numTokens);
                    Value mean = nb.create<arith::DivFOp>(perToken, numTokens);
                    return Body{nb.create<arith::MulFOp>(
                        mean, nb.f32(static_cast<double>(numExperts)))};
                  })
            .front();
    rewriter.replaceOp(op, loss);
    return success();
  }
};

} // namespace

void mlir::moe::linalg_lowering::populateLossToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LowerAuxLoss, LowerZLoss>(patterns.getContext());
}
