//===- LayerGenerator.cpp - Valid layers from a fuzzer's bytes ------------===//

#include "LayerGenerator.h"

#include "moe/Compiler/LayerModule.h"
#include "moe/Dialect/MoE/IR/MoEAttrs.h"

#include "mlir/IR/Location.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::fuzz;

namespace {

/// One of the enum's cases by name: the generator follows the dialect's
/// enums, so that a case added there is fuzzed without a change here.
template <typename Enum>
std::string pickEnum(FuzzedDataProvider &data, unsigned maxValue,
                     llvm::StringRef (*stringify)(Enum)) {
  return stringify(static_cast<Enum>(
                       data.ConsumeIntegralInRange<unsigned>(0, maxValue)))
      .str();
}

/// A divisor of `n`, drawn from the input.
int64_t pickDivisor(FuzzedDataProvider &data, int64_t n) {
  llvm::SmallVector<int64_t> divisors;
  for (int64_t d = 1; d <= n; ++d)
    if (n % d == 0)
      divisors.push_back(d);
  return divisors[data.ConsumeIntegralInRange<size_t>(0, divisors.size() - 1)];
}

/// A size in [1, high], small more often than not: a byte picks the range.
int64_t pickSize(FuzzedDataProvider &data, int64_t high) {
  int64_t small = std::min<int64_t>(high, 8);
  if (data.ConsumeBool())
    return data.ConsumeIntegralInRange<int64_t>(1, small);
  return data.ConsumeIntegralInRange<int64_t>(1, high);
}

double pickPositive(FuzzedDataProvider &data, double low, double high) {
  return data.ConsumeFloatingPointInRange<double>(low, high);
}

} // namespace

GeneratedLayer mlir::moe::fuzz::generateLayer(FuzzedDataProvider &data) {
  GeneratedLayer layer;
  LayerSpec &s = layer.spec;
  layer.expertsEntry = data.ConsumeBool();
  s.dtype = data.PickValueInArray({"f32", "bf16", "f16"});
  s.weightLayout =
      pickEnum(data, getMaxEnumValForRhsLayout(), stringifyRhsLayout);
  s.weightQuant = data.PickValueInArray({"none", "none", "fp8_e4m3"});
  if (s.weightQuant != "none")
    s.weightLayout = "nk"; // the CPU kernels dequantize that layout only

  s.hidden = pickSize(data, 320);
  s.intermediate = pickSize(data, 160);
  // The panel layouts take whole 16-wide panels of hidden and 2 x I.
  if (s.weightLayout == "panels" || s.weightLayout == "panels_vnni") {
    s.hidden = llvm::alignTo(s.hidden, kLayerPanelWidth);
    s.intermediate = llvm::alignTo(s.intermediate, kLayerPanelWidth / 2);
  }
  s.experts = pickSize(data, 96);

  // Grouped routing: n_group divides E; k reachable through topk_group
  // groups; sum_top2 wants two experts a group.
  s.groupScore =
      pickEnum(data, getMaxEnumValForGroupScore(), stringifyGroupScore);
  s.nGroup = pickDivisor(data, s.experts);
  int64_t groupSize = s.experts / s.nGroup;
  if (s.nGroup > 1 && groupSize < 2 && s.groupScore == "sum_top2")
    s.groupScore = "max";
  s.topkGroup = data.ConsumeIntegralInRange<int64_t>(1, s.nGroup);
  s.k = data.ConsumeIntegralInRange<int64_t>(1, s.topkGroup * groupSize);

  s.scoring = pickEnum(data, getMaxEnumValForScoring(), stringifyScoring);
  s.renormalize = data.ConsumeBool();
  s.renormEpsilon = data.PickValueInArray({0.0, 1e-20, 1e-6});
  s.scale = pickPositive(data, 0.125, 4.0);
  s.bias = data.ConsumeBool();
  s.routerBias = data.ConsumeBool();
  s.expertBias = data.ConsumeBool();

  s.activation =
      pickEnum(data, getMaxEnumValForActivation(), stringifyActivation);
  s.gluLayout = pickEnum(data, getMaxEnumValForGluLayout(), stringifyGluLayout);
  s.alpha = pickPositive(data, 0.25, 4.0);
  s.limit = pickPositive(data, 0.5, 16.0);

  if (data.ConsumeBool()) {
    s.sharedIntermediate = pickSize(data, 96);
    s.sharedGate = data.ConsumeBool();
  }

  switch (data.ConsumeIntegralInRange<int>(0, 3)) {
  case 1:
    s.capacity = pickSize(data, 64);
    break;
  case 2:
    s.capacityFactor = pickPositive(data, 0.0625, 4.0);
    break;
  default:
    break;
  }
  s.dropPolicy =
      pickEnum(data, getMaxEnumValForDropPolicy(), stringifyDropPolicy);

  if (s.weightQuant != "none") {
    s.activationQuant = data.PickValueInArray({"dynamic", "static"});
    // Along N a block divides I (the gate and up halves hold whole blocks)
    // or spans w13; along K any size.
    s.blockN = data.ConsumeBool() ? pickDivisor(data, s.intermediate)
                                  : kLayerWholeBlock;
    s.blockK = data.ConsumeBool() ? pickSize(data, 256) : kLayerWholeBlock;
  }
  return layer;
}

