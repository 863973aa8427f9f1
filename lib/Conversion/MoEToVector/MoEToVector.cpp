//===- MoEToVector.cpp - Parallel vectorized CPU grouped matmul -----------===//
//
// The kernel, per work item (column tile c, expert e):
//
//   for each block of R routed rows of e:          (A rows stay in L1)
//     for each output column n of tile c:
//       acc[i] = sum_k A[row_i, k] * W[e, n, k]     (f32 FMAs along K)
//       (and the up projection beside it for a GLU epilogue)
//       out[row_i, n] = cast(scale_i * glu(acc...))
//
// Everything stays on tensors; bufferization makes the scf.forall write its
// tiles in place, and the CPU pipeline maps it onto OpenMP threads.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToVector/MoEToVector.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOVECTORPASS
#include "moe/Conversion/MoEToVector/MoEToVector.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct KernelShape {
  int64_t vectorWidth;
  int64_t rowBlock;
  int64_t columnBlock;
  int64_t columnTile;
};

/// One routed row of a block: where its A row is read and its scale.
struct BlockRow {
  Value source;   // the tensor holding the A row (lhs)
  Value aRow;     // index of the A row in `source`
  Value scale;    // f32 factor applied after the epilogue (0 for no row)
};

/// Loops over [0, count) in steps of `block`, then over what remains one at
/// a time, threading `init` through; `body(builder, start, size, iter)`
/// computes one step of `size` (block or 1) starting at `start`.
Value blockedLoop(
    StructuredBuilder &b, Value count, int64_t block, Value init,
    function_ref<Value(StructuredBuilder &, Value, int64_t, Value)> body) {
  auto loop = [&](Value from, Value to, int64_t size, Value iterInit) {
    return b
        .create<scf::ForOp>(
            from, to, b.index(size), ValueRange{iterInit},
            [&](OpBuilder &nested, Location loc, Value start,
                ValueRange iter) {
              StructuredBuilder nb(loc, nested);
              nb.create<scf::YieldOp>(body(nb, start, size, iter[0]));
            })
        .getResult(0);
  };
  if (block == 1)
    return loop(b.index(0), count, 1, init);
  Value full = b.create<arith::SubIOp>(
      count, b.create<arith::RemUIOp>(count, b.index(block)));
  Value result = loop(b.index(0), full, block, init);
  return loop(full, count, 1, result);
}

class GroupedMatmulKernel {
public:
  GroupedMatmulKernel(GroupedMatmulOp op, StructuredBuilder &b,
                      KernelShape shape)
      : op(op), b(b), shape(shape) {
    auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
    numExperts = rhsType.getDimSize(0);
    n = rhsType.getDimSize(1);
    reduction = rhsType.getDimSize(2);
    glu = op.getEpilogue().has_value();
    width = glu ? n / 2 : n;
    outType = cast<RankedTensorType>(op.getInit().getType()).getElementType();
  }

  Value build() {
    Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(outType));
    Value cleared =
        b.create<linalg::FillOp>(zero, op.getInit()).getResult(0);
    int64_t numTiles = llvm::divideCeil(width, shape.columnTile);
    auto forall = b.create<scf::ForallOp>(
        ArrayRef<OpFoldResult>{b.getIndexAttr(numTiles * numExperts)},
        ValueRange{cleared}, std::nullopt, nullptr);
    Block *body = forall.getBody();
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(body->getTerminator());
    Value item = body->getArgument(0);
    Value shared = body->getArgument(1);

    // Column-tile-major items: consecutive items are different experts.
    Value expert = b.create<arith::RemUIOp>(item, b.index(numExperts));
    Value tileIndex = b.create<arith::DivUIOp>(item, b.index(numExperts));
    Value numRows = b.dimValue(op.getInit(), 0);
    Value lo = clampedOffset(expert, numRows, b.index(0));
    Value hi = clampedOffset(b.create<arith::AddIOp>(expert, b.index(1)),
                             numRows, lo);
    Value rowCount = b.create<arith::SubIOp>(hi, lo);
    Value col0 = b.create<arith::MulIOp>(tileIndex, b.index(shape.columnTile));
    Value colCount = b.create<arith::MinUIOp>(
        b.index(shape.columnTile),
        b.create<arith::SubIOp>(b.index(width), col0));

