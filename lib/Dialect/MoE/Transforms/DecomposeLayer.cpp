//===- DecomposeLayer.cpp - moe.layer to the router and unfused ops -------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSELAYERPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A 2-D tensor type whose dimensions follow `sizes` (dynamic where a size
/// is not a constant).
RankedTensorType tensorType(ArrayRef<OpFoldResult> sizes, Type elementType) {
  SmallVector<int64_t> shape;
  for (OpFoldResult size : sizes)
    shape.push_back(getConstantIntValue(size).value_or(ShapedType::kDynamic));
  return RankedTensorType::get(shape, elementType);
}

/// lhs [T, K] . rhs[N, K]^T (+ bias [N], if given) in f32, as a grouped
/// matmul with one expert owning every row, so dense projections share the
/// grouped kernels.
Value denseMatmul(StructuredBuilder &b, Value lhs, Value rhs,
                  Value bias = Value()) {
  auto rhsType = cast<RankedTensorType>(rhs.getType());
  int64_t n = rhsType.getDimSize(0), k = rhsType.getDimSize(1);
  Value weights = b.create<tensor::ExpandShapeOp>(
      RankedTensorType::get({1, n, k}, rhsType.getElementType()), rhs,
      SmallVector<ReassociationIndices>{{0, 1}, {2}},
      SmallVector<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(n),
                                b.getIndexAttr(k)});
  Value tokens = b.dimValue(lhs, 0);
  Value offsets = b.create<tensor::FromElementsOp>(
      RankedTensorType::get({2}, b.getI32Type()),
      ValueRange{b.i32(0), b.fromIndex(tokens, b.getI32Type())});
  if (bias) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    bias = b.create<tensor::ExpandShapeOp>(
        RankedTensorType::get({1, n}, biasType.getElementType()), bias,
        SmallVector<ReassociationIndices>{{0, 1}},
        SmallVector<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(n)});
  }
  SmallVector<OpFoldResult> sizes = {b.dimSize(lhs, 0), b.getIndexAttr(n)};
  return b
      .create<GroupedMatmulOp>(tensorType(sizes, b.getF32Type()), lhs, weights,
                               offsets, b.empty(sizes, b.getF32Type()),
                               RhsLayout::nk, bias)
      .getResult();
}

struct DecomposeLayer : OpRewritePattern<LayerOp> {
  DecomposeLayer(MLIRContext *context, bool bf16WeightOnlyGlu)
      : OpRewritePattern(context), bf16WeightOnlyGlu(bf16WeightOnlyGlu) {}

  /// Whether the routed experts' GLU output is bf16 (bf16-weight-only-glu):
  /// for bf16 activations and weight-only quantized experts.
  bool roundsGlu(LayerOp op) const {
    WeightQuantAttr quant = op.getWeightQuantAttr();
    return bf16WeightOnlyGlu && quant &&
           quant.getFormat() != WeightFormat::fp8_e4m3 &&
           cast<RankedTensorType>(op.getX().getType())
               .getElementType()
               .isBF16();
  }

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Type f32 = b.getF32Type();
    Type i32 = b.getI32Type();
    Value x = op.getX();
    int64_t k = op.getK();
    int64_t numExperts =
        cast<RankedTensorType>(op.getRouter().getType()).getDimSize(0);
    int64_t inter = weightShape(cast<RankedTensorType>(op.getW13().getType()),
                                op.getWeightLayout())
                        .columns /
                    2;
    OpFoldResult tokens = b.dimSize(x, 0);
    OpFoldResult hidden = b.dimSize(x, 1);
    OpFoldResult kSize = b.getIndexAttr(k);

    // Routing in f32, whatever the activations' type; gpt-oss's router is
    // a Linear with a bias.
    Value logits = denseMatmul(b, x, op.getRouter(), op.getRouterBias());
    auto route = b.create<RouteOp>(
        tensorType({tokens, kSize}, f32), tensorType({tokens, kSize}, i32),
        logits, op.getBias(), op.getKAttr(), op.getScoringAttr(),
        op.getNGroupAttr(), op.getTopkGroupAttr(), op.getGroupScoreAttr(),
        op.getRenormalizeAttr(), op.getRenormEpsilonAttr(), op.getScaleAttr(),
        op.getSecondExpertPolicyAttr(), op.getSeedAttr());

    OpFoldResult numRows = b.getIndexAttr(ShapedType::kDynamic);
    if (auto staticTokens = getConstantIntValue(tokens))
      numRows = b.getIndexAttr(*staticTokens * k);
    auto rowsType = tensorType({numRows}, i32);
    auto dispatch = b.create<DispatchOp>(
        rowsType, RankedTensorType::get({numExperts + 1}, i32), route.getIds(),
        route.getWeights(), /*expert_map=*/Value(),
        b.getI64IntegerAttr(numExperts), op.getCapacityAttr(),
        op.getCapacityFactorAttr(), op.getDropPolicyAttr());
    Value rows = dispatch.getRows();
    OpFoldResult m = b.dimSize(rows, 0);

