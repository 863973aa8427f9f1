//===- CPUKernels.cpp - moe-compile's CPU kernel variants -----------------===//

#include "CPUKernels.h"

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
using namespace mlir;
using namespace mlir::moe;

/// Keeps `entry` as the one exported definition of `module`, renamed with
/// `suffix`: the other variants define the same helpers and globals.
static void keepOnlyEntry(llvm::Module &module, StringRef entry,
                          StringRef suffix) {
  for (llvm::GlobalValue &value : module.global_values()) {
    if (value.isDeclaration() || value.hasLocalLinkage() ||
        value.hasAppendingLinkage())
      continue;
    if (value.getName() == entry) {
      value.setName(entry + suffix);
      continue;
    }
    value.setLinkage(llvm::GlobalValue::InternalLinkage);
    if (auto *object = dyn_cast<llvm::GlobalObject>(&value))
      object->setComdat(nullptr);
  }
}

FailureOr<std::string> mlir::moe::lowerCPUVariant(ModuleOp module,
                                                  StringRef function,
                                                  const CPUVariant &variant,
                                                  StringRef moduleName) {
  OwningOpRef<ModuleOp> lowered = module.clone();
  PassManager pm = PassManager::on<ModuleOp>(module.getContext());
  CPUPipelineOptions options;
  // The kernels' instruction choice follows the CPU clang compiles for.
  options.targetCpu = variant.chip;
  buildMoELowerToCPUPipeline(pm, options);
  if (failed(pm.run(*lowered)))
    return failure();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*lowered, llvmContext, moduleName);
  if (!llvmModule) {
    emitError(module.getLoc()) << "translation to LLVM IR failed";
    return failure();
  }
  if (!variant.symbolSuffix.empty())
    keepOnlyEntry(*llvmModule, ("_mlir_ciface_" + function).str(),
                  variant.symbolSuffix);
  std::string text;
  raw_string_ostream os(text);
  llvmModule->print(os, nullptr);
  return text;
}

Expected<std::string> mlir::moe::compilerRTBuiltins(StringRef clang) {
  SmallString<128> out;
  if (std::error_code ec =
          sys::fs::createTemporaryFile("moe-compiler-rt", "txt", out))
    return createStringError(ec,
                             "cannot create a temporary file: " + ec.message());
  FileRemover removeOut(out);
  SmallVector<StringRef> args = {clang, "--rtlib=compiler-rt",
                                 "-print-libgcc-file-name"};
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(out),
                                          std::nullopt};
  std::string message;
  if (sys::ExecuteAndWait(clang, args, std::nullopt, redirects, 0, 0,
                          &message) != 0)
    return createStringError(inconvertibleErrorCode(),
                             "clang cannot name its compiler-rt builtins: " +
                                 message);
  auto text = MemoryBuffer::getFile(out);
  std::string path = text ? (*text)->getBuffer().trim().str() : std::string();
  if (path.empty() || !sys::fs::exists(path))
    return createStringError(
        inconvertibleErrorCode(),
        formatv("the library's CPU checks need compiler-rt's builtins ({0}), "
                "which clang's compiler-rt package installs (Debian: "
                "libclang-rt-22-dev)",
                path.empty() ? "not found" : path));
  return path;
}
