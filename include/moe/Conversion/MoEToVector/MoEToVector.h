//===- MoEToVector.h - Vectorized CPU grouped matmul ------------*- C++ -*-===//

#ifndef MOE_CONVERSION_MOETOVECTOR_MOETOVECTOR_H
#define MOE_CONVERSION_MOETOVECTOR_MOETOVECTOR_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL_CONVERTMOETOVECTORPASS
#define GEN_PASS_REGISTRATION
#include "moe/Conversion/MoEToVector/MoEToVector.h.inc"

/// Whether `cpu` (an LLVM x86 CPU name, or native for the host) has the
/// LLVM x86 feature `feature` (e.g. avx512f); fails for a name LLVM does
/// not know.
FailureOr<bool> hasX86Feature(StringRef cpu, StringRef feature);

/// Whether `cpu` (an LLVM x86 CPU name, or native for the host) has
/// AVX512_BF16; fails for a name LLVM does not know.
FailureOr<bool> hasAVX512BF16(StringRef cpu);

} // namespace mlir::moe

#endif // MOE_CONVERSION_MOETOVECTOR_MOETOVECTOR_H