std::string mlir::moe::fuzz::layerSettings(const LayerSpec &s) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "hidden=" << s.hidden << ",intermediate=" << s.intermediate
     << ",experts=" << s.experts << ",k=" << s.k << ",dtype=" << s.dtype
     << ",scoring=" << s.scoring << ",n_group=" << s.nGroup
     << ",topk_group=" << s.topkGroup << ",group_score=" << s.groupScore
     << ",renormalize=" << (s.renormalize ? "true" : "false")
     << llvm::formatv(",renorm_epsilon={0:e},scale={1:e}", s.renormEpsilon,
                      s.scale)
     << ",bias=" << (s.bias ? "true" : "false")
     << ",router_bias=" << (s.routerBias ? "true" : "false")
     << ",expert_bias=" << (s.expertBias ? "true" : "false")
     << ",activation=" << s.activation << ",glu_layout=" << s.gluLayout
     << llvm::formatv(",alpha={0:e},limit={1:e}", s.alpha, s.limit)
     << ",shared_intermediate=" << s.sharedIntermediate
     << ",shared_gate=" << (s.sharedGate ? "true" : "false");
  if (s.capacity)
    os << ",capacity=" << *s.capacity;
  if (s.capacityFactor)
    os << llvm::formatv(",capacity_factor={0:e}", *s.capacityFactor);
  os << ",drop_policy=" << s.dropPolicy << ",weight_layout=" << s.weightLayout
     << ",weight_quant=" << s.weightQuant;
  if (s.weightQuant != "none")
    os << ",activation_quant=" << s.activationQuant
       << ",weight_block=" << s.blockN << "x" << s.blockK;
  return text;
}

DiagnosticLog::DiagnosticLog(MLIRContext *context)
    : handler(context, [this](Diagnostic &diagnostic) {
        std::string message = diagnostic.str();
        llvm::raw_string_ostream os(log);
        os << diagnostic.getLocation() << ": " << message << "\n";
        for (const Diagnostic &note : diagnostic.getNotes())
          os << "  note: " << note.str() << "\n";
        if (diagnostic.getSeverity() == DiagnosticSeverity::Error)
          errors.push_back(std::move(message));
        return success();
      }) {}

bool DiagnosticLog::hasErrorContaining(llvm::StringRef fragment) const {
  return llvm::any_of(errors, [&](const std::string &message) {
    return llvm::StringRef(message).contains(fragment);
  });
}

void mlir::moe::fuzz::reportFinding(llvm::StringRef target,
                                    llvm::StringRef what,
                                    const GeneratedLayer &layer,
                                    llvm::StringRef extraFlags,
                                    const DiagnosticLog &diagnostics) {
  llvm::errs() << "==" << target << "== FINDING: " << what << "\n"
               << "  moe-compile"
               << (layer.expertsEntry ? " --entry=experts" : "")
               << " --layer=" << layerSettings(layer.spec) << " " << extraFlags
               << "\n"
               << "diagnostics:\n"
               << diagnostics.text();
  llvm::errs().flush();
  std::abort();
}

OwningOpRef<ModuleOp> mlir::moe::fuzz::buildGeneratedModule(
    llvm::StringRef target, const GeneratedLayer &layer, MLIRContext &context,
    const DiagnosticLog &diagnostics) {
  // MOE_FUZZ_PRINT_LAYERS=1 prints each input's layer, to see what a corpus
  // covers (build-fuzz/bin/<target> -runs=0 <corpus>).
  static const bool print = std::getenv("MOE_FUZZ_PRINT_LAYERS") != nullptr;
  if (llvm::Error e = validateLayerSpec(layer.spec)) {
    std::string message = llvm::toString(std::move(e));
    if (print)
      llvm::errs() << "layer (not valid: " << message
                   << "): " << layerSettings(layer.spec) << "\n";
    return nullptr;
  }
  if (print)
    llvm::errs() << "layer" << (layer.expertsEntry ? " (experts)" : "") << ": "
                 << layerSettings(layer.spec) << "\n";
  Location loc = FileLineColLoc::get(&context, "--layer", 0, 0);
  OwningOpRef<ModuleOp> module =
      layer.expertsEntry ? buildExpertsModule(layer.spec, "layer", loc)
                         : buildLayerModule(layer.spec, "layer", loc);
  if (!module)
    reportFinding(target,
                  "a validated layer spec built a module that does "
                  "not verify",
                  layer, "", diagnostics);
  return module;
}
