//===- OuterProductKernel.cpp - CPU grouped matmul over packed weights ----===//
//
// The kernel for weights in the panels layout (`[E, N / P, K, P]`: P columns
// contiguous per k, panels contiguous along K) or the kn layout (`[E, K, N]`),
// per work item (column tile c, expert e):
//
//   for each block of C panels of output columns in tile c:
//     for each block of R routed rows of e:          (weights stay in L2)
//       for k in [0, K):                             (2·R·C vector accumulators)
//         acc[i][j] += broadcast(A[row_i, k]) * W[e, k, panels column j]
//       out[row_i, panels] = cast(scale_i * glu(acc[i]... + bias[e, panels]))
//
// R is `panel-row-block` and C `panel-column-block`: each A broadcast feeds
// 2·C FMAs, so with C = 2 a block of R = 6 rows keeps as many accumulators
// (24) as R = 12 with C = 1, for half the broadcasts and A-row streams. The
// columns of a tile that a whole block does not cover go one panel at a
// time, as do the blocks of a lone row (decode), which reuse no broadcast;
// the rows whole blocks leave go in one block of their count.
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
// bf16 weights in the panels_vnni layout (`[E, N / P, K / 2, 2P]`) hold each
// column's k-pairs together, so one 2·vw-element load is a weight vector for
// two consecutive k. Where `target-cpu` has AVX512_BF16 the pair of A
// elements is broadcast as one 32-bit word and `vdpbf16ps` adds both
// products (A rounded to bf16 first when it is wider); without it the pair
// splits into two f32 vectors by a shift and a mask, for two FMAs.
//
//===----------------------------------------------------------------------===//

#include "GroupedMatmulKernel.h"

#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

class OuterProductKernel : public GroupedMatmulKernel {
public:
  OuterProductKernel(GroupedMatmulOp op, StructuredBuilder &b,
                     KernelShape shape)
      : GroupedMatmulKernel(
            op, b, shape,
            llvm::alignTo(shape.panelColumnTile, op.getEpilogue()
                                                     ? shape.vectorWidth
                                                     : 2 * shape.vectorWidth)),
        vw(shape.vectorWidth), panelColumns(glu ? vw : 2 * vw),
        vnni(op.getRhsLayout() == RhsLayout::panels_vnni),
        dotProduct(vnni && shape.bf16DotProduct &&
                   llvm::is_contained({4, 8, 16}, vw)),
        lhs(op.getLhs()) {
    // vdpbf16ps multiplies bf16 pairs: wider activations are rounded once,
    // outside the work items.
    if (dotProduct &&
        !cast<RankedTensorType>(lhs.getType()).getElementType().isBF16())
      lhs = roundToBF16(b, lhs, vw);
    // The rows that whole blocks leave go in one block of their count: a
    // register block for every size below panel-row-block (past 8 rows,
    // blocks of 8, 4, 2 and 1 instead, to bound the code).
    int64_t block = shape.panelRowBlock;
    rowBlocks.push_back(block);
    if (block <= 8) {
      for (int64_t rows = block - 1; rows >= 1; --rows)
        rowBlocks.push_back(rows);
    } else {
      rowBlocks.append({8, 4, 2, 1});
    }
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
    // Blocks of panel-column-block whole panels, then whole panels one at
    // a time, then at most one partial panel read and written under masks.
    auto wholeOf = [&](Value columns, int64_t step) {
      return tb.create<arith::SubIOp>(
          columns, tb.create<arith::RemUIOp>(columns, tb.index(step)));
    };
    int64_t blockColumns = shape.panelColumnBlock * panelColumns;
    Value blocked = wholeOf(colCount, blockColumns);
    Value whole = wholeOf(colCount, panelColumns);
    auto panels = [&](Value from, Value to, int64_t groups, bool inBounds,
                      Value init) {
      return tb
          .create<scf::ForOp>(
              from, to, tb.index(groups * panelColumns), ValueRange{init},
              [&](OpBuilder &nested, Location loc, Value panel,
                  ValueRange iter) {
                StructuredBuilder pb(loc, nested);
                Value updated = blockedLoop(
                    pb, rowCount, rowBlocks, iter[0],
                    [&](StructuredBuilder &rb, Value start, int64_t rows,
                        Value inner) {
                      if (rows > 1)
                        return microkernel(rb, expert, lo, start, rows, col0,
                                           panel, groups, inBounds, inner);
                      // A lone row (decode) reuses no broadcast: it takes
                      // the panels one at a time, two weight streams at
                      // once instead of 2 x groups.
                      for (int64_t g = 0; g < groups; ++g)
                        inner = microkernel(
                            rb, expert, lo, start, rows, col0,
                            rb.create<arith::AddIOp>(
                                panel, rb.index(g * panelColumns)),
                            1, inBounds, inner);
                      return inner;
                    });
                pb.create<scf::YieldOp>(updated);
              })
          .getResult(0);
    };
    tile = panels(tb.index(0), blocked, shape.panelColumnBlock,
                  /*inBounds=*/true, tile);
    if (shape.panelColumnBlock > 1)
      tile = panels(blocked, whole, 1, /*inBounds=*/true, tile);
    return panels(whole, colCount, 1, /*inBounds=*/false, tile);
  }

private:
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

