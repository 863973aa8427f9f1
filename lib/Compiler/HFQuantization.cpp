//===- HFQuantization.cpp - A config's quantization_config ----------------===//
//
// Each method's keys as its Hugging Face config class writes them
// (FineGrainedFP8Config, Mxfp4Config, AwqConfig, GPTQConfig,
// CompressedTensorsConfig). A key that changes what the stored tensors mean
// and that the layer cannot honour is refused by name; keys that only
// describe how the checkpoint was made (damp_percent, observer, ...) are
// not read.
//
//===----------------------------------------------------------------------===//

#include "HFQuantization.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace llvm;
using namespace mlir::moe;

namespace {

Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// Typed, optional fields of one quantization_config object (or an object
/// inside it); `path` is its key path for diagnostics, e.g.
/// "quantization_config.config_groups.group_0.weights".
class QuantReader {
public:
  QuantReader(const json::Object &object, std::string prefix, std::string path)
      : object(object), prefix(std::move(prefix)), path(std::move(path)) {}

  /// "config key 'quantization_config.bits'" (with "" the object's own).
  std::string key(StringRef name = "") const {
    return formatv("config key '{0}{1}{2}{3}'", prefix, path,
                   name.empty() ? "" : ".", name)
        .str();
  }

  /// The value of `name`, or null when it is absent or JSON null.
  const json::Value *get(StringRef name) const {
    const json::Value *value = object.get(name);
    return value && value->kind() != json::Value::Null ? value : nullptr;
  }

  Expected<std::optional<int64_t>> integer(StringRef name) const {
    const json::Value *value = get(name);
    if (!value)
      return std::nullopt;
    if (std::optional<int64_t> result = value->getAsInteger())
      return result;
    return typeError(name, "an integer", *value);
  }

  Expected<std::optional<bool>> boolean(StringRef name) const {
    const json::Value *value = get(name);
    if (!value)
      return std::nullopt;
    if (std::optional<bool> result = value->getAsBoolean())
      return result;
    return typeError(name, "true or false", *value);
  }

  Expected<std::optional<StringRef>> string(StringRef name) const {
    const json::Value *value = get(name);
    if (!value)
      return std::nullopt;
    if (std::optional<StringRef> result = value->getAsString())
      return result;
    return typeError(name, "a string", *value);
  }

  /// The object `name`, a reader of it, or an error when it is missing or
  /// not an object.
  Expected<QuantReader> child(StringRef name) const {
    const json::Value *value = get(name);
    const json::Object *inner = value ? value->getAsObject() : nullptr;
    if (!inner)
      return fail(formatv("{0} must be an object, got {1}", key(name),
                          value ? describeConfigValue(*value) : "nothing"));
    return QuantReader(*inner, prefix, path + "." + name.str());
  }

  /// `name` must be absent, null or `allowed` (a string).
  Error stringIs(StringRef name, ArrayRef<StringRef> allowed,
                 StringRef why) const {
    Expected<std::optional<StringRef>> value = string(name);
    if (!value)
      return value.takeError();
    if (!*value || is_contained(allowed, **value))
      return Error::success();
    return fail(formatv("{0} is '{1}', which is not supported ({2})", key(name),
                        **value, why));
  }

