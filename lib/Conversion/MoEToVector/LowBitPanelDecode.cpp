//===- LowBitPanelDecode.cpp - Weight vectors of quantized panels ---------===//
//
// Per format, the stored bytes of a weight vector as multipliable values:
//
// - mxfp4, int4 with bf16 activations and AVX512_BF16 (Bf16TableDot): each
//   byte (k even in the low nibble, k odd in the high one) becomes the word
//   pair (low, high) indexing a 32-entry bf16 table (vpermw): e2m1 values,
//   c - 8, or c - z through the index c + 16 - z;
// - the same in 64-wide panels, whose rows are in the word order
//   (kWordOrderPanelWidth): the row's 32 words shifted by 4 bits per block
//   of 16 columns index the table as they are (Bf16WordTableDot); only int4
//   with zero points masks them, to add 16 - z;
// - mxfp4, int4 otherwise: the two nibbles as two f32 vectors, through a
//   16-entry f32 table (vpermps, AVX-512) or integer ops (AVX2);
// - int8: converted to f32; fp8_e4m3: the f16 of the value times 2^-8,
//   widened (exact, subnormals included).
//
//===----------------------------------------------------------------------===//

#include "LowBitPanelDecode.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/Quantization.h"
#include "moe/Dialect/MoE/Utils/WeightDequantization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;

/// The f4E2M1FN values by code (docs/quantization.md).
static constexpr float kE2M1Values[16] = {
    0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

Value mlir::moe::splatNumber(StructuredBuilder &sb, Type type, int64_t value) {
  auto vector = cast<VectorType>(type);
  Type element = vector.getElementType();
  if (isa<FloatType>(element))
    return splatConstant(sb, type,
                         sb.getFloatAttr(element, static_cast<double>(value)));
  return splatConstant(sb, type, sb.getIntegerAttr(element, value));
}

/// Whether `op`'s weights are 4-bit rows in the word order.
static bool inWordOrder(GroupedMatmulOp op) {
  auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
  return isPackedWeightFormat(op.getWeightQuantAttr().getFormat()) &&
         op.getRhsLayout() == RhsLayout::panels &&
         rhsType.getDimSize(3) == kWordOrderPanelWidth;
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
    return inWordOrder(op) ? PanelDecode::Bf16WordTableDot
                           : PanelDecode::Bf16TableDot;
  if (shape.tablePermute && shape.vectorWidth == 16)
    return PanelDecode::F32Table;
  return PanelDecode::F32IntegerOps;
}

PanelDecoder::PanelDecoder(GroupedMatmulOp op, KernelShape shape)
    : op(op), quant(op.getWeightQuantAttr()), format(quant.getFormat()),
      vw(shape.vectorWidth), wordOrdered(inWordOrder(op)),
      decode(chooseDecode(op, shape)),
      zeroSums(decode == PanelDecode::Bf16WordTableDot &&
               op.getRhsZeroPoints()) {}

StringRef PanelDecoder::name() const {
  switch (decode) {
  case PanelDecode::Bf16TableDot:
    return format == WeightFormat::mxfp4 ? "mxfp4_panel_bf16_table_dot"
                                         : "int4_panel_bf16_table_dot";
  case PanelDecode::Bf16WordTableDot:
    if (foldsZeroPoints())
      return "int4_panel_bf16_word_table_dot_zero_sums";
    return format == WeightFormat::mxfp4 ? "mxfp4_panel_bf16_word_table_dot"
                                         : "int4_panel_bf16_word_table_dot";
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

VectorType PanelDecoder::f32Vector() {
  return VectorType::get({vw}, Float32Type::get(op.getContext()));
}

GroupTerms PanelDecoder::groupTerms(StructuredBuilder &gb, Value expert,
                                    Value group, const PanelVector &at) {
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
    scale = GroupedMatmulKernel::loadF32(gb, op.getRhsScales(), indices, vw,
                                         /*inBounds=*/true);
  }
  if (format != WeightFormat::int4)
    return {scale, Value()};
  Value zero;
  if (Value zeroPoints = op.getRhsZeroPoints()) {
    Value pad = gb.create<arith::ConstantOp>(gb.getI8IntegerAttr(0));
    Value z = gb.create<vector::TransferReadOp>(i8Vector, zeroPoints, indices,
                                                pad, ArrayRef<bool>{true});
    if (foldsZeroPoints()) {
      // z * s: the group's sum of the row's activations times it comes off
      // the accumulators (LowBitPanelKernel.cpp).
      zero = gb.create<arith::MulFOp>(
          gb.create<arith::SIToFPOp>(f32Vector(), z), scale);
    } else if (decode == PanelDecode::Bf16TableDot) {
      // 16 - z in both words of each lane: the table index c + 16 - z of
      // (c - z) lies in [1, 31].
      Value offset =
          gb.create<arith::SubIOp>(splatNumber(gb, i32Vector, 16),
                                   gb.create<arith::ExtSIOp>(i32Vector, z));
      zero = gb.create<vector::BitCastOp>(
          VectorType::get({2 * vw}, gb.getI16Type()),
          gb.create<arith::OrIOp>(offset,
                                  gb.create<arith::ShLIOp>(
                                      offset, splatNumber(gb, i32Vector, 16))));
    } else {
      zero = gb.create<arith::SIToFPOp>(f32Vector(), z);
    }
  }
  return {scale, zero};
}

/// 2^(s - 127) as f32 per i32 lane (0 gives 2^-127, 0xFF NaN), as
/// decodeE8M0 does for one scale.
Value PanelDecoder::decodeE8M0Lanes(StructuredBuilder &gb, Value s) {
  Type type = s.getType();
  Value bits = gb.create<arith::ShLIOp>(s, splatNumber(gb, type, 23));
  auto isValue = [&](int64_t v) {
    return gb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, s,
                                    splatNumber(gb, type, v));
  };
  bits = gb.create<arith::SelectOp>(isValue(0),
                                    splatNumber(gb, type, 0x00400000), bits);
  bits = gb.create<arith::SelectOp>(isValue(0xFF),
                                    splatNumber(gb, type, 0x7FC00000), bits);
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
    lanes.push_back(
        lb.create<vector::ExtractOp>(table, ArrayRef<OpFoldResult>{position}));
  }
  return lb.create<vector::FromElementsOp>(
      VectorType::get({indexType.getNumElements()}, tableType.getElementType()),
      lanes);
}

