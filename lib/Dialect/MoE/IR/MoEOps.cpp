//===- MoEOps.cpp - Verifiers of the moe operations -----------------------===//
//
// Every diagnostic names the offending operand or attribute and says what was
// expected, so a user can fix the IR without reading this file.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

namespace {

bool isF32(Type t) { return t.isF32(); }
bool isI32(Type t) { return t.isSignlessInteger(32); }
/// Element types the matmul-like ops accept; they accumulate in f32.
bool isMatmulFloat(Type t) { return t.isF32() || t.isBF16() || t.isF16(); }
/// Element types of weight operands: the matmul floats, and the quantized
/// formats, whose scales and attribute verifyWeightQuantOperands checks.
bool isWeightElement(Type t) {
  return isMatmulFloat(t) || isQuantizedElementType(t);
}

/// Checks shapes and element types of one op's tensors and reports the first
/// mismatch with the operand's name and the expected form.
class TensorChecker {
public:
  explicit TensorChecker(Operation *op) : op(op) {}

  /// `value` must be a ranked tensor of `rank` with elements accepted by
  /// `elementOk`; `form` reads like "2-D f32 tensor [T, E]".
  LogicalResult tensor(Value value, StringRef name, int64_t rank,
                       function_ref<bool(Type)> elementOk, StringRef form) {
    auto type = dyn_cast<RankedTensorType>(value.getType());
    if (!type || type.getRank() != rank || !elementOk(type.getElementType()))
      return op->emitOpError() << "'" << name << "' must be a " << form
                               << ", got " << value.getType();
    return success();
  }

  /// Dimension `dim` of `value` must be static (feature sizes are compile-time
  /// constants; only token and row counts may be dynamic).
  LogicalResult isStatic(Value value, StringRef name, int64_t dim,
                         StringRef what) {
    if (ShapedType::isDynamic(shape(value)[dim]))
      return op->emitOpError()
             << "'" << name << "' dimension " << dim << " (" << what
             << ") must be static, got " << value.getType();
    return success();
  }

  /// Dimension `dim` of `value` must equal `expected` when both are known.
  LogicalResult dimIs(Value value, StringRef name, int64_t dim,
                      int64_t expected, StringRef what) {
    int64_t actual = shape(value)[dim];
    if (ShapedType::isDynamic(actual) || ShapedType::isDynamic(expected) ||
        actual == expected)
      return success();
    return op->emitOpError()
           << "'" << name << "' dimension " << dim << " (" << what
           << ") must be " << expected << ", got " << value.getType();
  }

  /// Dimension `dim` of `value` must be even.
  LogicalResult isEven(Value value, StringRef name, int64_t dim,
                       StringRef what) {
    if (shape(value)[dim] % 2 == 0)
      return success();
    return op->emitOpError()
           << "'" << name << "' dimension " << dim << " (" << what
           << ") must be even, got " << value.getType();
  }

  static ArrayRef<int64_t> shape(Value value) {
    return cast<RankedTensorType>(value.getType()).getShape();
  }

private:
  Operation *op;
};

LogicalResult verifyRouting(Operation *op, int64_t numExperts, int64_t k,
                            int64_t nGroup, int64_t topkGroup,
                            GroupScore groupScore, SecondExpertPolicy policy,
                            bool renormalize, double epsilon, double scale) {
  if (k < 1 || k > numExperts)
    return op->emitOpError()
           << "k = " << k
           << " is out of range: expected 1 <= k <= E = " << numExperts;
  if (nGroup < 1 || numExperts % nGroup != 0)
    return op->emitOpError()
           << "n_group = " << nGroup
           << " must divide the number of experts E = " << numExperts;
  if (topkGroup < 1 || topkGroup > nGroup)
    return op->emitOpError()
           << "topk_group = " << topkGroup
           << " is out of range: expected 1 <= topk_group <= n_group = "
           << nGroup;
  int64_t groupSize = numExperts / nGroup;
  if (k > topkGroup * groupSize)
    return op->emitOpError()
           << "k = " << k << " exceeds the " << topkGroup * groupSize
           << " experts reachable through topk_group = " << topkGroup
           << " groups of " << groupSize;
  if (nGroup > 1 && groupScore == GroupScore::sum_top2 && groupSize < 2)
    return op->emitOpError()
           << "group_score = sum_top2 needs at least 2 experts per group, got "
           << groupSize;
  if (policy == SecondExpertPolicy::random && (k != 2 || !renormalize))
    return op->emitOpError()
           << "second_expert_policy = random needs k = 2 and renormalize";
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon))
    return op->emitOpError()
           << "renorm_epsilon = " << epsilon << " must be finite and >= 0";
  if (!std::isfinite(scale))
    return op->emitOpError() << "scale = " << scale << " must be finite";
  return success();
}

