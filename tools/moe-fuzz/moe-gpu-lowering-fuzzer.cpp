//===- moe-gpu-lowering-fuzzer.cpp - libFuzzer target: lowering to PTX ----===//
//
// Each input is read as a layer (LayerGenerator.h), a CUDA chip and PTX
// version and kernel-selection options in their ranges, and lowered as
// `moe-compile --target=cuda --emit=ptx` does: moe-lower-to-nvvm-pipeline
// with the kernels serialized as PTX (format=isa; no CUDA toolkit nor GPU
// is needed), then the host code translated to LLVM IR. The GPU target
// refuses some layers with a documented diagnostic (kRefusals); any other
// failure is a finding, as are a crash, a sanitizer report and a hang.
//
//===----------------------------------------------------------------------===//

#include "FuzzContext.h"
#include "LayerGenerator.h"

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::fuzz;

static constexpr llvm::StringLiteral kTarget = "moe-gpu-lowering-fuzzer";

/// What the GPU target documents that it does not lower (docs/gpu.md,
/// test/Conversion/MoEToGPU/invalid.mlir): a refusal with one of these
/// diagnostics is the expected answer, not a finding.
static constexpr llvm::StringLiteral kRefusals[] = {
    // More than 64 expert groups (moe.route's GPU kernel).
    "on the GPU supports at most 64 expert groups",
    // The CPU kernel's packed weight layouts.
    "(the CPU kernel's packing) have no GPU lowering",
    // FP8 weights whose block or chip no GPU kernel multiplies.
    "FP8 weights (weight_quant) on the GPU",
    // Weight-only weights on a chip before sm_80 or with f16 activations.
    ") on the GPU: the mma_sync_wonly kernel",
    // The FP8 kernel on a PTX ISA older than 8.4.
    "the mma_sync_fp8 kernel needs PTX ISA 8.4 or newer",
};

/// Pipeline options drawn from the input, each in its range: the chips
/// moe-compile is documented for and a PTX version each accepts, an
/// opt-level, moe-gpu-select-kernel-config's options, and whether the
/// dispatch writes the row tiles.
static std::string pickOptions(FuzzedDataProvider &data,
                               NVVMPipelineOptions &options) {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto set = [&](auto &option, auto value) {
    option = value;
    os << " " << option.ArgStr << "=" << value;
  };
  set(options.chip, std::string(data.PickValueInArray(
                        {"sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"})));
  set(options.features,
      std::string(data.PickValueInArray({"+ptx80", "+ptx84", "+ptx85"})));
  set(options.format, std::string("isa"));
  set(options.optLevel, data.ConsumeIntegralInRange<int>(0, 3));
  set(options.fuseRouting, data.ConsumeBool());
  set(options.cInterface, data.ConsumeBool());
  // Programmatic dependent launch where the chip has griddepcontrol (sm_90);
  // left to its default (by the chip) otherwise.
  if (llvm::StringRef(options.chip.getValue()).starts_with("sm_90") &&
      data.ConsumeBool())
    set(options.pdl, data.ConsumeBool());
  std::string kernelConfig;
  llvm::raw_string_ostream config(kernelConfig);
  if (data.ConsumeBool())
    config << " large-rows-per-expert="
           << data.ConsumeIntegralInRange<int64_t>(0, 512);
  if (data.ConsumeBool())
    config << " small-unroll=" << data.ConsumeIntegralInRange<int64_t>(1, 16);
  if (data.ConsumeBool())
    config << " small-split-k=" << (data.ConsumeBool() ? 4 : 1);
  if (data.ConsumeBool())
    config << " small-split-k-from="
           << data.ConsumeIntegralInRange<int64_t>(1, 4096);
  if (data.ConsumeBool())
    config << " large-staged=" << (data.ConsumeBool() ? "true" : "false");
  if (data.ConsumeBool())
    config << " wgmma=" << (data.ConsumeBool() ? "true" : "false");
  if (data.ConsumeBool())
    config << " wgmma-producer=" << (data.ConsumeBool() ? "true" : "false");
  if (data.ConsumeBool())
    config << " wgmma-swizzled-a=" << (data.ConsumeBool() ? "true" : "false");
  if (data.ConsumeBool())
    config << " large-tile-group="
           << data.ConsumeIntegralInRange<int64_t>(1, 64);
  // The option's value, as the textual pipeline's braces would deliver it.
  set(options.kernelConfig, llvm::StringRef(kernelConfig).trim().str());
  // Drawn last, so that the inputs drawn before keep their options.
  set(options.dispatchRowTiles, data.ConsumeBool());
  return text;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider provider(data, size);
  GeneratedLayer layer = generateLayer(provider);
  NVVMPipelineOptions options;
  std::string optionText = pickOptions(provider, options);
  std::string flags =
      "--target=cuda --emit=ptx (moe-lower-to-nvvm-pipeline options:" +
      optionText + ")";

  MLIRContext &ctx = pipelineContext();
  DiagnosticLog diagnostics(&ctx);
  OwningOpRef<ModuleOp> module =
      buildGeneratedModule(kTarget, layer, ctx, diagnostics);
  if (!module)
    return 0;

  PassManager pm = PassManager::on<ModuleOp>(&ctx);
  if (failed(
          buildMoELowerToNVVMPipeline(pm, options, [&](const Twine &message) {
            return emitError(module->getLoc()) << message;
          })))
    reportFinding(kTarget, "pipeline options in their ranges were refused",
                  layer, flags, diagnostics);
  if (failed(pm.run(*module))) {
    if (llvm::any_of(kRefusals, [&](llvm::StringRef refusal) {
          return diagnostics.hasErrorContaining(refusal);
        }))
      return 0;
    reportFinding(kTarget,
                  "moe-lower-to-nvvm-pipeline failed on a verified "
                  "module without a documented refusal",
                  layer, flags, diagnostics);
  }
  bool hasPTX = false;
  module->walk([&](gpu::BinaryOp binary) {
    for (Attribute object : binary.getObjects())
      if (auto gpuObject = dyn_cast<gpu::ObjectAttr>(object))
        hasPTX |= gpuObject.getObject().getValue().contains(".entry");
  });
  if (!hasPTX)
    reportFinding(kTarget, "the lowering produced no PTX kernel", layer, flags,
                  diagnostics);
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, "moe_layer");
  if (!llvmModule)
    reportFinding(kTarget, "translation of the host code to LLVM IR failed",
                  layer, flags, diagnostics);
  return 0;
}
