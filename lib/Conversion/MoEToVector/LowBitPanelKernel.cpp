//===- LowBitPanelKernel.cpp - CPU grouped matmul over low-bit panels -----===//
//
// The kernel for quantized weights (`#moe.weight_quant`: mxfp4, int4, int8,
// fp8_e4m3) in the panels layout (LowBitPanelKernel.h), per work item
// (column tile c, expert e):
//
//   for each step of 4 weight vectors of tile c:       (64 columns, or 32
//     for each block of R routed rows of e:            with their up halves)
//       for each scale group g along K:
//         partial[i][j] = 0
//         for each stored row s of the group's panel rows:
//           w[j] = decode(W[e, panel_j, s, vector j])  (once per row block)
//           partial[i][j] += A[row_i, k(s)] * w[j]     (f32 FMAs or vdpbf16ps)
//         acc[i][j] += partial[i][j] * scale[g, vector j]
//       out[row_i, columns] = cast(scale_i * glu(acc[i]... + bias))
//
// Each weight vector is decoded once per stored row and row block and
// serves every row of the block; there are no horizontal reductions, and the
// scales multiply the partial sums once per group instead of every weight.
// How each format's bytes are decoded is LowBitPanelDecode.h's concern.
//
//===----------------------------------------------------------------------===//

#include "LowBitPanelKernel.h"
#include "LowBitPanelDecode.h"

#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Quantization.h"
#include "moe/Dialect/MoE/Utils/Routing.h"
#include "moe/Dialect/MoE/Utils/WeightDequantization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"

using namespace mlir;
using namespace mlir::moe;

/// Weight vectors per step of the microkernel: 64 columns of a plain
/// projection (one 64-byte row of a 64-wide mxfp4 or int4 panel holds
/// their k-pairs), or 32 output columns with their up halves for a GLU.
static constexpr int64_t kVectorsPerStep = 4;

/// The most rows of a register block: 4 accumulators and 4 partial sums per
/// row stay in the 32 vector registers of AVX-512 with the decoded weights.
static constexpr int64_t kMaxRowBlock = 3;

namespace {

class LowBitPanelKernel : public GroupedMatmulKernel {
public:
  LowBitPanelKernel(GroupedMatmulOp op, StructuredBuilder &b, KernelShape shape)
      : GroupedMatmulKernel(op, b, shape, tileColumns(op, shape)),
        quant(op.getWeightQuantAttr()), format(quant.getFormat()),
        vw(shape.vectorWidth), packed(isPackedWeightFormat(format)),
        decoder(op, shape) {
    k = cast<RankedTensorType>(op.getLhs().getType()).getDimSize(1);
    groupK = std::min(quant.getBlockK(), k);
    stepColumns = glu ? vw * kVectorsPerStep / 2 : vw * kVectorsPerStep;
    int64_t block = std::min(shape.panelRowBlock, kMaxRowBlock);
    for (int64_t rows = block; rows >= 1; --rows)
      rowBlocks.push_back(rows);
  }

  StringRef decodeName() const { return decoder.name(); }

protected:
  Value computeTile(StructuredBuilder &tb, Value expert, Value lo,
                    Value rowCount, Value col0, Value colCount,
                    Value tile) override {
    // Whole steps of columns, then at most one partial step read from
    // clamped vectors and written under masks.
    Value full = tb.create<arith::SubIOp>(
        colCount, tb.create<arith::RemUIOp>(colCount, tb.index(stepColumns)));
    auto steps = [&](Value from, Value to, bool inBounds, Value init) {
      return tb
          .create<scf::ForOp>(from, to, tb.index(stepColumns), ValueRange{init},
                              [&](OpBuilder &nested, Location loc, Value local,
                                  ValueRange iter) {
                                StructuredBuilder pb(loc, nested);
                                Value updated = blockedLoop(
                                    pb, rowCount, rowBlocks, iter[0],
                                    [&](StructuredBuilder &rb, Value start,
                                        int64_t rows, Value inner) {
                                      return microkernel(rb, expert, lo, start,
                                                         rows, col0, local,
                                                         inBounds, inner);
                                    });
                                pb.create<scf::YieldOp>(updated);
                              })
          .getResult(0);
    };
    tile = steps(tb.index(0), full, /*inBounds=*/true, tile);
    // Where the steps divide the columns every tile is whole steps.
    if (width % stepColumns == 0)
      return tile;
    return steps(full, colCount, /*inBounds=*/false, tile);
  }

private:
  static int64_t tileColumns(GroupedMatmulOp op, KernelShape shape) {
    int64_t step =
        shape.vectorWidth * kVectorsPerStep / (op.getEpilogue() ? 2 : 1);
    return llvm::alignTo(shape.panelColumnTile, step);
  }

