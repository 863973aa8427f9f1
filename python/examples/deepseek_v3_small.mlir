// A small DeepSeek-V3-like layer: sigmoid scores with a correction bias,
// group-limited selection (8 groups, best 4 by the sum of their top-2 scores),
// top-8 renormalized with epsilon 1e-20 and scaled by 2.5, plus a shared
// expert. H = 64, I = 32, E = 32, k = 8, shared intermediate 64.
func.func @deepseek_v3_small(%x: tensor<?x64xf32>, %router: tensor<32x64xf32>,
                             %bias: tensor<32xf32>, %w13: tensor<32x64x64xf32>,
                             %w2: tensor<32x64x32xf32>, %shared_w13: tensor<128x64xf32>,
                             %shared_w2: tensor<64x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %tokens = tensor.dim %x, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%tokens) : tensor<?x64xf32>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xf32>, tensor<32x64xf32>,
                     tensor<32x64x64xf32>, tensor<32x64x32xf32>)
      bias(%bias : tensor<32xf32>)
      shared(%shared_w13, %shared_w2 : tensor<128x64xf32>, tensor<64x64xf32>)
      outs(%init : tensor<?x64xf32>)
      {k = 8 : i64, scoring = #moe.scoring<sigmoid>, n_group = 8 : i64,
       topk_group = 4 : i64, group_score = #moe.group_score<sum_top2>,
       renormalize, renorm_epsilon = 1.0e-20 : f64, scale = 2.5 : f64,
       activation = #moe.activation<silu>} -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// The layer's routing on its own, so the expert ids can be checked.
func.func @deepseek_v3_small_route(%logits: tensor<?x32xf32>, %bias: tensor<32xf32>)
    -> (tensor<?x8xf32>, tensor<?x8xi32>) {
  %w, %ids = moe.route %logits bias(%bias : tensor<32xf32>)
      {k = 8 : i64, scoring = #moe.scoring<sigmoid>, n_group = 8 : i64,
       topk_group = 4 : i64, group_score = #moe.group_score<sum_top2>,
       renormalize, renorm_epsilon = 1.0e-20 : f64, scale = 2.5 : f64}
      : tensor<?x32xf32> -> tensor<?x8xf32>, tensor<?x8xi32>
  return %w, %ids : tensor<?x8xf32>, tensor<?x8xi32>
}