LogicalResult verifyCapacity(Operation *op, std::optional<uint64_t> capacity,
                             std::optional<APFloat> factor) {
  if (capacity && factor)
    return op->emitOpError()
           << "capacity and capacity_factor are mutually exclusive";
  if (capacity && static_cast<int64_t>(*capacity) < 1)
    return op->emitOpError() << "capacity = " << static_cast<int64_t>(*capacity)
                             << " must be >= 1";
  if (factor) {
    double f = factor->convertToDouble();
    if (!(f > 0.0) || !std::isfinite(f))
      return op->emitOpError()
             << "capacity_factor = " << f << " must be finite and > 0";
  }
  return success();
}

LogicalResult verifyActivation(Operation *op, double alpha, double limit) {
  if (!std::isfinite(alpha))
    return op->emitOpError() << "alpha = " << alpha << " must be finite";
  if (!(limit > 0.0))
    return op->emitOpError() << "limit = " << limit << " must be > 0";
  return success();
}

/// A GLU halves the width; an odd width has no gate/up split.
LogicalResult verifyGluWidth(Operation *op, StringRef name, int64_t width) {
  if (width % 2 != 0)
    return op->emitOpError() << "'" << name << "' has odd width " << width
                             << ": a GLU needs an even width [M, 2I]";
  return success();
}

/// An optional Linear bias `[rows, columns]` (`[E, N]` of a grouped matmul,
/// `[E, 2I]` and `[E, H]` of a layer's experts) or, with `columns` < 0, a
/// vector `[rows]`: static, f32/bf16/f16, added in f32.
LogicalResult verifyLinearBias(TensorChecker &c, Value bias, StringRef name,
                               int64_t rows, StringRef rowsWhat,
                               int64_t columns = -1,
                               StringRef columnsWhat = "") {
  if (!bias)
    return success();
  if (columns < 0)
    return success(succeeded(c.tensor(
                       bias, name, 1, isMatmulFloat,
                       ("1-D f32/bf16/f16 tensor [" + rowsWhat + "]").str())) &&
                   succeeded(c.isStatic(bias, name, 0, rowsWhat)) &&
                   succeeded(c.dimIs(bias, name, 0, rows, rowsWhat)));
  std::string form =
      ("2-D f32/bf16/f16 tensor [" + rowsWhat + ", " + columnsWhat + "]").str();
  return success(succeeded(c.tensor(bias, name, 2, isMatmulFloat, form)) &&
                 succeeded(c.isStatic(bias, name, 0, rowsWhat)) &&
                 succeeded(c.isStatic(bias, name, 1, columnsWhat)) &&
                 succeeded(c.dimIs(bias, name, 0, rows, rowsWhat)) &&
                 succeeded(c.dimIs(bias, name, 1, columns, columnsWhat)));
}

