//===- HFQuantization.h - A config's quantization_config --------*- C++ -*-===//
//
// The quantization_config of a Hugging Face checkpoint, mapped onto the
// layer's weight quantization: fp8 (block or per-tensor scales), mxfp4
// (gpt-oss), awq and gptq (4-bit, group-wise), compressed-tensors (int8
// weights-only, per channel). Anything else is refused naming the key and
// the value; nothing falls back to float weights.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_COMPILER_HFQUANTIZATION_H
#define MOE_LIB_COMPILER_HFQUANTIZATION_H

#include "moe/Compiler/LayerSpec.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

namespace mlir::moe {

/// A JSON value in a few words, for "got ..." in diagnostics.
std::string describeConfigValue(const llvm::json::Value &value);

/// Reads `config`'s quantization_config, if any, into `spec`; `prefix` is
/// the path of `config` in the file ("" or "text_config.") for the
/// diagnostics.
llvm::Error readQuantizationConfig(const llvm::json::Object &config,
                                   llvm::StringRef prefix, LayerSpec &spec);

} // namespace mlir::moe

#endif // MOE_LIB_COMPILER_HFQUANTIZATION_H
