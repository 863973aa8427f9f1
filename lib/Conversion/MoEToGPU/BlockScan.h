//===- BlockScan.h - Prefix sums over one block -----------------*- C++ -*-===//
//
// Exclusive prefix sums computed by all the threads of one block together,
// in log2(threads) steps of shared memory: of one value per thread, and of
// an array of counts (per expert, say) in place. Kernels that used to let
// one thread walk the experts in turn take these instead.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_BLOCKSCAN_H
#define MOE_LIB_CONVERSION_MOETOGPU_BLOCKSCAN_H

#include "KernelBuilder.h"

namespace mlir::moe::gpu_lowering {

/// Threads of a scanning block.
constexpr int64_t kScanThreads = 256;

/// The workgroup buffer a scanning block needs (kScanThreads i32).
MemRefType scanScratchType(MLIRContext *context);

/// The exclusive prefix sum of each thread's i32 `value` over the block,
/// and the block's total. Every thread of a block of kScanThreads must call
/// it, outside any branch that depends on the thread.
std::pair<Value, Value> blockExclusiveScan(KernelBuilder &b, Value scratch,
                                           Value value);

/// Replaces the `n` i32 values of the 1-D memref `values` (workgroup or
/// global memory) by their exclusive prefix sums and returns their total
/// (i32). Thread t takes the t-th contiguous run of ceil(n / kScanThreads)
/// values. Every thread of a block of kScanThreads must call it; the values
/// are visible to the whole block when it returns.
Value scanInPlace(KernelBuilder &b, Value scratch, Value values, int64_t n);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_BLOCKSCAN_H
