//===- StageBarriers.cpp - The full/empty mbarrier protocol ---------------===//

#include "StageBarriers.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

StageBarriers StageBarriers::create(KernelBuilder &b, int64_t stages,
                                    int64_t fullArrivals,
                                    int64_t emptyArrivals) {
  StageBarriers barriers;
  barriers.stages = stages;
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto groupType = nvgpu::MBarrierGroupType::get(b.getContext(), space, stages);
  barriers.full = b.create<nvgpu::MBarrierCreateOp>(groupType);
  if (emptyArrivals)
    barriers.empty = b.create<nvgpu::MBarrierCreateOp>(groupType);
  Value first = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, b.threadId(),
                                        b.index(0));
  for (int64_t s = 0; s < stages; ++s) {
    b.create<nvgpu::MBarrierInitOp>(barriers.full, b.index(fullArrivals),
                                    b.index(s), first);
    if (emptyArrivals)
      b.create<nvgpu::MBarrierInitOp>(barriers.empty, b.index(emptyArrivals),
                                      b.index(s), first);
  }
  // The copy engine completes them through the async proxy.
  fenceIntoAsyncProxy(b);
  b.create<gpu::BarrierOp>();
  return barriers;
}

void StageBarriers::fenceIntoAsyncProxy(KernelBuilder &b) {
  b.create<NVVM::FenceProxyOp>(
      NVVM::ProxyKind::async_shared,
      NVVM::SharedSpaceAttr::get(b.getContext(),
                                 NVVM::SharedSpace::shared_cta));
}

void StageBarriers::waitFull(KernelBuilder &b, Value tile, Value stage) const {
  waitForPhase(b, full, tile, stage, /*previousRound=*/false);
}

void StageBarriers::waitEmpty(KernelBuilder &b, Value tile, Value stage) const {
  waitForPhase(b, empty, tile, stage, /*previousRound=*/true);
}

void StageBarriers::release(KernelBuilder &b, Value stage) const {
  b.create<nvgpu::MBarrierArriveOp>(
      nvgpu::MBarrierTokenType::get(b.getContext()), empty, stage);
}

void StageBarriers::expectBytes(KernelBuilder &b, int64_t bytes, Value stage,
                                Value issuer) const {
  b.create<nvgpu::MBarrierArriveExpectTxOp>(full, b.index(bytes), stage,
                                            issuer);
}

void StageBarriers::arriveOnCopies(KernelBuilder &b, Value stage) const {
  // nvgpu has no cp.async arrival: the barrier's shared address, as NVVM
  // takes it.
  Value address = b.create<nvgpu::MBarrierGetOp>(b.getI32Type(), full, stage);
  Value pointer = b.create<LLVM::IntToPtrOp>(
      LLVM::LLVMPointerType::get(
          b.getContext(), static_cast<unsigned>(NVVM::NVVMMemorySpace::Shared)),
      address);
  b.create<NVVM::CpAsyncMBarrierArriveOp>(pointer, /*noinc=*/true);
}

/// Waits on barrier `stage` of `barriers` for the phase that K tile
/// `tile`'s round (tile / stages) completes, or with `previousRound` the
/// round before (which, in the first round, a fresh barrier counts as
/// complete).
void StageBarriers::waitForPhase(KernelBuilder &b, Value barriers, Value tile,
                                 Value stage, bool previousRound) const {
  Value round = b.create<arith::DivUIOp>(tile, b.index(stages));
  Value parity = b.create<arith::CmpIOp>(
      previousRound ? arith::CmpIPredicate::eq : arith::CmpIPredicate::ne,
      b.create<arith::RemUIOp>(round, b.index(2)), b.index(0));
  // A bound on the spin of one try_wait; the wait itself has no bound.
  constexpr int64_t kWaitTicks = 10000000;
  b.create<nvgpu::MBarrierTryWaitParityOp>(barriers, parity,
                                           b.index(kWaitTicks), stage);
}