  /// The vector of weight column `column`, clamped to the last vector so
  /// that the lanes past N (masked off in the result) stay in the weights.
  PanelVector locate(StructuredBuilder &lb, Value column) {
    column = lb.create<arith::MinUIOp>(column, lb.index(n - vw));
    return {column, lb.create<arith::DivUIOp>(column, lb.index(panelWidth)),
            lb.create<arith::RemUIOp>(column, lb.index(panelWidth))};
  }

  VectorType f32Vector() { return VectorType::get({vw}, b.getF32Type()); }

  /// In the word order, the first of the step's vectors whose 64-byte row
  /// vector `j` shares: one row holds a plain step's 64 columns (or 64
  /// interleaved GLU columns), or the 32 gate or the 32 up columns of a
  /// concatenated GLU. Steps start at multiples of their width (64 columns,
  /// or 32 for a GLU), which divides N and the GLU half in 64-wide panels,
  /// so the columns of a row's vectors lie in one panel.
  int64_t rowOwner(int64_t j) {
    bool concatenated = glu && op.getGluLayout() == GluLayout::concatenated;
    return concatenated ? j - j % (kVectorsPerStep / 2) : 0;
  }

  /// One stored row `s` of the group: partial[i][j] += A[row_i, k(s)...] *
  /// decode(W[e, panel_j, s, vector j]).
  SmallVector<Value> step(StructuredBuilder &sb, ArrayRef<BlockRow> rows,
                          ArrayRef<PanelVector> vectors,
                          ArrayRef<GroupTerms> terms, Value expert, Value s,
                          Value table, ValueRange partials) {
    auto i8Vector = VectorType::get({vw}, sb.getI8Type());
    auto i32Vector = VectorType::get({vw}, sb.getI32Type());
    Type element =
        cast<RankedTensorType>(op.getRhs().getType()).getElementType();
    Value pad = sb.create<arith::ConstantOp>(sb.getZeroAttr(element));
    SmallVector<Value> next(partials.begin(), partials.end());
    int64_t numVectors = vectors.size();
    auto update = [&](int64_t i, int64_t j, Value product) {
      next[i * numVectors + j] = product;
    };
    // The stored bytes of each vector: its vw bytes, or in the word order
    // the 4 vw bytes of its lanes, or (Bf16WordTableDot) the whole row,
    // read once for the vectors that share it.
    SmallVector<Value> raw;
    bool wholeRows = decoder.kind() == PanelDecode::Bf16WordTableDot;
    for (auto [j, at] : llvm::enumerate(vectors)) {
      if (wholeRows && rowOwner(j) != static_cast<int64_t>(j)) {
        raw.push_back(raw[rowOwner(j)]);
        continue;
      }
      int64_t width = wholeRows             ? kWordOrderPanelWidth
                      : decoder.wordOrder() ? 4 * vw
                                            : vw;
      Value offset = at.inPanel;
      if (wholeRows)
        offset = sb.index(0);
      else if (decoder.wordOrder())
        offset = sb.create<arith::MulIOp>(
            sb.create<arith::RemUIOp>(at.inPanel, sb.index(16)), sb.index(4));
      Value v = sb.create<vector::TransferReadOp>(
          VectorType::get({width}, element), op.getRhs(),
          ValueRange{expert, at.panel, s, offset}, pad, ArrayRef<bool>{true});
      if (element != sb.getI8Type())
        v = sb.create<arith::BitcastOp>(i8Vector, v);
      raw.push_back(v);
    }
    Value k0 = packed ? sb.create<arith::MulIOp>(s, sb.index(2)) : s;

    if (decoder.kind() == PanelDecode::Bf16TableDot || wholeRows) {
      auto pairsType = VectorType::get({2 * vw}, sb.getBF16Type());
      SmallVector<Value> w;
      for (auto [j, bytes] : llvm::enumerate(raw))
        w.push_back(decoder.decodeVector(sb, bytes, vectors[j], terms[j], table)
                        .front());
      auto twoType = VectorType::get({2}, sb.getBF16Type());
      auto wordType = VectorType::get({1}, sb.getI32Type());
      Value zero =
          sb.create<arith::ConstantOp>(sb.getZeroAttr(sb.getBF16Type()));
      for (auto [i, row] : llvm::enumerate(rows)) {
        // The row's two bf16 at k0 as one word, broadcast to every lane.
        Value two = sb.create<vector::TransferReadOp>(
            twoType, op.getLhs(), ValueRange{row.aRow, k0}, zero,
            ArrayRef<bool>{true});
        Value a = sb.create<vector::BitCastOp>(
            pairsType,
            sb.create<vector::BroadcastOp>(
                i32Vector, sb.create<vector::BitCastOp>(wordType, two)));
        for (int64_t j = 0; j < numVectors; ++j)
          update(i, j,
                 sb.create<x86vector::DotBF16Op>(
                     f32Vector(), next[i * numVectors + j], a, w[j]));
      }
      return next;
    }

    // f32 weights: one vector per k (two for the 4-bit formats).
    SmallVector<SmallVector<Value>> w;
    for (auto [j, bytes] : llvm::enumerate(raw))
      w.push_back(decoder.decodeVector(sb, bytes, vectors[j], terms[j], table));
    for (auto [i, row] : llvm::enumerate(rows)) {
      SmallVector<Value> a;
      for (int64_t d = 0; d < (packed ? 2 : 1); ++d) {
        Value kd = d ? sb.create<arith::AddIOp>(k0, sb.index(d)) : k0;
        Value scalar =
            sb.create<tensor::ExtractOp>(op.getLhs(), ValueRange{row.aRow, kd});
        a.push_back(sb.create<vector::BroadcastOp>(
            f32Vector(), sb.castFloat(scalar, sb.getF32Type())));
      }
      for (int64_t j = 0; j < numVectors; ++j) {
        Value acc = next[i * numVectors + j];
        for (auto [aPart, wPart] : llvm::zip_equal(a, w[j]))
          acc = sb.create<vector::FMAOp>(aPart, wPart, acc);
        update(i, j, acc);
      }
    }
    return next;
  }