  const json::Object &object;
  std::string prefix, path;

private:
  Error typeError(StringRef name, StringRef expected,
                  const json::Value &got) const {
    return fail(formatv("{0} must be {1}, got {2}", key(name), expected,
                        describeConfigValue(got)));
  }
};

/// Marks where the quantization settings of `spec` came from.
void setOrigin(LayerSpec &spec, const QuantReader &reader,
               StringRef blockKey = "") {
  spec.origins["weight_quant"] = reader.key();
  if (!blockKey.empty())
    spec.origins["weight_block"] = reader.key(blockKey);
}

/// quant_method fp8 (FineGrainedFP8Config: DeepSeek-V3, Qwen3-FP8): e4m3
/// weights with `weight_block_size` [bn, bk] block scales, or one scale per
/// tensor without it; dynamic or static activations.
Error readFP8(const QuantReader &q, LayerSpec &spec) {
  std::string key = q.key();
  std::optional<StringRef> fmt = q.object.getString("fmt");
  if (q.object.get("fmt") && (!fmt || *fmt != "e4m3"))
    return fail(formatv("{0}: fmt {1} is not supported (only 'e4m3')", key,
                        describeConfigValue(*q.object.get("fmt"))));
  std::optional<StringRef> scheme = q.object.getString("activation_scheme");
  if (q.object.get("activation_scheme") &&
      (!scheme || (*scheme != "dynamic" && *scheme != "static")))
    return fail(
        formatv("{0}: activation_scheme {1} is not supported "
                "(dynamic or static)",
                key, describeConfigValue(*q.object.get("activation_scheme"))));
  spec.weightQuant = "fp8_e4m3";
  spec.activationQuant = scheme ? scheme->str() : "dynamic";
  spec.origins["activation_quant"] = key;
  setOrigin(spec, q);
  spec.origins["weight_block"] = key + " weight_block_size";
  const json::Value *block = q.object.get("weight_block_size");
  if (!block || block->kind() == json::Value::Null) {
    // No block: one scale per tensor.
    spec.blockN = spec.blockK = kLayerWholeBlock;
    return Error::success();
  }
  const json::Array *sizes = block->getAsArray();
  std::optional<int64_t> bn, bk;
  if (sizes && sizes->size() == 2) {
    bn = (*sizes)[0].getAsInteger();
    bk = (*sizes)[1].getAsInteger();
  }
  if (!bn || !bk || *bn < 1 || *bk < 1)
    return fail(formatv("{0}: weight_block_size must be [bn, bk], two "
                        "positive integers",
                        key));
  spec.blockN = *bn;
  spec.blockK = *bk;
  return Error::success();
}

/// `bits` must be 4 (the default when absent).
Error readFourBits(const QuantReader &q, StringRef method) {
  Expected<std::optional<int64_t>> bits = q.integer("bits");
  if (!bits)
    return bits.takeError();
  if (*bits && **bits != 4)
    return fail(formatv("{0} is {1}: only 4-bit {2} is supported",
                        q.key("bits"), **bits, method));
  return Error::success();
}

/// `group_size` (128 when absent) must be one of int4's groups.
Error readGroupSize(const QuantReader &q, LayerSpec &spec) {
  Expected<std::optional<int64_t>> group = q.integer("group_size");
  if (!group)
    return group.takeError();
  int64_t g = group->value_or(128);
  if (g != 32 && g != 64 && g != 128)
    return fail(formatv("{0} is {1}, which is not supported (32, 64 or 128; "
                        "-1, one group across K, is not)",
                        q.key("group_size"), g));
  spec.blockN = 1;
  spec.blockK = g;
  return Error::success();
}

/// quant_method awq (AwqConfig): 4-bit, group-wise, the GEMM packing
/// (`version` gemm, the default); zero points unless `zero_point` is false.
Error readAWQ(const QuantReader &q, LayerSpec &spec) {
  if (Error e = readFourBits(q, "awq"))
    return e;
  if (Error e = q.stringIs("version", {"gemm", "GEMM"},
                           "only gemm, the int32 packing along N with the "
                           "nibble order 0 2 4 6 1 3 5 7"))
    return e;
  if (Error e = readGroupSize(q, spec))
    return e;
  Expected<std::optional<bool>> zeroPoint = q.boolean("zero_point");
  if (!zeroPoint)
    return zeroPoint.takeError();
  spec.zeroPoints = zeroPoint->value_or(true);
  spec.weightQuant = "int4";
  setOrigin(spec, q, "group_size");
  spec.origins["zero_points"] = q.key("zero_point");
  return Error::success();
}

/// quant_method gptq (GPTQConfig): 4-bit, group-wise, no activation order;
/// zero points unless `sym`; checkpoint_format gptq (zero points stored as
/// z - 1) or gptq_v2.
Error readGPTQ(const QuantReader &q, LayerSpec &spec) {
  if (Error e = readFourBits(q, "gptq"))
    return e;
  Expected<std::optional<bool>> descAct = q.boolean("desc_act");
  if (!descAct)
    return descAct.takeError();
  if (descAct->value_or(false))
    return fail(formatv("{0} is true: activation order (a g_idx permutation "
                        "of K) is not supported",
                        q.key("desc_act")));
  if (Error e = readGroupSize(q, spec))
    return e;
  Expected<std::optional<StringRef>> format = q.string("checkpoint_format");
  if (!format)
    return format.takeError();
  if (Error e = q.stringIs("checkpoint_format", {"gptq", "gptq_v2"},
                           "gptq or gptq_v2"))
    return e;
  Expected<std::optional<bool>> sym = q.boolean("sym");
  if (!sym)
    return sym.takeError();
  spec.zeroPoints = !sym->value_or(true);
  spec.weightQuant = "int4";
  spec.checkpointFormat = format->value_or("gptq").str();
  setOrigin(spec, q, "group_size");
  spec.origins["zero_points"] = q.key("sym");
  return Error::success();
}

/// quant_method compressed-tensors (llm-compressor's W8A16): one config
/// group whose weights are int8, symmetric, per channel, static, and whose
/// activations are not quantized; the int8 weights stored as they are
/// (format int-quantized or naive-quantized: `weight` int8 [N, K] and
/// `weight_scale` [N, 1]).
Error readCompressedTensors(const QuantReader &q, LayerSpec &spec) {
  if (Error e = q.stringIs("format", {"int-quantized", "naive-quantized"},
                           "int-quantized or naive-quantized: int8 weights "
                           "as stored"))
    return e;
  if (Error e = q.stringIs("quantization_status", {"compressed"},
                           "only compressed: the weights stored as int8"))
    return e;
  Expected<QuantReader> groups = q.child("config_groups");
  if (!groups)
    return groups.takeError();
  if (groups->object.size() != 1)
    return fail(formatv("{0} has {1} groups: only one (int8 weights-only, per "
                        "channel) is supported",
                        groups->key(), groups->object.size()));
  Expected<QuantReader> group = groups->child(groups->object.begin()->first);
  if (!group)
    return group.takeError();
  for (StringRef activations : {"input_activations", "output_activations"})
    if (const json::Value *value = group->get(activations))
      return fail(formatv("{0} is {1}: only weights-only schemes (null "
                          "activations) are supported",
                          group->key(activations),
                          describeConfigValue(*value)));
  Expected<QuantReader> weights = group->child("weights");
  if (!weights)
    return weights.takeError();
  Expected<std::optional<int64_t>> bits = weights->integer("num_bits");
  if (!bits)
    return bits.takeError();
  if (!*bits || **bits != 8)
    return fail(formatv("{0} must be 8: only 8-bit compressed-tensors "
                        "weights are supported",
                        weights->key("num_bits")));
  if (Error e = weights->stringIs("type", {"int"}, "only int"))
    return e;
  if (Error e = weights->stringIs("strategy", {"channel"},
                                  "only channel: one scale per output row"))
    return e;
  Expected<std::optional<bool>> symmetric = weights->boolean("symmetric");
  if (!symmetric)
    return symmetric.takeError();
  if (!symmetric->value_or(true))
    return fail(formatv("{0} is false: only symmetric int8 (no zero points) "
                        "is supported",
                        weights->key("symmetric")));
  Expected<std::optional<bool>> dynamic = weights->boolean("dynamic");
  if (!dynamic)
    return dynamic.takeError();
  if (dynamic->value_or(false))
    return fail(formatv("{0} is true: only static weight scales are supported",
                        weights->key("dynamic")));
  for (StringRef unused : {"group_size", "block_structure", "actorder"})
    if (const json::Value *value = weights->get(unused))
      if (value->getAsBoolean() != std::optional<bool>(false))
        return fail(formatv("{0} is {1}: per-channel int8 has none",
                            weights->key(unused), describeConfigValue(*value)));
  spec.weightQuant = "int8";
  setOrigin(spec, *weights);
  return Error::success();
}

} // namespace

