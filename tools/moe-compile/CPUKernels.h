//===- CPUKernels.h - moe-compile's CPU kernel variants ---------*- C++ -*-===//
//
// A CPU artifact holds its kernel compiled once per --chip CPU; each
// variant's LLVM IR keeps one exported symbol, its suffixed entry point, so
// that the variants link into one library.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_MOE_COMPILE_CPUKERNELS_H
#define MOE_TOOLS_MOE_COMPILE_CPUKERNELS_H

#include "moe/Compiler/CPUVariants.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::moe {

/// The LLVM IR of `module` (the moe IR, left unchanged) lowered through
/// moe-lower-to-cpu-pipeline for `variant`'s CPU. With a symbol suffix, the
/// entry point _mlir_ciface_<function> becomes
/// _mlir_ciface_<function><suffix> and every other definition is internal.
/// Failures have been reported through the context's diagnostics.
FailureOr<std::string> lowerCPUVariant(ModuleOp module, StringRef function,
                                       const CPUVariant &variant,
                                       StringRef moduleName);

/// compiler-rt's builtins archive of `clang`, whose CPU model
/// (__builtin_cpu_supports) knows every feature clang names; libgcc's
/// knows those of its GCC version only.
llvm::Expected<std::string> compilerRTBuiltins(StringRef clang);

} // namespace mlir::moe

#endif // MOE_TOOLS_MOE_COMPILE_CPUKERNELS_H