  /// The sum of A row `aRow`'s bf16 activations over the scale group from
  /// `k0`, as f32: vdpbf16ps against pairs of 1.0, as the products are
  /// taken, 32 at a time (groups are multiples of 32 of K, or all of K;
  /// past K the reads are zero).
  Value activationSum(StructuredBuilder &sb, Value aRow, Value k0) {
    auto pairsType = VectorType::get({2 * vw}, sb.getBF16Type());
    Value zero = sb.create<arith::ConstantOp>(sb.getZeroAttr(sb.getBF16Type()));
    Value ones = splatNumber(sb, pairsType, 1);
    Value sum = splatNumber(sb, f32Vector(), 0);
    for (int64_t c = 0; c < groupK; c += 2 * vw) {
      Value a = sb.create<vector::TransferReadOp>(
          pairsType, op.getLhs(),
          ValueRange{aRow, sb.create<arith::AddIOp>(k0, sb.index(c))}, zero,
          ArrayRef<bool>{false});
      sum = sb.create<x86vector::DotBF16Op>(f32Vector(), sum, ones, a);
    }
    return sb.create<vector::ReductionOp>(vector::CombiningKind::ADD, sum);
  }

  /// Rows [start, start + rows) of the tile at the step of columns from
  /// `local` (tile-relative).
  Value microkernel(StructuredBuilder &mb, Value expert, Value lo, Value start,
                    int64_t rows, Value col0, Value local, bool inBounds,
                    Value tile) {
    SmallVector<BlockRow> blockRows;
    for (int64_t i = 0; i < rows; ++i)
      blockRows.push_back(
          blockRow(mb, mb.create<arith::AddIOp>(
                           lo, mb.create<arith::AddIOp>(start, mb.index(i)))));

    // The weight columns of the step's vectors: consecutive vectors of a
    // plain projection; the gate vectors then the up vectors of a GLU.
    Value column = mb.create<arith::AddIOp>(col0, local);
    SmallVector<Value> columns;
    bool interleaved = glu && op.getGluLayout() == GluLayout::interleaved;
    for (int64_t j = 0; j < kVectorsPerStep; ++j) {
      if (!glu || interleaved) {
        Value first = interleaved
                          ? mb.create<arith::MulIOp>(column, mb.index(2))
                          : column;
        columns.push_back(mb.create<arith::AddIOp>(first, mb.index(j * vw)));
        continue;
      }
      int64_t half = kVectorsPerStep / 2;
      Value base =
          j < half ? column : mb.create<arith::AddIOp>(column, mb.index(width));
      columns.push_back(
          mb.create<arith::AddIOp>(base, mb.index((j % half) * vw)));
    }
    SmallVector<PanelVector> vectors;
    for (Value c : columns)
      vectors.push_back(locate(mb, c));

    int64_t numVectors = vectors.size();
    Value zero = splatNumber(mb, f32Vector(), 0);
    SmallVector<Value> init(rows * numVectors, zero);
    Value table = decoder.table(mb);

    // Stored rows per group along K and in all.
    int64_t perStep = packed ? 2 : 1;
    int64_t groupRows = groupK / perStep;
    int64_t storedRows = k / perStep;
    int64_t groups = llvm::divideCeil(storedRows, groupRows);
    auto group = [&](StructuredBuilder &gb, Value g, ValueRange accs) {
      SmallVector<GroupTerms> terms;
      for (const PanelVector &at : vectors)
        terms.push_back(decoder.groupTerms(gb, expert, g, at));
      Value first = gb.create<arith::MulIOp>(g, gb.index(groupRows));
      Value last = gb.create<arith::MinUIOp>(
          gb.create<arith::AddIOp>(first, gb.index(groupRows)),
          gb.index(storedRows));
      auto loop = gb.create<scf::ForOp>(
          first, last, gb.index(1), init,
          [&](OpBuilder &nested, Location loc, Value s, ValueRange partials) {
            StructuredBuilder sb(loc, nested);
            sb.create<scf::YieldOp>(step(sb, blockRows, vectors, terms, expert,
                                         s, table, partials));
          });
      SmallVector<Value> next;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < numVectors; ++j)
          next.push_back(gb.create<vector::FMAOp>(
              loop.getResult(i * numVectors + j), terms[j].scale,
              accs[i * numVectors + j]));
      if (decoder.foldsZeroPoints()) {
        // The codes were multiplied as they are: sum (c - z) * s * a is
        // s * sum c * a - z * s * sum a over the group.
        Value k0 = gb.create<arith::MulIOp>(first, gb.index(perStep));
        for (auto [i, row] : llvm::enumerate(blockRows)) {
          Value negated =
              gb.create<arith::NegFOp>(activationSum(gb, row.aRow, k0));
          Value lanes = gb.create<vector::BroadcastOp>(f32Vector(), negated);
          for (int64_t j = 0; j < numVectors; ++j)
            next[i * numVectors + j] = gb.create<vector::FMAOp>(
                lanes, terms[j].zero, next[i * numVectors + j]);
        }
      }
      return next;
    };
    SmallVector<Value> accs;
    if (groups == 1) {
      accs = group(mb, mb.index(0), init);
    } else {
      auto loop = mb.create<scf::ForOp>(
          mb.index(0), mb.index(groups), mb.index(1), init,
          [&](OpBuilder &nested, Location loc, Value g, ValueRange iter) {
            StructuredBuilder gb(loc, nested);
            gb.create<scf::YieldOp>(group(gb, g, iter));
          });
      accs.assign(loop.getResults().begin(), loop.getResults().end());
    }
    return epilogue(mb, expert, blockRows, columns, accs, start, local,
                    inBounds, tile);
  }

