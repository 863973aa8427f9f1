//===- WeightOnlySteps.h - Weight-only formats in the nk kernel -*- C++ -*-===//
//
// How the nk kernel (DotProductKernel) reads the weight-only formats of
// `#moe.weight_quant` (mxfp4, int4, int8; docs/quantization.md): each step
// along K loads the packed bytes of one weight row and dequantizes them in
// registers into f32 vectors for the FMAs, so the weights cross the memory
// bus at their stored size.
//
// - int8: a step is `vector-width` k; the bytes are converted to f32 and the
//   row's one scale multiplies the reduced sum instead of every weight.
// - mxfp4 and int4: a step is 2 x `vector-width` k, the bytes of one row
//   (`vector-width` bytes, two k each). The low nibbles are the even k and
//   the high nibbles the odd k, so a step gives two weight vectors; the
//   activations of the step are split the same way by two shuffles (a sum
//   over k does not depend on its order). The step lies in one scale group
//   (32 for mxfp4, g in {32, 64, 128} for int4), so one scale (and zero
//   point) covers it. Each nibble is decoded either
//   - by a table: the step's 16 possible weights (`e2m1(c) * 2^(s - 127)`
//     or `(c - z) * s` for c in [0, 16), exactly the reference lowering's
//     f32 values) in one vector, looked up per lane with vpermps
//     (`llvm.x86.avx512.permvar.sf.512`, which reads the low 4 bits of each
//     index): with `vector-width` 16 on an AVX-512 `target-cpu`;
//   - or with integer ops (e2m1 bits and the e8m0 exponent field, or
//     `(c - z)` converted and scaled) on every other target, AVX2 included.
//
// The choice is the `moe.weight_decode` attribute of the kernel's
// scf.forall.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOVECTOR_WEIGHTONLYSTEPS_H
#define MOE_LIB_CONVERSION_MOETOVECTOR_WEIGHTONLYSTEPS_H

#include "GroupedMatmulKernel.h"

namespace mlir::moe {

/// Whether `format` is one of the weight-only formats (not FP8).
bool isWeightOnlyFormat(WeightFormat format);

class WeightOnlySteps {
public:
  /// For `op`, whose weight-only format the kernel covers
  /// (weightOnlyKernelApplies).
  WeightOnlySteps(GroupedMatmulOp op, KernelShape shape);

  /// Whether the nk kernel covers `op`'s weight-only format at `shape`;
  /// otherwise `why` says what is missing.
  static bool applies(GroupedMatmulOp op, KernelShape shape, std::string &why);

  /// The k of one step.
  int64_t kPerStep() { return packed ? 2 * vw : vw; }

  /// The `moe.weight_decode` attribute's value: how the weights are decoded.
  StringRef decodeName();

  /// The activation vectors of row `aRow` of `lhs` for the step at `k`, in
  /// the order of weights(): one, or the even and the odd k. Past K they
  /// read as zero unless `inBounds`.
  SmallVector<Value> activations(StructuredBuilder &b, Value lhs, Value aRow,
                                 Value k, bool inBounds);

  /// The f32 weight vectors of W[expert, row, k ..< k + kPerStep()]: one, or
  /// the even and the odd k. Past K the codes read as zero (their products
  /// with the zero activations are zero) unless `inBounds`.
  SmallVector<Value> weights(StructuredBuilder &b, Value expert, Value row,
                             Value k, bool inBounds);

  /// The factor of the reduced sum of weight row `row` (int8's row scale),
  /// or null.
  Value rowFactor(StructuredBuilder &b, Value expert, Value row);

private:
  /// The 16 f32 values of the step's codes 0..15 (mxfp4: e2m1 times the
  /// block's power of two; int4: (c - z) * s).
  Value codeTable(StructuredBuilder &b, Value expert, Value row, Value group);
  /// Codes (the low 4 bits of each i32 lane) to f32 with integer ops.
  Value decodeCodes(StructuredBuilder &b, Value codes, Value expert, Value row,
                    Value group);

  GroupedMatmulOp op;
  WeightFormat format;
  int64_t vw;
  int64_t groupSize;
  bool packed;
  bool permute;
};

} // namespace mlir::moe

#endif // MOE_LIB_CONVERSION_MOETOVECTOR_WEIGHTONLYSTEPS_H