Value PanelDecoder::table(StructuredBuilder &lb) {
  if (decode == PanelDecode::Bf16TableDot ||
      decode == PanelDecode::Bf16WordTableDot)
    return bf16Table(lb);
  if (decode == PanelDecode::F32Table)
    return f32Table(lb);
  return Value();
}

/// The 32 bf16 words vpermw looks up: e2m1 values, c - 8 (symmetric
/// int4) or c itself (int4 whose zero points are folded) for codes 0..15,
/// repeated for 16..31 (the word order's indices keep bit 4 of the next
/// code), or i - 16 (int4 indexed by c + 16 - z).
Value PanelDecoder::bf16Table(StructuredBuilder &lb) {
  SmallVector<APFloat> values;
  for (int64_t i = 0; i < 32; ++i) {
    double v = 0.0;
    if (format == WeightFormat::mxfp4)
      v = kE2M1Values[i % 16];
    else if (foldsZeroPoints())
      v = i % 16;
    else if (op.getRhsZeroPoints())
      v = i - 16;
    else
      v = i % 16 - 8;
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
Value PanelDecoder::f32Table(StructuredBuilder &lb) {
  SmallVector<float> values;
  for (int64_t c = 0; c < 16; ++c)
    values.push_back(format == WeightFormat::mxfp4 ? kE2M1Values[c]
                                                   : static_cast<float>(c - 8));
  return lb.create<arith::ConstantOp>(DenseElementsAttr::get(
      VectorType::get({16}, lb.getF32Type()), ArrayRef<float>(values)));
}

/// Whether the F32Table decoding looks codes up (mxfp4, symmetric int4)
/// rather than converting c - z.
bool PanelDecoder::tableHoldsValues() {
  return format == WeightFormat::mxfp4 || !op.getRhsZeroPoints();
}

/// The codes of 4-bit lanes (the low 4 bits of each i32) as f32 values
/// before the scale.
Value PanelDecoder::decodeNibbles(StructuredBuilder &db, Value codes,
                                  Value zero, Value table) {
  Type i32Vector = codes.getType();
  codes = db.create<arith::AndIOp>(codes, splatNumber(db, i32Vector, 15));
  if (decode == PanelDecode::F32Table && tableHoldsValues())
    return lookUp(db, table, codes);
  if (format == WeightFormat::mxfp4)
    return decodeE2M1(db, codes);
  Value value = db.create<arith::UIToFPOp>(f32Vector(), codes);
  Value z = zero ? zero : splatNumber(db, f32Vector(), 8);
  return db.create<arith::SubFOp>(value, z);
}

/// In the word order: 4 times the block of 16 columns that holds vector
/// `at` (0..3), the shift that brings its codes to the low bits of each
/// word, splat as `type`.
Value PanelDecoder::blockShift(StructuredBuilder &sb, const PanelVector &at,
                               Type type) {
  Value block = sb.create<arith::DivUIOp>(at.inPanel, sb.index(16));
  Value shift = sb.create<arith::MulIOp>(block, sb.index(4));
  auto vector = cast<VectorType>(type);
  return sb.create<vector::BroadcastOp>(
      vector, sb.create<arith::IndexCastOp>(vector.getElementType(), shift));
}

SmallVector<Value> PanelDecoder::decodeVector(StructuredBuilder &sb,
                                              Value bytes,
                                              const PanelVector &at,
                                              const GroupTerms &terms,
                                              Value table) {
  auto i32Vector = VectorType::get({vw}, sb.getI32Type());
  auto wordsType = VectorType::get({2 * vw}, sb.getI16Type());
  auto pairsType = VectorType::get({2 * vw}, sb.getBF16Type());
  if (decode == PanelDecode::Bf16WordTableDot) {
    // The row's word 2d + h holds weight k = 2j + h of lane d of all four
    // vectors, 4 bits each: shifted to this vector's nibble, it indexes
    // the table (whose entries repeat every 16, so bits 4.. do not matter).
    Value words = sb.create<vector::BitCastOp>(wordsType, bytes);
    Value index =
        sb.create<arith::ShRUIOp>(words, blockShift(sb, at, wordsType));
    if (terms.zero && !foldsZeroPoints()) {
      // c + 16 - z must stay below 32: the code alone, then the offset.
      index = sb.create<arith::AddIOp>(
          sb.create<arith::AndIOp>(index, splatNumber(sb, wordsType, 15)),
          terms.zero);
    }
    return {sb.create<vector::BitCastOp>(
        pairsType, sb.create<X86PermuteWordsOp>(wordsType, table, index))};
  }
  if (decode == PanelDecode::Bf16TableDot) {
    // Each lane's byte (k even in the low nibble, k odd in the high one)
    // as the word pair (low, high) indexing the table.
    Value x = sb.create<arith::ExtUIOp>(i32Vector, bytes);
    Value both = sb.create<arith::OrIOp>(
        x, sb.create<arith::ShLIOp>(x, splatNumber(sb, i32Vector, 12)));
    Value index = sb.create<vector::BitCastOp>(
        wordsType,
        sb.create<arith::AndIOp>(both, splatNumber(sb, i32Vector, 0x000F000F)));
    if (terms.zero)
      index = sb.create<arith::AddIOp>(index, terms.zero);
    return {sb.create<vector::BitCastOp>(pairsType, lookUp(sb, table, index))};
  }
  if (format == WeightFormat::int8)
    return {sb.create<arith::SIToFPOp>(f32Vector(), bytes)};
  if (format == WeightFormat::fp8_e4m3) {
    // Sign to bit 15, exponent and mantissa to bits 7..13: the f16 of the
    // e4m3 value times 2^-8, subnormals included.
    auto halfWords = VectorType::get({vw}, sb.getI16Type());
    Value x = sb.create<arith::ExtSIOp>(halfWords, bytes);
    x = sb.create<arith::AndIOp>(
        sb.create<arith::ShLIOp>(x, splatNumber(sb, halfWords, 7)),
        splatNumber(sb, halfWords, 0xBFFF));
    Value half =
        sb.create<arith::BitcastOp>(VectorType::get({vw}, sb.getF16Type()), x);
    return {sb.create<arith::ExtFOp>(f32Vector(), half)};
  }
  // The even k's code in the low bits of each lane, the odd k's 4 bits up;
  // in the word order the lane's 32 bits hold both, 16 bits apart, at the
  // vector's block of 4 bits.
  Value low, high;
  if (wordOrdered) {
    Value lanes = sb.create<vector::BitCastOp>(i32Vector, bytes);
    low = sb.create<arith::ShRUIOp>(lanes, blockShift(sb, at, i32Vector));
    high = sb.create<arith::ShRUIOp>(low, splatNumber(sb, i32Vector, 16));
  } else {
    low = sb.create<arith::ExtUIOp>(i32Vector, bytes);
    high = sb.create<arith::ShRUIOp>(low, splatNumber(sb, i32Vector, 4));
  }
  return {decodeNibbles(sb, low, terms.zero, table),
          decodeNibbles(sb, high, terms.zero, table)};
}