    // The tile starts as its own slice of the result, so bufferization
    // computes it in place.
    Value tile = b.create<tensor::ExtractSliceOp>(
        shared, ArrayRef<OpFoldResult>{lo, col0},
        ArrayRef<OpFoldResult>{rowCount, colCount},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    tile = blockedLoop(b, rowCount, shape.rowBlock, tile,
                       [&](StructuredBuilder &nb, Value block,
                           int64_t blockRows, Value iter) {
                         return computeBlock(nb, expert, lo, block, blockRows,
                                             col0, colCount, iter);
                       });

    auto terminator = cast<scf::InParallelOp>(body->getTerminator());
    b.setInsertionPointToStart(terminator.getBody());
    b.create<tensor::ParallelInsertSliceOp>(
        tile, shared, ArrayRef<OpFoldResult>{lo, col0},
        ArrayRef<OpFoldResult>{rowCount, colCount},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    return forall.getResult(0);
  }

private:
  /// offsets[i] as an index clamped to [lower, numRows].
  Value clampedOffset(Value i, Value numRows, Value lower) {
    Value raw = b.toIndex(
        b.create<tensor::ExtractOp>(op.getOffsets(), ValueRange{i}));
    // Negative offsets read as huge unsigned values; clamp through signed max.
    Value atLeast = b.create<arith::MaxSIOp>(raw, lower);
    return b.create<arith::MinSIOp>(atLeast, numRows);
  }

  /// Where row `row` of the block reads its A row, and its scale.
  BlockRow blockRow(StructuredBuilder &nb, Value row) {
    Value lhs = op.getLhs();
    int64_t k = op.getK();
    BlockRow result{lhs, row, nb.f32(1.0)};
    Value rows = op.getRows();
    if (!rows)
      return result;
    Value tokens = op.getGather() ? nb.dimValue(lhs, 0)
                                  : nb.dimValue(op.getRowScale(), 0);
    auto selection = nb.decodeSelection(
        nb.create<tensor::ExtractOp>(rows, ValueRange{row}), tokens, k);
    if (op.getGather())
      result.aRow = selection.token;
    Value scale = nb.create<arith::SelectOp>(selection.valid, nb.f32(1.0),
                                             nb.f32(0.0));
    if (Value weights = op.getRowScale()) {
      Value weight = nb.create<tensor::ExtractOp>(
          weights, ValueRange{selection.token, selection.slot});
      scale = nb.create<arith::MulFOp>(scale, weight);
    }
    result.scale = scale;
    return result;
  }

  /// Reads `vectorWidth` elements of `source` at [indices..., k] as f32.
  Value load(StructuredBuilder &nb, Value source, SmallVector<Value> indices,
             Value k, bool inBounds) {
    Type element = cast<RankedTensorType>(source.getType()).getElementType();
    indices.push_back(k);
    auto type = VectorType::get({shape.vectorWidth}, element);
    Value pad = nb.create<arith::ConstantOp>(nb.getZeroAttr(element));
    Value v = nb.create<vector::TransferReadOp>(
        type, source, indices, pad, ArrayRef<bool>{inBounds});
    if (element.isF32())
      return v;
    return nb.create<arith::ExtFOp>(
        VectorType::get({shape.vectorWidth}, nb.getF32Type()), v);
  }

  /// Computes rows [block, block + rows) of the tile for every column:
  /// blocks of columnBlock columns, then the remaining columns one by one.
  Value computeBlock(StructuredBuilder &nb, Value expert, Value lo,
                     Value block, int64_t rows, Value col0, Value colCount,
                     Value tile) {
    SmallVector<BlockRow> blockRows;
    for (int64_t i = 0; i < rows; ++i) {
      Value local = nb.create<arith::AddIOp>(block, nb.index(i));
      blockRows.push_back(blockRow(nb, nb.create<arith::AddIOp>(lo, local)));
    }
    return blockedLoop(
        nb, colCount, shape.columnBlock, tile,
        [&](StructuredBuilder &cb, Value column, int64_t columns,
            Value iter) {
          SmallVector<Value> localColumns, cols;
          for (int64_t c = 0; c < columns; ++c) {
            localColumns.push_back(
                cb.create<arith::AddIOp>(column, cb.index(c)));
            cols.push_back(cb.create<arith::AddIOp>(col0, localColumns.back()));
          }
          SmallVector<Value> results =
              columnResults(cb, expert, cols, blockRows);
          Value updated = iter;
          for (int64_t c = 0; c < columns; ++c)
            for (int64_t i = 0; i < rows; ++i) {
              Value localRow = cb.create<arith::AddIOp>(block, cb.index(i));
              updated = cb.create<tensor::InsertOp>(
                  cb.castFloat(results[c * rows + i], outType), updated,
                  ValueRange{localRow, localColumns[c]});
            }
          return updated;
        });
  }


  /// The f32 results of output columns `cols` for every row of the block,
  /// column-major: result[c * rows + i].
  SmallVector<Value> columnResults(StructuredBuilder &cb, Value expert,
                                   ArrayRef<Value> cols,
                                   ArrayRef<BlockRow> blockRows) {
    int64_t rows = blockRows.size();
    int64_t columns = cols.size();
    bool interleaved = op.getGluLayout() == GluLayout::interleaved;
    // The weight rows feeding each accumulator group: gate (or the plain
    // projection) and, for a GLU, up.
    SmallVector<Value> weightRows;
    for (Value col : cols) {
      if (!glu) {
        weightRows.push_back(col);
        continue;
      }
      Value gateRow =
          interleaved ? cb.create<arith::MulIOp>(col, cb.index(2)) : col;
      weightRows.push_back(gateRow);
      weightRows.push_back(
          interleaved ? cb.create<arith::AddIOp>(gateRow, cb.index(1))
                      : cb.create<arith::AddIOp>(col, cb.index(width)));
    }
    int64_t groups = weightRows.size();
    int64_t vw = shape.vectorWidth;
    auto accType = VectorType::get({vw}, cb.getF32Type());
    Value zeroAcc = cb.create<arith::ConstantOp>(
        DenseElementsAttr::get(accType, cb.getF32FloatAttr(0.0f)));
    SmallVector<Value> init(groups * rows, zeroAcc);

    // acc[g * rows + i] += A[row_i, k:] * W[expert, weightRows[g], k:].
    auto step = [&](StructuredBuilder &sb, Value k, ValueRange accs,
                    bool inBounds) {
      SmallVector<Value> weights;
      for (Value row : weightRows)
        weights.push_back(load(sb, op.getRhs(), {expert, row}, k, inBounds));
      SmallVector<Value> next(accs.begin(), accs.end());
      for (int64_t i = 0; i < rows; ++i) {
        Value a = load(sb, blockRows[i].source, {blockRows[i].aRow}, k,
                       inBounds);
        for (int64_t g = 0; g < groups; ++g)
          next[g * rows + i] =
              sb.create<vector::FMAOp>(a, weights[g], accs[g * rows + i]);
      }
      return next;
    };

    int64_t mainEnd = reduction / vw * vw;
    SmallVector<Value> accs = init;
    if (mainEnd > 0) {
      auto loop = cb.create<scf::ForOp>(
          cb.index(0), cb.index(mainEnd), cb.index(vw), init,
          [&](OpBuilder &nested, Location loc, Value k, ValueRange iter) {
            StructuredBuilder sb(loc, nested);
            sb.create<scf::YieldOp>(step(sb, k, iter, /*inBounds=*/true));
          });
      accs.assign(loop.getResults().begin(), loop.getResults().end());
    }
    if (mainEnd < reduction)
      accs = step(cb, cb.index(mainEnd), accs, /*inBounds=*/false);

    auto reduce = [&](Value acc) -> Value {
      return cb.create<vector::ReductionOp>(
          vector::CombiningKind::ADD, acc, Value(),
          arith::FastMathFlags::reassoc);
    };
    SmallVector<Value> results;
    double alpha = op.getAlpha().convertToDouble();
    double limit = op.getLimit().convertToDouble();
    int64_t perColumn = glu ? 2 : 1;
    for (int64_t c = 0; c < columns; ++c)
      for (int64_t i = 0; i < rows; ++i) {
        Value value = reduce(accs[(c * perColumn) * rows + i]);
        if (glu)
          value = gluScalar(cb, value,
                            reduce(accs[(c * perColumn + 1) * rows + i]),
                            *op.getEpilogue(), alpha, limit);
        results.push_back(cb.create<arith::MulFOp>(value, blockRows[i].scale));
      }
    return results;
  }

  GroupedMatmulOp op;
  StructuredBuilder &b;
  KernelShape shape;
  int64_t numExperts, n, reduction, width;
  bool glu;
  Type outType;
};

struct VectorizeGroupedMatmul : OpRewritePattern<GroupedMatmulOp> {
  VectorizeGroupedMatmul(MLIRContext *context, KernelShape shape)
      : OpRewritePattern(context), shape(shape) {}

  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getRhsLayout() != RhsLayout::nk)
      return rewriter.notifyMatchFailure(op, "weights are not in nk layout");
    StructuredBuilder b(op.getLoc(), rewriter);
    GroupedMatmulKernel kernel(op, b, shape);
    rewriter.replaceOp(op, kernel.build());
    return success();
  }

  KernelShape shape;
};

struct ConvertMoEToVectorPass
    : moe::impl::ConvertMoEToVectorPassBase<ConvertMoEToVectorPass> {
  using Base::Base;

  void runOnOperation() override {
    if (vectorWidth < 1 || rowBlock < 1 || columnBlock < 1 || columnTile < 1) {
      getOperation()->emitError()
          << "convert-moe-to-vector: vector-width, row-block, column-block "
             "and column-tile must be >= 1";
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<VectorizeGroupedMatmul>(
        &getContext(),
        KernelShape{vectorWidth, rowBlock, columnBlock, columnTile});
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
