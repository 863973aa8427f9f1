//===- moe-compile.cpp - Ahead-of-time compiler of MoE layers -------------===//
//
// Input: MoE IR (.mlir), a model's config.json, or a layer from --layer.
// Output (--emit): the moe IR (mlir), LLVM IR (ll), the kernel object (obj),
// a shared library exporting the C ABI of moe/Runtime/moe_runtime.h (so),
// its header (header) and a JSON manifest (manifest); for --target=cuda also
// the kernels' fatbin (fatbin) and PTX (ptx). A CUDA library embeds the
// fatbin and the project's CUDA runtime, so it needs only the NVIDIA driver.
// The same input gives the same bytes.
//
//===----------------------------------------------------------------------===//

#include "CPUKernels.h"
#include "CUDAKernels.h"
#include "moe/Compiler/CABIEmitter.h"
#include "moe/Compiler/CPUFeatures.h"
#include "moe/Compiler/HFConfig.h"
#include "moe/Compiler/IRNesting.h"
#include "moe/Compiler/LayerModule.h"
#include "moe/Compiler/LayerSpec.h"
#include "moe/InitAll.h"
#include "moe/Pipelines/CUDATarget.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Runtime/moe_runtime.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <set>

using namespace llvm;
using namespace mlir;
using namespace mlir::moe;

#ifndef MOE_MLIR_VERSION
#define MOE_MLIR_VERSION "unknown"
#endif

static const char kRuntimeHeader[] =
#include "MoERuntimeHeader.inc"
    ;

