//===- LayerSpec.cpp - A MoE layer described by its sizes and recipe ------===//

#include "moe/Compiler/LayerSpec.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
using namespace mlir::moe;

namespace {

Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// Reads the integer field `key` of the config, or fails naming it.
Expected<int64_t> requireInt(const json::Object &config, StringRef key,
                             StringRef modelType) {
  if (std::optional<int64_t> value = config.getInteger(key))
    return *value;
  return fail(formatv("config.json of model_type '{0}' needs the integer "
                      "field '{1}'",
                      modelType, key));
}

std::string dtypeFromTorch(const json::Object &config) {
  std::optional<StringRef> dtype = config.getString("torch_dtype");
  if (!dtype)
    dtype = config.getString("dtype");
  if (dtype && *dtype == "bfloat16")
    return "bf16";
  if (dtype && *dtype == "float16")
    return "f16";
  return "f32";
}

std::string printFloat(double value) {
  // 17 significant digits round-trip a double; MLIR needs a '.' or 'e'.
  std::string text = formatv("{0:e16}", value).str();
  return text;
}

} // namespace

Expected<LayerSpec> mlir::moe::layerSpecFromHFConfig(const json::Value &value) {
  const json::Object *config = value.getAsObject();
  if (!config)
    return fail("config.json must hold a JSON object");
  std::optional<StringRef> modelType = config->getString("model_type");
  if (!modelType)
    return fail("config.json has no 'model_type' string field");
  LayerSpec spec;
  spec.dtype = dtypeFromTorch(*config);
  StringRef type = *modelType;
  auto boolField = [&](StringRef key, bool fallback) {
    return config->getBoolean(key).value_or(fallback);
  };
  auto numberField = [&](StringRef key, double fallback) {
    return config->getNumber(key).value_or(fallback);
  };

  auto common = [&](StringRef intermediateKey, StringRef expertsKey) -> Error {
    Expected<int64_t> hidden = requireInt(*config, "hidden_size", type);
    if (!hidden)
      return hidden.takeError();
    Expected<int64_t> inter = requireInt(*config, intermediateKey, type);
    if (!inter)
      return inter.takeError();
    Expected<int64_t> experts = requireInt(*config, expertsKey, type);
    if (!experts)
      return experts.takeError();
    std::optional<int64_t> k = config->getInteger("num_experts_per_tok");
    if (!k)
      k = config->getInteger("experts_per_token");
    if (!k)
      return fail(formatv("config.json of model_type '{0}' needs the integer "
                          "field 'num_experts_per_tok'",
                          type));
    spec.hidden = *hidden;
    spec.intermediate = *inter;
    spec.experts = *experts;
    spec.k = *k;
    return Error::success();
  };

  if (type == "mixtral") {
    spec.family = "mixtral";
    if (Error e = common("intermediate_size", "num_local_experts"))
      return std::move(e);
    spec.renormalize = true;
  } else if (type == "qwen3_moe" || type == "qwen2_moe") {
    spec.family = type.str();
    if (Error e = common("moe_intermediate_size", "num_experts"))
      return std::move(e);
    spec.renormalize = boolField("norm_topk_prob", type == "qwen3_moe");
    if (std::optional<int64_t> shared =
            config->getInteger("shared_expert_intermediate_size");
        shared && *shared > 0) {
      spec.sharedIntermediate = *shared;
      spec.sharedGate = true;
    }
  } else if (type == "olmoe") {
    spec.family = "olmoe";
    if (Error e = common("intermediate_size", "num_experts"))
      return std::move(e);
    spec.renormalize = boolField("norm_topk_prob", false);
  } else if (type == "deepseek_v3") {
    spec.family = "deepseek_v3";
    if (Error e = common("moe_intermediate_size", "n_routed_experts"))
      return std::move(e);
    std::optional<StringRef> scoring = config->getString("scoring_func");
    spec.scoring = scoring ? scoring->str() : "sigmoid";
    spec.nGroup = config->getInteger("n_group").value_or(1);
    spec.topkGroup = config->getInteger("topk_group").value_or(1);
    spec.renormalize = boolField("norm_topk_prob", true);
    spec.renormEpsilon = 1e-20;
    spec.scale = numberField("routed_scaling_factor", 1.0);
    // noaux_tc routing adds the e_score_correction_bias to the selection.
    spec.bias = config->getString("topk_method").value_or("noaux_tc") ==
                "noaux_tc";
    spec.sharedIntermediate =
        config->getInteger("n_shared_experts").value_or(0) * spec.intermediate;
  } else if (type == "gpt_oss") {
    spec.family = "gpt_oss";
    if (Error e = common("intermediate_size", "num_local_experts"))
      return std::move(e);
    spec.scoring = "softmax_topk";
    spec.activation = "swiglu_oai";
    spec.gluLayout = "interleaved";
    spec.limit = numberField("swiglu_limit", 7.0);
  } else {
    return fail(formatv("config.json has model_type '{0}'; known: mixtral, "
                        "qwen3_moe, qwen2_moe, olmoe, deepseek_v3, gpt_oss",
                        type));
  }
  return spec;
}