/// Destination-style ops return their `init` operand's type.
LogicalResult verifyResultMatchesInit(Operation *op, Value result, Value init) {
  if (result.getType() != init.getType())
    return op->emitOpError() << "result type " << result.getType()
                             << " must match 'init' " << init.getType();
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

LogicalResult RouteOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")) ||
      failed(c.isStatic(getLogits(), "logits", 1, "E")))
    return failure();
  int64_t tokens = c.shape(getLogits())[0];
  int64_t numExperts = c.shape(getLogits())[1];
  if (failed(verifyRouting(
          *this, numExperts, getK(), getNGroup(), getTopkGroup(),
          getGroupScore(), getSecondExpertPolicy(), getRenormalize(),
          getRenormEpsilon().convertToDouble(), getScale().convertToDouble())))
    return failure();
  if (getBias() &&
      (failed(c.tensor(getBias(), "bias", 1, isF32, "1-D f32 tensor [E]")) ||
       failed(c.dimIs(getBias(), "bias", 0, numExperts, "E"))))
    return failure();
  if (failed(c.tensor(getWeights(), "weights", 2, isF32,
                      "2-D f32 tensor [T, k]")) ||
      failed(c.dimIs(getWeights(), "weights", 0, tokens, "T")) ||
      failed(c.dimIs(getWeights(), "weights", 1, getK(), "k")) ||
      failed(c.tensor(getIds(), "ids", 2, isI32, "2-D i32 tensor [T, k]")) ||
      failed(c.dimIs(getIds(), "ids", 0, tokens, "T")) ||
      failed(c.dimIs(getIds(), "ids", 1, getK(), "k")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertChoiceOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertChoiceOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")) ||
      failed(c.isStatic(getLogits(), "logits", 1, "E")))
    return failure();
  int64_t tokens = c.shape(getLogits())[0];
  int64_t numExperts = c.shape(getLogits())[1];
  int64_t perExpert = ShapedType::isDynamic(tokens)
                          ? ShapedType::kDynamic
                          : std::min<int64_t>(getCapacity(), tokens);
  int64_t numRows = ShapedType::isDynamic(perExpert) ? ShapedType::kDynamic
                                                     : numExperts * perExpert;
  if (failed(c.tensor(getWeights(), "weights", 2, isF32,
                      "2-D f32 tensor [T, E]")) ||
      failed(c.dimIs(getWeights(), "weights", 0, tokens, "T")) ||
      failed(c.dimIs(getWeights(), "weights", 1, numExperts, "E")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32,
                      "1-D i32 tensor [E * min(capacity, T)]")) ||
      failed(c.dimIs(getRows(), "rows", 0, numRows, "E * min(capacity, T)")) ||
      failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.dimIs(getOffsets(), "offsets", 0, numExperts + 1, "E + 1")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getIds(), "ids", 2, isI32, "2-D i32 tensor [T, k]")) ||
      failed(c.isStatic(getIds(), "ids", 1, "k")))
    return failure();
  int64_t tokens = c.shape(getIds())[0];
  int64_t k = c.shape(getIds())[1];
  int64_t numExperts = getNumExperts();
  if (failed(verifyCapacity(*this, getCapacity(), getCapacityFactor())))
    return failure();
  if (getWeights() &&
      (failed(c.tensor(getWeights(), "weights", 2, isF32,
                       "2-D f32 tensor [T, k]")) ||
       failed(c.dimIs(getWeights(), "weights", 0, tokens, "T")) ||
       failed(c.dimIs(getWeights(), "weights", 1, k, "k"))))
    return failure();
  if (getDropPolicy() == DropPolicy::score && !getWeights())
    return emitOpError() << "drop_policy = score needs the 'weights' operand";
  if (getExpertMap() &&
      (failed(c.tensor(getExpertMap(), "expert_map", 1, isI32,
                       "1-D i32 tensor [E]")) ||
       failed(c.isStatic(getExpertMap(), "expert_map", 0, "E")) ||
       failed(c.dimIs(getExpertMap(), "expert_map", 0, numExperts, "E"))))
    return failure();
  int64_t numRows =
      ShapedType::isDynamic(tokens) ? ShapedType::kDynamic : tokens * k;
  if (failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [T * k]")) ||
      failed(c.dimIs(getRows(), "rows", 0, numRows, "T * k")) ||
      failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.isStatic(getOffsets(), "offsets", 0, "experts + 1")))
    return failure();
  // Without an expert map every expert is local.
  if (!getExpertMap() &&
      failed(c.dimIs(getOffsets(), "offsets", 0, numExperts + 1, "E + 1")))
    return failure();
  if (c.shape(getOffsets())[0] < 2)
    return emitOpError() << "'offsets' must have at least 2 entries, got "
                         << getOffsets().getType();
  if (getRowOf() &&
      (failed(c.tensor(getRowOf(), "row_of", 1, isI32,
                       "1-D i32 tensor [T * k]")) ||
       failed(c.dimIs(getRowOf(), "row_of", 0, numRows, "T * k"))))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// RowTilesOp
