//===- GroupedMatmulLowering.cpp - moe.grouped_matmul to GPU kernels ------===//
//
// Lowers a grouped matmul to the kernels its moe.gpu_kernels attribute
// names: the simt kernel, or a tile schedule and two tensor-core kernels,
// `small` for decode-sized problems (many narrow warps with deep load
// queues) and `large` for prefill-sized ones (wide tiles that reuse what
// they load), which the host picks between from the average rows per
// expert. Matmuls over the same routed rows (a layer's gate/up and down
// projections) share one schedule, a row_tiles operand (a moe.row_tiles,
// or the row tiles their dispatch writes). FP8 weights
// take the activation quantization kernel, then the mma_sync_fp8 or
// wgmma_fp8 kernels; weight-only weights (mxfp4, int4, int8) the
// mma_sync_wonly kernel.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"
#include "TensorCoreKernel.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

Replacements gpu_lowering::lowerGroupedMatmul(GroupedMatmulOp op,
                                              GroupedMatmulOp::Adaptor operands,
                                              KernelBuilder &b) {
  RhsLayout layout = op.getRhsLayout();
  if (layout == RhsLayout::panels || layout == RhsLayout::panels_vnni)
    return op.emitOpError() << "weights in the " << stringifyRhsLayout(layout)
                            << " layout (the CPU kernel's packing) have no GPU "
                               "lowering; use nk or kn";
  auto kernels = op->getAttrOfType<GroupedMatmulKernelsAttr>(
      MoEDialect::getGpuKernelsAttrName());
  if (!kernels)
    return op.emitOpError()
           << "has no " << MoEDialect::getGpuKernelsAttrName()
           << " attribute: run moe-gpu-select-kernel-config first";
  GroupedMatmul mm(op, operands, b);
  // FP8 weights: the A rows go to e4m3 first (the verifier has checked that
  // both kernels are FP8 ones).
  if (mm.fp8)
    quantizeActivations(b, mm);
  if (kernels.getSmall().getKernel() == MatmulKernel::simt) {
    launchSimtMatmul(b, mm);
    return SmallVector<Value>{mm.out.tensor};
  }
  std::unique_ptr<TensorCoreKernel> large =
      TensorCoreKernel::create(mm, kernels.getLarge());
  std::unique_ptr<TensorCoreKernel> small =
      TensorCoreKernel::create(mm, kernels.getSmall());
  // With row tiles (a moe.row_tiles or the dispatch's, whose tile rows and
  // threshold the dialect checked against this op's kernels), the tiles
  // were scheduled for the shape the host picks from the same rows; else
  // each shape schedules its own.
  TileSchedule schedule;
  ExpertRows experts = mm.expertRows();
  bool scheduled = static_cast<bool>(operands.getRowTiles());
  if (scheduled) {
    schedule.buffer = readBuffer(b, operands.getRowTiles());
    experts.numRows = b.dimValue(operands.getRows(), 0);
  } else {
    schedule.buffer =
        allocateSchedule(b, experts,
                         std::min(small->tileRows(), large->tileRows()))
            .buffer;
  }
  // Decode-sized problems want many narrow warps with deep load queues;
  // prefill-sized ones want wider tiles that reuse what they load.
  b.ifThenElse(
      takesLargeTiles(b, experts, kernels.getLargeRowsPerExpert()),
      [&](KernelBuilder &tb) {
        large->launch(tb, "moe_grouped_matmul_large", schedule, scheduled,
                      kernels.getLarge());
      },
      [&](KernelBuilder &eb) {
        small->launch(eb, "moe_grouped_matmul_small", schedule, scheduled,
                      kernels.getSmall());
      });
  return SmallVector<Value>{mm.out.tensor};
}
