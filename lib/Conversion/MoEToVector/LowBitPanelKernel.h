//===- LowBitPanelKernel.h - Quantized weights in panels --------*- C++ -*-===//
//
// The CPU kernel for quantized weights (`#moe.weight_quant`) in the panels
// layout: `[E, N / P, Ks, P]`, P output columns contiguous per stored row
// of K, panels contiguous along K (docs/quantization.md, "Panels"):
//
// - mxfp4, int4: Ks = K / 2 bytes, byte [e, n / P, j, n % P] holding weight
//   k = 2j of column n in its low nibble and k = 2j + 1 in its high one
//   (the nk layout's byte [e, n, j]), except in 64-wide panels, whose rows
//   hold the same codes in the word order (kWordOrderPanelWidth); the scales
//   and zero points in the same panels, `[E, N / P, ceil(K / g), P]`;
// - int8: Ks = K, the scales `[E, N / P, 1, P]`;
// - fp8_e4m3: Ks = K, the block scales `[E, ceil(N / bn), ceil(K / bk)]`
//   as in the nk layout.
//
// One 64-byte row of a 64-wide 4-bit panel is 64 columns' k-pair: the
// microkernel decodes each weight vector once per stored row and block of
// routed rows and feeds every row of the block (LowBitPanelKernel.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOVECTOR_LOWBITPANELKERNEL_H
#define MOE_LIB_CONVERSION_MOETOVECTOR_LOWBITPANELKERNEL_H

#include "GroupedMatmulKernel.h"

namespace mlir::moe {

/// Whether the kernel covers `op`, whose quantized weights are in the panels
/// layout: activations taken as they are (activation = none, after
/// moe-quantize-activations for FP8), a panel width and GLU half width that
/// are multiples of the vector width, and for FP8 a scale block along N that
/// is one too (or spans N). Otherwise `why` says what is missing.
bool lowBitPanelKernelApplies(GroupedMatmulOp op, KernelShape shape,
                              std::string &why);

/// The result of `op` computed by the low-bit panel kernel; its scf.forall
/// records the decoding in `moe.weight_decode`.
Value buildLowBitPanelKernel(GroupedMatmulOp op, StructuredBuilder &b,
                             KernelShape shape);

} // namespace mlir::moe

#endif // MOE_LIB_CONVERSION_MOETOVECTOR_LOWBITPANELKERNEL_H