//===----------------------------------------------------------------------===//

LogicalResult RowTilesOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.isStatic(getOffsets(), "offsets", 0, "E + 1")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")) ||
      failed(c.tensor(getTiles(), "tiles", 1, isI32,
                      "1-D i32 tensor [1 + 2 * tiles]")))
    return failure();
  if (c.shape(getOffsets())[0] < 2)
    return emitOpError() << "'offsets' must have at least 2 entries, got "
                         << getOffsets().getType();
  // The tile count depends on the routed rows only through M; a static size
  // would have to be the bound for this M, so only a dynamic one is taken.
  if (!ShapedType::isDynamic(c.shape(getTiles())[0]))
    return emitOpError() << "'tiles' must have a dynamic size, got "
                         << getTiles().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// PermuteOp
//===----------------------------------------------------------------------===//

LogicalResult PermuteOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getX(), "x", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [T, H]")) ||
      failed(c.isStatic(getX(), "x", 1, "H")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")) ||
      failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, H]")) ||
      failed(c.dimIs(getInit(), "init", 0, c.shape(getRows())[0], "M")) ||
      failed(c.dimIs(getInit(), "init", 1, c.shape(getX())[1], "H")))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

WeightShape mlir::moe::weightShape(RankedTensorType type, RhsLayout layout) {
  ArrayRef<int64_t> shape = type.getShape();
  switch (layout) {
  case RhsLayout::nk:
    return {shape[0], shape[1], shape[2], 0};
  case RhsLayout::kn:
    return {shape[0], shape[2], shape[1], 0};
  case RhsLayout::panels:
    return {shape[0], shape[1] * shape[3], shape[2], shape[3]};
  case RhsLayout::panels_vnni:
    return {shape[0], shape[1] * (shape[3] / 2), shape[2] * 2, shape[3] / 2};
  }
  llvm_unreachable("unknown weight layout");
}

/// Checks that `weights` is a static tensor of E experts' [N, K] matrices in
/// `layout` and returns its shape; `name` is the operand's name.
static FailureOr<WeightShape> verifyWeights(TensorChecker &c, Value weights,
                                            StringRef name, RhsLayout layout) {
  StringRef dims[4][4] = {{"E", "N", "K"},
                          {"E", "K", "N"},
                          {"E", "N / P", "K", "P"},
                          {"E", "N / P", "K / 2", "2P"}};
  StringRef described[4] = {
      "3-D f32/bf16/f16/f8E4M3FN/i8 tensor [E, N, K]",
      "3-D f32/bf16/f16/f8E4M3FN/i8 tensor [E, K, N]",
      "4-D f32/bf16/f16/f8E4M3FN/i8 tensor [E, N / P, K, P]",
      "4-D f32/bf16/f16/f8E4M3FN/i8 tensor [E, N / P, K / 2, 2P]"};
  auto index = static_cast<unsigned>(layout);
  bool panels = layout == RhsLayout::panels || layout == RhsLayout::panels_vnni;
  int64_t rank = panels ? 4 : 3;
  if (failed(c.tensor(weights, name, rank, isWeightElement, described[index])))
    return failure();
  for (int64_t d = 0; d < rank; ++d)
    if (failed(c.isStatic(weights, name, d, dims[index][d])))
      return failure();
  if (layout == RhsLayout::panels_vnni &&
      failed(c.isEven(weights, name, 3, "2P: each column's k-pairs")))
    return failure();
  return weightShape(cast<RankedTensorType>(weights.getType()), layout);
}

