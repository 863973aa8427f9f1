//===- GPUWorkspace.cpp - Host buffers of GPU code in caller memory -------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUWORKSPACEPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// Buffers start on this boundary inside the workspace.
constexpr int64_t kAlignment = 256;

Value indexConstant(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

/// Host code may size, slice and launch, never touch buffer contents.
LogicalResult checkHostCode(func::FuncOp func) {
  WalkResult result = func.walk<WalkOrder::PreOrder>([&](Operation *op) -> WalkResult {
    if (isa<gpu::LaunchOp, gpu::LaunchFuncOp>(op))
      return WalkResult::skip();
    if (isa<memref::LoadOp, memref::StoreOp, memref::CopyOp,
            linalg::LinalgOp>(op)) {
      op->emitError() << "host code of a GPU function reads or writes a "
                         "buffer, which lives in device memory";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// The alloc a returned value comes from, through casts.
memref::AllocOp returnedAlloc(Value value) {
  while (auto cast = value.getDefiningOp<memref::CastOp>())
    value = cast.getSource();
  return value.getDefiningOp<memref::AllocOp>();
}

struct MoEGPUWorkspacePass
    : public moe::impl::MoEGPUWorkspacePassBase<MoEGPUWorkspacePass> {
  void runOnOperation() override {
    SmallVector<func::FuncOp> functions;
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal())
        functions.push_back(func);
    for (func::FuncOp func : functions)
      if (failed(bindBuffers(func)))
        return signalPassFailure();
  }

  LogicalResult bindBuffers(func::FuncOp func) {
    if (!func.getBody().hasOneBlock())
      return func.emitError() << "expected a single-block function";
    if (failed(checkHostCode(func)))
      return failure();
    Block &body = func.getBody().front();
    unsigned numInputs = func.getNumArguments();

    // memref.dim of an allocation is its size operand, so buffer sizes
    // depend on the inputs only.
    func.walk([](memref::DimOp dim) {
      auto alloc = dim.getSource().getDefiningOp<memref::AllocOp>();
      auto index = dim.getConstantIndex();
      if (!alloc || !index)
        return;
      auto type = alloc.getType();
      OpBuilder b(dim);
      Value size = type.isDynamicDim(*index)
                       ? alloc.getDynamicSizes()[type.getDynamicDimIndex(
                             *index)]
                       : indexConstant(b, dim.getLoc(),
                                       type.getDimSize(*index));
      dim.replaceAllUsesWith(size);
      dim.erase();
    });

    // Returned allocations become out-parameters.
    auto returnOp = cast<func::ReturnOp>(body.getTerminator());
    SmallVector<Type> resultTypes(func.getResultTypes());
    for (auto [position, value] : llvm::enumerate(returnOp.getOperands())) {
      memref::AllocOp alloc = returnedAlloc(value);
      if (!alloc || alloc->getBlock() != &body)
        return returnOp.emitError()
               << "result #" << position
               << " of a GPU function must be a buffer the function "
                  "allocates";
      BlockArgument out =
          body.addArgument(resultTypes[position], func.getLoc());
      OpBuilder b(alloc);
      Value replacement = out;
      if (out.getType() != alloc.getType())
        replacement =
            memref::CastOp::create(b, alloc.getLoc(), alloc.getType(), out);
      alloc.replaceAllUsesWith(replacement);
      alloc.erase();
    }
    returnOp->setOperands({});

    // The remaining allocations are carved from the workspace.
    auto workspaceType =
        MemRefType::get({ShapedType::kDynamic}, IntegerType::get(&getContext(), 8));
    BlockArgument workspace = body.addArgument(workspaceType, func.getLoc());
    SmallVector<memref::AllocOp> allocs;
    WalkResult nested = func.walk([&](memref::AllocOp alloc) {
      if (alloc->getBlock() != &body) {
        alloc.emitError() << "GPU host buffers must be allocated at the "
                             "function's top level";
        return WalkResult::interrupt();
      }
      allocs.push_back(alloc);
      return WalkResult::advance();
    });
    if (nested.wasInterrupted())
      return failure();

    OpBuilder b(&getContext());
    b.setInsertionPointToStart(&body);
    Value offset = indexConstant(b, func.getLoc(), 0);
    for (memref::AllocOp alloc : allocs) {
      MemRefType type = alloc.getType();
      if (!type.getLayout().isIdentity() || !type.getElementType().isIntOrFloat())
        return alloc.emitError() << "unsupported GPU host buffer type";
      b.setInsertionPoint(alloc);
      Location loc = alloc.getLoc();
      Value bytes = indexConstant(
          b, loc, llvm::divideCeil(type.getElementTypeBitWidth(), 8));
      for (int64_t dim = 0; dim < type.getRank(); ++dim)
        bytes = arith::MulIOp::create(
            b, loc, bytes,
            type.isDynamicDim(dim)
                ? alloc.getDynamicSizes()[type.getDynamicDimIndex(dim)]
                : indexConstant(b, loc, type.getDimSize(dim)));
      Value view = memref::ViewOp::create(b, loc, type, workspace, offset,
                                          alloc.getDynamicSizes());
      // offset += roundUp(bytes, kAlignment)
      Value rounded = arith::MulIOp::create(
          b, loc,
          arith::DivUIOp::create(
              b, loc,
              arith::AddIOp::create(b, loc, bytes,
                                    indexConstant(b, loc, kAlignment - 1)),
              indexConstant(b, loc, kAlignment)),
          indexConstant(b, loc, kAlignment));
      offset = arith::AddIOp::create(b, loc, offset, rounded);
      alloc.replaceAllUsesWith(view);
      alloc.erase();
    }
    func.walk([](memref::DeallocOp dealloc) { dealloc.erase(); });
    func.setType(FunctionType::get(&getContext(), body.getArgumentTypes(),
                                   TypeRange{}));

    return emitSizeFunction(func, numInputs, offset);
  }

  /// @<name>_workspace_size(inputs) -> index: the slice computing `total`.
  LogicalResult emitSizeFunction(func::FuncOp func, unsigned numInputs,
                                 Value total) {
    SetVector<Operation *> slice;
    BackwardSliceOptions options;
    options.inclusive = true;
    if (Operation *def = total.getDefiningOp())
      (void)getBackwardSlice(def, &slice, options);
    Block &body = func.getBody().front();
    OpBuilder b(func);
    b.setInsertionPointAfter(func);
    SmallVector<Type> inputs;
    for (unsigned i = 0; i < numInputs; ++i)
      inputs.push_back(body.getArgument(i).getType());
    auto sizeFunc = func::FuncOp::create(
        b, func.getLoc(), (func.getName() + "_workspace_size").str(),
        b.getFunctionType(inputs, {b.getIndexType()}));
    Block *entry = sizeFunc.addEntryBlock();
    IRMapping mapping;
    for (unsigned i = 0; i < numInputs; ++i)
      mapping.map(body.getArgument(i), entry->getArgument(i));
    b.setInsertionPointToStart(entry);
    for (Operation *op : slice) {
      for (Value operand : op->getOperands())
        if (auto arg = dyn_cast<BlockArgument>(operand))
          if (arg.getOwner() == &body && arg.getArgNumber() >= numInputs)
            return op->emitError()
                   << "a GPU buffer size depends on an output";
      b.clone(*op, mapping);
    }
    Value result = total.getDefiningOp() ? mapping.lookup(total)
                                         : indexConstant(b, func.getLoc(), 0);
    func::ReturnOp::create(b, func.getLoc(), result);
    return success();
  }
};

} // namespace
