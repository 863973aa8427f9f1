//===- HFConfig.cpp - A MoE layer from a Hugging Face config.json ---------===//

#include "moe/Compiler/HFConfig.h"

#include "HFQuantization.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

using namespace llvm;
using namespace mlir::moe;

namespace {

Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// The keys the layer reads for which Hugging Face writes null to mean
/// "not set", and the models' code reads it so: torch_dtype and dtype (the
/// default dtype, float32), quantization_config (not quantized) and
/// DeepSeek's n_shared_experts (`if config.n_shared_experts is not None`:
/// no shared expert). Any other key the layer reads is refused when null:
/// the models' code would fail on it or read None as a value (n_group in a
/// view, norm_topk_prob as false), and taking our default instead would
/// describe another model.
bool nullMeansUnset(StringRef name) {
  return llvm::is_contained(
      {"torch_dtype", "dtype", "quantization_config", "n_shared_experts"},
      name);
}

/// Typed access to the fields of one config object. A field that is absent
/// (or null, where nullMeansUnset) takes its default; a field of another
/// type, null included, is an error naming its key (with the
/// `text_config.` prefix where the object is nested).
class ConfigReader {
public:
  ConfigReader(const json::Object &object, StringRef prefix, LayerSpec &spec)
      : object(object), prefix(prefix.str()), spec(spec) {}

  std::string key(StringRef name) const {
    return formatv("config key '{0}{1}'", prefix, name).str();
  }

  /// Whether the config gives `name`: present, and not a null that means
  /// "not set".
  bool has(StringRef name) const {
    const json::Value *value = object.get(name);
    return value &&
           !(value->kind() == json::Value::Null && nullMeansUnset(name));
  }

  Expected<std::optional<int64_t>> integer(StringRef name) const {
    if (!has(name))
      return std::nullopt;
    const json::Value &value = *object.get(name);
    if (std::optional<int64_t> result = value.getAsInteger())
      return result;
    return typeError(name, "an integer", value);
  }

  Expected<std::optional<double>> number(StringRef name) const {
    if (!has(name))
      return std::nullopt;
    const json::Value &value = *object.get(name);
    if (std::optional<double> result = value.getAsNumber())
      return result;
    return typeError(name, "a number", value);
  }

  Expected<std::optional<bool>> boolean(StringRef name) const {
    if (!has(name))
      return std::nullopt;
    const json::Value &value = *object.get(name);
    if (std::optional<bool> result = value.getAsBoolean())
      return result;
    return typeError(name, "true or false", value);
  }

  Expected<std::optional<StringRef>> string(StringRef name) const {
    if (!has(name))
      return std::nullopt;
    const json::Value &value = *object.get(name);
    if (std::optional<StringRef> result = value.getAsString())
      return result;
    return typeError(name, "a string", value);
  }

  /// Reads the integer `name` into `field` of the spec (setting `setting`),
  /// or fails when it is missing.
  Error require(StringRef name, int64_t &field, StringRef setting,
                StringRef modelType) {
    Expected<std::optional<int64_t>> value = integer(name);
    if (!value)
      return value.takeError();
    if (!*value)
      return fail(formatv("model_type '{0}' needs the integer {1}", modelType,
                          key(name)));
    field = **value;
    spec.origins[setting] = key(name);
    return Error::success();
  }

  /// Reads the optional `name` into `field` (setting `setting`), keeping
  /// `field`'s value when it is absent.
  template <typename T>
  Error optional(StringRef name, T &field, StringRef setting) {
    auto value = read<T>(name);
    if (!value)
      return value.takeError();
    if (*value) {
      field = **value;
      spec.origins[setting] = key(name);
    }
    return Error::success();
  }

  const json::Object &object;
  std::string prefix;
  LayerSpec &spec;

private:
  template <typename T> Expected<std::optional<T>> read(StringRef name) const;

