//===- LowBitPanelDecode.h - Weight vectors of quantized panels -*- C++ -*-===//
//
// How the low-bit panel kernel (LowBitPanelKernel.h) turns the stored bytes
// of one weight vector into values it can multiply, per format and target:
// the choice of decoding (recorded as `moe.weight_decode`), the lookup
// tables, and each scale group's scale and zero point as vector lanes. The
// panel loop that feeds these values to the FMAs or vdpbf16ps lives in
// LowBitPanelKernel.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOVECTOR_LOWBITPANELDECODE_H
#define MOE_LIB_CONVERSION_MOETOVECTOR_LOWBITPANELDECODE_H

#include "GroupedMatmulKernel.h"

namespace mlir::moe {

/// How the kernel decodes the weights and multiplies them.
enum class PanelDecode {
  /// mxfp4, int4: the byte of a k-pair as two bf16 words by a 32-entry
  /// table (vpermw), multiplied by vdpbf16ps with bf16 activations.
  Bf16TableDot,
  /// mxfp4, int4 in 64-wide panels (the word order): the 32 words of a
  /// stored row, shifted to a weight vector's nibbles, index the 32-entry
  /// bf16 table as they are (moe.x86.permute_words), for vdpbf16ps.
  Bf16WordTableDot,
  /// mxfp4, int4: the two nibbles as f32 vectors by a 16-entry table
  /// (vpermps) or with integer ops, two f32 FMAs per row.
  F32Table,
  F32IntegerOps,
  /// int8: converted to f32.
  Int8Convert,
  /// fp8_e4m3: as f16 bits (exact, the value times 2^-8) widened to f32.
  Fp8AsF16,
};

/// Where a weight vector lies: its first column, its panel, its first lane
/// in the panel.
struct PanelVector {
  Value column, panel, inPanel;
};

/// Per weight vector, what the stored rows of one scale group need besides
/// the codes: the group's scale as f32 lanes, and for int4 its zero points
/// (as f32 lanes, as the words 16 - z that index the bf16 table, or where
/// they are folded (PanelDecoder::foldsZeroPoints) as z * s in f32 lanes).
struct GroupTerms {
  Value scale, zero;
};

/// A vector of `type` with every lane `value` (float or integer lanes).
Value splatNumber(StructuredBuilder &b, Type type, int64_t value);

/// The decoding of `op`'s quantized panels for `shape`'s vector width and
/// target features.
class PanelDecoder {
public:
  PanelDecoder(GroupedMatmulOp op, KernelShape shape);

  PanelDecode kind() const { return decode; }

  /// Whether the 4-bit rows are in the word order (64-wide panels,
  /// kWordOrderPanelWidth): a weight vector's codes are a nibble of each
  /// 32-bit lane of the row, not the bytes at its columns.
  bool wordOrder() const { return wordOrdered; }

  /// Whether int4 zero points are folded out of the decoding
  /// (Bf16WordTableDot with zero points): the table holds the codes c, the
  /// group's sum is s * (sum of a * c), and the kernel subtracts
  /// z * s * (sum of a) over the group, as GPTQ and AWQ kernels do. Two
  /// vector operations per weight vector and stored row fewer (no mask, no
  /// add of 16 - z).
  bool foldsZeroPoints() const { return zeroSums; }

  /// The `moe.weight_decode` name of the decoding.
  StringRef name() const;

  /// The lookup table the decoding indexes (null where it has none),
  /// created where the microkernel starts.
  Value table(StructuredBuilder &b);

  /// The scale (and zero point) of scale group `group` for the vector `at`.
  GroupTerms groupTerms(StructuredBuilder &b, Value expert, Value group,
                        const PanelVector &at);

  /// The stored `bytes` of one weight vector `at` decoded before the
  /// group's scale: one vector<2vw x bf16> of k-pairs (Bf16TableDot,
  /// Bf16WordTableDot), the f32 vectors of the even and the odd k (4-bit
  /// formats), or one f32 vector (int8, fp8_e4m3). The bytes are the
  /// vector's vw bytes, or in the word order the 4 vw bytes of its lanes
  /// (the whole 64-byte row for Bf16WordTableDot).
  SmallVector<Value> decodeVector(StructuredBuilder &b, Value bytes,
                                  const PanelVector &at,
                                  const GroupTerms &terms, Value table);

private:
  VectorType f32Vector();
  Value decodeE8M0Lanes(StructuredBuilder &b, Value s);
  Value bf16Table(StructuredBuilder &b);
  Value f32Table(StructuredBuilder &b);
  bool tableHoldsValues();
  Value decodeNibbles(StructuredBuilder &b, Value codes, Value zero,
                      Value table);
  Value blockShift(StructuredBuilder &b, const PanelVector &at, Type type);

  GroupedMatmulOp op;
  WeightQuantAttr quant;
  WeightFormat format;
  int64_t vw;
  bool wordOrdered;
  PanelDecode decode;
  bool zeroSums;
};

} // namespace mlir::moe

#endif // MOE_LIB_CONVERSION_MOETOVECTOR_LOWBITPANELDECODE_H
