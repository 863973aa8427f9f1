//===- OuterProductKernel.cpp - CPU grouped matmul over packed weights ----===//
//
// The kernel for weights in the panels layout (`[E, N / P, K, P]`: P columns
// contiguous per k, panels contiguous along K) or the kn layout (`[E, K, N]`),
// per work item (column tile c, expert e):
//
//   for each panel of output columns in tile c:      (weights stay in L2)
//     for each block of R routed rows of e:
//       for k in [0, K):                             (2·R vector accumulators)
//         acc[i][j] += broadcast(A[row_i, k]) * W[e, k, panel column j]
//       out[row_i, panel] = cast(scale_i * glu(acc[i]...))
//
// A panel is two weight vectors per k: 2·vw output columns of a plain
// projection, or vw output columns with their gate and up weights for a GLU
// (the two halves of the concatenated layout, or 2·vw interleaved columns
// split by shuffles in the epilogue). No horizontal reductions: the
// epilogue works on whole vectors. In the panels layout each weight vector
// is read from one contiguous stream; in the kn layout consecutive k are N
// elements apart, which defeats the hardware prefetchers and the cache sets,
// so that layout is the slower one. Both prefetch `prefetch-distance` rows
// of k ahead.
//
//===----------------------------------------------------------------------===//

#include "GroupedMatmulKernel.h"

#include "moe/Dialect/MoE/Utils/Activation.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