Error mlir::moe::applyLayerSettings(LayerSpec &spec, StringRef settings) {
  SmallVector<StringRef> items;
  settings.split(items, ',', -1, /*KeepEmpty=*/false);
  for (StringRef item : items) {
    StringRef key = item.split('=').first.trim();
    StringRef value = item.split('=').second.trim();
    bool flag = !item.contains('=');
    auto integer = [&](int64_t &field) -> Error {
      if (value.getAsInteger(10, field))
        return fail(formatv("--layer: '{0}' needs an integer, got '{1}'", key,
                            value));
      return Error::success();
    };
    auto number = [&](double &field) -> Error {
      if (value.getAsDouble(field))
        return fail(formatv("--layer: '{0}' needs a number, got '{1}'", key,
                            value));
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
      return fail(formatv("--layer: '{0}' needs true or false, got '{1}'", key,
                          value));
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
    else if (key == "shared_gate")
      error = boolean(spec.sharedGate);
    else if (key == "dtype")
      spec.dtype = value.str();
    else if (key == "scoring")
      spec.scoring = value.str();
    else if (key == "group_score")
      spec.groupScore = value.str();
    else if (key == "activation")
      spec.activation = value.str();
    else if (key == "glu_layout")
      spec.gluLayout = value.str();
    else if (key == "drop_policy")
      spec.dropPolicy = value.str();
    else if (key == "weight_layout")
      spec.weightLayout = value.str();
    else
      return fail(formatv("--layer: unknown setting '{0}'", key));
    if (error)
      return error;
  }
  return Error::success();
}

Error mlir::moe::validateLayerSpec(const LayerSpec &spec) {
  if (spec.hidden < 1 || spec.intermediate < 1 || spec.experts < 1 ||
      spec.k < 1)
    return fail(formatv("the layer needs hidden, intermediate, experts and k "
                        ">= 1, got hidden={0} intermediate={1} experts={2} "
                        "k={3}",
                        spec.hidden, spec.intermediate, spec.experts, spec.k));
  auto oneOf = [](StringRef what, StringRef value,
                  ArrayRef<StringRef> allowed) -> Error {
    if (llvm::is_contained(allowed, value))
      return Error::success();
    return fail(formatv("{0} '{1}' is not one of {2}", what, value,
                        llvm::join(allowed, ", ")));
  };
  if (Error e = oneOf("dtype", spec.dtype, {"f32", "bf16", "f16"}))
    return e;
  if (Error e = oneOf("scoring", spec.scoring,
                      {"softmax", "sigmoid", "softmax_topk", "none"}))
    return e;
  if (Error e = oneOf("group_score", spec.groupScore, {"sum_top2", "max"}))
    return e;
  if (Error e = oneOf("activation", spec.activation,
                      {"silu", "gelu", "gelu_tanh", "relu", "swiglu_oai"}))
    return e;
  if (Error e = oneOf("glu_layout", spec.gluLayout,
                      {"concatenated", "interleaved"}))
    return e;
  if (Error e = oneOf("drop_policy", spec.dropPolicy, {"position", "score"}))
    return e;
  if (Error e = oneOf("weight_layout", spec.weightLayout,
                      {"nk", "kn", "panels", "panels_vnni"}))
    return e;
  if ((spec.weightLayout == "panels" || spec.weightLayout == "panels_vnni") &&
      ((2 * spec.intermediate) % kLayerPanelWidth ||
       spec.hidden % kLayerPanelWidth))
    return fail(formatv("weight_layout {0} needs hidden ({1}) and 2 x "
                        "intermediate ({2}) to be multiples of {3}",
                        spec.weightLayout, spec.hidden, 2 * spec.intermediate,
                        kLayerPanelWidth));
  if (spec.sharedIntermediate < 0)
    return fail("shared_intermediate must be >= 0");
  if (spec.sharedGate && spec.sharedIntermediate == 0)
    return fail("shared_gate needs shared_intermediate > 0");
  return Error::success();
}

std::string mlir::moe::layerToMLIR(const LayerSpec &spec, StringRef name) {
  int64_t H = spec.hidden, I = spec.intermediate, E = spec.experts;
  StringRef dt = spec.dtype;
  std::string xType = formatv("tensor<?x{0}x{1}>", H, dt);
  std::string routerType = formatv("tensor<{0}x{1}x{2}>", E, H, dt);
  // An expert's [N, K] weights in the spec's layout.
  auto weightType = [&](int64_t N, int64_t K) -> std::string {
    if (spec.weightLayout == "kn")
      return formatv("tensor<{0}x{1}x{2}x{3}>", E, K, N, dt);
    if (spec.weightLayout == "panels")
      return formatv("tensor<{0}x{1}x{2}x{3}x{4}>", E, N / kLayerPanelWidth, K,
                     kLayerPanelWidth, dt);
    if (spec.weightLayout == "panels_vnni")
      return formatv("tensor<{0}x{1}x{2}x{3}x{4}>", E, N / kLayerPanelWidth,
                     K / 2, 2 * kLayerPanelWidth, dt);
    return formatv("tensor<{0}x{1}x{2}x{3}>", E, N, K, dt);
  };
  std::string w13Type = weightType(2 * I, H);
  std::string w2Type = weightType(H, I);
  std::string args = formatv("%x: {0}, %router: {1}, %w13: {2}, %w2: {3}",
                             xType, routerType, w13Type, w2Type);
  std::string extra;
  if (spec.bias) {
    std::string biasType = formatv("tensor<{0}xf32>", E);
    args += formatv(", %bias: {0}", biasType).str();
    extra += formatv(" bias(%bias : {0})", biasType).str();
  }
  if (spec.sharedIntermediate > 0) {
    int64_t Is = spec.sharedIntermediate;
    std::string s13 = formatv("tensor<{0}x{1}x{2}>", 2 * Is, H, dt);
    std::string s2 = formatv("tensor<{0}x{1}x{2}>", H, Is, dt);
    args += formatv(", %shared_w13: {0}, %shared_w2: {1}", s13, s2).str();
    extra += formatv(" shared(%shared_w13, %shared_w2 : {0}, {1})", s13, s2)
                 .str();
    if (spec.sharedGate) {
      std::string gate = formatv("tensor<1x{0}x{1}>", H, dt);
      args += formatv(", %shared_gate: {0}", gate).str();
      extra += formatv(" shared_gate(%shared_gate : {0})", gate).str();
    }
  }
  std::string attrs = formatv(
      "k = {0} : i64, scoring = #moe.scoring<{1}>, n_group = {2} : i64, "
      "topk_group = {3} : i64, group_score = #moe.group_score<{4}>, "
      "renorm_epsilon = {5} : f64, scale = {6} : f64, "
      "activation = #moe.activation<{7}>, glu_layout = #moe.glu_layout<{8}>, "
      "alpha = {9} : f64, limit = {10} : f64, "
      "drop_policy = #moe.drop_policy<{11}>",
      spec.k, spec.scoring, spec.nGroup, spec.topkGroup, spec.groupScore,
      printFloat(spec.renormEpsilon), printFloat(spec.scale), spec.activation,
      spec.gluLayout, printFloat(spec.alpha), printFloat(spec.limit),
      spec.dropPolicy);
  if (spec.renormalize)
    attrs += ", renormalize";
  if (spec.weightLayout != "nk")
    attrs +=
        formatv(", weight_layout = #moe.rhs_layout<{0}>", spec.weightLayout)
            .str();
  if (spec.capacity)
    attrs += formatv(", capacity = {0} : i64", *spec.capacity).str();
  if (spec.capacityFactor)
    attrs += formatv(", capacity_factor = {0} : f64",
                     printFloat(*spec.capacityFactor))
                 .str();

  std::string text;
  raw_string_ostream os(text);
  os << "func.func @" << name << "(" << args << ") -> " << xType << " {\n"
     << "  %c0 = arith.constant 0 : index\n"
     << "  %tokens = tensor.dim %x, %c0 : " << xType << "\n"
     << "  %init = tensor.empty(%tokens) : " << xType << "\n"
     << "  %y = moe.layer ins(%x, %router, %w13, %w2 : " << xType << ", "
     << routerType << ", " << w13Type << ", " << w2Type << ")" << extra
     << " outs(%init : " << xType << ") {" << attrs << "} -> " << xType
     << "\n"
     << "  return %y : " << xType << "\n"
     << "}\n";
  return text;
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
      {"activation", spec.activation},
      {"glu_layout", spec.gluLayout},
      {"alpha", spec.alpha},
      {"limit", spec.limit},
      {"shared_intermediate", spec.sharedIntermediate},
      {"shared_gate", spec.sharedGate},
      {"drop_policy", spec.dropPolicy},
      {"weight_layout", spec.weightLayout},
  };
  if (spec.capacity)
    layer["capacity"] = *spec.capacity;
  if (spec.capacityFactor)
    layer["capacity_factor"] = *spec.capacityFactor;
  return layer;
}
