// A small Mixtral-like layer: softmax top-2 routing with renormalization,
// SwiGLU experts. H = 128, I = 224, E = 8, k = 2; the token count is dynamic.
func.func @mixtral_small(%x: tensor<?x128xf32>, %router: tensor<8x128xf32>,
                         %w13: tensor<8x448x128xf32>, %w2: tensor<8x128x224xf32>)
    -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %tokens = tensor.dim %x, %c0 : tensor<?x128xf32>
  %init = tensor.empty(%tokens) : tensor<?x128xf32>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x128xf32>, tensor<8x128xf32>,
                     tensor<8x448x128xf32>, tensor<8x128x224xf32>)
      outs(%init : tensor<?x128xf32>)
      {k = 2 : i64, scoring = #moe.scoring<softmax>, renormalize,
       activation = #moe.activation<silu>} -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// The layer's routing on its own, so the expert ids can be checked.
func.func @mixtral_small_route(%logits: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %ids = moe.route %logits {k = 2 : i64, scoring = #moe.scoring<softmax>, renormalize}
      : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %ids : tensor<?x2xf32>, tensor<?x2xi32>
}