LogicalResult GroupedMatmulOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getLhs(), "lhs", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, K]")) ||
      failed(c.isStatic(getLhs(), "lhs", 1, "K")))
    return failure();
  FailureOr<WeightShape> rhsShape =
      verifyWeights(c, getRhs(), "rhs", getRhsLayout());
  if (failed(rhsShape))
    return failure();
  WeightQuantAttr quant = getWeightQuantAttr();
  if (quant && quant.getFormat() != WeightFormat::fp8_e4m3 &&
      getRhsLayout() != RhsLayout::nk)
    return emitOpError() << "weight_quant format "
                         << stringifyWeightFormat(quant.getFormat())
                         << " needs rhs_layout = nk, got "
                         << stringifyRhsLayout(getRhsLayout());
  // The storage type first: the packed formats' K is twice the stored one.
  if (quant && c.shape(getRhs()).size() == 3 &&
      cast<RankedTensorType>(getRhs().getType()).getElementType() !=
          quant.getWeightElementType())
    return emitOpError() << "'rhs' must hold " << quant.getWeightElementType()
                         << " weights for weight_quant format "
                         << stringifyWeightFormat(quant.getFormat()) << ", got "
                         << getRhs().getType();
  *rhsShape = logicalWeightShape(quant, *rhsShape);
  int64_t numExperts = rhsShape->experts;
  int64_t n = rhsShape->columns;
  int64_t reduction = c.shape(getLhs())[1];
  if (rhsShape->reduction != reduction)
    return emitOpError() << "'rhs' has reduction size K = "
                         << rhsShape->reduction
                         << ", which must equal K, the width of 'lhs', "
                         << reduction;
  if (failed(c.tensor(getOffsets(), "offsets", 1, isI32,
                      "1-D i32 tensor [E + 1]")) ||
      failed(c.isStatic(getOffsets(), "offsets", 0, "E + 1")))
    return failure();
  if (c.shape(getOffsets())[0] != numExperts + 1)
    return emitOpError() << "'offsets' must have length E + 1 = "
                         << numExperts + 1 << " for the " << numExperts
                         << " experts of 'rhs', got " << getOffsets().getType();
  if (failed(verifyLinearBias(c, getBias(), "bias", numExperts, "E", n, "N")) ||
      failed(verifyWeightQuantOperands(
          *this, getWeightQuantAttr(), *rhsShape, getRhs(), "rhs",
          getRhsScales(), "rhs_scales", getLhsScales(), "lhs_scales",
          getRhsZeroPoints(), "rhs_zero_points")))
    return failure();

  if (getGather() && !getRows())
    return emitOpError() << "'gather' needs the 'rows' operand";
  if (getRowScale() && !getRows())
    return emitOpError() << "'row_scale' needs the 'rows' operand";
  if (getRows() && !getGather() && !getRowScale())
    return emitOpError() << "'rows' is used only with 'gather' or 'row_scale'";
  if (getK() < 1)
    return emitOpError() << "k = " << getK() << " must be >= 1";
  int64_t numRows = c.shape(getLhs())[0];
  if (getRows()) {
    if (failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")))
      return failure();
    if (getGather())
      numRows = c.shape(getRows())[0];
    else if (failed(c.dimIs(getRows(), "rows", 0, numRows,
                            "M, the rows of 'lhs'")))
      return failure();
  }
  if (getRowScale() &&
      (failed(c.tensor(getRowScale(), "row_scale", 2, isF32,
                       "2-D f32 tensor [T, k]")) ||
       failed(c.dimIs(getRowScale(), "row_scale", 1, getK(), "k"))))
    return failure();
  if (Value tiles = getRowTiles()) {
    auto schedule = tiles.getDefiningOp<RowTilesOp>();
    if (!schedule || schedule.getOffsets() != getOffsets() ||
        schedule.getRows() != getRows())
      return emitOpError() << "'row_tiles' must be a moe.row_tiles of this "
                              "op's 'offsets' and 'rows'";
  }

  int64_t width = n;
  if (auto epilogue = getEpilogue()) {
    if (failed(verifyGluWidth(*this, "rhs", n)) ||
        failed(verifyActivation(*this, getAlpha().convertToDouble(),
                                getLimit().convertToDouble())))
      return failure();
    width = n / 2;
  }
  if (failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, N]")) ||
      failed(c.dimIs(getInit(), "init", 0, numRows, "M")) ||
      failed(c.dimIs(getInit(), "init", 1, width,
                     getEpilogue() ? "N / 2 after the GLU epilogue" : "N")))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// GluOp
//===----------------------------------------------------------------------===//

