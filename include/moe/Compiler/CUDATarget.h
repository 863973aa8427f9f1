//===- CUDATarget.h - The CUDA chip and PTX features ------------*- C++ -*-===//
//
// moe-compile's --chip and --cuda-features for --target=cuda, checked against
// what LLVM's NVPTX backend knows before anything is lowered: a PTX-only build
// runs no ptxas that would reject them, and the backend only warns about an
// unknown chip or feature and goes on.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_CUDATARGET_H
#define MOE_COMPILER_CUDATARGET_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace mlir::moe {

/// Fails, saying why, unless `chip` is an NVPTX processor (sm_80, sm_90a, ...)
/// and `features` a non-empty comma-separated list of +/- NVPTX features
/// (+ptx80). A PTX version older than the chip's is the backend's to refuse.
llvm::Error checkCUDATarget(llvm::StringRef chip, llvm::StringRef features);

} // namespace mlir::moe

#endif // MOE_COMPILER_CUDATARGET_H
