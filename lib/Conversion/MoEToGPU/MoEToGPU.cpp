//===- MoEToGPU.cpp - moe ops to GPU kernels ------------------------------===//
//
// Drives the kernel builders: every moe op (and element-wise linalg.generic)
// of each function is replaced, in program order, by its kernels. The host
// side keeps only sizes, buffer allocations and launches.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "KernelBuilder.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/TypeSwitch.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOGPUPASS
#include "moe/Conversion/MoEToGPU/MoEToGPU.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

struct ConvertMoEToGPUPass
    : public moe::impl::ConvertMoEToGPUPassBase<ConvertMoEToGPUPass> {
  using ConvertMoEToGPUPassBase::ConvertMoEToGPUPassBase;

  void runOnOperation() override {
    SmallVector<Operation *> work;
    getOperation().walk([&](Operation *op) {
      if (isa<MoEDialect>(op->getDialect()) || isa<linalg::GenericOp>(op))
        work.push_back(op);
    });
    InverseRows inverses;
    TileScheduleCache schedules;
    for (Operation *op : work) {
      OpBuilder builder(op);
      KernelBuilder b(op->getLoc(), builder);
      LogicalResult lowered =
          llvm::TypeSwitch<Operation *, LogicalResult>(op)
              .Case([&](RouteOp route) { return lowerRoute(route, b); })
              .Case([&](DispatchOp dispatch) {
                return lowerDispatch(dispatch, b, inverses);
              })
              .Case([&](GroupedMatmulOp gemm) -> LogicalResult {
                RhsLayout layout = gemm.getRhsLayout();
                if (gemm.getWeightQuantAttr())
                  return gemm.emitOpError()
                         << "quantized weights (weight_quant) have no GPU "
                            "lowering yet";
                if (layout == RhsLayout::panels ||
                    layout == RhsLayout::panels_vnni)
                  return gemm.emitOpError()
                         << "weights in the " << stringifyRhsLayout(layout)
                         << " layout (the CPU kernel's packing) have no GPU "
                            "lowering; use nk or kn";
                return lowerGroupedMatmul(gemm, b, schedules);
              })
              .Case([&](CombineOp combine) {
                return lowerCombine(combine, b, inverses);
              })
              .Case([&](ExpertChoiceOp choice) {
                return lowerExpertChoice(choice, b);
              })
              .Case([&](AuxLossOp loss) { return lowerAuxLoss(loss, b); })
              .Case([&](ZLossOp loss) { return lowerZLoss(loss, b); })
              .Case([&](PermuteOp permute) { return lowerPermute(permute, b); })
              .Case([&](GluOp glu) { return lowerGlu(glu, b); })
              .Case([&](linalg::GenericOp generic) {
                return lowerElementwise(generic, b);
              })
              .Case([&](LayerOp layer) {
                return layer.emitOpError()
                       << "must be decomposed first (moe-decompose-layer)";
              })
              .Default([&](Operation *other) {
                return other->emitOpError() << "has no GPU lowering yet";
              });
      if (failed(lowered))
        return signalPassFailure();
      op->erase();
    }
    // Host-built offsets were passed to the kernels as scalars.
    getOperation().walk([](tensor::FromElementsOp op) {
      if (op->use_empty())
        op->erase();
    });
  }
};

} // namespace
