//===- moe-plugin.cpp - The moe dialect and passes as an mlir-opt plugin --===//
//
//   mlir-opt --load-dialect-plugin=libMoEPlugin.so \
//            --load-pass-plugin=libMoEPlugin.so layer.mlir --moe-decompose-layer
//
// Built against the shared libMLIR that upstream mlir-opt uses, so the
// dialect and the passes share its registries.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Conversion/MoEToVector/MoEToVector.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Pipelines/Pipelines.h"
#include "llvm/Config/llvm-config.h"

extern "C" LLVM_ATTRIBUTE_WEAK mlir::DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoE", LLVM_VERSION_STRING,
          [](mlir::DialectRegistry *registry) {
            registry->insert<mlir::moe::MoEDialect>();
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK mlir::PassPluginLibraryInfo
mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoEPasses", LLVM_VERSION_STRING, []() {
            mlir::moe::registerMoEPasses();
            mlir::moe::registerMoEToLinalgPasses();
            mlir::moe::registerMoEToVectorPasses();
            mlir::moe::registerMoEPipelines();
          }};
}
