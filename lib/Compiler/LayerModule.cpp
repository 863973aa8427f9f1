//===- LayerModule.cpp - The modules of a LayerSpec -----------------------===//

#include "moe/Compiler/LayerModule.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

Type elementType(Builder &b, llvm::StringRef dtype) {
  if (dtype == "bf16")
    return b.getBF16Type();
  if (dtype == "f16")
    return b.getF16Type();
  return b.getF32Type();
}

/// E experts' [N, K] weights in the spec's layout, as the function takes
/// them: mxfp4 weights as gpt-oss stores its `*_blocks`, [E, N, K / 32, 16]
/// (weightOperand views them as [E, N, K / 2]), the other packed 4-bit
/// weights as [E, N, K / 2] bytes.
RankedTensorType weightType(const LayerSpec &spec, int64_t n, int64_t k,
                            Type element) {
  int64_t e = spec.experts, p = layerPanelWidth(spec, n);
  // Quantized panels hold the stored bytes: K / 2 of them for 4-bit codes.
  if (spec.weightQuant != "none" && spec.weightLayout == "panels") {
    bool packed = spec.weightQuant == "mxfp4" || spec.weightQuant == "int4";
    return RankedTensorType::get({e, n / p, packed ? k / 2 : k, p}, element);
  }
  if (spec.weightQuant == "mxfp4")
    return RankedTensorType::get({e, n, k / 32, 16}, element);
  if (spec.weightQuant == "int4")
    return RankedTensorType::get({e, n, k / 2}, element);
  if (spec.weightLayout == "kn")
    return RankedTensorType::get({e, k, n}, element);
  if (spec.weightLayout == "panels")
    return RankedTensorType::get({e, n / p, k, p}, element);
  if (spec.weightLayout == "panels_vnni")
    return RankedTensorType::get({e, n / p, k / 2, 2 * p}, element);
  return RankedTensorType::get({e, n, k}, element);
}

