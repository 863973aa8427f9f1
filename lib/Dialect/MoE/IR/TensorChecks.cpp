//===- TensorChecks.cpp - Shared checks of the moe verifiers --------------===//

#include "TensorChecks.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::checks;

LogicalResult checks::verifyRouting(Operation *op, int64_t numExperts,
                                    int64_t k, int64_t nGroup,
                                    int64_t topkGroup, GroupScore groupScore,
                                    SecondExpertPolicy policy, bool renormalize,
                                    double epsilon, double scale) {
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

LogicalResult checks::verifyCapacity(Operation *op,
                                     std::optional<uint64_t> capacity,
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

LogicalResult checks::verifyActivation(Operation *op, double alpha,
                                       double limit) {
  if (!std::isfinite(alpha))
    return op->emitOpError() << "alpha = " << alpha << " must be finite";
  if (!(limit > 0.0))
    return op->emitOpError() << "limit = " << limit << " must be > 0";
  return success();
}

/// A GLU halves the width; an odd width has no gate/up split.
LogicalResult checks::verifyGluWidth(Operation *op, StringRef name,
                                     int64_t width) {
  if (width % 2 != 0)
    return op->emitOpError() << "'" << name << "' has odd width " << width
                             << ": a GLU needs an even width [M, 2I]";
  return success();
}

/// An optional Linear bias `[rows, columns]` (`[E, N]` of a grouped matmul,
/// `[E, 2I]` and `[E, H]` of a layer's experts) or, with `columns` < 0, a
/// vector `[rows]`: static, f32/bf16/f16, added in f32.
LogicalResult checks::verifyLinearBias(TensorChecker &c, Value bias,
                                       StringRef name, int64_t rows,
                                       StringRef rowsWhat, int64_t columns,
                                       StringRef columnsWhat) {
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
LogicalResult checks::verifyResultMatchesInit(Operation *op, Value result,
                                              Value init) {
  if (result.getType() != init.getType())
    return op->emitOpError() << "result type " << result.getType()
                             << " must match 'init' " << init.getType();
  return success();
}

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

FailureOr<WeightShape> checks::verifyWeights(TensorChecker &c, Value weights,
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

FailureOr<WeightShape>
checks::verifyQuantizedWeights(TensorChecker &c, Operation *op, Value weights,
                               StringRef name, RhsLayout layout,
                               StringRef layoutName, WeightQuantAttr quant) {
  FailureOr<WeightShape> shape = verifyWeights(c, weights, name, layout);
  if (failed(shape) || !quant)
    return shape;
  if (quant.getFormat() != WeightFormat::fp8_e4m3 && layout != RhsLayout::nk &&
      layout != RhsLayout::panels)
    return op->emitOpError()
           << "weight_quant format " << stringifyWeightFormat(quant.getFormat())
           << " needs " << layoutName << " = nk or panels, got "
           << stringifyRhsLayout(layout);
  // The storage type first: the packed formats' K is twice the stored one.
  if (cast<RankedTensorType>(weights.getType()).getElementType() !=
      quant.getWeightElementType())
    return op->emitOpError()
           << "'" << name << "' must hold " << quant.getWeightElementType()
           << " weights for weight_quant format "
           << stringifyWeightFormat(quant.getFormat()) << ", got "
           << weights.getType();
  return logicalWeightShape(quant, *shape);
}
