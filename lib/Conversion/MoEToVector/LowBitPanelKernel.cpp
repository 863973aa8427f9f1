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
//
//===----------------------------------------------------------------------===//

#include "LowBitPanelKernel.h"

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

/// The f4E2M1FN values by code (docs/quantization.md).
static constexpr float kE2M1Values[16] = {
    0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/// Weight vectors per step of the microkernel: 64 columns of a plain
/// projection (one 64-byte row of a 64-wide mxfp4 or int4 panel holds
/// their k-pairs), or 32 output columns with their up halves for a GLU.
static constexpr int64_t kVectorsPerStep = 4;

/// The most rows of a register block: 4 accumulators and 4 partial sums per
/// row stay in the 32 vector registers of AVX-512 with the decoded weights.
static constexpr int64_t kMaxRowBlock = 3;

namespace {

/// How the kernel decodes the weights and multiplies them.
enum class PanelDecode {
  /// mxfp4, int4: the byte of a k-pair as two bf16 words by a 32-entry
  /// table (vpermw), multiplied by vdpbf16ps with bf16 activations.
  Bf16TableDot,
  /// mxfp4, int4: the two nibbles as f32 vectors by a 16-entry table
  /// (vpermps) or with integer ops, two f32 FMAs per row.
  F32Table,
  F32IntegerOps,
  /// int8: converted to f32.
  Int8Convert,
  /// fp8_e4m3: as f16 bits (exact, the value times 2^-8) widened to f32.
  Fp8AsF16,
};

class LowBitPanelKernel : public GroupedMatmulKernel {
public:
  LowBitPanelKernel(GroupedMatmulOp op, StructuredBuilder &b, KernelShape shape)
      : GroupedMatmulKernel(op, b, shape, tileColumns(op, shape)),
        quant(op.getWeightQuantAttr()), format(quant.getFormat()),
        vw(shape.vectorWidth), packed(isPackedWeightFormat(format)),
        decode(chooseDecode(op, shape)) {
    k = cast<RankedTensorType>(op.getLhs().getType()).getDimSize(1);
    groupK = std::min(quant.getBlockK(), k);
    stepColumns = glu ? vw * kVectorsPerStep / 2 : vw * kVectorsPerStep;
    int64_t block = std::min(shape.panelRowBlock, kMaxRowBlock);
    for (int64_t rows = block; rows >= 1; --rows)
      rowBlocks.push_back(rows);
  }

  static PanelDecode chooseDecode(GroupedMatmulOp op, KernelShape shape) {
    WeightFormat format = op.getWeightQuantAttr().getFormat();
    if (format == WeightFormat::int8)
      return PanelDecode::Int8Convert;
    if (format == WeightFormat::fp8_e4m3)
      return PanelDecode::Fp8AsF16;
    bool bf16Lhs =
        cast<RankedTensorType>(op.getLhs().getType()).getElementType().isBF16();
    if (bf16Lhs && shape.bf16DotProduct && shape.vectorWidth == 16)
      return PanelDecode::Bf16TableDot;
    if (shape.tablePermute && shape.vectorWidth == 16)
      return PanelDecode::F32Table;
    return PanelDecode::F32IntegerOps;
  }

  StringRef decodeName() const {
    switch (decode) {
    case PanelDecode::Bf16TableDot:
      return format == WeightFormat::mxfp4 ? "mxfp4_panel_bf16_table_dot"
                                           : "int4_panel_bf16_table_dot";
    case PanelDecode::F32Table:
      return format == WeightFormat::mxfp4 ? "mxfp4_panel_table_permute"
                                           : "int4_panel_table_permute";
    case PanelDecode::F32IntegerOps:
      return format == WeightFormat::mxfp4 ? "mxfp4_panel_integer_ops"
                                           : "int4_panel_integer_ops";
    case PanelDecode::Int8Convert:
      return "int8_panel_convert";
    case PanelDecode::Fp8AsF16:
      return "fp8_e4m3_panel_f16";
    }
    llvm_unreachable("unknown panel decoding");
  }

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
    return steps(full, colCount, /*inBounds=*/false, tile);
  }

private:
  static int64_t tileColumns(GroupedMatmulOp op, KernelShape shape) {
    int64_t step =
        shape.vectorWidth * kVectorsPerStep / (op.getEpilogue() ? 2 : 1);
    return llvm::alignTo(shape.panelColumnTile, step);
  }

  /// Where a weight vector lies: its panel, its first lane in the panel, and
  /// (FP8) its block of columns.
  struct WeightVector {
    Value column, panel, inPanel;
  };

  /// The vector of weight column `column`, clamped to the last vector so
  /// that the lanes past N (masked off in the result) stay in the weights.
  WeightVector locate(StructuredBuilder &lb, Value column) {
    column = lb.create<arith::MinUIOp>(column, lb.index(n - vw));
    return {column, lb.create<arith::DivUIOp>(column, lb.index(panelWidth)),
            lb.create<arith::RemUIOp>(column, lb.index(panelWidth))};
  }

  VectorType f32Vector() { return VectorType::get({vw}, b.getF32Type()); }

  Value splat(StructuredBuilder &sb, Type type, int64_t value) {
    auto vector = cast<VectorType>(type);
    Type element = vector.getElementType();
    if (isa<FloatType>(element))
      return splatConstant(
          sb, type, sb.getFloatAttr(element, static_cast<double>(value)));
    return splatConstant(sb, type, sb.getIntegerAttr(element, value));
  }

  /// Per vector, what the steps of one scale group need besides the codes:
  /// the group's scale as f32 lanes, and for int4 its zero points (as f32
  /// lanes, or as the words 16 - z that index the bf16 table).
  struct GroupTerms {
    Value scale, zero;
  };

  GroupTerms groupTerms(StructuredBuilder &gb, Value expert, Value group,
                        const WeightVector &at) {
    auto i8Vector = VectorType::get({vw}, gb.getI8Type());
    auto i32Vector = VectorType::get({vw}, gb.getI32Type());
    if (format == WeightFormat::fp8_e4m3) {
      // One scale per vector (its block of bn columns), times 2^8 for the
      // decoding's 2^-8.
      Value s = gb.create<tensor::ExtractOp>(
          op.getRhsScales(),
          ValueRange{
              expert,
              gb.create<arith::DivUIOp>(at.column, gb.index(quant.getBlockN())),
              group});
      s = gb.create<arith::MulFOp>(s, gb.f32(256.0));
      return {gb.create<vector::BroadcastOp>(f32Vector(), s), Value()};
    }
    SmallVector<Value> indices{expert, at.panel, group, at.inPanel};
    Value scale;
    if (format == WeightFormat::mxfp4) {
      auto e8m0Vector = VectorType::get({vw}, quant.getScaleElementType());
      Value pad = gb.create<arith::ConstantOp>(
          gb.getZeroAttr(quant.getScaleElementType()));
      Value raw = gb.create<vector::TransferReadOp>(
          e8m0Vector, op.getRhsScales(), indices, pad, ArrayRef<bool>{true});
      scale = decodeE8M0Lanes(
          gb, gb.create<arith::ExtUIOp>(
                  i32Vector, gb.create<arith::BitcastOp>(i8Vector, raw)));
    } else {
      scale = loadF32(gb, op.getRhsScales(), indices, vw, /*inBounds=*/true);
    }
    if (format != WeightFormat::int4)
      return {scale, Value()};
    Value zero;
    if (Value zeroPoints = op.getRhsZeroPoints()) {
      Value pad = gb.create<arith::ConstantOp>(gb.getI8IntegerAttr(0));
      Value z = gb.create<vector::TransferReadOp>(i8Vector, zeroPoints, indices,
                                                  pad, ArrayRef<bool>{true});
      if (decode == PanelDecode::Bf16TableDot) {
        // 16 - z in both words of each lane: the table index c + 16 - z of
        // (c - z) lies in [1, 31].
        Value offset = gb.create<arith::SubIOp>(
            splat(gb, i32Vector, 16), gb.create<arith::ExtSIOp>(i32Vector, z));
        zero = gb.create<vector::BitCastOp>(
            VectorType::get({2 * vw}, gb.getI16Type()),
            gb.create<arith::OrIOp>(
                offset,
                gb.create<arith::ShLIOp>(offset, splat(gb, i32Vector, 16))));
      } else {
        zero = gb.create<arith::SIToFPOp>(f32Vector(), z);
      }
    }
    return {scale, zero};
  }

  /// 2^(s - 127) as f32 per i32 lane (0 gives 2^-127, 0xFF NaN), as
  /// decodeE8M0 does for one scale.
  Value decodeE8M0Lanes(StructuredBuilder &gb, Value s) {
    Type type = s.getType();
    Value bits = gb.create<arith::ShLIOp>(s, splat(gb, type, 23));
    auto isValue = [&](int64_t v) {
      return gb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, s,
                                      splat(gb, type, v));
    };
    bits = gb.create<arith::SelectOp>(isValue(0), splat(gb, type, 0x00400000),
                                      bits);
    bits = gb.create<arith::SelectOp>(isValue(0xFF),
                                      splat(gb, type, 0x7FC00000), bits);
    return gb.create<arith::BitcastOp>(f32Vector(), bits);
  }

  /// `table[indices[i]]` per lane: extracts at dynamic positions gathered
  /// into one vector, the pattern that LLVM's x86 backend selects as one
  /// vpermps (16 f32) or vpermw (32 i16).
  static Value lookUp(StructuredBuilder &lb, Value table, Value indices) {
    auto indexType = cast<VectorType>(indices.getType());
    auto tableType = cast<VectorType>(table.getType());
    SmallVector<Value> lanes;
    for (int64_t lane = 0; lane < indexType.getNumElements(); ++lane) {
      Value code = lb.create<vector::ExtractOp>(indices, lane);
      Value position = lb.create<arith::IndexCastUIOp>(lb.getIndexType(), code);
      lanes.push_back(lb.create<vector::ExtractOp>(
          table, ArrayRef<OpFoldResult>{position}));
    }
    return lb.create<vector::FromElementsOp>(
        VectorType::get({indexType.getNumElements()},
                        tableType.getElementType()),
        lanes);
  }

  /// The 32 bf16 words vpermw looks up: e2m1 values (codes 0..15, the rest
  /// unused), c - 8 (symmetric int4) or i - 16 (int4 indexed by c + 16 - z).
  Value bf16Table(StructuredBuilder &lb) {
    SmallVector<APFloat> values;
    for (int64_t i = 0; i < 32; ++i) {
      double v = 0.0;
      if (format == WeightFormat::mxfp4)
        v = i < 16 ? kE2M1Values[i] : 0.0;
      else if (op.getRhsZeroPoints())
        v = i - 16;
      else
        v = i < 16 ? i - 8 : 0.0;
      bool lost;
      APFloat value(v);
      value.convert(APFloat::BFloat(), APFloat::rmNearestTiesToEven, &lost);
      values.push_back(value);
    }
    auto tableType = VectorType::get({32}, lb.getBF16Type());
    Value table =
        lb.create<arith::ConstantOp>(DenseElementsAttr::get(tableType, values));
    return lb.create<vector::BitCastOp>(VectorType::get({32}, lb.getI16Type()),
                                        table);
  }

  /// The 16 f32 a code indexes in the F32Table decoding: e2m1 values, or
  /// c - 8 for symmetric int4.
  Value f32Table(StructuredBuilder &lb) {
    SmallVector<float> values;
    for (int64_t c = 0; c < 16; ++c)
      values.push_back(format == WeightFormat::mxfp4
                           ? kE2M1Values[c]
                           : static_cast<float>(c - 8));
    return lb.create<arith::ConstantOp>(DenseElementsAttr::get(
        VectorType::get({16}, lb.getF32Type()), ArrayRef<float>(values)));
  }

  /// Whether the F32Table decoding looks codes up (mxfp4, symmetric int4)
  /// rather than converting c - z.
  bool tableHoldsValues() {
    return format == WeightFormat::mxfp4 || !op.getRhsZeroPoints();
  }

  /// The codes of 4-bit lanes (the low 4 bits of each i32) as f32 values
  /// before the scale.
  Value decodeNibbles(StructuredBuilder &db, Value codes, Value zero,
                      Value table) {
    Type i32Vector = codes.getType();
    codes = db.create<arith::AndIOp>(codes, splat(db, i32Vector, 15));
    if (decode == PanelDecode::F32Table && tableHoldsValues())
      return lookUp(db, table, codes);
    if (format == WeightFormat::mxfp4)
      return decodeE2M1(db, codes);
    Value value = db.create<arith::UIToFPOp>(f32Vector(), codes);
    Value z = zero ? zero : splat(db, f32Vector(), 8);
    return db.create<arith::SubFOp>(value, z);
  }

  /// One stored row `s` of the group: partial[i][j] += A[row_i, k(s)...] *
  /// decode(W[e, panel_j, s, vector j]).
  SmallVector<Value> step(StructuredBuilder &sb, ArrayRef<BlockRow> rows,
                          ArrayRef<WeightVector> vectors,
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
    // The stored bytes of each vector.
    SmallVector<Value> raw;
    for (const WeightVector &at : vectors) {
      Value v = sb.create<vector::TransferReadOp>(
          VectorType::get({vw}, element), op.getRhs(),
          ValueRange{expert, at.panel, s, at.inPanel}, pad,
          ArrayRef<bool>{true});
      if (element != sb.getI8Type())
        v = sb.create<arith::BitcastOp>(i8Vector, v);
      raw.push_back(v);
    }
    Value k0 = packed ? sb.create<arith::MulIOp>(s, sb.index(2)) : s;

    if (decode == PanelDecode::Bf16TableDot) {
      // Each lane's byte (k even in the low nibble, k odd in the high one)
      // as the word pair (low, high) indexing the table.
      auto wordsType = VectorType::get({2 * vw}, sb.getI16Type());
      auto pairsType = VectorType::get({2 * vw}, sb.getBF16Type());
      SmallVector<Value> w;
      for (auto [j, bytes] : llvm::enumerate(raw)) {
        Value x = sb.create<arith::ExtUIOp>(i32Vector, bytes);
        Value both = sb.create<arith::OrIOp>(
            x, sb.create<arith::ShLIOp>(x, splat(sb, i32Vector, 12)));
        Value index = sb.create<vector::BitCastOp>(
            wordsType,
            sb.create<arith::AndIOp>(both, splat(sb, i32Vector, 0x000F000F)));
        if (terms[j].zero)
          index = sb.create<arith::AddIOp>(index, terms[j].zero);
        w.push_back(
            sb.create<vector::BitCastOp>(pairsType, lookUp(sb, table, index)));
      }
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
    for (auto [j, bytes] : llvm::enumerate(raw)) {
      if (format == WeightFormat::int8) {
        w.push_back({sb.create<arith::SIToFPOp>(f32Vector(), bytes)});
      } else if (format == WeightFormat::fp8_e4m3) {
        // Sign to bit 15, exponent and mantissa to bits 7..13: the f16 of
        // the e4m3 value times 2^-8, subnormals included.
        auto halfWords = VectorType::get({vw}, sb.getI16Type());
        Value x = sb.create<arith::ExtSIOp>(halfWords, bytes);
        x = sb.create<arith::AndIOp>(
            sb.create<arith::ShLIOp>(x, splat(sb, halfWords, 7)),
            splat(sb, halfWords, 0xBFFF));
        Value half = sb.create<arith::BitcastOp>(
            VectorType::get({vw}, sb.getF16Type()), x);
        w.push_back({sb.create<arith::ExtFOp>(f32Vector(), half)});
      } else {
        Value x = sb.create<arith::ExtUIOp>(i32Vector, bytes);
        Value high = sb.create<arith::ShRUIOp>(x, splat(sb, i32Vector, 4));
        w.push_back({decodeNibbles(sb, x, terms[j].zero, table),
                     decodeNibbles(sb, high, terms[j].zero, table)});
      }
    }
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
    SmallVector<WeightVector> vectors;
    for (Value c : columns)
      vectors.push_back(locate(mb, c));

    int64_t numVectors = vectors.size();
    Value zero = splat(mb, f32Vector(), 0);
    SmallVector<Value> init(rows * numVectors, zero);
    Value table;
    if (decode == PanelDecode::Bf16TableDot)
      table = bf16Table(mb);
    else if (decode == PanelDecode::F32Table)
      table = f32Table(mb);

    // Stored rows per group along K and in all.
    int64_t perStep = packed ? 2 : 1;
    int64_t groupRows = groupK / perStep;
    int64_t storedRows = k / perStep;
    int64_t groups = llvm::divideCeil(storedRows, groupRows);
    auto group = [&](StructuredBuilder &gb, Value g, ValueRange accs) {
      SmallVector<GroupTerms> terms;
      for (const WeightVector &at : vectors)
        terms.push_back(groupTerms(gb, expert, g, at));
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
  PanelDecode decode;
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
