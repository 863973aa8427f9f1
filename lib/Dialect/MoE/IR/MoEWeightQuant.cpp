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
  if (format == WeightFormat::fp8_e4m3)
    return success();
  StringRef name = stringifyWeightFormat(format);
  if (activation != ActivationQuant::none)
    return emitError() << "weight_quant format " << name
                       << " is weight-only: activation must be none, got "
                       << stringifyActivationQuant(activation);
  if (block[0] != 1)
    return emitError() << "weight_quant format " << name
                       << " has one scale per output row and group: block "
                          "must be [1, bk], got ["
                       << block << "]";
  if (format == WeightFormat::mxfp4 && block[1] != 32)
    return emitError() << "weight_quant format mxfp4 has one scale per 32 K: "
                          "block must be [1, 32], got ["
                       << block << "]";
  if (format == WeightFormat::int4 && block[1] != 32 && block[1] != 64 &&
      block[1] != 128)
    return emitError() << "weight_quant format int4 groups 32, 64 or 128 K: "
                          "block must be [1, 32], [1, 64] or [1, 128], got ["
                       << block << "]";
  return success();
}

Type WeightQuantAttr::getWeightElementType() const {
  switch (getFormat()) {
  case WeightFormat::fp8_e4m3:
    return Float8E4M3FNType::get(getContext());
  case WeightFormat::mxfp4:
  case WeightFormat::int4:
  case WeightFormat::int8:
    return IntegerType::get(getContext(), 8);
  }
  llvm_unreachable("unknown weight format");
}

Type WeightQuantAttr::getScaleElementType() const {
  if (getFormat() == WeightFormat::mxfp4)
    return Float8E8M0FNUType::get(getContext());
  return Float32Type::get(getContext());
}

int64_t WeightQuantAttr::getWeightsPerElement() const {
  return isPackedWeightFormat(getFormat()) ? 2 : 1;
}

bool WeightQuantAttr::allowsZeroPoints() const {
  return getFormat() == WeightFormat::int4;
}

bool mlir::moe::isPackedWeightFormat(WeightFormat format) {
  return format == WeightFormat::mxfp4 || format == WeightFormat::int4;
}

bool mlir::moe::isQuantizedElementType(Type type) {
  return isa<Float8E4M3FNType>(type) || type.isSignlessInteger(8);
}

WeightShape mlir::moe::logicalWeightShape(WeightQuantAttr quant,
                                          const WeightShape &stored) {
  WeightShape shape = stored;
  if (quant)
    shape.reduction *= quant.getWeightsPerElement();
  return shape;
}

bool mlir::moe::hasPanelScales(WeightQuantAttr quant,
                               const WeightShape &weights) {
  return weights.panelWidth > 0 && quant.getFormat() != WeightFormat::fp8_e4m3;
}

SmallVector<int64_t> mlir::moe::weightScaleShape(WeightQuantAttr quant,
                                                 const WeightShape &weights) {
  // The weight-only formats' scales (one column each) follow their weights
  // into panels; FP8's block scales stay as they are.
  if (hasPanelScales(quant, weights))
    return {weights.experts, weights.columns / weights.panelWidth,
            llvm::divideCeilSigned(weights.reduction, quant.getBlockK()),
            weights.panelWidth};
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

/// Whether `value` is a static tensor of `element`s and `shape`.
static bool isTensorOf(Value value, Type element, ArrayRef<int64_t> shape) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type && type.getElementType() == element && type.hasStaticShape() &&
         type.getShape() == shape;
}

/// Whether `value` is a static f32 tensor of `shape`.
static bool isF32Tensor(Value value, ArrayRef<int64_t> shape) {
  return isTensorOf(value, Float32Type::get(value.getContext()), shape);
}

LogicalResult mlir::moe::verifyWeightQuantOperands(
    Operation *op, WeightQuantAttr quant, const WeightShape &shape,
    Value weights, StringRef weightsName, Value scales, StringRef scalesName,
    Value inputScales, StringRef inputScalesName, Value zeroPoints,
    StringRef zeroPointsName) {
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
    if (zeroPoints)
      return op->emitOpError()
             << "'" << zeroPointsName << "' is used only with 'weight_quant'";
    return success();
  }
  StringRef format = stringifyWeightFormat(quant.getFormat());
  Type expectedElement = quant.getWeightElementType();
  if (element != expectedElement)
    return op->emitOpError()
           << "'" << weightsName << "' must hold " << expectedElement
           << " weights for weight_quant format " << format << ", got "
           << weights.getType();
  if (quant.getFormat() == WeightFormat::mxfp4 &&
      shape.reduction % quant.getBlockK() != 0)
    return op->emitOpError()
           << "'" << weightsName << "' has K = " << shape.reduction
           << ", which must be a multiple of the mxfp4 block of "
           << quant.getBlockK();
  if (quant.getFormat() == WeightFormat::int8 &&
      quant.getBlockK() < shape.reduction)
    return op->emitOpError()
           << "weight_quant format int8 is per-channel: block must be [1, "
              "bk] with bk >= K = "
           << shape.reduction << " of '" << weightsName << "', got ["
           << quant.getBlock() << "]";
  SmallVector<int64_t> scaleShape = weightScaleShape(quant, shape);
  bool panels = hasPanelScales(quant, shape);
  StringRef scaleForm = panels ? "4-D " : "3-D ";
  StringRef scaleDims = panels ? "[E, N / P, ceil(K / bk), P]"
                               : "[E, ceil(N / bn), ceil(K / bk)]";
  StringRef zeroDims =
      panels ? "[E, N / P, ceil(K / g), P]" : "[E, N, ceil(K / g)]";
  // The scale type unquoted, as in "a 3-D f32 tensor".
  std::string scaleElement;
  llvm::raw_string_ostream scaleElementOs(scaleElement);
  scaleElementOs << quant.getScaleElementType();
  if (!scales)
    return op->emitOpError()
           << "weight_quant needs the '" << scalesName << "' operand, a "
           << scaleForm << scaleElement << " tensor " << scaleDims << " = "
           << shapeString(scaleShape) << " for '" << weightsName << "'";
  if (!isTensorOf(scales, quant.getScaleElementType(), scaleShape))
    return op->emitOpError()
           << "'" << scalesName << "' must be a " << scaleForm << scaleElement
           << " tensor " << scaleDims << " = " << shapeString(scaleShape)
           << " for '" << weightsName << "' and block = [" << quant.getBlock()
           << "], got " << scales.getType();
  if (zeroPoints && !quant.allowsZeroPoints())
    return op->emitOpError() << "'" << zeroPointsName
                             << "' is used only with weight_quant format "
                                "int4, got format "
                             << format;
  if (zeroPoints &&
      !isTensorOf(zeroPoints, IntegerType::get(op->getContext(), 8),
                  scaleShape))
    return op->emitOpError()
           << "'" << zeroPointsName << "' must be a " << scaleForm
           << "i8 tensor " << zeroDims << " = " << shapeString(scaleShape)
           << " for '" << weightsName << "' and block = [" << quant.getBlock()
           << "], got " << zeroPoints.getType();
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
