//===- moe-opt.cpp - The mlir-opt of the moe dialect ----------------------===//
//
// Parses, verifies, transforms and prints MoE IR. Registers the moe dialect,
// its passes and pipelines, and only the upstream pieces those pipelines use.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "moe/InitAll.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::moe::registerAllDialects(registry);
  mlir::moe::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "MoE-MLIR optimizer driver\n", registry));
}