    // Intermediates stay in f32 so the reference rounds only at the end.
    Value xs = b.create<PermuteOp>(tensorType({m, hidden}, f32), x, rows,
                                   b.empty({m, hidden}, f32), op.getKAttr())
                   .getResult();
    auto h13 = b.create<GroupedMatmulOp>(
        tensorType({m, b.getIndexAttr(2 * inter)}, f32), xs, op.getW13(),
        dispatch.getOffsets(), b.empty({m, b.getIndexAttr(2 * inter)}, f32),
        op.getWeightLayout(), op.getW13Bias());
    quantize(h13, op, op.getW13Scales(), op.getW13InputScales(),
             op.getW13ZeroPoints());
    Value act = glu(b, op, h13.getResult(), m, inter,
                    roundsGlu(op) ? b.getBF16Type() : f32);
    auto h2 = b.create<GroupedMatmulOp>(
        tensorType({m, hidden}, f32), act, op.getW2(), dispatch.getOffsets(),
        b.empty({m, hidden}, f32), op.getWeightLayout(), op.getW2Bias());
    quantize(h2, op, op.getW2Scales(), op.getW2InputScales(),
             op.getW2ZeroPoints());
    Value ys = h2.getResult();

    Value init = op.getInit();
    if (!op.getSharedW13()) {
      rewriter.replaceOp(op, b.create<CombineOp>(init.getType(), ys, rows,
                                                 route.getWeights(), init)
                                 .getResult());
      return success();
    }
    Value routed =
        b.create<CombineOp>(tensorType({tokens, hidden}, f32), ys, rows,
                            route.getWeights(), b.empty({tokens, hidden}, f32))
            .getResult();
    Value shared = sharedExpert(b, op, tokens);
    Value result =
        b.generic({routed, shared}, {init}, 2, {{0, 1}, {0, 1}, {0, 1}}, {},
                  [](StructuredBuilder &nb, ValueRange args) {
                    Value sum = nb.create<arith::AddFOp>(args[0], args[1]);
                    return SmallVector<Value>{
                        nb.castFloat(sum, args[2].getType())};
                  })
            .front();
    rewriter.replaceOp(op, result);
    return success();
  }

private:
  /// Gives `matmul` the layer's weight quantization: its attribute and one
  /// weight's scales and zero points (no-op for an unquantized layer).
  static void quantize(GroupedMatmulOp matmul, LayerOp op, Value scales,
                       Value inputScales, Value zeroPoints) {
    if (!op.getWeightQuantAttr())
      return;
    matmul.setWeightQuantAttr(op.getWeightQuantAttr());
    matmul.getRhsScalesMutable().assign(scales);
    if (inputScales)
      matmul.getLhsScalesMutable().assign(inputScales);
    if (zeroPoints)
      matmul.getRhsZeroPointsMutable().assign(zeroPoints);
  }

  /// moe.glu with the layer's activation attributes, in `type` (f32
  /// unless the layer rounds it).
  static Value glu(StructuredBuilder &b, LayerOp op, Value h, OpFoldResult rows,
                   int64_t width, Type type) {
    OpFoldResult widthSize = b.getIndexAttr(width);
    return b
        .create<GluOp>(tensorType({rows, widthSize}, type), h,
                       b.empty({rows, widthSize}, type), op.getActivationAttr(),
                       op.getGluLayoutAttr(), op.getAlphaAttr(),
                       op.getLimitAttr())
        .getResult();
  }

  /// glu(x . shared_w13^T) . shared_w2^T, times sigmoid(x . shared_gate^T).
  static Value sharedExpert(StructuredBuilder &b, LayerOp op,
                            OpFoldResult tokens) {
    int64_t sharedInter =
        cast<RankedTensorType>(op.getSharedW13().getType()).getDimSize(0) / 2;
    Value h = denseMatmul(b, op.getX(), op.getSharedW13());
    Value act = glu(b, op, h, tokens, sharedInter, b.getF32Type());
    Value out = denseMatmul(b, act, op.getSharedW2());
    if (!op.getSharedGate())
      return out;
    Value gate = denseMatmul(b, op.getX(), op.getSharedGate());
    MLIRContext *ctx = b.getContext();
    AffineMap firstColumn = AffineMap::get(
        2, 0, {getAffineDimExpr(0, ctx), getAffineConstantExpr(0, ctx)}, ctx);
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
    return b
        .generic({gate}, {out}, {firstColumn, identity}, {},
                 [](StructuredBuilder &nb, ValueRange args) {
                   return SmallVector<Value>{nb.create<arith::MulFOp>(
                       args[1], moe::sigmoid(nb, args[0]))};
                 })
        .front();
  }

private:
  bool bf16WeightOnlyGlu;
};

struct MoEDecomposeLayerPass
    : moe::impl::MoEDecomposeLayerPassBase<MoEDecomposeLayerPass> {
  using MoEDecomposeLayerPassBase::MoEDecomposeLayerPassBase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<DecomposeLayer>(&getContext(), bf16WeightOnlyGlu);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