class OuterProductKernel : public GroupedMatmulKernel {
public:
  OuterProductKernel(GroupedMatmulOp op, StructuredBuilder &b,
                     KernelShape shape)
      : GroupedMatmulKernel(
            op, b, shape,
            llvm::alignTo(shape.panelColumnTile,
                          op.getEpilogue() ? shape.vectorWidth
                                           : 2 * shape.vectorWidth)),
        vw(shape.vectorWidth), panelColumns(glu ? vw : 2 * vw) {
    int64_t block = shape.panelRowBlock;
    rowBlocks.push_back(block);
    if (block > 8)
      rowBlocks.push_back(8);
    if (block > 4)
      rowBlocks.push_back(4);
    if (block > 1)
      rowBlocks.push_back(1);
  }

protected:
  Value computeTile(StructuredBuilder &tb, Value expert, Value lo,
                    Value rowCount, Value col0, Value colCount,
                    Value tile) override {
    if (shape.prefetchDistance > 0) {
      auto tensorType = cast<TensorType>(op.getRhs().getType());
      auto toBuffer = tb.create<bufferization::ToBufferOp>(
          bufferization::getMemRefTypeWithFullyDynamicLayout(tensorType),
          op.getRhs());
      toBuffer.setReadOnly(true);
      rhsBuffer = toBuffer.getResult();
    }
    // Whole panels, then at most one partial panel read and written under
    // masks.
    Value full = tb.create<arith::SubIOp>(
        colCount,
        tb.create<arith::RemUIOp>(colCount, tb.index(panelColumns)));
    auto panels = [&](Value from, Value to, bool inBounds, Value init) {
      return tb
          .create<scf::ForOp>(
              from, to, tb.index(panelColumns), ValueRange{init},
              [&](OpBuilder &nested, Location loc, Value panel,
                  ValueRange iter) {
                StructuredBuilder pb(loc, nested);
                Value updated = blockedLoop(
                    pb, rowCount, rowBlocks, iter[0],
                    [&](StructuredBuilder &rb, Value start, int64_t rows,
                        Value inner) {
                      return microkernel(rb, expert, lo, start, rows, col0,
                                         panel, inBounds, inner);
                    });
                pb.create<scf::YieldOp>(updated);
              })
          .getResult(0);
    };
    tile = panels(tb.index(0), full, /*inBounds=*/true, tile);
    return panels(full, colCount, /*inBounds=*/false, tile);
  }

private:
  /// Rows [start, start + rows) of the tile at panel columns from `panel`.
  Value microkernel(StructuredBuilder &mb, Value expert, Value lo, Value start,
                    int64_t rows, Value col0, Value panel, bool inBounds,
                    Value tile) {
    SmallVector<BlockRow> blockRows;
    for (int64_t i = 0; i < rows; ++i)
      blockRows.push_back(blockRow(
          mb, mb.create<arith::AddIOp>(
                  lo, mb.create<arith::AddIOp>(start, mb.index(i)))));

    // The weight columns of the panel's two vectors.
    Value column = mb.create<arith::AddIOp>(col0, panel);
    Value first = column, second;
    if (!glu) {
      second = mb.create<arith::AddIOp>(column, mb.index(vw));
    } else if (op.getGluLayout() == GluLayout::concatenated) {
      second = mb.create<arith::AddIOp>(column, mb.index(width));
    } else {
      first = mb.create<arith::MulIOp>(column, mb.index(2));
      second = mb.create<arith::AddIOp>(first, mb.index(vw));
    }

    auto accType = VectorType::get({vw}, mb.getF32Type());
    Value zero = mb.create<arith::ConstantOp>(
        DenseElementsAttr::get(accType, mb.getF32FloatAttr(0.0f)));
    SmallVector<Value> init(2 * rows, zero);
    Value lhs = op.getLhs();
    // Where the two weight vectors lie, apart from k, resolved once outside
    // the k loop.
    WeightColumn firstAt = locate(mb, expert, first);
    WeightColumn secondAt = locate(mb, expert, second);
    SmallVector<WeightColumn> prefetched;
    if (rhsBuffer) {
      // A kn prefetch may start at column N of a partial panel; panels
      // locations are clamped inside the weights already.
      for (auto [column, at] : {std::pair(first, firstAt), {second, secondAt}})
        prefetched.push_back(
            panelWidth ? at
                       : locate(mb, expert,
                                mb.create<arith::MinUIOp>(
                                    column, mb.index(n - 1))));
    }
    auto loop = mb.create<scf::ForOp>(
        mb.index(0), mb.index(reduction), mb.index(1), init,
        [&](OpBuilder &nested, Location loc, Value k, ValueRange accs) {
          StructuredBuilder kb(loc, nested);
          Value w0 = weightVector(kb, firstAt, k, inBounds);
          Value w1 = weightVector(kb, secondAt, k, inBounds);
          if (rhsBuffer)
            prefetch(kb, k, prefetched);
          SmallVector<Value> next;
          for (int64_t i = 0; i < rows; ++i) {
            Value a = kb.create<tensor::ExtractOp>(
                lhs, ValueRange{blockRows[i].aRow, k});
            a = kb.create<vector::BroadcastOp>(
                accType, kb.castFloat(a, kb.getF32Type()));
            next.push_back(kb.create<vector::FMAOp>(a, w0, accs[2 * i]));
            next.push_back(kb.create<vector::FMAOp>(a, w1, accs[2 * i + 1]));
          }
          kb.create<scf::YieldOp>(next);
        });

    for (int64_t i = 0; i < rows; ++i) {
      Value row = mb.create<arith::AddIOp>(start, mb.index(i));
      Value scale =
          mb.create<vector::BroadcastOp>(accType, blockRows[i].scale);
      Value acc0 = loop.getResult(2 * i), acc1 = loop.getResult(2 * i + 1);
      if (!glu) {
        tile = store(mb, mb.create<arith::MulFOp>(acc0, scale), tile, row,
                     panel, inBounds);
        tile = store(mb, mb.create<arith::MulFOp>(acc1, scale), tile, row,
                     mb.create<arith::AddIOp>(panel, mb.index(vw)), inBounds);
        continue;
      }
      Value gate = acc0, up = acc1;
      if (op.getGluLayout() == GluLayout::interleaved) {
        SmallVector<int64_t> even, odd;
        for (int64_t j = 0; j < vw; ++j) {
          even.push_back(2 * j);
          odd.push_back(2 * j + 1);
        }
        gate = mb.create<vector::ShuffleOp>(acc0, acc1, even);
        up = mb.create<vector::ShuffleOp>(acc0, acc1, odd);
      }
      Value value = gluActivation(mb, gate, up, *op.getEpilogue(),
                                  op.getAlpha().convertToDouble(),
                                  op.getLimit().convertToDouble());
      tile = store(mb, mb.create<arith::MulFOp>(value, scale), tile, row,
                   panel, inBounds);
    }
    return tile;
  }

