//===- GroupedMatmulToLinalg.cpp - moe.glu and moe.grouped_matmul
//-----------===//
//
// The reference lowerings of the expert computation: the GLU, and the grouped
// matmul with its optional gather, bias, row scale and fused GLU epilogue, as
// linalg.generic ops over the (unpacked) weights.
//
//===----------------------------------------------------------------------===//

#include "TensorHelpers.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Quantization.h"
#include "moe/Dialect/MoE/Utils/Routing.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"
#include "moe/Dialect/MoE/Utils/WeightDequantization.h"

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

/// act(gate) * up of `h` [M, 2I] into `init` [M, I].
Value lowerGlu(StructuredBuilder &b, Value h, Value init, Activation activation,
               GluLayout layout, double alpha, double limit) {
  int64_t width = cast<RankedTensorType>(h.getType()).getDimSize(1) / 2;
  OpFoldResult rows = b.dimSize(h, 0);
  bool interleaved = layout == GluLayout::interleaved;
  auto half = [&](int64_t which) -> Value {
    SmallVector<OpFoldResult> offsets = {
        b.getIndexAttr(0), b.getIndexAttr(interleaved ? which : which * width)};
    SmallVector<OpFoldResult> sizes = {rows, b.getIndexAttr(width)};
    SmallVector<OpFoldResult> strides = {b.getIndexAttr(1),
                                         b.getIndexAttr(interleaved ? 2 : 1)};
    return b.create<tensor::ExtractSliceOp>(h, offsets, sizes, strides);
  };
  Value gate = half(0), up = half(1);
  return b
      .generic({gate, up}, {init}, 2, {{0, 1}, {0, 1}, {0, 1}}, {},
               [&](StructuredBuilder &nb, ValueRange args) {
                 Value g = nb.castFloat(args[0], nb.getF32Type());
                 Value u = nb.castFloat(args[1], nb.getF32Type());
                 Value v = gluActivation(nb, g, u, activation, alpha, limit);
                 return Body{nb.castFloat(v, args[2].getType())};
               })
      .front();
}

struct LowerGlu : OpRewritePattern<GluOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GluOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    rewriter.replaceOp(op, lowerGlu(b, op.getH(), op.getInit(),
                                    op.getActivation(), op.getGluLayout(),
                                    op.getAlpha().convertToDouble(),
                                    op.getLimit().convertToDouble()));
    return success();
  }
};

/// [E, N / P, K, P] panels as the [E, N, K] tensor they store.
static Value unpackPanels(StructuredBuilder &b, Value panels) {
  auto type = cast<RankedTensorType>(panels.getType());
  ArrayRef<int64_t> shape = type.getShape();
  Value transposed =
      b.create<linalg::TransposeOp>(
           panels,
           b.empty({b.getIndexAttr(shape[0]), b.getIndexAttr(shape[1]),
                    b.getIndexAttr(shape[3]), b.getIndexAttr(shape[2])},
                   type.getElementType()),
           ArrayRef<int64_t>{0, 1, 3, 2})
          .getResult()
          .front();
  return b.create<tensor::CollapseShapeOp>(
      RankedTensorType::get({shape[0], shape[1] * shape[3], shape[2]},
                            type.getElementType()),
      transposed, ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3}});
}

/// [E, N / P, K / 2, 2P] VNNI panels as the [E, N, K] tensor they store:
/// split each panel row into (column, k % 2), then move the columns out.
static Value unpackVnniPanels(StructuredBuilder &b, Value panels) {
  auto type = cast<RankedTensorType>(panels.getType());
  ArrayRef<int64_t> shape = type.getShape();
  Type element = type.getElementType();
  int64_t width = shape[3] / 2;
  Value split = b.create<tensor::ExpandShapeOp>(
      RankedTensorType::get({shape[0], shape[1], shape[2], width, 2}, element),
      panels, ArrayRef<ReassociationIndices>{{0}, {1}, {2}, {3, 4}});
  Value transposed =
      b.create<linalg::TransposeOp>(
           split,
           b.empty({b.getIndexAttr(shape[0]), b.getIndexAttr(shape[1]),
                    b.getIndexAttr(width), b.getIndexAttr(shape[2]),
                    b.getIndexAttr(2)},
                   element),
           ArrayRef<int64_t>{0, 1, 3, 2, 4})
          .getResult()
          .front();
  return b.create<tensor::CollapseShapeOp>(
      RankedTensorType::get({shape[0], shape[1] * width, shape[2] * 2},
                            element),
      transposed, ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3, 4}});
}

