//===- TensorHelpers.h - linalg building blocks of the moe lowering -*- C++
//-*-===//
//
// Small tensor computations that several moe op lowerings share: element-wise
// maps, row reductions, softmax and casts, each a linalg.generic on tensors
// whose leading dimension may be dynamic.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLINALG_TENSORHELPERS_H
#define MOE_LIB_CONVERSION_MOETOLINALG_TENSORHELPERS_H

#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

#include "mlir/IR/PatternMatch.h"

#include <limits>

namespace mlir::moe::linalg_lowering {

using Body = SmallVector<Value>;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

/// Elementwise map over same-shaped 2-D tensors into a new f32 tensor.
Value map2d(StructuredBuilder &b, ValueRange inputs,
            function_ref<Value(StructuredBuilder &, ValueRange)> fn);

/// Row-wise reduction of a 2-D f32 tensor into [rows] with `combine`.
Value reduceRows(
    StructuredBuilder &b, Value input, double init,
    function_ref<Value(StructuredBuilder &, Value, Value)> combine);

/// Applies `fn(element, rowValue)` to each element of a 2-D tensor.
Value mapWithRow(StructuredBuilder &b, Value input, Value perRow,
                 function_ref<Value(StructuredBuilder &, Value, Value)> fn);

Value addF(StructuredBuilder &b, Value acc, Value x);
Value maxF(StructuredBuilder &b, Value acc, Value x);

/// Softmax over the last dimension of a 2-D f32 tensor.
Value softmaxRows(StructuredBuilder &b, Value input);

/// Casts a tensor elementwise into `init` (same shape, any float type).
Value castInto(StructuredBuilder &b, Value input, Value init);

/// Reads row `rows[r] / k` of `source` at column `column`, or 0 when the row
/// value is outside [0, T * k). Returns f32.
Value gatherElement(StructuredBuilder &b, Value source, Value rowValue,
                    int64_t k, Value column);

/// Adds the lowering of moe.route (RouteToLinalg.cpp).
void populateRouteToLinalgPatterns(RewritePatternSet &patterns);
/// moe.expert_choice, moe.dispatch, moe.permute, moe.combine
/// (DispatchToLinalg.cpp).
void populateDispatchToLinalgPatterns(RewritePatternSet &patterns);
/// moe.glu, moe.grouped_matmul (GroupedMatmulToLinalg.cpp).
void populateGroupedMatmulToLinalgPatterns(RewritePatternSet &patterns);
/// moe.aux_loss, moe.z_loss (LossToLinalg.cpp).
void populateLossToLinalgPatterns(RewritePatternSet &patterns);

} // namespace mlir::moe::linalg_lowering

#endif // MOE_LIB_CONVERSION_MOETOLINALG_TENSORHELPERS_H
