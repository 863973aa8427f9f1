//===- ExportResultSizes.cpp - A function of each result's dynamic sizes --===//
//
// For each public function with a dynamic result size, a clone whose return
// gives those sizes, so a caller can size (or check) its result buffers
// before the call that writes them.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPORTRESULTSIZESPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The number of dynamic sizes of `types`' ranked tensors.
int64_t countDynamicSizes(TypeRange types) {
  int64_t count = 0;
  for (Type type : types)
    if (auto tensor = dyn_cast<RankedTensorType>(type))
      count += tensor.getNumDynamicDims();
  return count;
}

struct MoEExportResultSizesPass
    : moe::impl::MoEExportResultSizesPassBase<MoEExportResultSizesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> functions;
    for (auto func : module.getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal() &&
          countDynamicSizes(func.getResultTypes()) > 0)
        functions.push_back(func);
    for (func::FuncOp func : functions)
      if (failed(exportSizes(func, symbols)))
        return signalPassFailure();
  }

  LogicalResult exportSizes(func::FuncOp func, SymbolTable &symbols) {
    std::string name = (func.getSymName() + "__result_sizes").str();
    if (symbols.lookup(name))
      return func.emitError()
             << "moe-export-result-sizes: @" << name << " already exists";
    int64_t count = countDynamicSizes(func.getResultTypes());
    auto sizesType =
        RankedTensorType::get({count}, IntegerType::get(&getContext(), 64));
    func::FuncOp sizes = func.clone();
    sizes.setSymName(name);
    sizes.setFunctionType(FunctionType::get(
        &getContext(), func.getArgumentTypes(), TypeRange{sizesType}));
    // The clone keeps the original's argument and result attributes; only
    // the arguments' still apply.
    sizes.removeResAttrsAttr();
    sizes->walk([&](func::ReturnOp ret) {
      OpBuilder b(ret);
      Location loc = ret.getLoc();
      SmallVector<Value> extents;
      for (Value value : ret.getOperands()) {
        auto tensor = dyn_cast<RankedTensorType>(value.getType());
        if (!tensor)
          continue;
        for (int64_t d = 0; d < tensor.getRank(); ++d) {
          if (!tensor.isDynamicDim(d))
            continue;
          Value size = b.create<tensor::DimOp>(loc, value, d);
          extents.push_back(
              b.create<arith::IndexCastOp>(loc, b.getI64Type(), size));
        }
      }
      Value all = b.create<tensor::FromElementsOp>(loc, sizesType, extents);
      b.create<func::ReturnOp>(loc, all);
      ret.erase();
    });
    symbols.insert(sizes);
    // The sizes of a destination-style op's results are those of its inits:
    // folding the dims to the arguments' leaves the body dead, so the call
    // costs nothing where the sizes do not depend on data.
    RewritePatternSet patterns(&getContext());
    tensor::DimOp::getCanonicalizationPatterns(patterns, &getContext());
    tensor::EmptyOp::getCanonicalizationPatterns(patterns, &getContext());
    return applyPatternsGreedily(sizes, std::move(patterns));
  }
};

} // namespace