struct LowerGroupedMatmul : OpRewritePattern<GroupedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value init = op.getInit();
    Value lhs = op.getLhs(), rhs = op.getRhs(), offsets = op.getOffsets();
    // Quantized: the A rows as the e4m3 values (times their scales) that
    // the product uses; the weights are dequantized element by element.
    WeightQuantAttr quant = op.getWeightQuantAttr();
    if (quant && quant.getActivation() != ActivationQuant::none)
      lhs = quantizeActivations(b, lhs, quant, op.getLhsScales());
    // The weight-only formats are dequantized into f32 weights first; FP8
    // weights are decoded in the product's body.
    // In the panels layout their scales and zero points are panels too:
    // all of them are unpacked to the nk layout first.
    RhsLayout layout = op.getRhsLayout();
    if (quant && quant.getFormat() != WeightFormat::fp8_e4m3) {
      Value scales = op.getRhsScales(), zeroPoints = op.getRhsZeroPoints();
      if (layout == RhsLayout::panels) {
        if (isPackedWeightFormat(quant.getFormat()) &&
            cast<RankedTensorType>(rhs.getType()).getDimSize(3) ==
                kWordOrderPanelWidth)
          rhs = panelNibblesFromWordOrder(b, rhs);
        rhs = unpackPanels(b, rhs);
        scales = unpackPanels(b, scales);
        if (zeroPoints)
          zeroPoints = unpackPanels(b, zeroPoints);
        layout = RhsLayout::nk;
      }
      rhs = dequantizeWeights(b, quant, rhs, scales, zeroPoints);
      quant = nullptr;
    }
    if (layout == RhsLayout::panels)
      rhs = unpackPanels(b, rhs);
    else if (layout == RhsLayout::panels_vnni)
      rhs = unpackVnniPanels(b, rhs);
    auto rhsType = cast<RankedTensorType>(rhs.getType());
    bool kn = op.getRhsLayout() == RhsLayout::kn;
    int64_t numExperts = rhsType.getDimSize(0);
    int64_t n = rhsType.getDimSize(kn ? 2 : 1);
    int64_t reduction = rhsType.getDimSize(kn ? 1 : 2);
    int64_t k = op.getK();
    bool gather = op.getGather();
    Value rows = op.getRows();
    OpFoldResult numRows = b.dimSize(init, 0);

    // rowExpert[r]: the expert whose range holds r, or -1.
    // The loop over experts needs an operand of extent E: the offsets
    // without their last entry.
    Value starts = b.create<tensor::ExtractSliceOp>(
        offsets, ArrayRef<OpFoldResult>{b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(numExperts)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    Value rowExpert =
        b.generic(
             {starts}, {b.filled({numRows}, b.i32(-1))}, 2, {{1}, {0}}, {1},
             [&](StructuredBuilder &nb, ValueRange args) {
               Value expert = nb.loopIndex(1);
               Value next = nb.create<arith::AddIOp>(expert, nb.index(1));
               Value end =
                   nb.create<tensor::ExtractOp>(offsets, ValueRange{next});
               Value row = nb.fromIndex(nb.loopIndex(0), nb.getI32Type());
               Value inside = nb.create<arith::AndIOp>(
                   nb.create<arith::CmpIOp>(arith::CmpIPredicate::sge, row,
                                            args[0]),
                   nb.create<arith::CmpIOp>(arith::CmpIPredicate::slt, row,
                                            end));
               return Body{nb.create<arith::SelectOp>(
                   inside, nb.fromIndex(expert, nb.getI32Type()), args[1])};
             })
            .front();

    // acc[r, n] = sum_k A[r, k] * W[e(r), n, k] in f32; rows of no expert
    // add nothing.
    Value acc = b.filled({numRows, b.getIndexAttr(n)}, b.f32(0.0));
    SmallVector<Value> inputs = {rowExpert};
    SmallVector<SmallVector<unsigned>> maps = {{0}};
    if (gather) {
      inputs.push_back(rows);
      maps.push_back({0});
    } else {
      inputs.push_back(lhs);
      maps.push_back({0, 2});
    }
    maps.push_back({0, 1});
    // The reduction loop needs an operand of extent K when the lhs is read
    // through the gather: a slice of the first expert's weights.
    if (gather) {
      Value firstExpertRow = b.create<tensor::ExtractSliceOp>(
          rhs,
          ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0),
                                 b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1),
                                 b.getIndexAttr(kn ? reduction : 1),
                                 b.getIndexAttr(kn ? 1 : reduction)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                                 b.getIndexAttr(1)});
      Value flatRow = b.create<tensor::CollapseShapeOp>(
          firstExpertRow, SmallVector<ReassociationIndices>{{0, 1, 2}});
      inputs.push_back(flatRow);
      maps.insert(maps.end() - 1, SmallVector<unsigned>{2});
    }
    acc =
        b.generic(
             inputs, {acc}, 3, maps, {2},
             [&](StructuredBuilder &nb, ValueRange args) {
               Value expert = args[0];
               Value col = nb.loopIndex(1), red = nb.loopIndex(2);
               Value a = gather ? gatherElement(nb, lhs, args[1], k, red)
                                : nb.castFloat(args[1], nb.getF32Type());
               Value valid = nb.create<arith::CmpIOp>(arith::CmpIPredicate::sge,
                                                      expert, nb.i32(0));
               Value safe =
                   nb.toIndex(nb.create<arith::MaxSIOp>(expert, nb.i32(0)));
               SmallVector<Value> at = {safe, col, red};
               if (kn)
                 at = {safe, red, col};
               Value w = nb.create<tensor::ExtractOp>(rhs, at);
               if (quant) {
                 Value scale = nb.create<tensor::ExtractOp>(
                     op.getRhsScales(),
                     ValueRange{safe,
                                nb.create<arith::DivUIOp>(
                                    col, nb.index(quant.getBlockN())),
                                nb.create<arith::DivUIOp>(
                                    red, nb.index(quant.getBlockK()))});
                 w = nb.create<arith::MulFOp>(decodeE4M3(nb, w), scale);
               } else {
                 w = nb.castFloat(w, nb.getF32Type());
               }
               Value product = nb.create<arith::MulFOp>(a, w);
               Value sum = nb.create<arith::AddFOp>(args.back(), product);
               return Body{nb.create<arith::SelectOp>(valid, sum, args.back())};
             })
            .front();

    if (Value bias = op.getBias()) {
      // acc[r, n] += bias[e(r), n]; rows of no expert stay zero.
      acc = b.generic(
                 {acc, rowExpert},
                 {b.empty({numRows, b.getIndexAttr(n)}, b.getF32Type())}, 2,
                 {{0, 1}, {0}, {0, 1}}, {},
                 [&](StructuredBuilder &nb, ValueRange args) {
                   Value expert = args[1];
                   Value valid = nb.create<arith::CmpIOp>(
                       arith::CmpIPredicate::sge, expert, nb.i32(0));
                   Value safe =
                       nb.toIndex(nb.create<arith::MaxSIOp>(expert, nb.i32(0)));
                   Value term = nb.castFloat(
                       nb.create<tensor::ExtractOp>(
                           bias, ValueRange{safe, nb.loopIndex(1)}),
                       nb.getF32Type());
                   Value sum = nb.create<arith::AddFOp>(args[0], term);
                   return Body{nb.create<arith::SelectOp>(valid, sum, args[0])};
                 })
                .front();
    }
    if (auto epilogue = op.getEpilogue()) {
      Value activated =
          b.empty({numRows, b.getIndexAttr(n / 2)}, b.getF32Type());
      acc = lowerGlu(b, acc, activated, *epilogue, op.getGluLayout(),
                     op.getAlpha().convertToDouble(),
                     op.getLimit().convertToDouble());
    }
    if (Value scale = op.getRowScale()) {
      // Row r is scaled by weights[rows[r] / k, rows[r] % k] (0 if invalid).
      SmallVector<OpFoldResult> sizes = {numRows, b.dimSize(acc, 1)};
      acc = b.generic({acc, rows}, {b.empty(sizes, b.getF32Type())}, 2,
                      {{0, 1}, {0}, {0, 1}}, {},
                      [&](StructuredBuilder &nb, ValueRange args) {
                        auto selection = nb.decodeSelection(
                            args[1], nb.dimValue(scale, 0), k);
                        Value w = nb.create<tensor::ExtractOp>(
                            scale, ValueRange{selection.token, selection.slot});
                        Value w0 = nb.create<arith::SelectOp>(selection.valid,
                                                              w, nb.f32(0.0));
                        return Body{weighted(nb, w0, args[0])};
                      })
                .front();
    }
    rewriter.replaceOp(op, castInto(b, acc, init));
    return success();
  }
};

} // namespace

void mlir::moe::linalg_lowering::populateGroupedMatmulToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LowerGlu, LowerGroupedMatmul>(patterns.getContext());
}
