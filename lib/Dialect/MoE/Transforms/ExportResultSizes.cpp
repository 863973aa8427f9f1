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
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/CSE.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <functional>

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

/// Whether `r` ties sizes that are not both static: the verifier checks
/// static ones, the rest only a check at the call can.
bool needsCallCheck(const SizeRelation &r) {
  auto lhs = cast<ShapedType>(r.lhs.getType());
  auto rhs = cast<ShapedType>(r.rhs.getType());
  return lhs.isDynamicDim(r.lhsDim) || rhs.isDynamicDim(r.rhsDim);
}

/// Inlines into the body of `func` (one block) the calls at its top level
/// of the module's single-block functions, and the calls those bring, so
/// that the callees' moe ops tie sizes of values in scope at the return.
/// Fails, with a diagnostic, on recursion (more than `kMaxInlinedCalls`).
LogicalResult inlineCalls(func::FuncOp func, SymbolTable &symbols) {
  constexpr int64_t kMaxInlinedCalls = 1024;
  int64_t inlined = 0;
  Block &body = func.getBody().front();
  for (bool changed = true; changed;) {
    changed = false;
    for (Operation &op : llvm::make_early_inc_range(body)) {
      auto call = dyn_cast<func::CallOp>(op);
      if (!call)
        continue;
      auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
      if (!callee || callee.isExternal() || !callee.getBody().hasOneBlock())
        continue;
      if (++inlined > kMaxInlinedCalls)
        return call.emitError()
               << "moe-export-result-sizes: more than " << kMaxInlinedCalls
               << " calls to inline (a recursive call?): the sizes its moe "
                  "ops tie cannot be checked before the call";
      IRMapping mapping;
      Block &calleeBody = callee.getBody().front();
      mapping.map(calleeBody.getArguments(), call.getOperands());
      OpBuilder b(call);
      for (Operation &calleeOp : calleeBody.without_terminator())
        b.clone(calleeOp, mapping);
      for (auto [result, returned] : llvm::zip(
               call.getResults(), calleeBody.getTerminator()->getOperands()))
        result.replaceAllUsesWith(mapping.lookupOrDefault(returned));
      call.erase();
      changed = true;
    }
  }
  return success();
}

/// Fails, naming the op, where a moe op of `func` (after inlineCalls) ties
/// sizes that a check before the call cannot see: its operands are defined
/// in a nested region (a loop body), or it is reached through a call that
/// could not be inlined (one in a nested region, or of a function of
/// several blocks), or `func` itself has several blocks. A call that could read
/// past an input is refused rather than left unchecked.
LogicalResult refuseUncheckedRelations(func::FuncOp func,
                                       SymbolTable &symbols) {
  bool singleBlock = func.getBody().hasOneBlock();
  llvm::SmallPtrSet<Operation *, 8> visited;
  std::function<LogicalResult(Operation *, bool)> check =
      [&](Operation *root, bool inCallee) -> LogicalResult {
    WalkResult result = root->walk([&](Operation *op) {
      bool nested = inCallee || op->getParentOp() != root || !singleBlock;
      SmallVector<SizeRelation> relations;
      if (nested)
        collectRelations(op, relations);
      for (const SizeRelation &r : relations) {
        if (!needsCallCheck(r))
          continue;
        InFlightDiagnostic diag =
            op->emitError()
            << "moe-export-result-sizes: " << r.what << " must agree, but "
            << (inCallee      ? "the op is reached through a call that "
                                "cannot be inlined"
                : singleBlock ? "the op is in a nested region"
                              : "the function has several blocks")
            << ", so they cannot be checked before the call";
        diag.attachNote(func.getLoc())
            << "in @" << func.getSymName() << ", a public function";
        return WalkResult::interrupt();
      }
      auto call = dyn_cast<func::CallOp>(op);
      if (!call)
        return WalkResult::advance();
      auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
      if (!callee || callee.isExternal() ||
          !visited.insert(callee.getOperation()).second)
        return WalkResult::advance();
      return failed(check(callee.getOperation(), /*inCallee=*/true))
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  };
  return check(func.getOperation(), /*inCallee=*/false);
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
    func::FuncOp check = func.clone();
    // The ops of the body itself, and of the functions it calls once
    // inlined: their operands are in scope at the return. Ops whose
    // operands are not (in a loop body, say) are refused.
    auto eraseCheck = llvm::make_scope_exit([&] {
      if (check)
        check.erase();
    });
    if ((check.getBody().hasOneBlock() &&
         failed(inlineCalls(check, symbols))) ||
        failed(refuseUncheckedRelations(check, symbols)))
      return failure();
    if (!check.getBody().hasOneBlock())
      return success(); // no relation to check (refused otherwise)
    SmallVector<SizeRelation> relations;
    for (Operation &op : check.getBody().front())
      collectRelations(&op, relations);
    if (relations.empty())
      return success();
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
    func::FuncOp inserted = check;
    check = nullptr; // the module owns it now
    return simplifySizes(inserted);
  }

  /// Folds the sizes `func` computes into its arguments' where they follow
  /// from them: a destination-style op's results have its inits' sizes, the
  /// routing ops' theirs (ReifyRankedShapedTypeOpInterface), and relations
  /// of a size with itself hold. The ops left without a use go, so a check
  /// of sizes that do not depend on data costs nothing: no router matmul,
  /// no routing.
  LogicalResult simplifySizes(func::FuncOp func) {
    MLIRContext *context = &getContext();
    RewritePatternSet patterns(context);
    tensor::DimOp::getCanonicalizationPatterns(patterns, context);
    tensor::EmptyOp::getCanonicalizationPatterns(patterns, context);
    arith::CmpIOp::getCanonicalizationPatterns(patterns, context);
    arith::SelectOp::getCanonicalizationPatterns(patterns, context);
    arith::MulIOp::getCanonicalizationPatterns(patterns, context);
    memref::populateResolveRankedShapedTypeResultDimsPatterns(patterns);
    FrozenRewritePatternSet frozen(std::move(patterns));
    if (failed(applyPatternsGreedily(func, frozen)))
      return failure();
    // Sizes resolved at several dims are computed once, so that equal
    // ones are the same value.
    IRRewriter rewriter(context);
    DominanceInfo dominance(func);
    eliminateCommonSubExpressions(rewriter, dominance, func);
    return applyPatternsGreedily(func, frozen);
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
    // Folding the dims to the arguments' leaves the body dead, so the call
    // costs nothing where the sizes do not depend on data.
    return simplifySizes(sizes);
  }
};

} // namespace
