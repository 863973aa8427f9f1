//===- MoEOps.td - Operations of the moe dialect -----------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEOpBase.td"
include "moe/Dialect/MoE/IR/MoERoutingOps.td"
include "moe/Dialect/MoE/IR/MoEExpertOps.td"
include "moe/Dialect/MoE/IR/MoEVectorOps.td"

//===----------------------------------------------------------------------===//
// Whole layer
//===----------------------------------------------------------------------===//

def MoE_LayerOp : MoE_DpsOp<"layer", [AttrSizedOperandSegments]> {
  let summary = "a whole MoE layer, from hidden states to the combined output";
  let description = [{
    `x` `[T, H]`, `router` `[E, H]`, optional `bias` `[E]`, `w13` `[E, 2I, H]`
    (gate and up), `w2` `[E, H, I]`, and an optional shared expert
    (`shared_w13` `[2Is, H]`, `shared_w2` `[H, Is]`, optional sigmoid gate
    `shared_gate` `[1, H]`) to `y` `[T, H]`. Takes every routing, capacity and
    activation attribute. `moe-decompose-layer` rewrites it into the router
    matmul and the unfused ops; `y` is the combine plus the shared expert.
    `weight_layout` is the `rhs_layout` of the routed experts' `w13` and `w2`
    (`[E, 2I / P, H, P]` and `[E, H / P, I, P]` for `panels`,
    `[E, 2I / P, H / 2, 2P]` and `[E, H / P, I / 2, 2P]` for `panels_vnni`); the shared
    expert stays in the Linear layout.

    `bias` is the selection bias of `moe.route` (DeepSeek-V3's correction
    bias: it picks experts, never weights them). The Linear biases of gpt-oss
    are separate operands, each optional:
    - `router_bias` `[E]`: the router logits are `x . router^T +
      router_bias` (gpt-oss's `router.bias`), before any scoring;
    - `w13_bias` `[E, 2I]`: added to the gate/up projection before the
      activation, in the `glu_layout` order (`experts.gate_up_proj_bias`);
    - `w2_bias` `[E, H]`: added to the down projection, before the routing
      weight scales the expert's output (`experts.down_proj_bias`).
    Biases are f32, bf16 or f16 and are added in f32.

    With `weight_quant`, `w13` and `w2` hold quantized weights and
    `scales(%s13, %s2)` their scales (`[E, ceil(2I / bn), ceil(H / bk)]`
    and `[E, ceil(H / bn), ceil(I / bk)]`); `activation = static` takes
    `input_scales(%i13, %i2)`, each `[1]`. Both grouped matmuls quantize
    their inputs (x, and the GLU output). The shared expert is not
    quantized.

    ```mlir
    %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x256xbf16>,
        tensor<8x256xbf16>, tensor<8x512x256xf8E4M3FN>,
        tensor<8x256x256xf8E4M3FN>)
        scales(%s13, %s2 : tensor<8x4x2xf32>, tensor<8x2x2xf32>)
        outs(%init : tensor<?x256xbf16>) {k = 2 : i64, renormalize,
        weight_quant = #moe.weight_quant<format = fp8_e4m3,
        block = [128, 128], activation = dynamic>} -> tensor<?x256xbf16>
    ```

    ```mlir
    %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xf32>,
        tensor<8x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>)
        outs(%init : tensor<?x64xf32>) {k = 2 : i64, renormalize}
        -> tensor<?x64xf32>
    ```

    gpt-oss (router and expert biases, interleaved gate/up, clamped SwiGLU):

    ```mlir
    %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>,
        tensor<8x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>)
        router_bias(%br : tensor<8xbf16>)
        w13_bias(%b13 : tensor<8x256xbf16>) w2_bias(%b2 : tensor<8x64xbf16>)
        outs(%init : tensor<?x64xbf16>)
        {k = 4 : i64, scoring = #moe.scoring<softmax_topk>,
         activation = #moe.activation<swiglu_oai>,
         glu_layout = #moe.glu_layout<interleaved>}
        -> tensor<?x64xbf16>
    ```
  }];
  let arguments = !con((ins AnyRankedTensor:$x, AnyRankedTensor:$router,
                            AnyRankedTensor:$w13, AnyRankedTensor:$w2,
                            Optional<AnyRankedTensor>:$bias,
                            Optional<AnyRankedTensor>:$router_bias,
                            Optional<AnyRankedTensor>:$w13_bias,
                            Optional<AnyRankedTensor>:$w2_bias,
                            Optional<AnyRankedTensor>:$shared_w13,
                            Optional<AnyRankedTensor>:$shared_w2,
                            Optional<AnyRankedTensor>:$shared_gate,
                            Optional<AnyRankedTensor>:$w13_scales,
                            Optional<AnyRankedTensor>:$w2_scales,
                            Optional<AnyRankedTensor>:$w13_input_scales,
                            Optional<AnyRankedTensor>:$w2_input_scales,
                            Optional<AnyRankedTensor>:$w13_zero_points,
                            Optional<AnyRankedTensor>:$w2_zero_points,
                            AnyRankedTensor:$init),
                       MoE_RoutingArgs, MoE_CapacityArgs,
                       (ins DefaultValuedAttr<MoE_ActivationAttr,
                                "::mlir::moe::Activation::silu">:$activation,
                            DefaultValuedAttr<MoE_RhsLayoutAttr,
                                "::mlir::moe::RhsLayout::nk">:$weight_layout,
                            OptionalAttr<MoE_WeightQuantAttr>:$weight_quant),
                       MoE_GluArgs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    `ins` `(` $x `,` $router `,` $w13 `,` $w2 `:` type($x) `,` type($router)
      `,` type($w13) `,` type($w2) `)`
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`router_bias` `(` $router_bias^ `:` type($router_bias) `)`)?
    (`w13_bias` `(` $w13_bias^ `:` type($w13_bias) `)`)?
    (`w2_bias` `(` $w2_bias^ `:` type($w2_bias) `)`)?
    (`shared` `(` $shared_w13^ `,` $shared_w2 `:` type($shared_w13) `,`
      type($shared_w2) `)`)?
    (`shared_gate` `(` $shared_gate^ `:` type($shared_gate) `)`)?
    (`scales` `(` $w13_scales^ `,` $w2_scales `:` type($w13_scales) `,`
      type($w2_scales) `)`)?
    (`input_scales` `(` $w13_input_scales^ `,` $w2_input_scales `:`
      type($w13_input_scales) `,` type($w2_input_scales) `)`)?
    (`zero_points` `(` $w13_zero_points^ `,` $w2_zero_points `:`
      type($w13_zero_points) `,` type($w2_zero_points) `)`)?
    `outs` `(` $init `:` type($init) `)` attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Training-side values
//===----------------------------------------------------------------------===//

def MoE_AuxLossOp : MoE_Op<"aux_loss", [Pure]> {
  let summary = "Switch/GShard load-balancing loss";
  let description = [{
    `E * sum_e f_e * P_e`, where `f_e` is the number of selections of expert
    e in `ids` `[T, k]` divided by T, and `P_e` is the mean over tokens of
    softmax(`logits` `[T, E]`)[t, e]. Ids outside `[0, E)` are not counted.

    ```mlir
    %l = moe.aux_loss %logits, %ids : tensor<16x8xf32>, tensor<16x2xi32>
        -> tensor<f32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$ids);
  let results = (outs AnyRankedTensor:$loss);
  let assemblyFormat = [{
    $logits `,` $ids attr-dict `:` type($logits) `,` type($ids) `->` type($loss)
  }];
  let hasVerifier = 1;
}

def MoE_ZLossOp : MoE_Op<"z_loss", [Pure]> {
  let summary = "router z-loss: mean of squared logsumexp";
  let description = [{
    The mean over tokens of `logsumexp(logits[t])^2` for `logits` `[T, E]`.

    ```mlir
    %l = moe.z_loss %logits : tensor<16x8xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$logits);
  let results = (outs AnyRankedTensor:$loss);
  let assemblyFormat = "$logits attr-dict `:` type($logits) `->` type($loss)";
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
