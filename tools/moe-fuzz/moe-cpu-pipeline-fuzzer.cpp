//===- moe-cpu-pipeline-fuzzer.cpp - libFuzzer target: the CPU pipeline ---===//
//
// Each input is read as a layer (LayerGenerator.h) and CPU pipeline options
// in their ranges; the layer's module verifies, so lowering it through
// moe-lower-to-cpu-pipeline and translating it to LLVM IR, as moe-compile
// does, must succeed. A failure of either is a finding (reported with the
// moe-compile command that repeats it, then an abort), as are a crash, a
// sanitizer report and a hang.
//
//===----------------------------------------------------------------------===//

#include "FuzzContext.h"
#include "LayerGenerator.h"

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::fuzz;

static constexpr llvm::StringLiteral kTarget = "moe-cpu-pipeline-fuzzer";

/// Pipeline options drawn from the input, each in the range its pass
/// accepts; the vectorized kernel's own only with vectorize. Returns them
/// as the pipeline's option string too, for the report.
static std::string pickOptions(FuzzedDataProvider &data,
                               CPUPipelineOptions &options) {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto set = [&](auto &option, auto value) {
    option = value;
    os << " " << option.ArgStr << "=" << value;
  };
  set(options.fuseRouting, data.ConsumeBool());
  set(options.threads, data.ConsumeBool());
  set(options.approximateMath, data.ConsumeBool());
  set(options.cInterface, data.ConsumeBool());
  // Named CPUs, so that the lowering does not depend on the fuzzing host.
  set(options.targetCpu,
      std::string(data.PickValueInArray(
          {"x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", "haswell",
           "skylake-avx512", "cooperlake", "sapphirerapids", "znver4"})));
  set(options.vectorize, data.ConsumeBool());
  if (options.vectorize) {
    set(options.vectorWidth, int64_t(1)
                                 << data.ConsumeIntegralInRange<int>(0, 6));
    set(options.panelRowBlock, data.ConsumeIntegralInRange<int64_t>(1, 32));
    set(options.panelColumnTile, data.ConsumeIntegralInRange<int64_t>(1, 512));
    set(options.prefetchDistance, data.ConsumeIntegralInRange<int64_t>(0, 64));
    set(options.panelColumnBlock, data.ConsumeIntegralInRange<int64_t>(1, 4));
  }
  return text;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider provider(data, size);
  GeneratedLayer layer = generateLayer(provider);
  CPUPipelineOptions options;
  std::string optionText = pickOptions(provider, options);
  std::string flags = "(moe-lower-to-cpu-pipeline options:" + optionText + ")";

  MLIRContext &ctx = pipelineContext();
  DiagnosticLog diagnostics(&ctx);
  OwningOpRef<ModuleOp> module =
      buildGeneratedModule(kTarget, layer, ctx, diagnostics);
  if (!module)
    return 0;
  if (failed(validateCPUPipelineOptions(options, [&](const Twine &message) {
        return emitError(module->getLoc()) << message;
      })))
    reportFinding(kTarget, "pipeline options in their ranges were refused",
                  layer, flags, diagnostics);

  PassManager pm = PassManager::on<ModuleOp>(&ctx);
  buildMoELowerToCPUPipeline(pm, options);
  if (failed(pm.run(*module)))
    reportFinding(kTarget,
                  "moe-lower-to-cpu-pipeline failed on a verified "
                  "module",
                  layer, flags, diagnostics);
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, "moe_layer");
  if (!llvmModule)
    reportFinding(kTarget,
                  "translation of the lowered module to LLVM IR "
                  "failed",
                  layer, flags, diagnostics);
  return 0;
}
