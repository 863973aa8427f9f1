//===- BlockSelection.h - One block picks the best of a range ---*- C++ -*-===//
//
// Expert choice (an expert's best tokens) and the capacity dispatch's score
// policy (an expert's largest routing weights) both pick, in one block, the
// C best of a range of f32 scores, larger first, ties to the earlier
// element, NaN last, and then visit the range in order knowing which were
// picked. This is that selection: order-preserving integer keys, a radix
// select of the C-th best key, and a sweep with block scans. Linear in the
// range; no atomics.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_BLOCKSELECTION_H
#define MOE_LIB_CONVERSION_MOETOGPU_BLOCKSELECTION_H

#include "BlockScan.h"

namespace mlir::moe::gpu_lowering {

/// Threads of a selecting block: the tile of elements one scan covers.
constexpr int64_t kSelectThreads = kScanThreads;

/// The workgroup buffer a selecting block needs (kSelectThreads i32).
inline MemRefType selectionScratchType(MLIRContext *context) {
  return scanScratchType(context);
}

/// The C best of the f32 scores of [from, to). Build it with `select`, then
/// `sweep` the range. Every thread of the block must call both.
class BlockSelection {
public:
  using ScoreFn = function_ref<Value(KernelBuilder &, Value)>;
  using VisitFn = function_ref<void(KernelBuilder &, Value element,
                                    Value picked, Value place)>;

  /// Finds the C-th best key (C = `count`, an index no larger than the
  /// range) of the scores `scoreOf(i)`, i in [from, to). The selection
  /// keeps `scoreOf` for `sweep`, so the callable must outlive it.
  static BlockSelection select(KernelBuilder &b, Value scratch, Value from,
                               Value to, Value count, ScoreFn scoreOf);

  /// Visits every element i of [from, to) in order, a tile of
  /// kSelectThreads at a time, one per thread: `visit(i, picked, place)`,
  /// `picked` (i1) whether i is among the C best, `place` (i32) its rank in
  /// order among the picked ones.
  void sweep(KernelBuilder &b, VisitFn visit) const;

private:
  Value scratch, from, to;
  ScoreFn scoreOf;
  Value threshold;   // the C-th best key
  Value ofThreshold; // how many elements with that key are picked (first)
};

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_BLOCKSELECTION_H