/// The weights operand of an expert matmul: the argument itself, or
/// gpt-oss's [E, N, K / 32, 16] blocks as the [E, N, K / 2] bytes they are.
Value weightOperand(OpBuilder &b, Location loc, const LayerSpec &spec,
                    Value argument) {
  if (spec.weightQuant != "mxfp4" || spec.weightLayout == "panels")
    return argument;
  auto type = cast<RankedTensorType>(argument.getType());
  ArrayRef<int64_t> shape = type.getShape();
  return tensor::CollapseShapeOp::create(
      b, loc,
      RankedTensorType::get({shape[0], shape[1], shape[2] * shape[3]},
                            type.getElementType()),
      argument, ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
}

/// The layer's #moe.weight_quant, or null for float weights.
WeightQuantAttr weightQuant(Builder &b, const LayerSpec &spec) {
  MLIRContext *ctx = b.getContext();
  if (spec.weightQuant == "fp8_e4m3") {
    ActivationQuant activation = spec.activationQuant == "static"
                                     ? ActivationQuant::static_
                                     : ActivationQuant::dynamic;
    return WeightQuantAttr::get(ctx, WeightFormat::fp8_e4m3,
                                {spec.blockN, spec.blockK}, activation);
  }
  std::optional<WeightFormat> format = symbolizeWeightFormat(spec.weightQuant);
  if (!format)
    return nullptr;
  auto [bn, bk] = effectiveBlock(spec);
  return WeightQuantAttr::get(ctx, *format, {bn, bk}, ActivationQuant::none);
}

/// The quantization arguments after the others: w13_scales, w2_scales;
/// for static FP8 activations w13_input_scale and w2_input_scale; for
/// asymmetric int4 w13_zero_points and w2_zero_points.
void appendScaleTypes(Builder &b, const LayerSpec &spec, WeightQuantAttr quant,
                      SmallVectorImpl<Type> &argTypes) {
  if (!quant)
    return;
  int64_t H = spec.hidden, I = spec.intermediate, E = spec.experts;
  // In panels the weight-only formats' scales and zero points are panels too,
  // as wide as their weights'.
  auto panelWidth = [&](int64_t n) {
    return spec.weightLayout == "panels" ? layerPanelWidth(spec, n) : 0;
  };
  for (auto [n, k] : {std::pair(2 * I, H), {H, I}})
    argTypes.push_back(RankedTensorType::get(
        weightScaleShape(quant, WeightShape{E, n, k, panelWidth(n)}),
        quant.getScaleElementType()));
  if (quant.getActivation() == ActivationQuant::static_)
    argTypes.append(2, RankedTensorType::get({1}, b.getF32Type()));
  if (spec.zeroPoints)
    for (auto [n, k] : {std::pair(2 * I, H), {H, I}})
      argTypes.push_back(RankedTensorType::get(
          weightScaleShape(quant, WeightShape{E, n, k, panelWidth(n)}),
          b.getI8Type()));
}

/// The quantization arguments from `first` on (null values without
/// `quant`).
struct QuantOperands {
  Value w13, w2, w13Input, w2Input, w13Zero, w2Zero;
};
QuantOperands quantOperands(const LayerSpec &spec, WeightQuantAttr quant,
                            ValueRange args, unsigned first) {
  QuantOperands result;
  if (!quant)
    return result;
  result.w13 = args[first++];
  result.w2 = args[first++];
  if (quant.getActivation() == ActivationQuant::static_) {
    result.w13Input = args[first++];
    result.w2Input = args[first++];
  }
  if (spec.zeroPoints) {
    result.w13Zero = args[first++];
    result.w2Zero = args[first++];
  }
  return result;
}

/// Gives an expert matmul the layer's quantization, its scales and zero
/// points.
void quantize(GroupedMatmulOp matmul, WeightQuantAttr quant, Value scales,
              Value inputScale, Value zeroPoints) {
  if (!quant)
    return;
  matmul.setWeightQuantAttr(quant);
  matmul.getRhsScalesMutable().assign(scales);
  if (inputScale)
    matmul.getLhsScalesMutable().assign(inputScale);
  if (zeroPoints)
    matmul.getRhsZeroPointsMutable().assign(zeroPoints);
}

/// A tensor.empty of `shape` whose dynamic sizes are those of `dynamic`.
Value empty(OpBuilder &b, Location loc, ArrayRef<int64_t> shape, Type element,
            ValueRange dynamic) {
  return tensor::EmptyOp::create(b, loc, shape, element, dynamic);
}

/// The expert half's settings as the ops' enums. A name that is no enum
/// value has no attribute to build (the rest of the checks are the
/// verifier's).
struct ExpertSettings {
  DropPolicy dropPolicy;
  Activation activation;
  RhsLayout weightLayout;
  GluLayout gluLayout;
};
std::optional<ExpertSettings> expertSettings(const LayerSpec &spec) {
  std::optional<DropPolicy> dropPolicy = symbolizeDropPolicy(spec.dropPolicy);
  std::optional<Activation> activation = symbolizeActivation(spec.activation);
  std::optional<RhsLayout> weightLayout = symbolizeRhsLayout(spec.weightLayout);
  std::optional<GluLayout> gluLayout = symbolizeGluLayout(spec.gluLayout);
  if (!dropPolicy || !activation || !weightLayout || !gluLayout ||
      spec.hidden < 1 || spec.intermediate < 1 || spec.experts < 1)
    return std::nullopt;
  return ExpertSettings{*dropPolicy, *activation, *weightLayout, *gluLayout};
}

/// An empty module, the dialects its ops need loaded and `b` at its end.
OwningOpRef<ModuleOp> startModule(OpBuilder &b, Location loc) {
  loc.getContext()
      ->loadDialect<arith::ArithDialect, func::FuncDialect,
                    tensor::TensorDialect, MoEDialect>();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  return module;
}

} // namespace