namespace {

cl::OptionCategory category("moe-compile options");

cl::opt<std::string> inputFile(cl::Positional,
                               cl::desc("[input.mlir | config.json]"),
                               cl::init(""), cl::cat(category));
cl::opt<std::string> configFile("config",
                                cl::desc("A model's Hugging Face config.json "
                                         "(read as JSON whatever its name)"),
                                cl::value_desc("file"), cl::cat(category));
cl::opt<std::string> layerSettings(
    "layer",
    cl::desc("Layer settings key=value,...: hidden, intermediate, experts, k, "
             "dtype, scoring, n_group, topk_group, group_score, renormalize, "
             "renorm_epsilon, scale, bias, router_bias, expert_bias, "
             "activation, glu_layout, alpha, limit, shared_intermediate, "
             "shared_gate, capacity, capacity_factor, drop_policy, "
             "weight_layout, weight_quant (none, fp8_e4m3, mxfp4, int4, int8), "
             "weight_block, activation_quant, zero_points (they override a "
             "config's values)"),
    cl::value_desc("settings"), cl::cat(category));
cl::opt<std::string> entry(
    "entry",
    cl::desc("What a layer from a config or --layer exports: layer (the "
             "whole layer, routing inside: x, router, w13, w2, ...) or "
             "experts (its routed experts, the routing given: x, topk_ids, "
             "topk_weights, w13, w2[, w13_bias, w2_bias])"),
    cl::init("layer"), cl::cat(category));
cl::opt<std::string> target("target", cl::desc("cpu or cuda"), cl::init("cpu"),
                            cl::cat(category));
cl::opt<std::string> chip(
    "chip",
    cl::desc("The CPU (a clang -march value; default: the host), a "
             "comma-separated list of them or portable (x86-64-v2,x86-64-v3,"
             "x86-64-v4,cooperlake): one library with the kernel compiled per "
             "CPU, the best the running CPU supports picked at the first "
             "call; or the CUDA chip (sm_90a, sm_80)"),
    cl::init(""), cl::cat(category));
cl::list<std::string> emit("emit",
                           cl::desc("What to write: obj, so, header, mlir, ll, "
                                    "manifest (ptx, fatbin: --target=cuda)"),
                           cl::CommaSeparated, cl::cat(category));
cl::opt<std::string> outputDir("o", cl::desc("Output directory"),
                               cl::value_desc("dir"), cl::init("."),
                               cl::cat(category));
cl::opt<std::string>
    layerName("name",
              cl::desc("Name of the layer in symbols and files (moe_<name>_*)"),
              cl::init("layer"), cl::cat(category));
cl::opt<std::string>
    functionName("function",
                 cl::desc("The function to export when the input is IR "
                          "(default: its only public function)"),
                 cl::init(""), cl::cat(category));
cl::opt<std::string> cudaFeatures(
    "cuda-features",
    cl::desc("PTX features of --target=cuda (default +ptx80; +ptx84 "
             "for FP8 weights, whose kernel needs it)"),
    cl::init("+ptx80"), cl::cat(category));
cl::opt<int64_t> maxTokens("max-tokens",
                           cl::desc("Largest num_tokens the ABI accepts"),
                           cl::init(1 << 20), cl::cat(category));

/// Reports `message` as moe-compile's error and returns exit status 1.
int fail(const Twine &message) {
  errs() << "moe-compile: error: " << message << "\n";
  return 1;
}

std::string clangPath() {
  if (const char *path = std::getenv("MOE_MLIR_CLANG"))
    return path;
  return MOE_MLIR_CLANG_PATH;
}

/// Runs `args` (args[0] is the program); its diagnostics go to stderr.
bool run(ArrayRef<std::string> args) {
  SmallVector<StringRef> refs(args.begin(), args.end());
  std::string message;
  int status =
      sys::ExecuteAndWait(args.front(), refs, std::nullopt, {}, 0, 0, &message);
  if (status != 0) {
    errs() << "moe-compile: error: " << sys::path::filename(args.front())
           << " failed" << (message.empty() ? "" : ": " + message) << "\n";
    return false;
  }
  return true;
}

bool writeFile(StringRef path, StringRef contents) {
  std::string error;
  auto file = openOutputFile(path, &error);
  if (!file) {
    errs() << "moe-compile: error: " << error << "\n";
    return false;
  }
  file->os() << contents;
  file->keep();
  return true;
}

std::string sha256(StringRef text) {
  return toHex(SHA256::hash(arrayRefFromStringRef(text)), /*LowerCase=*/true);
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::SetVersionPrinter([](raw_ostream &os) {
    os << "moe-compile " << MOE_MLIR_VERSION << " (MoE-MLIR)\n"
       << "LLVM/MLIR " << LLVM_VERSION_STRING << "\n";
  });
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-compile: ahead-of-time MoE kernels with a C ABI\n\n"
      "  moe-compile config.json --emit=so,header,manifest -o out/\n"
      "  moe-compile --layer=hidden=64,intermediate=32,experts=8,k=2,"
      "renormalize -o out/\n"
      "  moe-compile layer.mlir --function=layer --emit=obj,header\n");

