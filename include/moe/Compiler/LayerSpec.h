//===- LayerSpec.h - A MoE layer described by its sizes and recipe -*- C++ -*-===//
//
// What moe-compile builds when its input is not IR: a layer from flags or
// from a model's Hugging Face config.json, mapped onto the dialect's routing
// recipes (Mixtral, Qwen3-MoE, OLMoE, DeepSeek-V3, gpt-oss).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_LAYERSPEC_H
#define MOE_COMPILER_LAYERSPEC_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <optional>
#include <string>

namespace mlir::moe {

struct LayerSpec {
  std::string family = "custom";
  int64_t hidden = 0, intermediate = 0, experts = 0, k = 0;
  std::string dtype = "f32";
  std::string scoring = "softmax";
  int64_t nGroup = 1, topkGroup = 1;
  std::string groupScore = "sum_top2";
  bool renormalize = false;
  double renormEpsilon = 0.0, scale = 1.0;
  bool bias = false;
  std::string activation = "silu", gluLayout = "concatenated";
  double alpha = 1.702, limit = 7.0;
  int64_t sharedIntermediate = 0;
  bool sharedGate = false;
  std::optional<int64_t> capacity;
  std::optional<double> capacityFactor;
  std::string dropPolicy = "position";
  /// How w13 and w2 are stored: nk ([E, N, K], PyTorch Linear), kn
  /// ([E, K, N]), panels ([E, N / 16, K, 16], the CPU kernel's packing,
  /// moe_mlir.pack.to_layout) or panels_vnni ([E, N / 16, K / 2, 32], its
  /// packing of bf16 weights).
  std::string weightLayout = "nk";
};

/// The panel width of the panels and panels_vnni layouts moe-compile emits.
constexpr int64_t kLayerPanelWidth = 16;

/// Maps the fields of a Hugging Face config.json onto a layer. Knows the
/// model types mixtral, qwen3_moe, qwen2_moe, olmoe, deepseek_v3 and gpt_oss.
llvm::Expected<LayerSpec> layerSpecFromHFConfig(const llvm::json::Value &config);

/// Applies `key=value[,key=value...]` settings (the names of the LayerSpec
/// fields in snake_case: hidden, intermediate, experts, k, dtype, scoring,
/// n_group, ...; a bare flag such as `renormalize` means true).
llvm::Error applyLayerSettings(LayerSpec &spec, llvm::StringRef settings);

/// Checks sizes and names; the dialect's verifier checks the rest.
llvm::Error validateLayerSpec(const LayerSpec &spec);

/// A module with one function `@name` holding the layer as a moe.layer with
/// a dynamic token count: (x, router, w13, w2[, bias][, shared_w13,
/// shared_w2[, shared_gate]]) -> y.
std::string layerToMLIR(const LayerSpec &spec, llvm::StringRef name);

/// The layer's sizes, dtype and routing attributes, for the manifest.
llvm::json::Object layerToJSON(const LayerSpec &spec);

} // namespace mlir::moe

#endif // MOE_COMPILER_LAYERSPEC_H
