//===- LayerSpec.cpp - A MoE layer described by its sizes and recipe ------===//

#include "moe/Compiler/LayerSpec.h"

#include "moe/Dialect/MoE/IR/MoEAttrs.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstdio>

using namespace llvm;
using namespace mlir::moe;

namespace {

Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// `value` in the shortest of %g's forms: 2.5, -1, nan, 1e+300.
std::string shortNumber(double value) {
  char text[32];
  snprintf(text, sizeof(text), "%g", value);
  return text;
}

/// The names of an enum of the dialect, so the accepted spellings come from
/// one place (MoEEnums.td).
template <typename NameOf>
SmallVector<StringRef> enumNames(unsigned maxValue, NameOf nameOf) {
  SmallVector<StringRef> names;
  for (unsigned value = 0; value <= maxValue; ++value)
    if (std::optional<StringRef> name = nameOf(value))
      names.push_back(*name);
  return names;
}

#define MOE_ENUM_NAMES(Enum)                                                   \
  enumNames(getMaxEnumValFor##Enum(),                                          \
            [](uint32_t value) -> std::optional<StringRef> {                   \
              if (std::optional<Enum> e = symbolize##Enum(value))              \
                return stringify##Enum(*e);                                    \
              return std::nullopt;                                             \
            })

/// Checks the fields of one spec; each failure names its field's origin.
class SpecChecker {
public:
  explicit SpecChecker(const LayerSpec &spec) : spec(spec) {}

  Error oneOf(StringRef field, StringRef value, ArrayRef<StringRef> allowed) {
    if (is_contained(allowed, value))
      return Error::success();
    return fail(formatv("{0}: '{1}' is not one of {2}", spec.origin(field),
                        value, join(allowed, ", ")));
  }

  Error inRange(StringRef field, int64_t value, int64_t low, int64_t high) {
    if (value >= low && value <= high)
      return Error::success();
    return fail(formatv("{0}: {1} = {2} is out of range: expected {3} <= {1} "
                        "<= {4}",
                        spec.origin(field), field, value, low, high));
  }

  /// `value` must be finite and, unless `zeroOk`, positive; >= 0 otherwise.
  Error finite(StringRef field, double value, bool zeroOk) {
    bool ok = std::isfinite(value) && (zeroOk ? value >= 0.0 : value > 0.0);
    if (ok)
      return Error::success();
    return fail(formatv("{0}: {1} = {2} must be finite and {3} 0",
                        spec.origin(field), field, shortNumber(value),
                        zeroOk ? ">=" : ">"));
  }

  /// The elements of an `rows` x `columns` weight matrix, within
  /// kMaxLayerMatrixElements.
  Error matrix(StringRef what, StringRef rowsField, int64_t rows,
               StringRef columnsField, int64_t columns) {
    int64_t elements = 0;
    if (!MulOverflow(rows, columns, elements) &&
        elements <= kMaxLayerMatrixElements)
      return Error::success();
    return fail(formatv("{0} ({1} x {2}, from {3} and {4}) has more than the "
                        "{5} elements a weight matrix may hold",
                        what, rows, columns, spec.origin(rowsField),
                        spec.origin(columnsField), kMaxLayerMatrixElements));
  }

private:
  const LayerSpec &spec;
};

/// `weight_block`: `BNxBK` (two positive integers), `per_channel` ([1,
/// whole]) or `per_tensor` ([whole, whole]).
Error parseWeightBlock(StringRef text, LayerSpec &spec) {
  if (text == "per_channel") {
    spec.blockN = 1;
    spec.blockK = kLayerWholeBlock;
    return Error::success();
  }
  if (text == "per_tensor") {
    spec.blockN = spec.blockK = kLayerWholeBlock;
    return Error::success();
  }
  auto [n, k] = text.split('x');
  int64_t bn = 0, bk = 0;
  if (n.getAsInteger(10, bn) || k.getAsInteger(10, bk) || bn < 1 || bk < 1)
    return fail(formatv("--layer weight_block: '{0}' is not BNxBK (two "
                        "positive integers, e.g. 128x128), per_channel or "
                        "per_tensor",
                        text));
  spec.blockN = bn;
  spec.blockK = bk;
  return Error::success();
}

/// The weight-only formats' settings: the nk layout, sizes the packing
/// and the scale blocks divide, a block only where the format has a choice
/// (int4's group size), zero points only for int4, no activation scheme.
Error validateWeightOnly(const LayerSpec &spec) {
  StringRef format = spec.weightQuant;
  int64_t H = spec.hidden, I = spec.intermediate;
  if (spec.origins.count("activation_quant"))
    return fail(formatv("{0}: activation_quant applies to fp8_e4m3 weights; "
                        "weight_quant {1} is weight-only ({2})",
                        spec.origin("activation_quant"), format,
                        spec.origin("weight_quant")));
  if (spec.zeroPoints && format != "int4")
    return fail(formatv("{0}: zero_points apply to int4 weights, not to "
                        "weight_quant {1} ({2})",
                        spec.origin("zero_points"), format,
                        spec.origin("weight_quant")));
  bool hasBlock = spec.origins.count("weight_block");
  if (format == "mxfp4") {
    if (hasBlock && (spec.blockN != 1 || spec.blockK != 32))
      return fail(formatv("{0}: mxfp4 has one scale per 32 K: weight_block "
                          "must be 1x32, got {1}x{2}",
                          spec.origin("weight_block"), spec.blockN,
                          spec.blockK));
    if (H % 32 || I % 32)
      return fail(formatv("{0}: weight_quant mxfp4 needs hidden ({1}, {2}) "
                          "and intermediate ({3}, {4}) to be multiples of 32, "
                          "the scale block",
                          spec.origin("weight_quant"), H, spec.origin("hidden"),
                          I, spec.origin("intermediate")));
  } else if (format == "int4") {
    if (hasBlock &&
        (spec.blockN != 1 ||
         (spec.blockK != 32 && spec.blockK != 64 && spec.blockK != 128)))
      return fail(formatv("{0}: int4 groups 32, 64 or 128 K: weight_block "
                          "must be 1x32, 1x64 or 1x128, got {1}x{2}",
                          spec.origin("weight_block"), spec.blockN,
                          spec.blockK));
    if (H % 2 || I % 2)
      return fail(formatv("{0}: weight_quant int4 packs two weights per byte "
                          "along K: hidden ({1}, {2}) and intermediate ({3}, "
                          "{4}) must be even",
                          spec.origin("weight_quant"), H, spec.origin("hidden"),
                          I, spec.origin("intermediate")));
  } else if (hasBlock && (spec.blockN != 1 || spec.blockK < std::max(H, I))) {
    return fail(formatv("{0}: int8 is per-channel: weight_block must be "
                        "per_channel, got {1}x{2}",
                        spec.origin("weight_block"), spec.blockN, spec.blockK));
  }
  return Error::success();
}

/// The quantization settings: a known format; FP8's activation scheme,
/// the nk or panels layout (the CPU kernels dequantize those), a block inside
/// the limits, and w13's gate and up halves each a whole number of blocks along
/// N (their checkpoint scales are stacked as they are).
Error validateWeightQuant(const LayerSpec &spec, SpecChecker &check) {
  if (Error e = check.oneOf("weight_quant", spec.weightQuant,
                            {"none", "fp8_e4m3", "mxfp4", "int4", "int8"}))
    return e;
  if (spec.weightQuant == "none") {
    if (spec.zeroPoints)
      return fail(formatv("{0}: zero_points need weight_quant int4",
                          spec.origin("zero_points")));
    // Settings of quantized weights would otherwise be dropped unread.
    for (StringRef field : {"weight_block", "activation_quant"})
      if (spec.origins.count(field))
        return fail(formatv("{0}: {1} applies to quantized weights; "
                            "weight_quant is none ({2})",
                            spec.origin(field), field,
                            spec.origin("weight_quant")));
    return Error::success();
  }
  if (spec.weightLayout != "nk" && spec.weightLayout != "panels")
    return fail(formatv("{0}: weight_quant {1} needs weight_layout nk or "
                        "panels, got {2} ({3})",
                        spec.origin("weight_quant"), spec.weightQuant,
                        spec.weightLayout, spec.origin("weight_layout")));
  if (spec.weightQuant != "fp8_e4m3")
    return validateWeightOnly(spec);
  if (spec.zeroPoints)
    return fail(formatv("{0}: zero_points apply to int4 weights, not to "
                        "weight_quant fp8_e4m3",
                        spec.origin("zero_points")));
  if (Error e = check.oneOf("activation_quant", spec.activationQuant,
                            {"dynamic", "static"}))
    return e;
  if (Error e = check.inRange("weight_block", spec.blockN, 1, kLayerWholeBlock))
    return e;
  if (Error e = check.inRange("weight_block", spec.blockK, 1, kLayerWholeBlock))
    return e;
  int64_t I = spec.intermediate;
  if (spec.blockN < 2 * I && I % spec.blockN != 0)
    return fail(formatv("{0}: the block along N ({1}) must divide "
                        "intermediate ({2}, {3}) so that the gate and up "
                        "halves of w13 hold whole blocks",
                        spec.origin("weight_block"), spec.blockN, I,
                        spec.origin("intermediate")));
  return Error::success();
}

} // namespace

std::string LayerSpec::origin(StringRef field) const {
  auto it = origins.find(field);
  if (it != origins.end())
    return it->second;
  return formatv("{0} (default)", field).str();
}

Error mlir::moe::applyLayerSettings(LayerSpec &spec, StringRef settings) {
  SmallVector<StringRef> items;
  settings.split(items, ',', -1, /*KeepEmpty=*/false);
  // A setting given twice is a mistake to report, not a choice between two
  // values (a config's value is the one --layer overrides).
  llvm::StringSet<> given;
  for (StringRef item : items) {
    auto [rawKey, rawValue] = item.split('=');
    StringRef key = rawKey.trim(), value = rawValue.trim();
    bool flag = !item.contains('=');
    if (!key.empty() && !given.insert(key).second)
      return fail(
          formatv("--layer {0}: given twice; give each setting once", key));
    auto integer = [&](int64_t &field) -> Error {
      // getAsInteger refuses values that do not fit in int64_t.
      if (value.getAsInteger(10, field))
        return fail(
            formatv("--layer {0}: needs an integer, got '{1}'", key, value));
      return Error::success();
    };
    auto number = [&](double &field) -> Error {
      if (value.getAsDouble(field))
        return fail(
            formatv("--layer {0}: needs a number, got '{1}'", key, value));
      return Error::success();
    };
    auto boolean = [&](bool &field) -> Error {
      if (flag || value == "true" || value == "1") {
        field = true;
        return Error::success();
      }
      if (value == "false" || value == "0") {
        field = false;
        return Error::success();
      }
      return fail(
          formatv("--layer {0}: needs true or false, got '{1}'", key, value));
    };
    auto text = [&](std::string &field) -> Error {
      if (value.empty())
        return fail(formatv("--layer {0}: needs a value", key));
      field = value.str();
      return Error::success();
    };
    Error error = Error::success();
    if (key == "hidden")
      error = integer(spec.hidden);
    else if (key == "intermediate")
      error = integer(spec.intermediate);
    else if (key == "experts")
      error = integer(spec.experts);
    else if (key == "k")
      error = integer(spec.k);
    else if (key == "n_group")
      error = integer(spec.nGroup);
    else if (key == "topk_group")
      error = integer(spec.topkGroup);
    else if (key == "shared_intermediate")
      error = integer(spec.sharedIntermediate);
    else if (key == "capacity") {
      int64_t capacity = 0;
      error = integer(capacity);
      spec.capacity = capacity;
    } else if (key == "capacity_factor") {
      double factor = 0;
      error = number(factor);
      spec.capacityFactor = factor;
    } else if (key == "renorm_epsilon")
      error = number(spec.renormEpsilon);
    else if (key == "scale")
      error = number(spec.scale);
    else if (key == "alpha")
      error = number(spec.alpha);
    else if (key == "limit")
      error = number(spec.limit);
    else if (key == "renormalize")
      error = boolean(spec.renormalize);
    else if (key == "bias")
      error = boolean(spec.bias);
    else if (key == "router_bias")
      error = boolean(spec.routerBias);
    else if (key == "expert_bias")
      error = boolean(spec.expertBias);
    else if (key == "shared_gate")
      error = boolean(spec.sharedGate);
    else if (key == "zero_points")
      error = boolean(spec.zeroPoints);
    else if (key == "dtype")
      error = text(spec.dtype);
    else if (key == "scoring")
      error = text(spec.scoring);
    else if (key == "group_score")
      error = text(spec.groupScore);
    else if (key == "activation")
      error = text(spec.activation);
    else if (key == "glu_layout")
      error = text(spec.gluLayout);
    else if (key == "drop_policy")
      error = text(spec.dropPolicy);
    else if (key == "weight_layout")
      error = text(spec.weightLayout);
    else if (key == "weight_quant")
      error = text(spec.weightQuant);
    else if (key == "activation_quant")
      error = text(spec.activationQuant);
    else if (key == "weight_block") {
      std::string block;
      if (!(error = text(block)))
        error = parseWeightBlock(block, spec);
    } else
      return fail(formatv("--layer: unknown setting '{0}'", key));
    if (error)
      return error;
    spec.origins[key] = ("--layer " + key).str();
  }
  return Error::success();
}

Error mlir::moe::validateLayerSpec(const LayerSpec &spec) {
  SpecChecker check(spec);
  // Sizes first: every later rule and product relies on them.
  for (auto [field, value, high] :
       {std::tuple<StringRef, int64_t, int64_t>{"hidden", spec.hidden,
                                                kMaxLayerSize},
        {"intermediate", spec.intermediate, kMaxLayerSize},
        {"experts", spec.experts, kMaxLayerExperts}})
    if (Error e = check.inRange(field, value, 1, high))
      return e;
  if (Error e = check.inRange("shared_intermediate", spec.sharedIntermediate, 0,
                              kMaxLayerSize))
    return e;
  if (Error e = check.matrix("w13 of one expert", "intermediate",
                             2 * spec.intermediate, "hidden", spec.hidden))
    return e;
  if (Error e =
          check.matrix("shared_w13", "shared_intermediate",
                       2 * spec.sharedIntermediate, "hidden", spec.hidden))
    return e;

  if (Error e = check.oneOf("dtype", spec.dtype, {"f32", "bf16", "f16"}))
    return e;
  if (Error e = check.oneOf("scoring", spec.scoring, MOE_ENUM_NAMES(Scoring)))
    return e;
  if (Error e = check.oneOf("group_score", spec.groupScore,
                            MOE_ENUM_NAMES(GroupScore)))
    return e;
  if (Error e = check.oneOf("activation", spec.activation,
                            MOE_ENUM_NAMES(Activation)))
    return e;
  if (Error e =
          check.oneOf("glu_layout", spec.gluLayout, MOE_ENUM_NAMES(GluLayout)))
    return e;
  if (Error e = check.oneOf("drop_policy", spec.dropPolicy,
                            MOE_ENUM_NAMES(DropPolicy)))
    return e;
  if (Error e = check.oneOf("weight_layout", spec.weightLayout,
                            MOE_ENUM_NAMES(RhsLayout)))
    return e;

  // moe.layer's routing rules, in the verifier's order and words.
  int64_t E = spec.experts;
  if (spec.k < 1 || spec.k > E)
    return fail(formatv("{0}: k = {1} is out of range: expected 1 <= k <= E "
                        "= {2} (E: {3})",
                        spec.origin("k"), spec.k, E, spec.origin("experts")));
  if (spec.nGroup < 1 || E % spec.nGroup != 0)
    return fail(formatv("{0}: n_group = {1} must divide the number of experts "
                        "E = {2} (E: {3})",
                        spec.origin("n_group"), spec.nGroup, E,
                        spec.origin("experts")));
  if (spec.topkGroup < 1 || spec.topkGroup > spec.nGroup)
    return fail(formatv("{0}: topk_group = {1} is out of range: expected 1 <= "
                        "topk_group <= n_group = {2}",
                        spec.origin("topk_group"), spec.topkGroup,
                        spec.nGroup));
  int64_t groupSize = E / spec.nGroup;
  if (spec.k > spec.topkGroup * groupSize)
    return fail(formatv("{0}: k = {1} exceeds the {2} experts reachable "
                        "through topk_group = {3} groups of {4} ({5})",
                        spec.origin("k"), spec.k, spec.topkGroup * groupSize,
                        spec.topkGroup, groupSize, spec.origin("topk_group")));
  if (spec.nGroup > 1 && spec.groupScore == "sum_top2" && groupSize < 2)
    return fail(formatv("{0}: group_score = sum_top2 needs at least 2 experts "
                        "per group, got {1} (n_group = {2})",
                        spec.origin("group_score"), groupSize, spec.nGroup));
  if (Error e = check.finite("renorm_epsilon", spec.renormEpsilon, true))
    return e;
  if (Error e = check.finite("scale", spec.scale, false))
    return e;
  if (Error e = check.finite("alpha", spec.alpha, false))
    return e;
  if (Error e = check.finite("limit", spec.limit, false))
    return e;

  if (spec.capacity && spec.capacityFactor)
    return fail(formatv("{0} and {1}: capacity and capacity_factor are "
                        "mutually exclusive",
                        spec.origin("capacity"),
                        spec.origin("capacity_factor")));
  if (spec.capacity)
    if (Error e =
            check.inRange("capacity", *spec.capacity, 1, kMaxLayerCapacity))
      return e;
  if (spec.capacityFactor)
    if (Error e = check.finite("capacity_factor", *spec.capacityFactor, false))
      return e;

  if ((spec.weightLayout == "panels" || spec.weightLayout == "panels_vnni") &&
      ((2 * spec.intermediate) % kLayerPanelWidth ||
       spec.hidden % kLayerPanelWidth))
    return fail(formatv("{0}: weight_layout {1} needs hidden ({2}, {3}) and "
                        "2 x intermediate ({4}, {5}) to be multiples of {6}",
                        spec.origin("weight_layout"), spec.weightLayout,
                        spec.hidden, spec.origin("hidden"),
                        2 * spec.intermediate, spec.origin("intermediate"),
                        kLayerPanelWidth));
  if (Error e = validateWeightQuant(spec, check))
    return e;
  if (spec.sharedGate && spec.sharedIntermediate == 0)
    return fail(formatv("{0}: shared_gate needs shared_intermediate > 0",
                        spec.origin("shared_gate")));
  return Error::success();
}

std::pair<int64_t, int64_t> mlir::moe::effectiveBlock(const LayerSpec &spec) {
  if (spec.weightQuant == "mxfp4")
    return {1, 32};
  if (spec.weightQuant == "int4")
    return {1, spec.blockK};
  if (spec.weightQuant == "int8")
    return {1, kLayerWholeBlock};
  return {spec.blockN, spec.blockK};
}

/// The scales (and input scales, zero points) after the other arguments.
static void appendQuantArgumentNames(const LayerSpec &spec,
                                     SmallVectorImpl<std::string> &names) {
  if (spec.weightQuant == "none")
    return;
  names.append({"w13_scales", "w2_scales"});
  if (spec.weightQuant == "fp8_e4m3" && spec.activationQuant == "static")
    names.append({"w13_input_scale", "w2_input_scale"});
  if (spec.zeroPoints)
    names.append({"w13_zero_points", "w2_zero_points"});
}

SmallVector<std::string> mlir::moe::layerArgumentNames(const LayerSpec &spec) {
  SmallVector<std::string> names = {"x", "router", "w13", "w2"};
  if (spec.bias)
    names.push_back("bias");
  if (spec.routerBias)
    names.push_back("router_bias");
  if (spec.expertBias)
    names.append({"w13_bias", "w2_bias"});
  if (spec.sharedIntermediate > 0) {
    names.append({"shared_w13", "shared_w2"});
    if (spec.sharedGate)
      names.push_back("shared_gate");
  }
  appendQuantArgumentNames(spec, names);
  return names;
}

SmallVector<std::string>
mlir::moe::expertsArgumentNames(const LayerSpec &spec) {
  SmallVector<std::string> names = {"x", "topk_ids", "topk_weights", "w13",
                                    "w2"};
  if (spec.expertBias)
    names.append({"w13_bias", "w2_bias"});
  appendQuantArgumentNames(spec, names);
  return names;
}

json::Object mlir::moe::layerToJSON(const LayerSpec &spec) {
  json::Object layer{
      {"family", spec.family},
      {"hidden", spec.hidden},
      {"intermediate", spec.intermediate},
      {"experts", spec.experts},
      {"k", spec.k},
      {"dtype", spec.dtype},
      {"scoring", spec.scoring},
      {"n_group", spec.nGroup},
      {"topk_group", spec.topkGroup},
      {"group_score", spec.groupScore},
      {"renormalize", spec.renormalize},
      {"renorm_epsilon", spec.renormEpsilon},
      {"scale", spec.scale},
      {"bias", spec.bias},
      {"router_bias", spec.routerBias},
      {"expert_bias", spec.expertBias},
      {"activation", spec.activation},
      {"glu_layout", spec.gluLayout},
      {"alpha", spec.alpha},
      {"limit", spec.limit},
      {"shared_intermediate", spec.sharedIntermediate},
      {"shared_gate", spec.sharedGate},
      {"drop_policy", spec.dropPolicy},
      {"weight_layout", spec.weightLayout},
      {"weight_quant", spec.weightQuant},
  };
  if (spec.weightQuant != "none") {
    auto [bn, bk] = effectiveBlock(spec);
    layer["weight_block"] = json::Array{bn, bk};
    layer["activation_quant"] =
        spec.weightQuant == "fp8_e4m3" ? spec.activationQuant : "none";
    layer["zero_points"] = spec.zeroPoints;
  }
  if (!spec.quantMethod.empty())
    layer["quant_method"] = spec.quantMethod;
  if (!spec.checkpointFormat.empty())
    layer["checkpoint_format"] = spec.checkpointFormat;
  if (spec.capacity)
    layer["capacity"] = *spec.capacity;
  if (spec.capacityFactor)
    layer["capacity_factor"] = *spec.capacityFactor;
  return layer;
}
