//===- StructuredBuilder.h - Short-hands for building linalg IR -*- C++ -*-===//
//
// The moe lowerings build many small linalg.generic ops on tensors whose
// leading (token or row) dimension may be dynamic. This builder keeps that
// code short: constants, sizes, empty and filled tensors, generics, scalar
// casts and the ranking comparison that every top-k style selection shares.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_STRUCTUREDBUILDER_H
#define MOE_DIALECT_MOE_UTILS_STRUCTUREDBUILDER_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::moe {

class StructuredBuilder : public ImplicitLocOpBuilder {
public:
  using ImplicitLocOpBuilder::ImplicitLocOpBuilder;
  using BodyFn =
      function_ref<SmallVector<Value>(StructuredBuilder &, ValueRange)>;

  Value index(int64_t value);
  Value i32(int64_t value);
  Value i64(int64_t value);
  Value f32(double value);
  Value f64(double value);

  /// The size of dimension `dim` of a ranked tensor, as an index value.
  Value dimValue(Value tensor, int64_t dim);
  /// The size of dimension `dim` of a ranked tensor, folded when static.
  OpFoldResult dimSize(Value tensor, int64_t dim);

  /// A tensor.empty of the given sizes.
  Value empty(ArrayRef<OpFoldResult> sizes, Type elementType);
  /// A tensor of the given sizes filled with `scalar`.
  Value filled(ArrayRef<OpFoldResult> sizes, Value scalar);

  /// A linalg.generic over `numDims` loops. `maps` holds one projection per
  /// input and output: the loop dimensions each operand is indexed by.
  /// `reductionDims` are the loops that reduce; the rest are parallel.
  SmallVector<Value> generic(ValueRange inputs, ValueRange outputs,
                             unsigned numDims,
                             ArrayRef<SmallVector<unsigned>> maps,
                             ArrayRef<unsigned> reductionDims, BodyFn body);
  /// Same, with explicit indexing maps.
  SmallVector<Value> generic(ValueRange inputs, ValueRange outputs,
                             ArrayRef<AffineMap> maps,
                             ArrayRef<unsigned> reductionDims, BodyFn body);

  /// Inside a generic body: the current iteration index of loop `dim`.
  Value loopIndex(unsigned dim);
  /// Converts a float scalar to `type` (extension or truncation).
  Value castFloat(Value value, Type type);
  /// Converts an integer scalar to an index, or an index to `type`.
  Value toIndex(Value value);
  Value fromIndex(Value value, Type type);

  /// i1: does (aScore, aIndex) rank strictly before (bScore, bIndex)? Larger
  /// scores first, ties to the lower index, NaN below everything (-inf too).
  Value ranksBefore(Value aScore, Value aIndex, Value bScore, Value bIndex);

  /// An i1 as an i32 0 or 1, for counting.
  Value boolToI32(Value flag);
  /// i1: 0 <= value < bound, for an integer `value` and an index `bound`.
  Value inRange(Value value, Value bound);

  /// A routed row value: the flat selection t * k + j it names. Values
  /// outside [0, T * k) name no selection: `valid` is false and `token`
  /// and `slot` are 0, so they can still index safely.
  struct Selection {
    Value valid, token, slot;
  };
  Selection decodeSelection(Value rowValue, Value numTokens, int64_t k);

  /// rank[b, i] = the number of j with (scores[b, j], j) ranking before
  /// (scores[b, i], i): 0 for the best. `scores` is [B, N] f32; result i32.
  Value rankRows(Value scores);
};

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_STRUCTUREDBUILDER_H
