//===- LayerSpec.h - A MoE layer described by its sizes and recipe -*- C++
//-*-===//
//
// What moe-compile builds when its input is not IR: a layer from `--layer`
// settings or from a model's config (HFConfig.h), checked field by field so
// that every error names the config key or the setting at fault.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_LAYERSPEC_H
#define MOE_COMPILER_LAYERSPEC_H

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

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
  /// DeepSeek-V3's selection bias (moe.route's bias) as an argument.
  bool bias = false;
  /// gpt-oss's Linear biases as arguments: router_bias [E] on the router
  /// logits; expert_bias: w13_bias [E, 2I] and w2_bias [E, H] on the
  /// experts' projections (moe.layer's router_bias, w13_bias, w2_bias).
  bool routerBias = false, expertBias = false;
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
  /// Quantized expert weights (docs/quantization.md): `none` (w13 and w2
  /// in `dtype`), `fp8_e4m3` (f8E4M3FN weights with f32 block scales, the
  /// arguments w13_scales and w2_scales), or a weight-only format: `mxfp4`
  /// (gpt-oss's blocks and e8m0 scales), `int4` (group-wise, f32 scales and
  /// optional zero points) or `int8` (per-channel f32 scales).
  std::string weightQuant = "none";
  /// The scale block [bn, bk] of FP8 weights; a size at least its dimension
  /// spans it (kLayerWholeBlock: per-channel [1, whole], per-tensor
  /// [whole, whole]). int4 takes [1, g], g the group size (effectiveBlock).
  int64_t blockN = 128, blockK = 128;
  /// Asymmetric int4: the arguments w13_zero_points and w2_zero_points.
  bool zeroPoints = false;
  /// The checkpoint format the quantized tensors come from, for the
  /// manifest and the packing functions: the config's quant_method (fp8,
  /// mxfp4, awq, gptq, compressed-tensors), and GPTQ's checkpoint_format
  /// (gptq, whose stored zero points are z - 1, or gptq_v2). Empty for
  /// --layer settings.
  std::string quantMethod, checkpointFormat;
  /// How FP8 layers quantize activations: `dynamic` (per token and group of
  /// bk) or `static` (one scale per tensor: the arguments w13_input_scale
  /// and w2_input_scale).
  std::string activationQuant = "dynamic";

  /// Where each field's value came from, keyed by its setting name (`k`,
  /// `n_group`, ...): "config key 'num_experts_per_tok'", "--layer k". A
  /// field without an entry holds its default.
  llvm::StringMap<std::string> origins;

  /// The origin of setting `field`, for diagnostics.
  std::string origin(llvm::StringRef field) const;
};

/// The block size that spans any dimension of a layer (per-channel and
/// per-tensor scales).
constexpr int64_t kLayerWholeBlock = int64_t(1) << 20;
/// The panel width of the panels and panels_vnni layouts moe-compile emits
/// for float weights, and the narrowest one of quantized weights.
constexpr int64_t kLayerPanelWidth = 16;

/// The panel width of a `panels` layer's weights with `n` output columns:
/// kLayerPanelWidth for float weights; for quantized ones the widest of 64,
/// 32 and 16 that divides n, as moe_mlir.pack.quantized_panel_width packs
/// them, so that a row of a 64-wide 4-bit panel is one 64-byte line (in the
/// word order, docs/quantization.md).
inline int64_t layerPanelWidth(const LayerSpec &spec, int64_t n) {
  if (spec.weightQuant == "none")
    return kLayerPanelWidth;
  for (int64_t width : {64, 32})
    if (n % width == 0)
      return width;
  return kLayerPanelWidth;
}

/// Documented limits (docs/aot.md). hidden, intermediate and
/// shared_intermediate are at most kMaxLayerSize and experts at most
/// kMaxLayerExperts, so that sizes and their products never wrap.
constexpr int64_t kMaxLayerSize = int64_t(1) << 20;
constexpr int64_t kMaxLayerExperts = int64_t(1) << 16;
/// One expert's weight matrix (2I x H, H x I, 2Is x H) holds at most this
/// many elements: the generated C spells a tensor's strides as products of
/// `int` literals.
constexpr int64_t kMaxLayerMatrixElements = INT32_MAX;
/// The largest `capacity` (tokens per expert).
constexpr int64_t kMaxLayerCapacity = INT32_MAX;

/// Applies `key=value[,key=value...]` settings (the names of the LayerSpec
/// fields in snake_case: hidden, intermediate, experts, k, dtype, scoring,
/// n_group, ...; a bare flag such as `renormalize` means true). Each value
/// is parsed as its field's type; errors name the setting.
llvm::Error applyLayerSettings(LayerSpec &spec, llvm::StringRef settings);

/// Checks every field's range, the limits above and the routing rules of
/// moe.layer's verifier, naming the config key or setting at fault, so that
/// the module built from a valid spec always verifies.
llvm::Error validateLayerSpec(const LayerSpec &spec);

/// The block [bn, bk] that shares one scale in the layer's weight
/// quantization: the spec's for fp8_e4m3, [1, 32] for mxfp4, [1, g] for
/// int4, [1, kLayerWholeBlock] (per-channel) for int8.
std::pair<int64_t, int64_t> effectiveBlock(const LayerSpec &spec);

/// The function arguments of the layer's module, in order: x, router, w13,
/// w2[, bias][, router_bias][, w13_bias, w2_bias][, shared_w13,
/// shared_w2[, shared_gate]][, w13_scales, w2_scales[, w13_input_scale,
/// w2_input_scale][, w13_zero_points, w2_zero_points]].
llvm::SmallVector<std::string> layerArgumentNames(const LayerSpec &spec);

/// The function arguments of the experts entry's module (buildExpertsModule):
/// x, topk_ids, topk_weights, w13, w2[, w13_bias, w2_bias][, w13_scales,
/// w2_scales[, w13_input_scale, w2_input_scale][, w13_zero_points,
/// w2_zero_points]].
llvm::SmallVector<std::string> expertsArgumentNames(const LayerSpec &spec);

/// The layer's sizes, dtype and routing attributes, for the manifest.
llvm::json::Object layerToJSON(const LayerSpec &spec);

} // namespace mlir::moe

#endif // MOE_COMPILER_LAYERSPEC_H
