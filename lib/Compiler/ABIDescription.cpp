//===- ABIDescription.cpp - What a function's C ABI can describe ----------===//
//
// describeABI: the tensors of a public function as the C ABI passes them,
// and the refusal of any signature the ABI cannot describe exactly: a
// dynamic size outside the leading dimension, or a result whose dynamic
// leading size is not provably the token count (the caller sizes results
// by num_tokens, so any other extent would make the library write past the
// caller's buffer).
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/CABIEmitter.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/FormatVariadic.h"

#include <limits>

using namespace llvm;
using namespace mlir;
using namespace mlir::moe;

static Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// "file:line:col: " of `loc`, to place a message in the input.
static std::string where(Location loc) {
  if (auto file = dyn_cast<FileLineColLoc>(loc))
    return formatv("{0}:{1}:{2}: ", file.getFilename(), file.getLine(),
                   file.getColumn())
        .str();
  return "";
}

static bool leadingIsTokenCount(Value tensor, unsigned depth);

/// Whether the index value `size` is the token count: the leading size of a
/// tensor whose leading size is the token count.
static bool isTokenCount(Value size, unsigned depth) {
  auto dim = size.getDefiningOp<tensor::DimOp>();
  if (!dim)
    return false;
  std::optional<int64_t> index = dim.getConstantIndex();
  return index && *index == 0 && leadingIsTokenCount(dim.getSource(), depth);
}

/// Whether the leading size of `tensor`, a value of the exported function, is
/// provably the token count: an argument's dynamic leading size, carried
/// through tensor.empty, tensor.cast, a destination-style op's init and
/// moe.route (whose results have the logits' rows). Anything else (say T * k
/// rows) is not.
static bool leadingIsTokenCount(Value tensor, unsigned depth) {
  auto type = dyn_cast<RankedTensorType>(tensor.getType());
  // The IR is finite, but a long chain must not exhaust the stack.
  if (!type || type.getRank() == 0 || !type.isDynamicDim(0) || depth > 256)
    return false;
  if (auto argument = dyn_cast<BlockArgument>(tensor))
    return isa<func::FuncOp>(argument.getOwner()->getParentOp()) &&
           argument.getOwner()->isEntryBlock();
  Operation *op = tensor.getDefiningOp();
  if (auto empty = dyn_cast<tensor::EmptyOp>(op))
    return isTokenCount(empty.getDynamicSize(0), depth + 1);
  if (auto cast = dyn_cast<tensor::CastOp>(op))
    return leadingIsTokenCount(cast.getSource(), depth + 1);
  if (auto route = dyn_cast<RouteOp>(op))
    return leadingIsTokenCount(route.getLogits(), depth + 1);
  if (auto dps = dyn_cast<DestinationStyleOpInterface>(op))
    return leadingIsTokenCount(
        dps.getTiedOpOperand(cast<OpResult>(tensor))->get(), depth + 1);
  return false;
}

/// Refuses a signature the C ABI cannot describe: its one dynamic size is
/// num_tokens, so a dynamic size may only be the leading one of a tensor, and
/// a result's must provably be the token count, or the library would write
/// past the caller's buffer of num_tokens rows.
static Error checkExtents(func::FuncOp func) {
  auto dynamicInner = [](Type type) {
    auto tensor = cast<RankedTensorType>(type);
    for (int64_t d = 1; d < tensor.getRank(); ++d)
      if (tensor.isDynamicDim(d))
        return d;
    return int64_t(0);
  };
  for (BlockArgument argument : func.getArguments())
    if (int64_t d = dynamicInner(argument.getType()))
      return fail(formatv(
          "{0}@{1}: argument {2} ({3}) has a dynamic size in dimension {4}; "
          "the C ABI's only dynamic size is num_tokens, in the leading "
          "dimension",
          where(argument.getLoc()), func.getSymName(), argument.getArgNumber(),
          argument.getType(), d));
  for (Block &block : func.getBody()) {
    auto ret = dyn_cast<func::ReturnOp>(block.getTerminator());
    if (!ret)
      continue;
    for (OpOperand &result : ret->getOpOperands()) {
      auto type = cast<RankedTensorType>(result.get().getType());
      if (int64_t d = dynamicInner(type))
        return fail(formatv("{0}@{1}: result {2} ({3}) has a dynamic size in "
                            "dimension {4}; the C ABI's only dynamic size is "
                            "num_tokens, in the leading dimension",
                            where(ret.getLoc()), func.getSymName(),
                            result.getOperandNumber(), type, d));
      if (type.getRank() && type.isDynamicDim(0) &&
          !leadingIsTokenCount(result.get(), 0))
        return fail(formatv(
            "{0}@{1}: result {2} ({3}) has a dynamic leading size that is not "
            "provably num_tokens (the leading size of a token argument), so "
            "the caller could not size its buffer; give it a static size",
            where(ret.getLoc()), func.getSymName(), result.getOperandNumber(),
            type));
    }
  }
  return Error::success();
}

