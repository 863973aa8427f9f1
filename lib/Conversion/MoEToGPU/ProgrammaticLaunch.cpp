//===- ProgrammaticLaunch.cpp - Kernels that start before the last ends ---===//
//
// moe-gpu-programmatic-launch: a decode layer is a chain of short kernels
// (dispatch, schedule, two grouped matmuls, combine), each waiting for the
// one before, so the launch gaps and each kernel's start-up are a large part
// of its time. With programmatic dependent launch (sm_90) the host lets a
// kernel start while the one before still runs; the kernel itself waits
// (griddepcontrol.wait) before it touches memory, and lets the next one
// start (griddepcontrol.launch_dependents) as soon as it runs.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUPROGRAMMATICLAUNCHPASS
#include "moe/Conversion/MoEToGPU/MoEToGPU.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The runtime entry point that makes the thread's next launch a
/// programmatic one (libmoe_cuda_runtime).
constexpr StringLiteral kNextLaunchProgrammatic =
    "moeCudaNextLaunchProgrammatic";

/// The host function `moeCudaNextLaunchProgrammatic`, declared once.
LLVM::LLVMFuncOp declareNextLaunchProgrammatic(ModuleOp module) {
  if (auto existing =
          module.lookupSymbol<LLVM::LLVMFuncOp>(kNextLaunchProgrammatic))
    return existing;
  OpBuilder builder = OpBuilder::atBlockBegin(module.getBody());
  MLIRContext *ctx = module.getContext();
  return LLVM::LLVMFuncOp::create(
      builder, module.getLoc(), kNextLaunchProgrammatic,
      LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {}));
}

/// The first operation of `block` that reads or writes memory (or may: an
/// operation whose effects are unknown counts), or its terminator.
Operation *firstMemoryAccess(Block &block) {
  for (Operation &op : block.without_terminator())
    if (!isMemoryEffectFree(&op))
      return &op;
  return block.getTerminator();
}

/// Makes `launch` a programmatic one: the griddepcontrol pair in its body
/// and the runtime call before it on the host.
void makeProgrammatic(gpu::LaunchOp launch, LLVM::LLVMFuncOp next) {
  Block &body = launch.getBody().front();
  Location loc = launch.getLoc();
  MLIRContext *ctx = launch.getContext();
  OpBuilder builder(ctx);
  // The wait before anything that touches memory: the kernels ahead may
  // still be writing what this one reads, or reading what it writes.
  builder.setInsertionPoint(firstMemoryAccess(body));
  NVVM::GriddepcontrolOp::create(builder, loc, NVVM::GridDepActionKind::wait);
  // The next kernel may be scheduled once every block of this one has
  // started: its blocks then wait on SMs, not in the launch queue.
  builder.setInsertionPointToStart(&body);
  NVVM::GriddepcontrolOp::create(builder, loc,
                                 NVVM::GridDepActionKind::launch_dependents);
  builder.setInsertionPoint(launch);
  LLVM::CallOp::create(builder, loc, next, ValueRange{});
  launch->setAttr(MoEDialect::getProgrammaticLaunchAttrName(),
                  UnitAttr::get(ctx));
}

struct MoEGPUProgrammaticLaunchPass
    : moe::impl::MoEGPUProgrammaticLaunchPassBase<
          MoEGPUProgrammaticLaunchPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<gpu::LaunchOp> launches;
    module.walk([&](gpu::LaunchOp launch) {
      // Already marked (a second run): the body has its wait.
      if (!launch->hasAttr(MoEDialect::getProgrammaticLaunchAttrName()))
        launches.push_back(launch);
    });
    if (launches.empty())
      return;
    LLVM::LLVMFuncOp next = declareNextLaunchProgrammatic(module);
    for (gpu::LaunchOp launch : launches)
      makeProgrammatic(launch, next);
  }
};

} // namespace
