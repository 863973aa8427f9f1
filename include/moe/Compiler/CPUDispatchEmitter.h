//===- CPUDispatchEmitter.h - Picking a CPU kernel variant ------*- C++ -*-===//
//
// The part of a CPU artifact's C shim that picks which compilation of the
// kernel runs: the first variant, in the ABI's order, whose CPU features the
// running CPU has, chosen once per process, on the first call, thread-safely.
// MOE_MLIR_CPU_VARIANT=<chip> picks a variant by name instead (to test or
// compare the lower ones); a CPU that runs none, or a name the library does
// not have, gives MOE_STATUS_UNSUPPORTED and a message, never an illegal
// instruction.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_CPUDISPATCHEMITTER_H
#define MOE_COMPILER_CPUDISPATCHEMITTER_H

#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mlir::moe {

struct ABIFunction;

/// Declares each variant's _mlir_ciface_ entry point and defines, for the
/// shim: `moe_cpu_kernel_fn`, the entry points' type; `moe_cpu_kernel()`,
/// the chosen variant's entry point or NULL; `moe_cpu_unsupported()`, why
/// none was chosen, or NULL; and the exported `<prefix>_cpu_variant()`, the
/// chosen variant's chip. Uses the shim's memref_<rank>d types.
void emitCPUDispatch(const ABIFunction &abi, llvm::raw_ostream &os);

/// The exported function naming the chosen variant: `<prefix>_cpu_variant`.
std::string cpuVariantSymbol(const ABIFunction &abi);

} // namespace mlir::moe

#endif // MOE_COMPILER_CPUDISPATCHEMITTER_H
