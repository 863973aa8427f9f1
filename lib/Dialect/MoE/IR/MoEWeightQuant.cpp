//===- MoEWeightQuant.cpp - Quantized expert weights ----------------------===//
//
// Verifies `#moe.weight_quant` and the scale operands that go with it on
// `moe.grouped_matmul` and `moe.layer`: every scale tensor's shape follows
// from its weights' shape and the block sizes, and each diagnostic names the
// operand and the shape expected.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moe;

LogicalResult
WeightQuantAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        WeightFormat format, ArrayRef<int64_t> block,
                        ActivationQuant activation) {
  if (block.size() != 2 || llvm::any_of(block, [](int64_t b) { return b < 1; }))
    return emitError() << "weight_quant block must be [bn, bk] with both >= 1, "
                          "got ["
                       << block << "]";
  return success();
}

Type WeightQuantAttr::getWeightElementType() const {
  switch (getFormat()) {
  case WeightFormat::fp8_e4m3:
    return Float8E4M3FNType::get(getContext());
  }
  llvm_unreachable("unknown weight format");
}

bool mlir::moe::isQuantizedElementType(Type type) {
  return isa<Float8E4M3FNType>(type);
}

SmallVector<int64_t> mlir::moe::weightScaleShape(WeightQuantAttr quant,
                                                 const WeightShape &weights) {
  return {weights.experts,
          llvm::divideCeilSigned(weights.columns, quant.getBlockN()),
          llvm::divideCeilSigned(weights.reduction, quant.getBlockK())};
}

/// "[8, 4, 2]".
static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "[";
  llvm::interleaveComma(shape, os);
  os << "]";
  return text;
}

/// Whether `value` is a static f32 tensor of `shape`.
static bool isF32Tensor(Value value, ArrayRef<int64_t> shape) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type && type.getElementType().isF32() && type.hasStaticShape() &&
         type.getShape() == shape;
}

LogicalResult mlir::moe::verifyWeightQuantOperands(
    Operation *op, WeightQuantAttr quant, const WeightShape &shape,
    Value weights, StringRef weightsName, Value scales, StringRef scalesName,
    Value inputScales, StringRef inputScalesName) {
  Type element = cast<RankedTensorType>(weights.getType()).getElementType();
  if (!quant) {
    if (isQuantizedElementType(element))
      return op->emitOpError()
             << "'" << weightsName << "' has element type " << element
             << ", which needs a 'weight_quant' attribute and its scales";
    if (scales)
      return op->emitOpError()
             << "'" << scalesName << "' is used only with 'weight_quant'";
    if (inputScales)
      return op->emitOpError()
             << "'" << inputScalesName << "' is used only with 'weight_quant'";
    return success();
  }
  Type expectedElement = quant.getWeightElementType();
  if (element != expectedElement)
    return op->emitOpError()
           << "'" << weightsName << "' must hold " << expectedElement
           << " weights for weight_quant format "
           << stringifyWeightFormat(quant.getFormat()) << ", got "
           << weights.getType();
  SmallVector<int64_t> scaleShape = weightScaleShape(quant, shape);
  if (!scales)
    return op->emitOpError()
           << "weight_quant needs the '" << scalesName
           << "' operand, a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = "
           << shapeString(scaleShape) << " for '" << weightsName << "'";
  if (!isF32Tensor(scales, scaleShape))
    return op->emitOpError()
           << "'" << scalesName
           << "' must be a 3-D f32 tensor [E, ceil(N / bn), ceil(K / bk)] = "
           << shapeString(scaleShape) << " for '" << weightsName
           << "' and block = [" << quant.getBlock() << "], got "
           << scales.getType();
  bool isStatic = quant.getActivation() == ActivationQuant::static_;
  if (isStatic && !inputScales)
    return op->emitOpError()
           << "activation = static needs the '" << inputScalesName
           << "' operand, a 1-D f32 tensor [1] (one scale for the tensor)";
  if (!isStatic && inputScales)
    return op->emitOpError() << "'" << inputScalesName
                             << "' is used only with activation = static";
  if (inputScales && !isF32Tensor(inputScales, {1}))
    return op->emitOpError()
           << "'" << inputScalesName << "' must be a 1-D f32 tensor [1], got "
           << inputScales.getType();
  return success();
}