/// The most routed rows a token makes in `module`: the largest k of its moe
/// ops (an attribute, or the selections per token of moe.dispatch's ids and
/// moe.combine's weights), 1 where it routes nothing.
static int64_t routedRowsPerToken(Operation *module) {
  int64_t most = 1;
  module->walk([&](Operation *op) {
    if (!isa_and_nonnull<MoEDialect>(op->getDialect()))
      return;
    if (auto k = op->getAttrOfType<IntegerAttr>("k"))
      most = std::max(most, k.getInt());
    Value selections;
    if (auto dispatch = dyn_cast<DispatchOp>(op))
      selections = dispatch.getIds();
    else if (auto combine = dyn_cast<CombineOp>(op))
      selections = combine.getWeights();
    if (auto type = selections
                        ? dyn_cast<RankedTensorType>(selections.getType())
                        : RankedTensorType())
      if (type.getRank() == 2 && !type.isDynamicDim(1))
        most = std::max(most, type.getDimSize(1));
  });
  return most;
}

/// Refuses a --max-tokens whose routed rows the kernels could not index:
/// a routed row (token * k + slot) and the token ids are i32.
static Error checkTokenLimit(func::FuncOp func, int64_t maxTokens) {
  constexpr int64_t kLargestRow = std::numeric_limits<int32_t>::max();
  Operation *module = func->getParentOp() ? func->getParentOp() : func;
  int64_t k = routedRowsPerToken(module);
  if (maxTokens > kLargestRow / k)
    return fail(formatv(
        "--max-tokens = {0} is too large for @{1}: {0} tokens x k = {2} "
        "routed rows per token pass the {3} rows the kernels index with i32; "
        "the largest --max-tokens here is {4}",
        maxTokens, func.getSymName(), k, kLargestRow, kLargestRow / k));
  return Error::success();
}

Expected<ABIFunction> mlir::moe::describeABI(func::FuncOp func, StringRef name,
                                             ArrayRef<std::string> argNames,
                                             int64_t maxTokens, bool cuda) {
  if (Error e = checkTokenLimit(func, maxTokens))
    return std::move(e);
  ABIFunction abi;
  abi.cuda = cuda;
  abi.symbol = func.getSymName().str();
  abi.prefix = ("moe_" + name).str();
  abi.maxTokens = maxTokens;
  auto add = [&](Type type, std::string tensorName, bool isResult) -> Error {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor)
      return fail(formatv("@{0}: {1} has type {2}; the C ABI passes ranked "
                          "tensors only",
                          abi.symbol, tensorName, type));
    ABITensor t{tensorName, {}, "", 0, isResult};
    for (int64_t size : tensor.getShape())
      t.shape.push_back(ShapedType::isDynamic(size) ? -1 : size);
    Type element = tensor.getElementType();
    if (element.isF32())
      t.elementType = "f32", t.elementBytes = 4;
    else if (element.isBF16())
      t.elementType = "bf16", t.elementBytes = 2;
    else if (element.isF16())
      t.elementType = "f16", t.elementBytes = 2;
    else if (element.isSignlessInteger(32))
      t.elementType = "i32", t.elementBytes = 4;
    else if (isa<Float8E4M3FNType>(element))
      t.elementType = "f8E4M3FN", t.elementBytes = 1;
    else if (isa<Float8E8M0FNUType>(element))
      t.elementType = "f8E8M0FNU", t.elementBytes = 1;
    else if (element.isSignlessInteger(8))
      t.elementType = "i8", t.elementBytes = 1;
    else
      return fail(formatv("@{0}: {1} has element type {2}; the C ABI passes "
                          "f32, bf16, f16, f8E4M3FN, f8E8M0FNU, i8 and i32",
                          abi.symbol, tensorName, element));
    abi.tensors.push_back(std::move(t));
    return Error::success();
  };
  FunctionType type = func.getFunctionType();
  // Types first: the extents check below takes ranked tensors.
  auto ranked = [](Type t) { return isa<RankedTensorType>(t); };
  if (llvm::all_of(type.getInputs(), ranked) &&
      llvm::all_of(type.getResults(), ranked))
    if (Error e = checkExtents(func))
      return std::move(e);
  for (auto [i, input] : llvm::enumerate(type.getInputs()))
    if (Error e =
            add(input, i < argNames.size() ? argNames[i] : formatv("arg{0}", i),
                false))
      return std::move(e);
  for (auto [i, result] : llvm::enumerate(type.getResults()))
    if (Error e = add(result,
                      type.getNumResults() == 1 ? std::string("y")
                                                : formatv("result{0}", i).str(),
                      true))
      return std::move(e);
  return abi;
}