  /// Bias, GLU, row scale and cast of the block's accumulators, stored at
  /// the step's output columns (masked past the tile unless `inBounds`).
  Value epilogue(StructuredBuilder &eb, Value expert,
                 ArrayRef<BlockRow> blockRows, ArrayRef<Value> columns,
                 ArrayRef<Value> accs, Value start, Value local, bool inBounds,
                 Value tile) {
    int64_t numVectors = columns.size();
    SmallVector<Value> bias;
    for (Value c : columns)
      bias.push_back(biasVector(eb, expert, c, vw, inBounds));
    for (auto [i, row] : llvm::enumerate(blockRows)) {
      Value outRow = eb.create<arith::AddIOp>(start, eb.index(i));
      Value scale = eb.create<vector::BroadcastOp>(f32Vector(), row.scale);
      SmallVector<Value> values;
      for (int64_t j = 0; j < numVectors; ++j)
        values.push_back(addBias(eb, accs[i * numVectors + j], bias[j]));
      SmallVector<Value> outputs;
      if (!glu) {
        outputs = values;
      } else {
        int64_t half = numVectors / 2;
        for (int64_t j = 0; j < half; ++j) {
          Value gate = values[j], up = values[half + j];
          if (op.getGluLayout() == GluLayout::interleaved) {
            SmallVector<int64_t> even, odd;
            for (int64_t l = 0; l < vw; ++l) {
              even.push_back(2 * l);
              odd.push_back(2 * l + 1);
            }
            gate = eb.create<vector::ShuffleOp>(values[2 * j],
                                                values[2 * j + 1], even);
            up = eb.create<vector::ShuffleOp>(values[2 * j], values[2 * j + 1],
                                              odd);
          }
          outputs.push_back(gluActivation(eb, gate, up, *op.getEpilogue(),
                                          op.getAlpha().convertToDouble(),
                                          op.getLimit().convertToDouble()));
        }
      }
      for (auto [j, value] : llvm::enumerate(outputs)) {
        Value out = weighted(eb, scale, value);
        if (!outType.isF32())
          out = eb.create<arith::TruncFOp>(VectorType::get({vw}, outType), out);
        Value outColumn = eb.create<arith::AddIOp>(local, eb.index(j * vw));
        tile = eb.create<vector::TransferWriteOp>(out, tile,
                                                  ValueRange{outRow, outColumn},
                                                  ArrayRef<bool>{inBounds})
                   .getResult();
      }
    }
    return tile;
  }

