//===- StageBarriers.h - The full/empty mbarrier protocol -------*- C++ -*-===//
//
// The handshake between the copies that fill a multistage pipeline's shared
// memory and the warps that read it, as one object (CUTLASS's sm90
// PipelineTmaAsync): per stage, a full mbarrier that completes when the
// stage's bytes have landed (TMA transactions and cp.async arrivals) and,
// with a producer warpgroup, an empty mbarrier that completes when every
// consumer thread has released the stage. K tile t uses stage t % stages in
// round t / stages; a round's phase parity tells the waits apart.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_STAGEBARRIERS_H
#define MOE_LIB_CONVERSION_MOETOGPU_STAGEBARRIERS_H

#include "KernelBuilder.h"

namespace mlir::moe::gpu_lowering {

class StageBarriers {
public:
  StageBarriers() = default;

  /// One full mbarrier per stage, complete after `fullArrivals` arrivals
  /// and the bytes announced, and with `emptyArrivals` one empty mbarrier
  /// per stage; thread 0 initializes them before any copy is issued, and
  /// the block passes a barrier.
  static StageBarriers create(KernelBuilder &b, int64_t stages,
                              int64_t fullArrivals, int64_t emptyArrivals);

  explicit operator bool() const { return static_cast<bool>(full); }

  /// Waits until K tile `tile` has landed in `stage`.
  void waitFull(KernelBuilder &b, Value tile, Value stage) const;
  /// Waits until `stage` is free for K tile `tile`: released by every
  /// consumer in the round before (which a fresh barrier counts as done).
  void waitEmpty(KernelBuilder &b, Value tile, Value stage) const;
  /// This thread's release of `stage`.
  void release(KernelBuilder &b, Value stage) const;
  /// `issuer` announces `bytes` of TMA transactions on `stage`'s full
  /// barrier (and arrives).
  void expectBytes(KernelBuilder &b, int64_t bytes, Value stage,
                   Value issuer) const;
  /// This thread's arrival on `stage`'s full barrier once its cp.async
  /// copies so far have landed.
  void arriveOnCopies(KernelBuilder &b, Value stage) const;

  /// Orders this thread's shared-memory accesses so far (ordinary ones, and
  /// cp.async copies it waited for) before later async-proxy ones: TMA,
  /// wgmma reads, and the copy engine's completion of an mbarrier.
  static void fenceIntoAsyncProxy(KernelBuilder &b);

  /// The full barriers, which TMA loads complete.
  Value full;

private:
  void waitForPhase(KernelBuilder &b, Value barriers, Value tile, Value stage,
                    bool previousRound) const;

  Value empty;
  int64_t stages = 0;
};

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_STAGEBARRIERS_H
