//===- CABIEmitter.h - The C ABI of a compiled function ---------*- C++ -*-===//
//
// Describes the C ABI moe-compile gives a compiled function: one pointer per
// tensor argument and result, the token count standing for every dynamic
// dimension, a caller-provided workspace and a stream. Emits the versioned
// header and the C shim that checks the arguments and calls the function's
// _mlir_ciface_ entry point.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_CABIEMITTER_H
#define MOE_COMPILER_CABIEMITTER_H

#include "moe/Compiler/CPUVariants.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace mlir::moe {

struct ABITensor {
  std::string name;
  std::vector<int64_t> shape; // -1 where the size is the token count
  std::string elementType;    // f32, bf16, f16, f8E4M3FN, f8E8M0FNU, i8, i32
  int64_t elementBytes;
  bool isResult;
};

struct ABIFunction {
  std::string symbol; // the MLIR function
  std::string prefix; // moe_<name>
  int64_t maxTokens;
  std::vector<ABITensor> tensors;
  // CUDA artifacts take device pointers and a stream, and their compiled
  // function also takes the workspace and answers the workspace-size query
  // (see moe-gpu-workspace).
  bool cuda = false;
  // The layout of the w13 and w2 tensors when moe-compile made the layer
  // from a spec (nk, kn, panels, panels_vnni; empty for IR input), and their
  // quantized format (none, fp8_e4m3, mxfp4, int4, int8): kn and panels
  // layouts get a <prefix>_pack_w13 / _pack_w2 function from the Linear
  // layout. Each tensor's panel width is its shape's.
  std::string weightLayout;
  std::string weightQuant = "none";
  // CPU artifacts: --chip as given, and the kernel's variants, one per CPU
  // it is compiled for, in the order the shim's dispatcher tries them
  // (CPUDispatchEmitter.h); a variant runs only on a CPU with all its
  // features. The shim itself is compiled for the x86-64 baseline.
  std::string chip;
  std::vector<CPUVariant> cpuVariants;

  /// The byte alignment the artifact requires of `tensor`: its element size
  /// on the CPU, 16 on CUDA, whose kernels load 16-byte vectors.
  int64_t alignment(const ABITensor &tensor) const {
    return cuda ? 16 : tensor.elementBytes;
  }
};

/// The ABI of `func`; fails for argument or result types it cannot pass
/// (non-tensor values, element types without a C storage type).
llvm::Expected<ABIFunction> describeABI(func::FuncOp func, llvm::StringRef name,
                                        ArrayRef<std::string> argNames,
                                        int64_t maxTokens, bool cuda);

/// The C99 header declaring the artifact's functions.
std::string emitHeader(const ABIFunction &abi, llvm::StringRef runtimeHeader);

/// The C99 shim implementing them over the _mlir_ciface_ entry point (and,
/// for CUDA, the runtime's stream and status entry points).
std::string emitShim(const ABIFunction &abi);

/// The names of the ABI's exported functions.
std::vector<std::string> exportedSymbols(const ABIFunction &abi);

/// The linker version script exporting only the ABI's symbols.
std::string emitVersionScript(const ABIFunction &abi);

/// The function part of the manifest.
llvm::json::Array abiToJSON(const ABIFunction &abi);

} // namespace mlir::moe

#endif // MOE_COMPILER_CABIEMITTER_H
