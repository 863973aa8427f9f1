//===- CPUVariants.h - The CPUs a CPU artifact is compiled for --*- C++ -*-===//
//
// --chip names one CPU (a clang -march value), a comma-separated list of
// them, or `portable` (kPortableChips). A list gives one library holding the
// kernel compiled once per CPU, each under its own symbol, and a dispatcher
// in the C shim that runs the best one the running CPU supports
// (CPUDispatchEmitter.h).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_CPUVARIANTS_H
#define MOE_COMPILER_CPUVARIANTS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace mlir::moe {

/// What --chip=portable stands for: the x86-64 levels v2 (SSE4.2), v3
/// (AVX2, FMA) and v4 (AVX-512), and cooperlake, the CPU with the fewest
/// features that has AVX512_BF16 (which every later one with it, Sapphire
/// Rapids, Zen 4, ..., has as well): bf16 panels_vnni weights use vdpbf16ps.
inline constexpr llvm::StringLiteral kPortableChips =
    "x86-64-v2,x86-64-v3,x86-64-v4,cooperlake";

/// One compilation of a CPU artifact's kernel.
struct CPUVariant {
  /// The clang -march value it is compiled for.
  std::string chip;
  /// What its kernel's symbols carry after the function name: empty for a
  /// single-CPU artifact, `_` and the chip with `-` and `.` as `_` otherwise.
  std::string symbolSuffix;
  /// The features the chip implies (CPUFeatures.h), which the running CPU
  /// must have.
  std::vector<std::string> features;
};

/// The CPUs --chip names (`portable`, one name, or a comma-separated list),
/// in the order given. An empty `chip` is the host (`native`). Fails for a
/// name LLVM's x86 target does not know, listing the accepted ones, for a
/// name given twice, and for `native` in a list.
llvm::Expected<std::vector<std::string>> parseChipList(llvm::StringRef chip);

/// The variants for `chips`, with their features (clang's), in the order
/// the dispatcher tries them: most features first (a later CPU level before
/// an earlier one), ties in the order given.
llvm::Expected<std::vector<CPUVariant>>
planCPUVariants(llvm::StringRef clang, llvm::ArrayRef<std::string> chips);

/// The features every variant needs: a CPU without one of them runs none.
std::vector<std::string> commonCPUFeatures(llvm::ArrayRef<CPUVariant> variants);

/// The manifest's `cpu_variants`: each variant's chip, entry point
/// (_mlir_ciface_<function><suffix>) and features, in the order the library
/// tries them.
llvm::json::Array cpuVariantsToJSON(llvm::ArrayRef<CPUVariant> variants,
                                    llvm::StringRef function);

} // namespace mlir::moe

#endif // MOE_COMPILER_CPUVARIANTS_H