  Error typeError(StringRef name, StringRef expected,
                  const json::Value &got) const {
    return fail(formatv("{0} must be {1}, got {2}", key(name), expected,
                        describeConfigValue(got)));
  }
};

template <>
Expected<std::optional<int64_t>>
ConfigReader::read<int64_t>(StringRef name) const {
  return integer(name);
}
template <>
Expected<std::optional<double>>
ConfigReader::read<double>(StringRef name) const {
  return number(name);
}
template <>
Expected<std::optional<bool>> ConfigReader::read<bool>(StringRef name) const {
  return boolean(name);
}

/// torch_dtype (older configs) or dtype (newer ones): float32, bfloat16 or
/// float16. Absent means float32.
Error readDtype(const ConfigReader &reader, LayerSpec &spec, bool &found) {
  std::optional<StringRef> chosen;
  std::string chosenKey;
  for (StringRef name : {"torch_dtype", "dtype"}) {
    Expected<std::optional<StringRef>> value = reader.string(name);
    if (!value)
      return value.takeError();
    if (!*value)
      continue;
    if (chosen && *chosen != **value)
      return fail(formatv("{0} is '{1}' but {2} is '{3}'", chosenKey, *chosen,
                          reader.key(name), **value));
    chosen = **value;
    chosenKey = reader.key(name);
  }
  if (!chosen)
    return Error::success();
  found = true;
  StringRef dtype = StringSwitch<StringRef>(*chosen)
                        .Case("float32", "f32")
                        .Case("bfloat16", "bf16")
                        .Case("float16", "f16")
                        .Default("");
  if (dtype.empty())
    return fail(formatv("{0} is '{1}', which the layer does not support "
                        "(float32, bfloat16, float16)",
                        chosenKey, *chosen));
  spec.dtype = dtype.str();
  spec.origins["dtype"] = chosenKey;
  return Error::success();
}

/// hidden_act, mapped onto the dialect's activations (Hugging Face's names
/// of the same functions: gelu_new and gelu_pytorch_tanh are the tanh
/// approximation).
Error readActivation(ConfigReader &reader, LayerSpec &spec) {
  Expected<std::optional<StringRef>> act = reader.string("hidden_act");
  if (!act)
    return act.takeError();
  if (!*act)
    return Error::success();
  StringRef activation =
      StringSwitch<StringRef>(**act)
          .Cases({"silu", "swish"}, "silu")
          .Case("gelu", "gelu")
          .Cases({"gelu_new", "gelu_pytorch_tanh"}, "gelu_tanh")
          .Case("relu", "relu")
          .Default("");
  if (activation.empty())
    return fail(formatv("{0} is '{1}', which the layer does not support "
                        "(silu, swish, gelu, gelu_new, gelu_pytorch_tanh, "
                        "relu)",
                        reader.key("hidden_act"), **act));
  spec.activation = activation.str();
  spec.origins["activation"] = reader.key("hidden_act");
  return Error::success();
}

/// The sizes every family has.
Error readSizes(ConfigReader &reader, LayerSpec &spec, StringRef type,
                StringRef intermediateKey, StringRef expertsKey) {
  if (Error e = reader.require("hidden_size", spec.hidden, "hidden", type))
    return e;
  if (Error e = reader.require(intermediateKey, spec.intermediate,
                               "intermediate", type))
    return e;
  if (Error e = reader.require(expertsKey, spec.experts, "experts", type))
    return e;
  // gpt-oss's original config spells it experts_per_token.
  StringRef kKey =
      reader.has("num_experts_per_tok") || !reader.has("experts_per_token")
          ? "num_experts_per_tok"
          : "experts_per_token";
  return reader.require(kKey, spec.k, "k", type);
}

Error readDeepSeekV3(ConfigReader &reader, LayerSpec &spec) {
  StringRef type = "deepseek_v3";
  if (Error e = readSizes(reader, spec, type, "moe_intermediate_size",
                          "n_routed_experts"))
    return e;
  // DeepSeek-V3 scores with a sigmoid and selects with the noaux_tc
  // correction bias; its reference code refuses anything else.
  Expected<std::optional<StringRef>> scoring = reader.string("scoring_func");
  if (!scoring)
    return scoring.takeError();
  if (*scoring && **scoring != "sigmoid")
    return fail(formatv("{0} is '{1}'; model_type '{2}' scores with sigmoid",
                        reader.key("scoring_func"), **scoring, type));
  spec.scoring = "sigmoid";
  Expected<std::optional<StringRef>> method = reader.string("topk_method");
  if (!method)
    return method.takeError();
  if (*method && **method != "noaux_tc")
    return fail(formatv("{0} is '{1}'; model_type '{2}' routes with noaux_tc",
                        reader.key("topk_method"), **method, type));
  spec.bias = true;
  spec.renormalize = true;
  spec.renormEpsilon = 1e-20;
  if (Error e = reader.optional("n_group", spec.nGroup, "n_group"))
    return e;
  if (Error e = reader.optional("topk_group", spec.topkGroup, "topk_group"))
    return e;
  if (Error e =
          reader.optional("norm_topk_prob", spec.renormalize, "renormalize"))
    return e;
  if (Error e = reader.optional("routed_scaling_factor", spec.scale, "scale"))
    return e;
  Expected<std::optional<int64_t>> sharedCount =
      reader.integer("n_shared_experts");
  if (!sharedCount)
    return sharedCount.takeError();
  int64_t shared = sharedCount->value_or(0);
  if (shared < 0)
    return fail(formatv("{0} = {1} must be >= 0",
                        reader.key("n_shared_experts"), shared));
  // The shared expert is n_shared_experts experts side by side: one MLP of
  // their summed width, which must neither wrap nor pass the size limit.
  int64_t width = 0;
  if (MulOverflow(shared, spec.intermediate, width) || width > kMaxLayerSize)
    return fail(formatv("{0} x {1} = {2} x {3} exceeds the largest shared "
                        "expert width, {4}",
                        reader.key("n_shared_experts"),
                        reader.key("moe_intermediate_size"), shared,
                        spec.intermediate, kMaxLayerSize));
  spec.sharedIntermediate = width;
  if (shared)
    spec.origins["shared_intermediate"] =
        formatv("{0} x {1}", reader.key("n_shared_experts"),
                reader.key("moe_intermediate_size"))
            .str();
  return Error::success();
}

/// The layer of one (possibly nested) config object of model type `type`.
Error readFamily(ConfigReader &reader, LayerSpec &spec, StringRef type) {
  if (type == "mixtral") {
    spec.family = "mixtral";
    spec.renormalize = true;
    return readSizes(reader, spec, type, "intermediate_size",
                     "num_local_experts");
  }
  if (type == "qwen3_moe" || type == "qwen2_moe" ||
      type == "qwen3_vl_moe_text") {
    spec.family = type == "qwen3_vl_moe_text" ? "qwen3_vl_moe" : type.str();
    if (Error e = readSizes(reader, spec, type, "moe_intermediate_size",
                            "num_experts"))
      return e;
    spec.renormalize = type != "qwen2_moe";
    if (Error e =
            reader.optional("norm_topk_prob", spec.renormalize, "renormalize"))
      return e;
    if (type != "qwen2_moe")
      return Error::success();
    // Qwen2-MoE's shared expert, behind a sigmoid gate.
    if (Error e =
            reader.optional("shared_expert_intermediate_size",
                            spec.sharedIntermediate, "shared_intermediate"))
      return e;
    spec.sharedGate = spec.sharedIntermediate > 0;
    return Error::success();
  }
  if (type == "olmoe") {
    spec.family = "olmoe";
    if (Error e =
            readSizes(reader, spec, type, "intermediate_size", "num_experts"))
      return e;
    return reader.optional("norm_topk_prob", spec.renormalize, "renormalize");
  }
  if (type == "deepseek_v3") {
    spec.family = "deepseek_v3";
    return readDeepSeekV3(reader, spec);
  }
  if (type == "gpt_oss") {
    spec.family = "gpt_oss";
    if (Error e = readSizes(reader, spec, type, "intermediate_size",
                            "num_local_experts"))
      return e;
    spec.scoring = "softmax_topk";
    spec.gluLayout = "interleaved";
    // gpt-oss's router and both expert projections are Linears with biases
    // (router.bias, experts.gate_up_proj_bias, experts.down_proj_bias).
    spec.routerBias = true;
    spec.expertBias = true;
    return reader.optional("swiglu_limit", spec.limit, "limit");
  }
  return fail(formatv("{0} is '{1}'; known: mixtral, qwen3_moe, qwen2_moe, "
                      "qwen3_vl_moe (text_config), olmoe, deepseek_v3, "
                      "gpt_oss",
                      reader.key("model_type"), type));
}

/// Refuses nesting deeper than kMaxConfigDepth without recursing.
Error checkDepth(StringRef text) {
  int depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxConfigDepth)
        return fail(formatv("the config nests arrays and objects more than {0} "
                            "levels deep",
                            kMaxConfigDepth));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return Error::success();
}

} // namespace