  /// The indices of a weight vector W[e][column .. column + vw, k] other
  /// than k: those before it and after it.
  struct WeightColumn {
    SmallVector<Value> outer, inner;

    SmallVector<Value> at(Value k) const {
      SmallVector<Value> indices(outer);
      indices.push_back(k);
      indices.append(inner);
      return indices;
    }
  };

  /// Where the weight vector of expert `expert` starting at output column
  /// `column` lies. In the panels layout a vector starting at a multiple of
  /// the vector width stays in one panel; a column past the last one (the
  /// second vector of a partial panel, whose results are masked off) is
  /// clamped to the last vector so the address stays inside the weights.
  WeightColumn locate(StructuredBuilder &lb, Value expert, Value column) {
    if (!panelWidth)
      return {{expert}, {column}};
    column = lb.create<arith::MinUIOp>(column, lb.index(n - vw));
    return {{expert, lb.create<arith::DivUIOp>(column, lb.index(panelWidth))},
            {lb.create<arith::RemUIOp>(column, lb.index(panelWidth))}};
  }

  /// The weight vector at `column` and `k` as f32; in the kn layout, columns
  /// past N read as zero unless `inBounds`.
  Value weightVector(StructuredBuilder &kb, const WeightColumn &column,
                     Value k, bool inBounds) {
    return loadF32(kb, op.getRhs(), column.at(k), vw, inBounds || panelWidth);
  }

  /// Prefetches the weight vectors at `columns`, `prefetch-distance` rows of
  /// k ahead (clamped to the last row).
  void prefetch(StructuredBuilder &kb, Value k,
                ArrayRef<WeightColumn> columns) {
    Value ahead = kb.create<arith::MinUIOp>(
        kb.create<arith::AddIOp>(k, kb.index(shape.prefetchDistance)),
        kb.index(reduction - 1));
    for (const WeightColumn &column : columns)
      kb.create<memref::PrefetchOp>(rhsBuffer, column.at(ahead),
                                    /*isWrite=*/false, /*localityHint=*/3,
                                    /*isDataCache=*/true);
  }

  /// Writes the f32 vector `value` at tile[row, column...], cast to the
  /// result type; columns past the tile are masked off unless `inBounds`.
  Value store(StructuredBuilder &sb, Value value, Value tile, Value row,
              Value column, bool inBounds) {
    if (!outType.isF32())
      value = sb.create<arith::TruncFOp>(VectorType::get({vw}, outType),
                                         value);
    return sb
        .create<vector::TransferWriteOp>(value, tile, ValueRange{row, column},
                                         ArrayRef<bool>{inBounds})
        .getResult();
  }

  int64_t vw, panelColumns;
  SmallVector<int64_t> rowBlocks;
  Value rhsBuffer;
};

} // namespace

bool mlir::moe::outerProductKernelApplies(GroupedMatmulOp op,
                                          KernelShape shape) {
  if (op.getRhsLayout() == RhsLayout::kn)
    return true;
  if (op.getRhsLayout() != RhsLayout::panels)
    return false;
  WeightShape weights = weightShape(
      cast<RankedTensorType>(op.getRhs().getType()), RhsLayout::panels);
  int64_t vw = shape.vectorWidth;
  bool concatenated = op.getEpilogue() &&
                      op.getGluLayout() == GluLayout::concatenated;
  return weights.panelWidth % vw == 0 &&
         (!concatenated || (weights.columns / 2) % vw == 0);
}

Value mlir::moe::buildOuterProductKernel(GroupedMatmulOp op,
                                         StructuredBuilder &b,
                                         KernelShape shape) {
  return OuterProductKernel(op, b, shape).build();
}