  std::set<std::string> outputs(emit.begin(), emit.end());
  if (outputs.empty())
    outputs = {"so", "header", "manifest"};
  for (const std::string &kind : outputs)
    if (!is_contained(SmallVector<StringRef>{"obj", "so", "header", "mlir",
                                             "ll", "manifest", "ptx", "fatbin"},
                      kind))
      return fail(formatv("--emit: unknown kind '{0}'", kind));
  if (entry != "layer" && entry != "experts")
    return fail(formatv("--entry must be layer or experts, got '{0}'", entry));
  bool experts = entry == "experts";
  if (target != "cpu" && target != "cuda")
    return fail(formatv("--target must be cpu or cuda, got '{0}'", target));
  bool cuda = target == "cuda";
  if (!cuda && (outputs.count("ptx") || outputs.count("fatbin")))
    return fail("--emit=ptx and --emit=fatbin need --target=cuda");
  // A flag given empty, or given to the target that has no use for it, is
  // a mistake to report, not a default to fall back on.
  if (chip.getNumOccurrences() && chip.empty())
    return fail("--chip is empty; give a CPU (e.g. native, x86-64-v3, "
                "portable) or, with --target=cuda, a CUDA chip (e.g. sm_90a)");
  if (outputDir.empty())
    return fail("-o is empty; give the output directory");
  if (!cuda && cudaFeatures.getNumOccurrences())
    return fail("--cuda-features applies to --target=cuda only");
  std::string chipName =
      !chip.empty() ? chip.getValue() : (cuda ? "sm_90a" : "native");
  if (cuda && !StringRef(chipName).starts_with("sm_"))
    return fail(formatv("--chip for --target=cuda is an sm_XY name such as "
                        "sm_90a or sm_80, got '{0}'",
                        chipName));
  // The PTX-only build has no ptxas to reject an unknown chip or feature.
  if (cuda)
    if (Error e = checkCUDATarget(chipName, cudaFeatures))
      return fail(toString(std::move(e)));
  if (layerName.empty() || isDigit(layerName.front()) ||
      !all_of(layerName, [](char c) { return isAlnum(c) || c == '_'; }))
    return fail(formatv("--name must be a C identifier, got '{0}'", layerName));
  if (maxTokens < 1)
    return fail("--max-tokens must be >= 1");
  // The CPUs the kernel is compiled for and the features each may use, for
  // the manifest and for the library's choice before its kernel runs.
  std::vector<CPUVariant> cpuVariants;
  if (!cuda) {
    Expected<std::vector<std::string>> chips = parseChipList(chip);
    if (!chips)
      return fail(toString(chips.takeError()));
    Expected<std::vector<CPUVariant>> variants =
        planCPUVariants(clangPath(), *chips);
    if (!variants)
      return fail(toString(variants.takeError()));
    cpuVariants = std::move(*variants);
  }

