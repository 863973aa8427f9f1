// bf16-weight-only-glu: a layer with bf16 activations and weight-only
// quantized experts makes its GLU output bf16 (the down projection's
// activations); f32 activations, FP8 experts and the default keep it f32.
// RUN: moe-opt %s --moe-decompose-layer="bf16-weight-only-glu" | FileCheck %s --check-prefixes=CHECK,ROUND
// RUN: moe-opt %s --moe-decompose-layer | FileCheck %s --check-prefixes=CHECK,KEEP

// CHECK-LABEL: func.func @mxfp4_bf16
// ROUND: moe.glu ins(%{{.*}} : tensor<?x64xf32>) outs(%{{.*}} : tensor<?x32xbf16>)
// ROUND: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x32xbf16>,
// KEEP: moe.glu ins(%{{.*}} : tensor<?x64xf32>) outs(%{{.*}} : tensor<?x32xf32>)
func.func @mxfp4_bf16(%x: tensor<?x64xbf16>, %router: tensor<4x64xbf16>, %w13: tensor<4x64x32xi8>, %w2: tensor<4x64x16xi8>, %s13: tensor<4x64x2xf8E8M0FNU>, %s2: tensor<4x64x1xf8E8M0FNU>, %init: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>, tensor<4x64xbf16>, tensor<4x64x32xi8>, tensor<4x64x16xi8>)
      scales(%s13, %s2 : tensor<4x64x2xf8E8M0FNU>, tensor<4x64x1xf8E8M0FNU>)
      outs(%init : tensor<?x64xbf16>) {k = 2 : i64,
      weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// CHECK-LABEL: func.func @int8_f32
// CHECK: moe.glu ins(%{{.*}} : tensor<?x12xf32>) outs(%{{.*}} : tensor<?x6xf32>)
func.func @int8_f32(%x: tensor<?x16xf32>, %router: tensor<4x16xf32>, %w13: tensor<4x12x16xi8>, %w2: tensor<4x16x6xi8>, %s13: tensor<4x12x1xf32>, %s2: tensor<4x16x1xf32>, %init: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x12x16xi8>, tensor<4x16x6xi8>)
      scales(%s13, %s2 : tensor<4x12x1xf32>, tensor<4x16x1xf32>)
      outs(%init : tensor<?x16xf32>) {k = 2 : i64,
      weight_quant = #moe.weight_quant<format = int8, block = [1, 16], activation = none>} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