Error mlir::moe::readQuantizationConfig(const json::Object &config,
                                        StringRef prefix, LayerSpec &spec) {
  const json::Value *value = config.get("quantization_config");
  if (!value || value->kind() == json::Value::Null)
    return Error::success();
  const json::Object *object = value->getAsObject();
  if (!object)
    return fail(formatv("config key '{0}quantization_config' must be an "
                        "object, got {1}",
                        prefix, describeConfigValue(*value)));
  QuantReader reader(*object, prefix.str(), "quantization_config");
  Expected<std::optional<StringRef>> method = reader.string("quant_method");
  if (!method)
    return method.takeError();
  StringRef name = method->value_or("missing");
  spec.quantMethod = name.str();
  if (name == "fp8")
    return readFP8(reader, spec);
  if (name == "mxfp4") {
    // gpt-oss: the experts' *_blocks and *_scales as stored; the router
    // and attention stay in the checkpoint's dtype (modules_to_not_convert).
    spec.weightQuant = "mxfp4";
    setOrigin(spec, reader);
    return Error::success();
  }
  if (name == "awq")
    return readAWQ(reader, spec);
  if (name == "gptq")
    return readGPTQ(reader, spec);
  if (name == "compressed-tensors")
    return readCompressedTensors(reader, spec);
  return fail(formatv("{0} (quant_method '{1}'): this quantization is not "
                      "supported (quant_method fp8, mxfp4, awq, gptq or "
                      "compressed-tensors)",
                      reader.key(), name));
}
