//===- CUDATarget.h - The CUDA chip and PTX features ------------*- C++ -*-===//
//
// A CUDA chip and PTX feature list (moe-compile's --chip and --cuda-features,
// moe-lower-to-nvvm-pipeline's chip and features), checked against what
// LLVM's NVPTX backend knows before anything is lowered: the backend only
// warns about an unknown chip or feature and goes on (then aborts at an
// unknown chip), and stops the process at a PTX version too old for the
// chip; a PTX-only build runs no ptxas that would reject them.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_CUDATARGET_H
#define MOE_PIPELINES_CUDATARGET_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace mlir::moe {

/// Fails, saying why, unless `chip` is an NVPTX processor (sm_80, sm_90a, ...)
/// and `features` a non-empty comma-separated list of +/- NVPTX features
/// (+ptx80) whose PTX version is at least the chip's. The messages name the
/// options as `chipOption` and `featuresOption`.
/// The newest PTX ISA version `features` asks for (+ptx84 -> 84), or 0.
unsigned requestedPTXVersion(llvm::StringRef features);

llvm::Error checkCUDATarget(llvm::StringRef chip, llvm::StringRef features,
                            llvm::StringRef chipOption = "--chip",
                            llvm::StringRef featuresOption = "--cuda-features");

} // namespace mlir::moe

#endif // MOE_PIPELINES_CUDATARGET_H
