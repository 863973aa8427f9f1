//===- FuzzContext.cpp - The pipeline fuzzers' MLIR context ---------------===//

#include "FuzzContext.h"

#include "moe/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"

using namespace mlir;

MLIRContext &mlir::moe::fuzz::pipelineContext() {
  static MLIRContext *context = [] {
    DialectRegistry registry;
    moe::registerAllDialects(registry);
    registerBuiltinDialectTranslation(registry);
    registerLLVMDialectTranslation(registry);
    registerOpenMPDialectTranslation(registry);
    auto *created = new MLIRContext(registry);
    created->loadAllAvailableDialects();
    created->printOpOnDiagnostic(false);
    created->disableMultithreading();
    return created;
  }();
  return *context;
}
