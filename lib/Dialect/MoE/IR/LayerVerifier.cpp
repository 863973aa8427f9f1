//===- LayerVerifier.cpp - The verifier of moe.layer ---===//
//
// Every diagnostic names the offending operand or attribute and says what was
// expected, so a user can fix the IR without reading this file.
//
//===----------------------------------------------------------------------===//

#include "TensorChecks.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::checks;

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
  WeightQuantAttr quant = getWeightQuantAttr();
  StringRef layout = stringifyRhsLayout(getWeightLayout());
  FailureOr<WeightShape> w13 = verifyQuantizedWeights(
      c, *this, getW13(), "w13", getWeightLayout(), "weight_layout", quant);
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
  FailureOr<WeightShape> w2 = verifyQuantizedWeights(
      c, *this, getW2(), "w2", getWeightLayout(), "weight_layout", quant);
  if (failed(w2))
    return failure();
  if (w2->experts != numExperts || w2->columns != hidden ||
      w2->reduction != inter)
    return emitOpError() << "'w2' must hold E = " << numExperts
                         << " experts' [H = " << hidden << ", I = " << inter
                         << "] weights in the " << layout << " layout, got "
                         << getW2().getType();
  // Both projections are quantized alike: asymmetric int4 has zero points
  // for both, the symmetric form for neither.
  if (static_cast<bool>(getW13ZeroPoints()) !=
      static_cast<bool>(getW2ZeroPoints()))
    return emitOpError() << "'w13_zero_points' and 'w2_zero_points' go "
                            "together";
  if (failed(verifyWeightQuantOperands(
          *this, quant, *w13, getW13(), "w13", getW13Scales(), "w13_scales",
          getW13InputScales(), "w13_input_scales", getW13ZeroPoints(),
          "w13_zero_points")) ||
      failed(verifyWeightQuantOperands(*this, quant, *w2, getW2(), "w2",
                                       getW2Scales(), "w2_scales",
                                       getW2InputScales(), "w2_input_scales",
                                       getW2ZeroPoints(), "w2_zero_points")))
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