  DialectRegistry registry;
  registerAllDialects(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  context.printOpOnDiagnostic(false);
  SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  // The input: IR, or a layer from a config and/or --layer settings.
  std::string input = inputFile;
  bool isConfig = configFile.getNumOccurrences();
  if (isConfig) {
    if (!input.empty())
      return fail("give either an input file or --config, not both");
    input = configFile;
  }
  std::unique_ptr<MemoryBuffer> inputBuffer;
  if (!input.empty()) {
    auto buffer = MemoryBuffer::getFileOrSTDIN(input);
    if (!buffer)
      return fail(formatv("cannot read '{0}': {1}", input,
                          buffer.getError().message()));
    inputBuffer = std::move(*buffer);
    // A config is JSON whatever its file is called; IR never starts with
    // '{'.
    isConfig = isConfig || StringRef(input).ends_with(".json") ||
               inputBuffer->getBuffer().ltrim().starts_with("{");
  }
  std::optional<LayerSpec> spec;
  std::string sourceText;
  SmallVector<std::string> argNames;
  OwningOpRef<ModuleOp> module;
  if (inputBuffer && !isConfig) {
    if (layerSettings.getNumOccurrences())
      return fail("--layer describes a layer; it does not apply to IR input");
    if (entry.getNumOccurrences())
      return fail("--entry picks the function of a layer from a config or "
                  "--layer; IR input exports its own (--function)");
    sourceText = inputBuffer->getBuffer().str();
    StringRef text = inputBuffer->getBuffer();
    sourceMgr.AddNewSourceBuffer(std::move(inputBuffer), SMLoc());
    if (std::optional<size_t> at = findExcessiveNesting(text)) {
      sourceMgr.PrintMessage(
          SMLoc::getFromPointer(text.data() + *at), SourceMgr::DK_Error,
          formatv("the IR nests brackets more than {0} deep; refused before "
                  "parsing, whose recursion would exhaust the stack",
                  kMaxIRNesting));
      return 1;
    }
    module = parseSourceFile<ModuleOp>(sourceMgr, &context);
    if (!module)
      return 1;
  } else {
    spec.emplace();
    if (inputBuffer) {
      Expected<LayerSpec> fromConfig =
          layerSpecFromHFConfigText(inputBuffer->getBuffer());
      if (!fromConfig)
        return fail(
            formatv("{0}: {1}", input, toString(fromConfig.takeError())));
      spec = std::move(*fromConfig);
    } else if (!layerSettings.getNumOccurrences()) {
      return fail("no input: give IR, a config.json or --layer (see --help)");
    }
    if (Error e = applyLayerSettings(*spec, layerSettings))
      return fail(toString(std::move(e)));
    // Errors name the config key or --layer setting at fault.
    if (Error e = validateLayerSpec(*spec))
      return fail(formatv("{0}{1}", input.empty() ? "" : input + ": ",
                          toString(std::move(e))));
    // The layer's ops are located at the config file (or --layer): what a
    // lowering reports about them comes from there.
    Location loc =
        FileLineColLoc::get(&context, input.empty() ? "--layer" : input, 0, 0);
    module = experts ? buildExpertsModule(*spec, layerName, loc)
                     : buildLayerModule(*spec, layerName, loc);
    if (!module)
      return 1;
    argNames =
        experts ? expertsArgumentNames(*spec) : layerArgumentNames(*spec);
    raw_string_ostream os(sourceText);
    module->print(os);
  }

  func::FuncOp func;
  for (auto candidate : module->getOps<func::FuncOp>()) {
    if (candidate.isExternal() || candidate.isPrivate())
      continue;
    if (!functionName.empty() && candidate.getSymName() != functionName)
      continue;
    if (func)
      return fail("the module has several public functions; choose one with "
                  "--function");
    func = candidate;
  }
  if (!func)
    return fail(functionName.empty()
                    ? std::string("the module has no public function")
                    : formatv("no public function @{0}", functionName).str());
  // The FP8 kernel's mma.sync with e4m3 operands is PTX ISA 8.4: the
  // default for a module with FP8 weights, unless --cuda-features is given.
  if (cuda && !cudaFeatures.getNumOccurrences()) {
    bool fp8 = module
                   ->walk([](Operation *op) {
                     return op->hasAttr("weight_quant")
                                ? WalkResult::interrupt()
                                : WalkResult::advance();
                   })
                   .wasInterrupted();
    if (fp8)
      cudaFeatures.setValue("+ptx84");
  }
  Expected<ABIFunction> abi =
      describeABI(func, layerName, argNames, maxTokens, cuda);
  if (!abi)
    return fail(toString(abi.takeError()));
  if (spec) {
    abi->weightLayout = spec->weightLayout;
    abi->weightQuant = spec->weightQuant;
  }
  abi->chip = chipName;
  abi->cpuVariants = cpuVariants;
  // Other public functions would be exported by the kernel object as well.
  for (auto other : llvm::make_early_inc_range(module->getOps<func::FuncOp>()))
    if (other != func && other.isPublic() && !other.isExternal())
      other.setPrivate();

  std::string moeIR;
  {
    raw_string_ostream os(moeIR);
    module->print(os);
  }

  // PTX comes from a lowering of its own: the fatbin's lowering keeps only
  // the binary.
  std::string ptx;
  if (outputs.count("ptx")) {
    OwningOpRef<ModuleOp> clone = module->clone();
    FailureOr<std::string> image =
        lowerKernelsForCUDA(*clone, chipName, cudaFeatures, "isa");
    if (failed(image))
      return 1;
    ptx = *image;
    // The PTX assembler reads up to the terminating NUL the object carries.
    while (!ptx.empty() && ptx.back() == '\0')
      ptx.pop_back();
  }
  // A CUDA lowering needs ptxas; it runs only for the outputs that hold
  // host code or the fatbin.
  bool lowerHost = !cuda || outputs.count("so") || outputs.count("obj") ||
                   outputs.count("ll") || outputs.count("fatbin");
  // One LLVM IR per CPU variant; a CUDA artifact's host code is one.
  std::vector<std::string> cpuIR;
  if (!cuda && lowerHost)
    for (const CPUVariant &variant : cpuVariants) {
      FailureOr<std::string> ir =
          lowerCPUVariant(*module, abi->symbol, variant, "moe_" + layerName);
      if (failed(ir))
        return 1;
      cpuIR.push_back(std::move(*ir));
    }
  std::string fatbin, llvmIR;
  if (lowerHost && cuda) {
    FailureOr<std::string> image =
        lowerKernelsForCUDA(*module, chipName, cudaFeatures, "fatbin");
    if (failed(image))
      return 1;
    fatbin = *image;
    llvm::LLVMContext llvmContext;
    std::unique_ptr<llvm::Module> llvmModule =
        translateModuleToLLVMIR(*module, llvmContext, "moe_" + layerName);
    if (!llvmModule)
      return fail("translation to LLVM IR failed");
    raw_string_ostream os(llvmIR);
    llvmModule->print(os, nullptr);
  }

  if (std::error_code ec = sys::fs::create_directories(outputDir))
    return fail(formatv("cannot create '{0}': {1}", outputDir, ec.message()));
  auto outPath = [&](StringRef file) {
    SmallString<256> path(outputDir);
    sys::path::append(path, file);
    return std::string(path);
  };
  std::string base = abi->prefix;
  // Intermediate files live beside the outputs, under a fixed name, so the
  // paths that reach the object files are the same on every run.
  std::string work = outPath("." + base + ".build");
  if (std::error_code ec = sys::fs::create_directories(work))
    return fail(formatv("cannot create '{0}': {1}", work, ec.message()));
  auto workPath = [&](StringRef file) {
    SmallString<256> path(work);
    sys::path::append(path, file);
    return std::string(path);
  };
  std::string header = emitHeader(*abi, kRuntimeHeader);
  std::string llPath = workPath(base + ".ll");
  if ((cuda && !writeFile(llPath, llvmIR)) ||
      !writeFile(workPath(base + ".h"), header))
    return 1;

  std::string clang = clangPath();
  std::string llvmLib = MOE_MLIR_LLVM_LIBRARY_DIR;
  if (outputs.count("mlir") && !writeFile(outPath(base + ".mlir"), moeIR))
    return 1;
  if (outputs.count("ll") && cuda && !writeFile(outPath(base + ".ll"), llvmIR))
    return 1;
  if (outputs.count("header") && !writeFile(outPath(base + ".h"), header))
    return 1;
  if (outputs.count("ptx") && !writeFile(outPath(base + ".ptx"), ptx))
    return 1;
  if (outputs.count("fatbin") && !writeFile(outPath(base + ".fatbin"), fatbin))
    return 1;
  // CUDA host code is a few launches: it is built for any x86-64, so the
  // artifact runs on whichever host holds the GPU.
  if (outputs.count("obj") && cuda &&
      !run({clang, "-O2", "-march=x86-64", "-fPIC", "-Wno-override-module",
            "-c", llPath, "-o", outPath(base + ".o")}))
    return 1;
  // Each CPU kernel variant is compiled for its CPU, to <base><suffix>.o
  // (and .ll) in the output directory when asked for, else in the work one.
  std::vector<std::string> kernelObjects;
  for (size_t i = 0; i < cpuIR.size(); ++i) {
    std::string name = base + cpuVariants[i].symbolSuffix;
    std::string ll =
        outputs.count("ll") ? outPath(name + ".ll") : workPath(name + ".ll");
    std::string object = outputs.count("obj") ? outPath(name + ".o")
                                              : workPath(name + ".kernel.o");
    if (!writeFile(ll, cpuIR[i]) ||
        ((outputs.count("obj") || outputs.count("so")) &&
         !run({clang, "-O2", "-march=" + cpuVariants[i].chip, "-fPIC",
               "-Wno-override-module", "-c", ll, "-o", object})))
      return 1;
    kernelObjects.push_back(object);
  }
  if (outputs.count("so")) {
    std::string shim = workPath(base + "_abi.c");
    std::string script = workPath(base + ".map");
    if (!writeFile(shim, emitShim(*abi)) ||
        !writeFile(script, emitVersionScript(*abi)))
      return 1;
    std::vector<std::string> link = {clang,
                                     "-O2",
                                     "-march=x86-64",
                                     "-fPIC",
                                     "-shared",
                                     "-std=c99",
                                     "-Wno-override-module",
                                     "-I" + work,
                                     shim,
                                     "-o",
                                     outPath("lib" + base + ".so"),
                                     "-Wl,--version-script=" + script,
                                     "-Wl,-s"};
    // The shim, which picks the kernel variant the running CPU supports, is
    // compiled for the x86-64 baseline.
    if (cuda)
      link.push_back(llPath);
    link.insert(link.end(), kernelObjects.begin(), kernelObjects.end());
    if (cuda) {
      // The runtime is linked in whole, so the library needs only libcuda,
      // which the runtime opens itself.
      std::string runtime = cudaRuntimeArchive();
      if (!sys::fs::exists(runtime))
        return fail("the CUDA runtime archive " + runtime +
                    " does not exist (set MOE_MLIR_CUDA_RUNTIME)");
      link.insert(link.end(),
                  {runtime, "-lstdc++", "-ldl", "-lpthread", "-lm"});
    } else {
      // libomp is found beside the library first, so an artifact shipped
      // with its libomp runs where LLVM is not installed.
      // The kernel's allocations go through the shim's guard, which turns
      // a failed one into MOE_STATUS_OUT_OF_MEMORY (CABIEmitter.cpp).
      // __builtin_cpu_supports comes from compiler-rt's CPU model, which
      // knows the features of the clang that named them (CPUDispatchEmitter).
      Expected<std::string> builtins = compilerRTBuiltins(clang);
      if (!builtins)
        return fail(toString(builtins.takeError()));
      link.insert(link.end(),
                  {*builtins, "-lpthread", "-L" + llvmLib, "-lomp",
                   "-Wl,-rpath,$ORIGIN", "-Wl,-rpath," + llvmLib, "-lm",
                   "-Wl,--wrap=malloc,--wrap=calloc,--wrap=free"});
    }
    if (!run(link))
      return 1;
  }
  if (outputs.count("manifest")) {
    json::Object manifest{
        {"abi_version",
         formatv("{0}.{1}", MOE_ABI_VERSION_MAJOR, MOE_ABI_VERSION_MINOR)
             .str()},
        {"name", layerName.getValue()},
        {"prefix", abi->prefix},
        {"function", abi->symbol},
        {"target", target.getValue()},
        {"chip", chipName},
        {"compiler", formatv("moe-compile {0}", MOE_MLIR_VERSION).str()},
        {"llvm_version", LLVM_VERSION_STRING},
        {"input_sha256", sha256(sourceText)},
        {"moe_ir_sha256", sha256(moeIR)},
        {"max_tokens", maxTokens.getValue()},
        {"tensors", abiToJSON(*abi)},
        {"library", "lib" + base + ".so"},
        {"header", base + ".h"},
        {"symbols", json::Array(exportedSymbols(*abi))},
    };
    if (cuda) {
      // The workspace grows with num_tokens: the library's query gives it.
      manifest["cuda_features"] = cudaFeatures.getValue();
      manifest["kernels"] = "fatbin: " + chipName + " machine code and PTX";
      if (outputs.count("fatbin"))
        manifest["fatbin"] = base + ".fatbin";
      if (outputs.count("ptx"))
        manifest["ptx"] = base + ".ptx";
    } else {
      manifest["workspace_bytes"] = 0;
      manifest["cpu_features"] = json::Array(commonCPUFeatures(cpuVariants));
      manifest["cpu_variants"] = cpuVariantsToJSON(cpuVariants, abi->symbol);
    }
    if (spec) {
      // The experts entry takes the routing as arguments: the layer's router
      // settings and shared expert are for the caller, not in the library.
      manifest["entry"] = entry.getValue();
      manifest["layer"] = layerToJSON(*spec);
    }
    std::string text = formatv("{0:2}", json::Value(std::move(manifest)));
    if (!writeFile(outPath(base + ".json"), text + "\n"))
      return 1;
  }
  sys::fs::remove_directories(work);
  return 0;
}
