//===- TensorChecks.h - Shared checks of the moe verifiers -----*- C++ -*-===//
//
// The shape and element-type checks that several ops' verifiers share: a
// TensorChecker whose diagnostics name the operand and the expected form,
// and the routing, capacity, activation, bias and weight checks of the ops
// that take those attributes and operands.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_DIALECT_MOE_IR_TENSORCHECKS_H
#define MOE_LIB_DIALECT_MOE_IR_TENSORCHECKS_H

#include "moe/Dialect/MoE/IR/MoEOps.h"

namespace mlir::moe::checks {

inline bool isF32(Type t) { return t.isF32(); }
inline bool isI32(Type t) { return t.isSignlessInteger(32); }
/// Element types the matmul-like ops accept; they accumulate in f32.
inline bool isMatmulFloat(Type t) {
  return t.isF32() || t.isBF16() || t.isF16();
}
/// Element types of weight operands: the matmul floats, and the quantized
/// formats, whose scales and attribute verifyWeightQuantOperands checks.
inline bool isWeightElement(Type t) {
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

/// The routing attributes of moe.route and moe.layer (the rules of
/// DESIGN.md's moe.route).
LogicalResult verifyRouting(Operation *op, int64_t numExperts, int64_t k,
                            int64_t nGroup, int64_t topkGroup,
                            GroupScore groupScore, SecondExpertPolicy policy,
                            bool renormalize, double epsilon, double scale);

/// capacity and capacity_factor: exclusive, each positive.
LogicalResult verifyCapacity(Operation *op, std::optional<uint64_t> capacity,
                             std::optional<APFloat> factor);

/// The GLU activation's alpha and limit.
LogicalResult verifyActivation(Operation *op, double alpha, double limit);

/// A GLU halves the width; an odd width has no gate/up split.
LogicalResult verifyGluWidth(Operation *op, StringRef name, int64_t width);

/// An optional Linear bias `[rows, columns]` (`[E, N]` of a grouped matmul,
/// `[E, 2I]` and `[E, H]` of a layer's experts) or, with `columns` < 0, a
/// vector `[rows]`: static, f32/bf16/f16, added in f32.
LogicalResult verifyLinearBias(TensorChecker &c, Value bias, StringRef name,
                               int64_t rows, StringRef rowsWhat,
                               int64_t columns = -1,
                               StringRef columnsWhat = "");

/// Destination-style ops return their `init` operand's type.
LogicalResult verifyResultMatchesInit(Operation *op, Value result, Value init);

/// Checks that `weights` is a static tensor of E experts' [N, K] matrices in
/// `layout` and returns its stored shape; `name` is the operand's name.
FailureOr<WeightShape> verifyWeights(TensorChecker &c, Value weights,
                                     StringRef name, RhsLayout layout);

/// verifyWeights, then, for `quant`'s weight-only formats, the nk layout
/// (`layoutName` is the attribute that holds it) and the storage element
/// type; returns the logical shape (logicalWeightShape: K counts weights,
/// not the bytes of the packed 4-bit formats).
FailureOr<WeightShape> verifyQuantizedWeights(TensorChecker &c, Operation *op,
                                              Value weights, StringRef name,
                                              RhsLayout layout,
                                              StringRef layoutName,
                                              WeightQuantAttr quant);

} // namespace mlir::moe::checks

#endif // MOE_LIB_DIALECT_MOE_IR_TENSORCHECKS_H
