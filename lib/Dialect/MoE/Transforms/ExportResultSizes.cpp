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
#include "moe/Dialect/MoE/IR/MoEOps.h"

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

/// Two sizes an op's verifier ties together, which it cannot check where
/// both are dynamic: `lhs`'s size `lhsDim` must be `rhs`'s size `rhsDim`.
struct SizeRelation {
  Value lhs;
  int64_t lhsDim;
  Value rhs;
  int64_t rhsDim;
  std::string what;
};

/// The token and row counts of `op`'s operands that its verifier requires
/// equal: where they are dynamic, inputs that disagree make its lowering
/// read past the shorter one.
void collectRelations(Operation *op, SmallVectorImpl<SizeRelation> &out) {
  auto add = [&](Value lhs, StringRef lhsName, Value rhs, StringRef rhsName) {
    std::string where;
    llvm::raw_string_ostream os(where);
    os << op->getName();
    if (auto file = dyn_cast<FileLineColLoc>(op->getLoc()))
      os << " at " << file.getFilename().getValue() << ":" << file.getLine()
         << ":" << file.getColumn();
    os << ": the rows of " << lhsName << " and of " << rhsName;
    out.push_back({lhs, 0, rhs, 0, where});
  };
  if (auto dispatch = dyn_cast<moe::DispatchOp>(op)) {
    if (dispatch.getWeights())
      add(dispatch.getWeights(), "weights", dispatch.getIds(), "ids");
  } else if (auto loss = dyn_cast<moe::AuxLossOp>(op)) {
    add(loss.getIds(), "ids", loss.getLogits(), "logits");
  } else if (auto matmul = dyn_cast<moe::GroupedMatmulOp>(op)) {
    if (matmul.getGather() && matmul.getRowScale())
      add(matmul.getRowScale(), "row_scale", matmul.getLhs(), "lhs");
    if (matmul.getRows() && !matmul.getGather())
      add(matmul.getRows(), "rows", matmul.getLhs(), "lhs");
    if (matmul.getGather())
      add(matmul.getInit(), "init", matmul.getRows(), "rows");
    else
      add(matmul.getInit(), "init", matmul.getLhs(), "lhs");
  } else if (auto permute = dyn_cast<moe::PermuteOp>(op)) {
    add(permute.getInit(), "init", permute.getRows(), "rows");
  } else if (auto combine = dyn_cast<moe::CombineOp>(op)) {
    add(combine.getRows(), "rows", combine.getYs(), "ys");
    add(combine.getInit(), "init", combine.getWeights(), "weights");
  } else if (auto glu = dyn_cast<moe::GluOp>(op)) {
    add(glu.getInit(), "init", glu.getH(), "h");
  } else if (auto layer = dyn_cast<moe::LayerOp>(op)) {
    add(layer.getInit(), "init", layer.getX(), "x");
  }
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
    SmallVector<func::FuncOp> checked;
    for (auto func : module.getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal() &&
          !func.getSymName().ends_with("__result_sizes") &&
          countDynamicSizes(func.getArgumentTypes()) > 0)
        checked.push_back(func);
    for (func::FuncOp func : checked)
      if (failed(exportSizeCheck(func, symbols)))
        return signalPassFailure();
  }

  /// `@<name>__check_sizes`: 0 where every size relation of the function's
  /// moe ops holds for the arguments, else the 1-based index of the first
  /// that fails, whose description is the function's moe.size_relations.
  LogicalResult exportSizeCheck(func::FuncOp func, SymbolTable &symbols) {
    std::string name = (func.getSymName() + "__check_sizes").str();
    if (symbols.lookup(name))
      return func.emitError()
             << "moe-export-result-sizes: @" << name << " already exists";
    if (!func.getBody().hasOneBlock())
      return success();
    func::FuncOp check = func.clone();
    SmallVector<SizeRelation> relations;
    // Ops of the body itself: their operands are in scope at the return.
    for (Operation &op : check.getBody().front())
      collectRelations(&op, relations);
    if (relations.empty()) {
      check.erase();
      return success();
    }
    auto resultType =
        RankedTensorType::get({1}, IntegerType::get(&getContext(), 32));
    check.setSymName(name);
    check.setFunctionType(FunctionType::get(
        &getContext(), func.getArgumentTypes(), TypeRange{resultType}));
    check.removeResAttrsAttr();
    auto ret = cast<func::ReturnOp>(check.getBody().front().getTerminator());
    OpBuilder b(ret);
    Location loc = ret.getLoc();
    Value failed = b.create<arith::ConstantIntOp>(loc, b.getI32Type(), 0);
    // One dim op per size, so a relation of a size with itself folds away.
    DenseMap<std::pair<Value, int64_t>, Value> dims;
    auto dim = [&](Value tensor, int64_t d) {
      Value &size = dims[{tensor, d}];
      if (!size)
        size = b.create<tensor::DimOp>(loc, tensor, d);
      return size;
    };
    // Backwards, so the first relation that fails is the one reported.
    for (int64_t i = relations.size() - 1; i >= 0; --i) {
      const SizeRelation &r = relations[i];
      Value lhs = dim(r.lhs, r.lhsDim);
      Value rhs = dim(r.rhs, r.rhsDim);
      Value differ =
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne, lhs, rhs);
      failed = b.create<arith::SelectOp>(
          loc, differ,
          b.create<arith::ConstantIntOp>(loc, b.getI32Type(), i + 1), failed);
    }
    Value all = b.create<tensor::FromElementsOp>(loc, resultType, failed);
    b.create<func::ReturnOp>(loc, all);
    ret.erase();
    SmallVector<Attribute> descriptions;
    for (const SizeRelation &r : relations)
      descriptions.push_back(b.getStringAttr(r.what));
    check->setAttr("moe.size_relations", b.getArrayAttr(descriptions));
    symbols.insert(check);
    RewritePatternSet patterns(&getContext());
    tensor::DimOp::getCanonicalizationPatterns(patterns, &getContext());
    tensor::EmptyOp::getCanonicalizationPatterns(patterns, &getContext());
    arith::CmpIOp::getCanonicalizationPatterns(patterns, &getContext());
    arith::SelectOp::getCanonicalizationPatterns(patterns, &getContext());
    return applyPatternsGreedily(check, std::move(patterns));
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
