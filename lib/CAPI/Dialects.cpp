//===- Dialects.cpp - C API of the moe dialect ----------------------------===//

#include "moe-c/Dialects.h"

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Registration.h"
#include "mlir/CAPI/Support.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "moe/Compiler/LayerModule.h"
#include "moe/Compiler/LayerSpec.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/InitAll.h"
#include "moe/Pipelines/Pipelines.h"

using namespace mlir;

MLIR_DEFINE_CAPI_DIALECT_REGISTRATION(MoE, moe, mlir::moe::MoEDialect)

void moeRegisterPasses(void) { mlir::moe::registerAllPasses(); }

void moeRegisterAllDialects(MlirDialectRegistry registry) {
  mlir::moe::registerAllDialects(*unwrap(registry));
}

MlirModule moeBuildLayerModule(MlirContext context, MlirStringRef name,
                               MlirStringRef settings) {
  MLIRContext *ctx = unwrap(context);
  mlir::moe::LayerSpec spec;
  llvm::Error error = mlir::moe::applyLayerSettings(spec, unwrap(settings));
  if (!error)
    error = mlir::moe::validateLayerSpec(spec);
  if (error) {
    emitError(UnknownLoc::get(ctx)) << llvm::toString(std::move(error));
    return MlirModule{nullptr};
  }
  OwningOpRef<ModuleOp> module = mlir::moe::buildLayerModule(
      spec, unwrap(name), NameLoc::get(StringAttr::get(ctx, "--layer")));
  if (!module)
    return MlirModule{nullptr};
  return MlirModule{module.release().getOperation()};
}

MlirLogicalResult moeLowerToCPU(MlirModule module) {
  ModuleOp op = unwrap(module);
  PassManager pm = PassManager::on<ModuleOp>(op.getContext());
  mlir::moe::buildMoELowerToCPUPipeline(pm, mlir::moe::CPUPipelineOptions());
  return wrap(pm.run(op));
}