  WeightQuantAttr quant;
  WeightFormat format;
  int64_t vw;
  bool packed;
  PanelDecoder decoder;
  /// K (in weights), the K of one scale group, and the output columns of a
  /// step of the microkernel.
  int64_t k, groupK, stepColumns;
  SmallVector<int64_t> rowBlocks;
};

} // namespace

bool mlir::moe::lowBitPanelKernelApplies(GroupedMatmulOp op, KernelShape shape,
                                         std::string &why) {
  WeightQuantAttr quant = op.getWeightQuantAttr();
  if (quant.getActivation() != ActivationQuant::none) {
    why = "the activation quantization is not explicit (run "
          "moe-quantize-activations first)";
    return false;
  }
  auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
  WeightShape weights = weightShape(rhsType, op.getRhsLayout());
  int64_t vw = shape.vectorWidth;
  if (weights.panelWidth % vw != 0) {
    why = ("the panel width " + Twine(weights.panelWidth) +
           " is not a multiple of the vector width " + Twine(vw))
              .str();
    return false;
  }
  if (op.getEpilogue() && op.getGluLayout() == GluLayout::concatenated &&
      (weights.columns / 2) % vw != 0) {
    why = "the GLU half width is not a multiple of the vector width";
    return false;
  }
  if (weights.panelWidth == kWordOrderPanelWidth &&
      isPackedWeightFormat(quant.getFormat()) && 16 % vw != 0) {
    why = "4-bit rows in the word order hold blocks of 16 columns; the "
          "vector width " +
          std::to_string(vw) + " is not a divisor of 16";
    return false;
  }
  if (quant.getFormat() == WeightFormat::fp8_e4m3 &&
      quant.getBlockN() % vw != 0 && quant.getBlockN() < weights.columns) {
    why = "the scale block along N is not a multiple of the vector width";
    return false;
  }
  return true;
}

Value mlir::moe::buildLowBitPanelKernel(GroupedMatmulOp op,
                                        StructuredBuilder &b,
                                        KernelShape shape) {
  LowBitPanelKernel kernel(op, b, shape);
  Value result = kernel.build();
  // The decoding is a decision of the kernel: recorded on its scf.forall.
  result.getDefiningOp()->setAttr("moe.weight_decode",
                                  b.getStringAttr(kernel.decodeName()));
  return result;
}
