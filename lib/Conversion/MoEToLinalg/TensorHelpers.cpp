//===- TensorHelpers.cpp - linalg building blocks of the moe lowering -----===//

#include "TensorHelpers.h"

#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::linalg_lowering;

/// Elementwise map over same-shaped 2-D tensors into a new f32 tensor.
Value linalg_lowering::map2d(
    StructuredBuilder &b, ValueRange inputs,
    function_ref<Value(StructuredBuilder &, ValueRange)> fn) {
  SmallVector<OpFoldResult> sizes = {b.dimSize(inputs[0], 0),
                                     b.dimSize(inputs[0], 1)};
  SmallVector<SmallVector<unsigned>> maps(inputs.size() + 1, {0, 1});
  return b
      .generic(inputs, {b.empty(sizes, b.getF32Type())}, 2, maps, {},
               [&](StructuredBuilder &nb, ValueRange args) {
                 return Body{fn(nb, args.drop_back())};
               })
      .front();
}

/// Row-wise reduction of a 2-D f32 tensor into [rows] with `combine`.
Value linalg_lowering::reduceRows(
    StructuredBuilder &b, Value input, double init,
    function_ref<Value(StructuredBuilder &, Value, Value)> combine) {
  Value out = b.filled({b.dimSize(input, 0)}, b.f32(init));
  return b
      .generic({input}, {out}, 2, {{0, 1}, {0}}, {1},
               [&](StructuredBuilder &nb, ValueRange args) {
                 return Body{combine(nb, args[1], args[0])};
               })
      .front();
}

/// Applies `fn(element, rowValue)` to each element of a 2-D tensor.
Value linalg_lowering::mapWithRow(
    StructuredBuilder &b, Value input, Value perRow,
    function_ref<Value(StructuredBuilder &, Value, Value)> fn) {
  SmallVector<OpFoldResult> sizes = {b.dimSize(input, 0), b.dimSize(input, 1)};
  return b
      .generic({input, perRow}, {b.empty(sizes, b.getF32Type())}, 2,
               {{0, 1}, {0}, {0, 1}}, {},
               [&](StructuredBuilder &nb, ValueRange args) {
                 return Body{fn(nb, args[0], args[1])};
               })
      .front();
}

Value linalg_lowering::addF(StructuredBuilder &b, Value acc, Value x) {
  return b.create<arith::AddFOp>(acc, x);
}
Value linalg_lowering::maxF(StructuredBuilder &b, Value acc, Value x) {
  return b.create<arith::MaximumFOp>(acc, x);
}

/// Softmax over the last dimension of a 2-D f32 tensor.
Value linalg_lowering::softmaxRows(StructuredBuilder &b, Value input) {
  Value maximum = reduceRows(b, input, -kInfinity, maxF);
  Value exps = mapWithRow(b, input, maximum,
                          [](StructuredBuilder &nb, Value x, Value m) {
                            return softmaxExp(nb, x, m);
                          });
  Value sums = reduceRows(b, exps, 0.0, addF);
  return mapWithRow(b, exps, sums,
                    [](StructuredBuilder &nb, Value x, Value s) -> Value {
                      return nb.create<arith::DivFOp>(x, s);
                    });
}

/// Casts a tensor elementwise into `init` (same shape, any float type).
Value linalg_lowering::castInto(StructuredBuilder &b, Value input, Value init) {
  auto rank = cast<RankedTensorType>(input.getType()).getRank();
  SmallVector<unsigned> all;
  for (unsigned d = 0; d < rank; ++d)
    all.push_back(d);
  return b
      .generic({input}, {init}, rank, {all, all}, {},
               [](StructuredBuilder &nb, ValueRange args) {
                 return Body{nb.castFloat(args[0], args[1].getType())};
               })
      .front();
}

Value linalg_lowering::gatherElement(StructuredBuilder &b, Value source,
                                     Value rowValue, int64_t k, Value column) {
  auto selection = b.decodeSelection(rowValue, b.dimValue(source, 0), k);
  Value element = b.castFloat(
      b.create<tensor::ExtractOp>(source, ValueRange{selection.token, column}),
      b.getF32Type());
  return b.create<arith::SelectOp>(selection.valid, element, b.f32(0.0));
}
