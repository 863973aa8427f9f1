//===- SinkLaunchConstants.cpp - Constants into gpu.launch bodies ---------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Utils/GPUUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

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
    WalkResult result = getOperation()->walk([&](gpu::LaunchOp launch) {
      if (markedOnly &&
          !launch->hasAttr(moe::MoEDialect::getInlineConstantsAttrName()))
        return WalkResult::advance();
      std::optional<StringRef> name = launch.getFunction();
      if (!kernels.empty() &&
          (!name || !llvm::is_contained(kernels, name->str())))
        return WalkResult::advance();
      return failed(sinkOperationsIntoLaunchOp(launch, isSinkable))
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
