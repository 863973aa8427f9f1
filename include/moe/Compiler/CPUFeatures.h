//===- CPUFeatures.h - The CPU features an artifact needs -------*- C++ -*-===//
//
// A CPU artifact's kernel is compiled for one CPU (--chip, a clang -march
// value). The features that CPU implies are recorded in the manifest and
// checked by the library before its kernel runs, so that an older CPU gets
// MOE_STATUS_UNSUPPORTED instead of an illegal instruction.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_CPUFEATURES_H
#define MOE_COMPILER_CPUFEATURES_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mlir::moe {

/// The x86 features, as __builtin_cpu_supports spells them ("avx2",
/// "avx512f", ...), that clang's predefined macros `macros` (the output of
/// `clang -E -dM` for `chip`) declare beyond `baselineMacros` (those of
/// -march=x86-64), in a fixed order. Fails, naming the macros, when they
/// declare a feature the library could not check at run time.
llvm::Expected<std::vector<std::string>>
cpuFeaturesFromMacros(llvm::StringRef macros, llvm::StringRef baselineMacros,
                      llvm::StringRef chip);

/// The features code compiled by `clang` with `-march=<chip>` may use: runs
/// `clang -march=<chip> -E -dM` and reads its macros. Fails, with clang's
/// message, for a CPU clang does not know.
llvm::Expected<std::vector<std::string>>
cpuFeaturesForChip(llvm::StringRef clang, llvm::StringRef chip);

} // namespace mlir::moe

#endif // MOE_COMPILER_CPUFEATURES_H