OwningOpRef<ModuleOp> mlir::moe::buildExpertsModule(const LayerSpec &spec,
                                                    llvm::StringRef name,
                                                    Location loc) {
  MLIRContext *ctx = loc.getContext();
  std::optional<ExpertSettings> settings = expertSettings(spec);
  if (!settings || spec.k < 1) {
    emitError(loc) << "the layer spec was not validated (validateLayerSpec)";
    return nullptr;
  }
  OpBuilder b(ctx);
  OwningOpRef<ModuleOp> module = startModule(b, loc);

  int64_t H = spec.hidden, I = spec.intermediate, E = spec.experts, k = spec.k,
          dyn = ShapedType::kDynamic;
  Type dt = elementType(b, spec.dtype), f32 = b.getF32Type(),
       i32 = b.getI32Type();
  auto xType = RankedTensorType::get({dyn, H}, dt);
  auto idsType = RankedTensorType::get({dyn, k}, i32);
  auto weightsType = RankedTensorType::get({dyn, k}, f32);
  WeightQuantAttr quant = weightQuant(b, spec);
  Type wt = quant ? quant.getWeightElementType() : dt;
  SmallVector<Type> argTypes = {xType, idsType, weightsType,
                                weightType(spec, 2 * I, H, wt),
                                weightType(spec, H, I, wt)};
  if (spec.expertBias)
    argTypes.append({RankedTensorType::get({E, 2 * I}, dt),
                     RankedTensorType::get({E, H}, dt)});
  appendScaleTypes(b, spec, quant, argTypes);
  auto func =
      func::FuncOp::create(b, loc, name, b.getFunctionType(argTypes, {xType}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value x = entry->getArgument(0), ids = entry->getArgument(1),
        weights = entry->getArgument(2),
        w13 = weightOperand(b, loc, spec, entry->getArgument(3)),
        w2 = weightOperand(b, loc, spec, entry->getArgument(4));
  Value w13Bias, w2Bias;
  unsigned next = 5;
  if (spec.expertBias) {
    w13Bias = entry->getArgument(next++);
    w2Bias = entry->getArgument(next++);
  }
  QuantOperands scales =
      quantOperands(spec, quant, entry->getArguments(), next);

  // The weights go to the dispatch as well: drop_policy = score ranks an
  // overflowing expert's selections by them.
  IntegerAttr capacity =
      spec.capacity ? b.getI64IntegerAttr(*spec.capacity) : IntegerAttr();
  FloatAttr capacityFactor = spec.capacityFactor
                                 ? b.getF64FloatAttr(*spec.capacityFactor)
                                 : FloatAttr();
  auto dispatch = DispatchOp::create(
      b, loc, RankedTensorType::get({dyn}, i32),
      RankedTensorType::get({E + 1}, i32), ids, weights,
      /*expert_map=*/Value(), b.getI64IntegerAttr(E), capacity, capacityFactor,
      DropPolicyAttr::get(ctx, settings->dropPolicy));
  Value rows = dispatch.getRows(), offsets = dispatch.getOffsets();
  Value m = tensor::DimOp::create(b, loc, rows, 0);

  // Intermediates in f32, as moe-decompose-layer builds the layer's, so the
  // two entries round alike.
  auto rowsOf = [&](int64_t width) {
    return RankedTensorType::get({dyn, width}, f32);
  };
  Value xs =
      PermuteOp::create(b, loc, rowsOf(H), x, rows,
                        empty(b, loc, {dyn, H}, f32, m), b.getI64IntegerAttr(k))
          .getResult();
  auto h13 = GroupedMatmulOp::create(b, loc, rowsOf(2 * I), xs, w13, offsets,
                                     empty(b, loc, {dyn, 2 * I}, f32, m),
                                     settings->weightLayout, w13Bias);
  quantize(h13, quant, scales.w13, scales.w13Input, scales.w13Zero);
  Value h = h13.getResult();
  Value act =
      GluOp::create(b, loc, rowsOf(I), h, empty(b, loc, {dyn, I}, f32, m),
                    settings->activation, settings->gluLayout,
                    llvm::APFloat(spec.alpha), llvm::APFloat(spec.limit))
          .getResult();
  auto h2 = GroupedMatmulOp::create(b, loc, rowsOf(H), act, w2, offsets,
                                    empty(b, loc, {dyn, H}, f32, m),
                                    settings->weightLayout, w2Bias);
  quantize(h2, quant, scales.w2, scales.w2Input, scales.w2Zero);
  Value ys = h2.getResult();
  Value tokens = tensor::DimOp::create(b, loc, x, 0);
  Value y = CombineOp::create(b, loc, xType, ys, rows, weights,
                              empty(b, loc, {dyn, H}, dt, tokens))
                .getResult();
  func::ReturnOp::create(b, loc, y);
  if (failed(verify(*module)))
    return nullptr;
  return module;
}

OwningOpRef<ModuleOp> mlir::moe::buildLayerModule(const LayerSpec &spec,
                                                  llvm::StringRef name,
                                                  Location loc) {
  MLIRContext *ctx = loc.getContext();
  std::optional<Scoring> scoring = symbolizeScoring(spec.scoring);
  std::optional<GroupScore> groupScore = symbolizeGroupScore(spec.groupScore);
  std::optional<ExpertSettings> settings = expertSettings(spec);
  if (!scoring || !groupScore || !settings || spec.sharedIntermediate < 0) {
    emitError(loc) << "the layer spec was not validated (validateLayerSpec)";
    return nullptr;
  }
  OpBuilder b(ctx);
  OwningOpRef<ModuleOp> module = startModule(b, loc);

  int64_t H = spec.hidden, I = spec.intermediate, E = spec.experts;
  Type dt = elementType(b, spec.dtype);
  auto xType = RankedTensorType::get({ShapedType::kDynamic, H}, dt);
  WeightQuantAttr quant = weightQuant(b, spec);
  Type wt = quant ? quant.getWeightElementType() : dt;
  SmallVector<Type> argTypes = {xType, RankedTensorType::get({E, H}, dt),
                                weightType(spec, 2 * I, H, wt),
                                weightType(spec, H, I, wt)};
  if (spec.bias)
    argTypes.push_back(RankedTensorType::get({E}, b.getF32Type()));
  if (spec.routerBias)
    argTypes.push_back(RankedTensorType::get({E}, dt));
  if (spec.expertBias)
    argTypes.append({RankedTensorType::get({E, 2 * I}, dt),
                     RankedTensorType::get({E, H}, dt)});
  if (spec.sharedIntermediate > 0) {
    int64_t Is = spec.sharedIntermediate;
    argTypes.push_back(RankedTensorType::get({2 * Is, H}, dt));
    argTypes.push_back(RankedTensorType::get({H, Is}, dt));
    if (spec.sharedGate)
      argTypes.push_back(RankedTensorType::get({1, H}, dt));
  }
  appendScaleTypes(b, spec, quant, argTypes);
  auto func =
      func::FuncOp::create(b, loc, name, b.getFunctionType(argTypes, {xType}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  auto args = entry->getArguments();
  Value bias, routerBias, w13Bias, w2Bias, sharedW13, sharedW2, sharedGate;
  unsigned next = 4;
  if (spec.bias)
    bias = args[next++];
  if (spec.routerBias)
    routerBias = args[next++];
  if (spec.expertBias) {
    w13Bias = args[next++];
    w2Bias = args[next++];
  }
  if (spec.sharedIntermediate > 0) {
    sharedW13 = args[next++];
    sharedW2 = args[next++];
    if (spec.sharedGate)
      sharedGate = args[next++];
  }
  QuantOperands scales = quantOperands(spec, quant, args, next);

  Value tokens = tensor::DimOp::create(b, loc, args[0], 0);
  Value init =
      tensor::EmptyOp::create(b, loc, xType.getShape(), dt, ValueRange{tokens});
  IntegerAttr capacity =
      spec.capacity ? b.getI64IntegerAttr(*spec.capacity) : IntegerAttr();
  FloatAttr capacityFactor = spec.capacityFactor
                                 ? b.getF64FloatAttr(*spec.capacityFactor)
                                 : FloatAttr();
  auto layer = LayerOp::create(
      b, loc, xType, args[0], args[1], weightOperand(b, loc, spec, args[2]),
      weightOperand(b, loc, spec, args[3]), bias, routerBias, w13Bias, w2Bias,
      sharedW13, sharedW2, sharedGate, scales.w13, scales.w2, scales.w13Input,
      scales.w2Input, scales.w13Zero, scales.w2Zero, init, spec.k, *scoring,
      spec.nGroup, spec.topkGroup, *groupScore, spec.renormalize,
      llvm::APFloat(spec.renormEpsilon), llvm::APFloat(spec.scale),
      SecondExpertPolicy::all, /*seed=*/0, capacity, capacityFactor,
      settings->dropPolicy, settings->activation, settings->weightLayout, quant,
      settings->gluLayout, llvm::APFloat(spec.alpha),
      llvm::APFloat(spec.limit));
  func::ReturnOp::create(b, loc, layer.getResult());
  if (failed(verify(*module)))
    return nullptr;
  return module;
}