/// A JSON value in a few words, for "got ..." in diagnostics.
std::string mlir::moe::describeConfigValue(const json::Value &value) {
  switch (value.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return *value.getAsBoolean() ? "true" : "false";
  case json::Value::Number:
    return formatv("{0}", value).str();
  case json::Value::String: {
    StringRef text = *value.getAsString();
    return formatv("the string \"{0}{1}\"", text.take_front(40),
                   text.size() > 40 ? "..." : "")
        .str();
  }
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  return "a JSON value";
}

Expected<LayerSpec> mlir::moe::layerSpecFromHFConfig(const json::Value &value) {
  const json::Object *config = value.getAsObject();
  if (!config)
    return fail("the config must be a JSON object, got " +
                describeConfigValue(value));
  LayerSpec spec;
  ConfigReader outer(*config, "", spec);
  if (Error e = readQuantizationConfig(*config, "", spec))
    return std::move(e);
  // Multimodal MoE models (Qwen3-VL-MoE) keep their language model's
  // settings in text_config; the outer dtype applies where it has none.
  std::optional<ConfigReader> nested;
  if (outer.has("text_config")) {
    const json::Object *text = config->get("text_config")->getAsObject();
    if (!text)
      return fail(formatv("{0} must be an object, got {1}",
                          outer.key("text_config"),
                          describeConfigValue(*config->get("text_config"))));
    nested.emplace(*text, "text_config.", spec);
    if (Error e = readQuantizationConfig(*text, "text_config.", spec))
      return std::move(e);
  }
  ConfigReader &reader = nested ? *nested : outer;
  Expected<std::optional<StringRef>> modelType = reader.string("model_type");
  if (!modelType)
    return modelType.takeError();
  if (!*modelType)
    return fail(formatv("the config has no {0}", reader.key("model_type")));
  bool dtypeFound = false;
  if (Error e = readDtype(reader, spec, dtypeFound))
    return std::move(e);
  if (nested && !dtypeFound)
    if (Error e = readDtype(outer, spec, dtypeFound))
      return std::move(e);
  if (Error e = readFamily(reader, spec, **modelType))
    return std::move(e);
  if (spec.family == "gpt_oss") {
    // gpt-oss's experts use swiglu_oai whatever hidden_act says (it says
    // silu); any other value describes a different model.
    Expected<std::optional<StringRef>> act = reader.string("hidden_act");
    if (!act)
      return act.takeError();
    if (*act && **act != "silu")
      return fail(formatv("{0} is '{1}'; gpt_oss experts use swiglu_oai "
                          "(hidden_act 'silu')",
                          reader.key("hidden_act"), **act));
    spec.activation = "swiglu_oai";
  } else if (Error e = readActivation(reader, spec)) {
    return std::move(e);
  }
  return spec;
}

Expected<LayerSpec> mlir::moe::layerSpecFromHFConfigText(StringRef text) {
  if (Error e = checkDepth(text))
    return std::move(e);
  Expected<json::Value> json = json::parse(text);
  if (!json)
    return json.takeError();
  return layerSpecFromHFConfig(*json);
}