LogicalResult GluOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getH(), "h", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, 2I]")) ||
      failed(c.isStatic(getH(), "h", 1, "2I")) ||
      failed(verifyGluWidth(*this, "h", c.shape(getH())[1])) ||
      failed(verifyActivation(*this, getAlpha().convertToDouble(),
                              getLimit().convertToDouble())) ||
      failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, I]")) ||
      failed(c.dimIs(getInit(), "init", 0, c.shape(getH())[0], "M")) ||
      failed(c.dimIs(getInit(), "init", 1, c.shape(getH())[1] / 2, "I")))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getYs(), "ys", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [M, H]")) ||
      failed(c.isStatic(getYs(), "ys", 1, "H")) ||
      failed(c.tensor(getRows(), "rows", 1, isI32, "1-D i32 tensor [M]")) ||
      failed(c.dimIs(getRows(), "rows", 0, c.shape(getYs())[0], "M")) ||
      failed(c.tensor(getWeights(), "weights", 2, isF32,
                      "2-D f32 tensor [T, k]")) ||
      failed(c.isStatic(getWeights(), "weights", 1, "k")) ||
      failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [T, H]")) ||
      failed(c.dimIs(getInit(), "init", 0, c.shape(getWeights())[0], "T")) ||
      failed(c.dimIs(getInit(), "init", 1, c.shape(getYs())[1], "H")))
    return failure();
  int64_t selections =
      ShapedType::isDynamic(c.shape(getWeights())[0])
          ? ShapedType::kDynamic
          : c.shape(getWeights())[0] * c.shape(getWeights())[1];
  if (getRowOf() &&
      (failed(c.tensor(getRowOf(), "row_of", 1, isI32,
                       "1-D i32 tensor [T * k]")) ||
       failed(c.dimIs(getRowOf(), "row_of", 0, selections, "T * k"))))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

