//===- GroupedMatmulLowering.cpp - moe.grouped_matmul to GPU kernels ------===//
//
// Lowers a grouped matmul to the kernels its moe.gpu_kernels attribute
// names: the simt kernel, or a tile schedule and two tensor-core kernels,
// `small` for decode-sized problems (many narrow warps with deep load
// queues) and `large` for prefill-sized ones (wide tiles that reuse what
// they load), which the host picks between from the average rows per
// expert. A later matmul over the same routed rows (a layer's down
// projection) reuses the schedule the first one wrote.
//
//===----------------------------------------------------------------------===//

#include "TensorCoreKernel.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

LogicalResult gpu_lowering::lowerGroupedMatmul(GroupedMatmulOp op,
                                               KernelBuilder &b,
                                               TileScheduleCache &schedules) {
  auto kernels = op->getAttrOfType<GroupedMatmulKernelsAttr>(
      MoEDialect::getGpuKernelsAttrName());
  if (!kernels)
    return op.emitOpError()
           << "has no " << MoEDialect::getGpuKernelsAttrName()
           << " attribute: run moe-gpu-select-kernel-config first";
  GroupedMatmul mm(op, b);
  if (kernels.getSmall().getKernel() == MatmulKernel::simt) {
    launchSimtMatmul(b, mm);
  } else {
    // Decode-sized problems want many narrow warps with deep load queues;
    // prefill-sized ones want wider tiles that reuse what they load.
    Value average =
        b.create<arith::DivUIOp>(mm.numRows, b.index(mm.numExperts));
    std::unique_ptr<TensorCoreKernel> large =
        TensorCoreKernel::create(mm, kernels.getLarge());
    std::unique_ptr<TensorCoreKernel> small =
        TensorCoreKernel::create(mm, kernels.getSmall());
    int64_t minTileRows = std::min(small->tileRows(), large->tileRows());
    // Matmuls over the same rows and offsets have the same row count, so
    // they take the same tile shape, whose schedule the first one wrote.
    std::optional<std::pair<Value, Value>> key;
    if (op.getRows())
      key = std::make_pair(op.getOffsets(), op.getRows());
    ScheduledTiles *cached = nullptr;
    if (key) {
      auto found = schedules.find(*key);
      if (found != schedules.end())
        cached = &found->second;
    }
    TileSchedule schedule =
        cached ? TileSchedule{cached->expert, cached->start, cached->count}
               : allocateSchedule(b, mm, minTileRows);
    bool largeScheduled = cached && cached->largeTileRows == large->tileRows();
    bool smallScheduled = cached && cached->smallTileRows == small->tileRows();
    Value isLarge =
        b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, average,
                                b.index(kernels.getLargeRowsPerExpert()));
    b.ifThenElse(
        isLarge,
        [&](KernelBuilder &tb) {
          large->launch(tb, "moe_grouped_matmul_large", schedule,
                        largeScheduled, kernels.getLarge());
        },
        [&](KernelBuilder &eb) {
          small->launch(eb, "moe_grouped_matmul_small", schedule,
                        smallScheduled, kernels.getSmall());
        });
    if (key)
      schedules[*key] = {schedule.expert, schedule.start, schedule.count,
                         small->tileRows(), large->tileRows()};
  }
  op.getResult().replaceAllUsesWith(mm.out.tensor);
  return success();
}