  /// Rows [start, start + rows) of the tile at the `groups` panels of
  /// columns from `panel`.
  Value microkernel(StructuredBuilder &mb, Value expert, Value lo, Value start,
                    int64_t rows, Value col0, Value panel, int64_t groups,
                    bool inBounds, Value tile) {
    SmallVector<BlockRow> blockRows;
    for (int64_t i = 0; i < rows; ++i)
      blockRows.push_back(blockRow(
          mb, mb.create<arith::AddIOp>(
                  lo, mb.create<arith::AddIOp>(start, mb.index(i)))));

    // The weight columns of the step's vectors: two per group of
    // panelColumns output columns, which start at groupColumns in the tile.
    SmallVector<Value> weightColumns, groupColumns;
    for (int64_t g = 0; g < groups; ++g) {
      groupColumns.push_back(
          mb.create<arith::AddIOp>(panel, mb.index(g * panelColumns)));
      Value column = mb.create<arith::AddIOp>(col0, groupColumns.back());
      if (!glu) {
        weightColumns.push_back(column);
        weightColumns.push_back(
            mb.create<arith::AddIOp>(column, mb.index(vw)));
      } else if (op.getGluLayout() == GluLayout::concatenated) {
        weightColumns.push_back(column);
        weightColumns.push_back(
            mb.create<arith::AddIOp>(column, mb.index(width)));
      } else {
        Value first = mb.create<arith::MulIOp>(column, mb.index(2));
        weightColumns.push_back(first);
        weightColumns.push_back(mb.create<arith::AddIOp>(first, mb.index(vw)));
      }
    }
    int64_t vectors = weightColumns.size();

    auto accType = VectorType::get({vw}, mb.getF32Type());
    Value zero = mb.create<arith::ConstantOp>(
        DenseElementsAttr::get(accType, mb.getF32FloatAttr(0.0f)));
    SmallVector<Value> init(vectors * rows, zero);
    // Where the weight vectors lie, apart from k, resolved once outside the
    // k loop.
    SmallVector<WeightColumn> located;
    for (Value column : weightColumns)
      located.push_back(locate(mb, expert, column));
    SmallVector<WeightColumn> prefetched;
    if (rhsBuffer) {
      // A kn prefetch may start at column N of a partial panel; panels
      // locations are clamped inside the weights already.
      for (auto [column, at] : llvm::zip_equal(weightColumns, located))
        prefetched.push_back(
            panelWidth ? at
                       : locate(mb, expert,
                                mb.create<arith::MinUIOp>(
                                    column, mb.index(n - 1))));
    }
    // In the VNNI layout the loop runs over k-pairs.
    int64_t steps = vnni ? reduction / 2 : reduction;
    auto loop = mb.create<scf::ForOp>(
        mb.index(0), mb.index(steps), mb.index(1), init,
        [&](OpBuilder &nested, Location loc, Value k, ValueRange accs) {
          StructuredBuilder kb(loc, nested);
          if (rhsBuffer)
            prefetch(kb, k, prefetched);
          SmallVector<Value> next =
              vnni ? pairUpdate(kb, blockRows, located, k, accs)
                   : rankOneUpdate(kb, blockRows, located, k, inBounds, accs);
          kb.create<scf::YieldOp>(next);
        });

    // The bias vectors of the weight vectors, shared by the block's rows;
    // indexed by weight column like the accumulators, they go in before the
    // interleaved halves are split.
    SmallVector<Value> biases;
    for (Value column : weightColumns)
      biases.push_back(biasVector(mb, expert, column, vw, inBounds));
    for (int64_t i = 0; i < rows; ++i) {
      Value row = mb.create<arith::AddIOp>(start, mb.index(i));
      Value scale =
          mb.create<vector::BroadcastOp>(accType, blockRows[i].scale);
      for (int64_t g = 0; g < groups; ++g) {
        int64_t first = i * vectors + 2 * g;
        Value acc0 = addBias(mb, loop.getResult(first), biases[2 * g]);
        Value acc1 = addBias(mb, loop.getResult(first + 1), biases[2 * g + 1]);
        Value column = groupColumns[g];
        if (!glu) {
          tile = store(mb, weighted(mb, scale, acc0), tile, row, column,
                       inBounds);
          tile = store(mb, weighted(mb, scale, acc1), tile, row,
                       mb.create<arith::AddIOp>(column, mb.index(vw)),
                       inBounds);
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
        tile =
            store(mb, weighted(mb, scale, value), tile, row, column, inBounds);
      }
    }
    return tile;
  }

  /// A[row, k] as f32 in every lane.
  Value broadcastA(StructuredBuilder &kb, const BlockRow &row, Value k) {
    Value a = kb.create<tensor::ExtractOp>(lhs, ValueRange{row.aRow, k});
    return kb.create<vector::BroadcastOp>(VectorType::get({vw}, kb.getF32Type()),
                                          kb.castFloat(a, kb.getF32Type()));
  }

  /// acc[i][j] += A[row_i, k] * W[e, k, vector j] for every row of the
  /// block: one broadcast per row and one FMA per row and vector.
  SmallVector<Value> rankOneUpdate(StructuredBuilder &kb,
                                   ArrayRef<BlockRow> blockRows,
                                   ArrayRef<WeightColumn> located, Value k,
                                   bool inBounds, ValueRange accs) {
    SmallVector<Value> w;
    for (const WeightColumn &at : located)
      w.push_back(weightVector(kb, at, k, inBounds));
    SmallVector<Value> next;
    for (auto [i, row] : llvm::enumerate(blockRows)) {
      Value a = broadcastA(kb, row, k);
      for (auto [j, wj] : llvm::enumerate(w))
        next.push_back(
            kb.create<vector::FMAOp>(a, wj, accs[i * w.size() + j]));
    }
    return next;
  }

  /// The same for the k-pair `pair` (k = 2 pair, 2 pair + 1) of VNNI
  /// panels: one vdpbf16ps per row and vector, or two FMAs each.
  SmallVector<Value> pairUpdate(StructuredBuilder &kb,
                                ArrayRef<BlockRow> blockRows,
                                ArrayRef<WeightColumn> located, Value pair,
                                ValueRange accs) {
    auto pairsType = VectorType::get({2 * vw}, kb.getBF16Type());
    auto wordsType = VectorType::get({vw}, kb.getI32Type());
    auto accType = VectorType::get({vw}, kb.getF32Type());
    Value pad = kb.create<arith::ConstantOp>(kb.getZeroAttr(kb.getBF16Type()));
    SmallVector<Value> w;
    for (const WeightColumn &at : located)
      w.push_back(kb.create<vector::TransferReadOp>(
          pairsType, op.getRhs(), at.at(pair), pad, ArrayRef<bool>{true}));
    Value k0 = kb.create<arith::MulIOp>(pair, kb.index(2));
    SmallVector<Value> next;
    if (dotProduct) {
      // The row's two bf16 at k0 as one word, broadcast to every lane.
      auto twoType = VectorType::get({2}, kb.getBF16Type());
      auto wordType = VectorType::get({1}, kb.getI32Type());
      for (auto [i, row] : llvm::enumerate(blockRows)) {
        Value two = kb.create<vector::TransferReadOp>(
            twoType, lhs, ValueRange{row.aRow, k0}, pad, ArrayRef<bool>{true});
        Value word = kb.create<vector::BitCastOp>(wordType, two);
        Value a = kb.create<vector::BitCastOp>(
            pairsType, kb.create<vector::BroadcastOp>(wordsType, word));
        for (auto [j, wj] : llvm::enumerate(w))
          next.push_back(kb.create<x86vector::DotBF16Op>(
              accType, accs[i * w.size() + j], a, wj));
      }
      return next;
    }
    // A bf16 is the high half of its f32: the even k of each word shifted
    // up, the odd k with the low half cleared.
    Value sixteen = kb.create<arith::ConstantOp>(
        DenseElementsAttr::get(wordsType, kb.getI32IntegerAttr(16)));
    Value highHalf = kb.create<arith::ConstantOp>(DenseElementsAttr::get(
        wordsType, kb.getI32IntegerAttr(static_cast<int32_t>(0xFFFF0000u))));
    SmallVector<Value> even, odd;
    for (Value pairs : w) {
      Value words = kb.create<vector::BitCastOp>(wordsType, pairs);
      even.push_back(kb.create<vector::BitCastOp>(
          accType, kb.create<arith::ShLIOp>(words, sixteen)));
      odd.push_back(kb.create<vector::BitCastOp>(
          accType, kb.create<arith::AndIOp>(words, highHalf)));
    }
    Value k1 = kb.create<arith::AddIOp>(k0, kb.index(1));
    for (auto [i, row] : llvm::enumerate(blockRows)) {
      Value a0 = broadcastA(kb, row, k0), a1 = broadcastA(kb, row, k1);
      for (int64_t j = 0, e = w.size(); j < e; ++j)
        next.push_back(kb.create<vector::FMAOp>(
            a1, odd[j],
            kb.create<vector::FMAOp>(a0, even[j], accs[i * e + j])));
    }
    return next;
  }

  /// `value` [rows, K] rounded to bf16, as a new tensor: an scf.forall over
  /// blocks of rows (on the threads, like the work items), `width` lanes at
  /// a time with a masked tail.
  static Value roundToBF16(StructuredBuilder &rb, Value value, int64_t width) {
    constexpr int64_t kRowsPerItem = 8;
    auto type = cast<RankedTensorType>(value.getType());
    int64_t k = type.getDimSize(1);
    Value rows = rb.dimValue(value, 0);
    Value init = rb.empty({rb.dimSize(value, 0), rb.getIndexAttr(k)},
                          rb.getBF16Type());
    Value items = rb.create<arith::DivUIOp>(
        rb.create<arith::AddIOp>(rows, rb.index(kRowsPerItem - 1)),
        rb.index(kRowsPerItem));
    auto forall = rb.create<scf::ForallOp>(ArrayRef<OpFoldResult>{items},
                                           ValueRange{init}, std::nullopt,
                                           nullptr);
    OpBuilder::InsertionGuard guard(rb);
    rb.setInsertionPoint(forall.getBody()->getTerminator());
    Value first = rb.create<arith::MulIOp>(forall.getBody()->getArgument(0),
                                           rb.index(kRowsPerItem));
    Value count = rb.create<arith::MinUIOp>(
        rb.index(kRowsPerItem), rb.create<arith::SubIOp>(rows, first));
    SmallVector<OpFoldResult> offsets{first, rb.getIndexAttr(0)},
        sizes{count, rb.getIndexAttr(k)},
        strides{rb.getIndexAttr(1), rb.getIndexAttr(1)};
    Value block = rb.create<tensor::ExtractSliceOp>(
        forall.getBody()->getArgument(1), offsets, sizes, strides);
    Type element = type.getElementType();
    auto sourceVector = VectorType::get({width}, element);
    auto f32Vector = VectorType::get({width}, rb.getF32Type());
    auto bf16Vector = VectorType::get({width}, rb.getBF16Type());
    Value pad = rb.create<arith::ConstantOp>(rb.getZeroAttr(element));
    int64_t whole = k - k % width;
    auto forRange = [&](StructuredBuilder &fb, Value from, Value to,
                        int64_t step, Value init,
                        function_ref<Value(StructuredBuilder &, Value, Value)>
                            body) {
      return fb
          .create<scf::ForOp>(from, to, fb.index(step), ValueRange{init},
                              [&](OpBuilder &nested, Location loc, Value i,
                                  ValueRange iter) {
                                StructuredBuilder nb(loc, nested);
                                nb.create<scf::YieldOp>(body(nb, i, iter[0]));
                              })
          .getResult(0);
    };
    block = forRange(
        rb, rb.index(0), count, 1, block,
        [&](StructuredBuilder &lb, Value r, Value iter) {
          Value row = lb.create<arith::AddIOp>(first, r);
          auto columns = [&](StructuredBuilder &cb, Value c, Value out,
                             bool inBounds) -> Value {
            Value v = cb.create<vector::TransferReadOp>(
                sourceVector, value, ValueRange{row, c}, pad,
                ArrayRef<bool>{inBounds});
            if (!element.isF32())
              v = cb.create<arith::ExtFOp>(f32Vector, v);
            Value rounded = cb.create<arith::TruncFOp>(bf16Vector, v);
            return cb
                .create<vector::TransferWriteOp>(rounded, out,
                                                 ValueRange{r, c},
                                                 ArrayRef<bool>{inBounds})
                .getResult();
          };
          Value out = forRange(lb, lb.index(0), lb.index(whole), width, iter,
                               [&](StructuredBuilder &cb, Value c, Value acc) {
                                 return columns(cb, c, acc, true);
                               });
          if (whole < k)
            out = columns(lb, lb.index(whole), out, false);
          return out;
        });
    rb.setInsertionPointToStart(
        cast<scf::InParallelOp>(forall.getBody()->getTerminator()).getBody());
    rb.create<tensor::ParallelInsertSliceOp>(
        block, forall.getBody()->getArgument(1), offsets, sizes, strides);
    return forall.getResult(0);
  }

  /// Where the weight vector of expert `expert` starting at output column
  /// `column` lies. In the panels layout a vector starting at a multiple of
  /// the vector width stays in one panel; a column past the last one (the
  /// second vector of a partial panel, whose results are masked off) is
  /// clamped to the last vector so the address stays inside the weights.
  WeightColumn locate(StructuredBuilder &lb, Value expert, Value column) {
    if (!panelWidth)
      return {{expert}, {column}};
    column = lb.create<arith::MinUIOp>(column, lb.index(n - vw));
    Value inPanel = lb.create<arith::RemUIOp>(column, lb.index(panelWidth));
    if (vnni)
      inPanel = lb.create<arith::MulIOp>(inPanel, lb.index(2));
    return {{expert, lb.create<arith::DivUIOp>(column, lb.index(panelWidth))},
            {inPanel}};
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
    // A VNNI step covers two rows of k: the same distance in bytes.
    int64_t distance = vnni ? llvm::divideCeil(shape.prefetchDistance, 2)
                            : shape.prefetchDistance;
    int64_t last = (vnni ? reduction / 2 : reduction) - 1;
    Value ahead = kb.create<arith::MinUIOp>(
        kb.create<arith::AddIOp>(k, kb.index(distance)), kb.index(last));
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
  /// panels_vnni weights, and whether their pairs go through vdpbf16ps.
  bool vnni, dotProduct;
  /// The A operand: lhs, or lhs rounded to bf16 for vdpbf16ps.
  Value lhs;
  SmallVector<int64_t> rowBlocks;
  Value rhsBuffer;
};

} // namespace

bool mlir::moe::outerProductKernelApplies(GroupedMatmulOp op,
                                          KernelShape shape) {
  if (op.getRhsLayout() == RhsLayout::kn)
    return true;
  auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
  RhsLayout layout = op.getRhsLayout();
  if (layout == RhsLayout::panels_vnni && !rhsType.getElementType().isBF16())
    return false;
  if (layout != RhsLayout::panels && layout != RhsLayout::panels_vnni)
    return false;
  WeightShape weights = weightShape(rhsType, layout);
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
