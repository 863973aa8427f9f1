//===- SinkLaunchConstants.cpp - Constants into gpu.launch bodies ---------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Utils/GPUUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESINKLAUNCHCONSTANTSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// Constants, and pure region-free arithmetic and casts; sinkOperations-
/// IntoLaunchOp clones one only when each of its operands is available in
/// the body or sunk too, so what moves is what derives from constants (and
/// from values the kernel already takes).
bool isSinkable(Operation *op) {
  if (op->hasTrait<OpTrait::ConstantLike>())
    return true;
  if (op->getNumRegions() != 0 || !isPure(op))
    return false;
  return isa<UnrealizedConversionCastOp>(op) ||
         isa<arith::ArithDialect>(op->getDialect());
}

struct MoESinkLaunchConstantsPass
    : moe::impl::MoESinkLaunchConstantsPassBase<MoESinkLaunchConstantsPass> {
  using Base::Base;

  void runOnOperation() override {
    // The launch names `kernels` matched, so that a name matching none (a
    // misspelt or renamed kernel) is an error, not a launch silently left
    // with its constants as parameters.
    llvm::StringSet<> launchNames;
    WalkResult result = getOperation()->walk([&](gpu::LaunchOp launch) {
      std::optional<StringRef> name = launch.getFunction();
      if (name)
        launchNames.insert(*name);
      if (markedOnly &&
          !launch->hasAttr(moe::MoEDialect::getInlineConstantsAttrName()))
        return WalkResult::advance();
      if (!kernels.empty() &&
          (!name || !llvm::is_contained(kernels, name->str())))
        return WalkResult::advance();
      return failed(sinkOperationsIntoLaunchOp(launch, isSinkable))
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();
    SmallVector<std::string> unknown;
    for (const std::string &kernel : kernels)
      if (!launchNames.contains(kernel))
        unknown.push_back("'" + kernel + "'");
    if (!unknown.empty()) {
      getOperation()->emitError()
          << "moe-sink-launch-constants: kernels names "
          << llvm::join(unknown, ", ")
          << ", which no gpu.launch in the module has as its function";
      signalPassFailure();
    }
  }
};

} // namespace
