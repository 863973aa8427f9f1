//===- HFConfig.h - A MoE layer from a Hugging Face config.json -*- C++ -*-===//
//
// Reads the fields of a model's config.json that decide its MoE layer, for
// the model types mixtral, qwen3_moe, qwen2_moe, qwen3_vl_moe (its
// text_config), olmoe, deepseek_v3 and gpt_oss. Every field the layer
// depends on is type- and range-checked; what the layer cannot honour (an
// activation, a dtype, a quantization_config) is an error naming the key.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_HFCONFIG_H
#define MOE_COMPILER_HFCONFIG_H

#include "moe/Compiler/LayerSpec.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

namespace mlir::moe {

/// The deepest nesting of arrays and objects a config may have. Configs
/// nest a few levels; the JSON parser recurses once per level, so deeper
/// input is refused before it is parsed.
constexpr int kMaxConfigDepth = 64;

/// Maps the fields of a parsed config onto a layer (a nested text_config is
/// followed). The spec's origins name the keys read.
llvm::Expected<LayerSpec>
layerSpecFromHFConfig(const llvm::json::Value &config);

/// Parses the text of a config.json, refusing nesting deeper than
/// kMaxConfigDepth, and maps it onto a layer.
llvm::Expected<LayerSpec> layerSpecFromHFConfigText(llvm::StringRef text);

} // namespace mlir::moe

#endif // MOE_COMPILER_HFCONFIG_H
