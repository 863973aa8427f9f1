//===- BlockScan.cpp - Prefix sums over one block
//--------------------------===//
//
// Hillis-Steele over the block's threads in shared memory; an array longer
// than the block is cut into one contiguous run per thread, whose sums are
// scanned, so each value's start is its run's start plus the values before
// it in the run. Deterministic: no atomics.
//
//===----------------------------------------------------------------------===//

#include "BlockScan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

MemRefType gpu_lowering::scanScratchType(MLIRContext *context) {
  auto space =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  return MemRefType::get({kScanThreads}, IntegerType::get(context, 32),
                         MemRefLayoutAttrInterface(), space);
}

std::pair<Value, Value>
gpu_lowering::blockExclusiveScan(KernelBuilder &b, Value scratch, Value value) {
  Value tid = b.threadId();
  b.store(value, scratch, tid);
  b.create<gpu::BarrierOp>();
  int64_t steps = llvm::Log2_64(kScanThreads);
  b.forEach(b.index(0), b.index(steps), b.index(1),
            [&](KernelBuilder &lb, Value step) {
              Value distance = lb.create<arith::ShLIOp>(lb.index(1), step);
              Value has = lb.create<arith::CmpIOp>(arith::CmpIPredicate::uge,
                                                   tid, distance);
              Value from = lb.create<arith::SelectOp>(
                  has, lb.create<arith::SubIOp>(tid, distance), tid);
              Value add = lb.create<arith::SelectOp>(
                  has, lb.load(scratch, from), lb.i32(0));
              lb.create<gpu::BarrierOp>();
              lb.store(lb.create<arith::AddIOp>(lb.load(scratch, tid), add),
                       scratch, tid);
              lb.create<gpu::BarrierOp>();
            });
  Value inclusive = b.load(scratch, tid);
  Value total = b.load(scratch, b.index(kScanThreads - 1));
  // Every thread has read the total before the scratch is reused.
  b.create<gpu::BarrierOp>();
  return {b.create<arith::SubIOp>(inclusive, value), total};
}

Value gpu_lowering::scanInPlace(KernelBuilder &b, Value scratch, Value values,
                                int64_t n) {
  int64_t run = llvm::divideCeil(n, kScanThreads);
  Value first = b.create<arith::MulIOp>(b.threadId(), b.index(run));
  Value end =
      b.minIndex(b.create<arith::AddIOp>(first, b.index(run)), b.index(n));
  Value sum = b.forLoop(first, end, b.index(1), ValueRange{b.i32(0)},
                        [&](KernelBuilder &lb, Value j, ValueRange acc) {
                          return SmallVector<Value>{lb.create<arith::AddIOp>(
                              acc[0], lb.load(values, j))};
                        })
                  .front();
  auto [start, total] = blockExclusiveScan(b, scratch, sum);
  b.forLoop(first, end, b.index(1), ValueRange{start},
            [&](KernelBuilder &lb, Value j, ValueRange acc) {
              Value count = lb.load(values, j);
              lb.store(acc[0], values, j);
              return SmallVector<Value>{
                  lb.create<arith::AddIOp>(acc[0], count)};
            });
  b.create<gpu::BarrierOp>();
  return total;
}
