//===- FuzzContext.h - The pipeline fuzzers' MLIR context -------*- C++ -*-===//
//
// The context the pipeline fuzzers lower their generated layers in, set up
// as moe-compile sets up its own: every dialect the pipelines produce, the
// translations to LLVM IR (OpenMP's included), all dialects loaded. One
// context serves every input of a fuzzing process, as building one per
// input would cost more than most lowerings.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_MOE_FUZZ_FUZZCONTEXT_H
#define MOE_TOOLS_MOE_FUZZ_FUZZCONTEXT_H

#include "mlir/IR/MLIRContext.h"

namespace mlir::moe::fuzz {

/// The process's context: created on the first call, never destroyed (the
/// fuzzers exit without tearing it down). Single-threaded, so that a
/// finding does not depend on scheduling, and without the failing op
/// printed after each diagnostic (a finding prints the whole log).
MLIRContext &pipelineContext();

} // namespace mlir::moe::fuzz

#endif // MOE_TOOLS_MOE_FUZZ_FUZZCONTEXT_H