LogicalResult LayerOp::verify() {
  TensorChecker c(*this);
  if (failed(c.tensor(getX(), "x", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [T, H]")) ||
      failed(c.isStatic(getX(), "x", 1, "H")) ||
      failed(c.tensor(getRouter(), "router", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [E, H]")) ||
      failed(c.isStatic(getRouter(), "router", 0, "E")))
    return failure();
  int64_t tokens = c.shape(getX())[0];
  int64_t hidden = c.shape(getX())[1];
  int64_t numExperts = c.shape(getRouter())[0];
  if (failed(c.dimIs(getRouter(), "router", 1, hidden, "H")))
    return failure();
  if (WeightQuantAttr quant = getWeightQuantAttr();
      quant && quant.getFormat() != WeightFormat::fp8_e4m3)
    return emitOpError() << "weight_quant format "
                         << stringifyWeightFormat(quant.getFormat())
                         << " is supported on moe.grouped_matmul only, not "
                            "on the layer";
  StringRef layout = stringifyRhsLayout(getWeightLayout());
  FailureOr<WeightShape> w13 =
      verifyWeights(c, getW13(), "w13", getWeightLayout());
  if (failed(w13))
    return failure();
  if (w13->experts != numExperts || w13->reduction != hidden)
    return emitOpError() << "'w13' must hold E = " << numExperts
                         << " experts' [2I, H = " << hidden
                         << "] weights in the " << layout << " layout, got "
                         << getW13().getType();
  if (failed(verifyGluWidth(*this, "w13", w13->columns)))
    return failure();
  int64_t inter = w13->columns / 2;
  FailureOr<WeightShape> w2 =
      verifyWeights(c, getW2(), "w2", getWeightLayout());
  if (failed(w2))
    return failure();
  if (w2->experts != numExperts || w2->columns != hidden ||
      w2->reduction != inter)
    return emitOpError() << "'w2' must hold E = " << numExperts
                         << " experts' [H = " << hidden << ", I = " << inter
                         << "] weights in the " << layout << " layout, got "
                         << getW2().getType();
  if (failed(verifyWeightQuantOperands(
          *this, getWeightQuantAttr(), *w13, getW13(), "w13", getW13Scales(),
          "w13_scales", getW13InputScales(), "w13_input_scales")) ||
      failed(verifyWeightQuantOperands(
          *this, getWeightQuantAttr(), *w2, getW2(), "w2", getW2Scales(),
          "w2_scales", getW2InputScales(), "w2_input_scales")))
    return failure();
  if (getBias() &&
      (failed(c.tensor(getBias(), "bias", 1, isF32, "1-D f32 tensor [E]")) ||
       failed(c.dimIs(getBias(), "bias", 0, numExperts, "E"))))
    return failure();
  if (failed(verifyLinearBias(c, getRouterBias(), "router_bias", numExperts,
                              "E")) ||
      failed(verifyLinearBias(c, getW13Bias(), "w13_bias", numExperts, "E",
                              2 * inter, "2I")) ||
      failed(verifyLinearBias(c, getW2Bias(), "w2_bias", numExperts, "E",
                              hidden, "H")))
    return failure();
  if (static_cast<bool>(getSharedW13()) != static_cast<bool>(getSharedW2()))
    return emitOpError() << "'shared_w13' and 'shared_w2' go together";
  if (getSharedGate() && !getSharedW13())
    return emitOpError() << "'shared_gate' needs a shared expert";
  if (getSharedW13()) {
    if (failed(c.tensor(getSharedW13(), "shared_w13", 2, isMatmulFloat,
                        "2-D f32/bf16/f16 tensor [2Is, H]")) ||
        failed(c.isStatic(getSharedW13(), "shared_w13", 0, "2Is")) ||
        failed(c.dimIs(getSharedW13(), "shared_w13", 1, hidden, "H")) ||
        failed(
            verifyGluWidth(*this, "shared_w13", c.shape(getSharedW13())[0])) ||
        failed(c.tensor(getSharedW2(), "shared_w2", 2, isMatmulFloat,
                        "2-D f32/bf16/f16 tensor [H, Is]")) ||
        failed(c.dimIs(getSharedW2(), "shared_w2", 0, hidden, "H")) ||
        failed(c.dimIs(getSharedW2(), "shared_w2", 1,
                       c.shape(getSharedW13())[0] / 2, "Is")))
      return failure();
  }
  if (getSharedGate() &&
      (failed(c.tensor(getSharedGate(), "shared_gate", 2, isMatmulFloat,
                       "2-D f32/bf16/f16 tensor [1, H]")) ||
       failed(c.dimIs(getSharedGate(), "shared_gate", 0, 1, "1")) ||
       failed(c.dimIs(getSharedGate(), "shared_gate", 1, hidden, "H"))))
    return failure();
  if (failed(verifyRouting(*this, numExperts, getK(), getNGroup(),
                           getTopkGroup(), getGroupScore(),
                           getSecondExpertPolicy(), getRenormalize(),
                           getRenormEpsilon().convertToDouble(),
                           getScale().convertToDouble())) ||
      failed(verifyCapacity(*this, getCapacity(), getCapacityFactor())) ||
      failed(verifyActivation(*this, getAlpha().convertToDouble(),
                              getLimit().convertToDouble())))
    return failure();
  if (failed(c.tensor(getInit(), "init", 2, isMatmulFloat,
                      "2-D f32/bf16/f16 tensor [T, H]")) ||
      failed(c.dimIs(getInit(), "init", 0, tokens, "T")) ||
      failed(c.dimIs(getInit(), "init", 1, hidden, "H")))
    return failure();
  return verifyResultMatchesInit(*this, getResult(), getInit());
}

//===----------------------------------------------------------------------===//
// AuxLossOp and ZLossOp
//===----------------------------------------------------------------------===//

static LogicalResult verifyScalarLoss(Operation *op, Value loss) {
  auto type = dyn_cast<RankedTensorType>(loss.getType());
  if (!type || type.getRank() != 0 || !type.getElementType().isF32())
    return op->emitOpError()
           << "'loss' must be a 0-D f32 tensor, got " << loss.getType();
  return success();
}

LogicalResult AuxLossOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")) ||
      failed(c.isStatic(getLogits(), "logits", 1, "E")) ||
      failed(c.tensor(getIds(), "ids", 2, isI32, "2-D i32 tensor [T, k]")) ||
      failed(c.dimIs(getIds(), "ids", 0, c.shape(getLogits())[0], "T")))
    return failure();
  return verifyScalarLoss(*this, getLoss());
}

LogicalResult ZLossOp::verify() {
  TensorChecker c(*this);
  if (failed(
          c.tensor(getLogits(), "logits", 2, isF32, "2-D f32 tensor [T, E]")))
    return failure();
  return verifyScalarLoss(*this, getLoss());
}

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
