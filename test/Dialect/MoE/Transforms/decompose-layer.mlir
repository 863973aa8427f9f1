// RUN: moe-opt %s --moe-decompose-layer | FileCheck %s

// CHECK-LABEL: func.func @mixtral_like
// CHECK-SAME: (%[[X:.*]]: tensor<?x16xf32>, %[[ROUTER:.*]]: tensor<8x16xf32>, %[[W13:.*]]: tensor<8x24x16xf32>, %[[W2:.*]]: tensor<8x16x12xf32>, %[[INIT:.*]]: tensor<?x16xf32>)
// CHECK: %[[ROUTER3:.*]] = tensor.expand_shape %[[ROUTER]] {{\[\[}}0, 1], [2]] output_shape [1, 8, 16]
// CHECK: %[[ALL:.*]] = tensor.from_elements %{{.*}}, %{{.*}} : tensor<2xi32>
// CHECK: %[[LOGITS:.*]] = moe.grouped_matmul ins(%[[X]], %[[ROUTER3]], %[[ALL]] : tensor<?x16xf32>, tensor<1x8x16xf32>, tensor<2xi32>) {{.*}} -> tensor<?x8xf32>
// CHECK: %[[W:.*]], %[[IDS:.*]] = moe.route %[[LOGITS]] {k = 2 : i64, renormalize} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
// CHECK: %[[ROWS:.*]], %[[OFFSETS:.*]] = moe.dispatch %[[IDS]] weights(%[[W]] : tensor<?x2xf32>) {capacity = 3 : i64, num_experts = 8 : i64}
// CHECK: %[[XS:.*]] = moe.permute ins(%[[X]], %[[ROWS]] : tensor<?x16xf32>, tensor<?xi32>) {{.*}} {k = 2 : i64}
// CHECK: %[[H:.*]] = moe.grouped_matmul ins(%[[XS]], %[[W13]], %[[OFFSETS]] : tensor<?x16xf32>, tensor<8x24x16xf32>, tensor<9xi32>) {{.*}} -> tensor<?x24xf32>
// CHECK: %[[A:.*]] = moe.glu ins(%[[H]] : tensor<?x24xf32>) {{.*}} -> tensor<?x12xf32>
// CHECK: %[[YS:.*]] = moe.grouped_matmul ins(%[[A]], %[[W2]], %[[OFFSETS]] : tensor<?x12xf32>, tensor<8x16x12xf32>, tensor<9xi32>) {{.*}} -> tensor<?x16xf32>
// CHECK: %[[Y:.*]] = moe.combine ins(%[[YS]], %[[ROWS]], %[[W]] : tensor<?x16xf32>, tensor<?xi32>, tensor<?x2xf32>) outs(%[[INIT]] : tensor<?x16xf32>)
// CHECK: return %[[Y]]
// CHECK-NOT: moe.layer
func.func @mixtral_like(%x: tensor<?x16xf32>, %router: tensor<8x16xf32>, %w13: tensor<8x24x16xf32>, %w2: tensor<8x16x12xf32>, %init: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<8x16xf32>, tensor<8x24x16xf32>, tensor<8x16x12xf32>)
      outs(%init : tensor<?x16xf32>) {k = 2 : i64, renormalize, capacity = 3 : i64} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// The shared expert's projections are single-expert grouped matmuls; it is
// added in f32 before the cast to the output type.
// CHECK-LABEL: func.func @deepseek_like
// CHECK: moe.route %{{.*}} bias(%{{.*}} : tensor<8xf32>) {{{.*}}n_group = 4 : i64{{.*}}scoring = #moe.scoring<sigmoid>{{.*}}}
// CHECK: %[[ROUTED:.*]] = moe.combine {{.*}} -> tensor<4x16xf32>
// CHECK: %[[SH:.*]] = moe.glu ins(%{{.*}} : tensor<4x24xf32>) {{.*}} -> tensor<4x12xf32>
// CHECK: %[[GATE:.*]] = moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<4x16xbf16>, tensor<1x1x16xbf16>, tensor<2xi32>)
// CHECK: math.exp
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%[[ROUTED]], %{{.*}} : tensor<4x16xf32>, tensor<4x16xf32>) outs(%{{.*}} : tensor<4x16xbf16>)
// CHECK: arith.addf
// CHECK: arith.truncf
// CHECK: return %[[SUM]]
func.func @deepseek_like(%x: tensor<4x16xbf16>, %router: tensor<8x16xbf16>, %w13: tensor<8x24x16xbf16>, %w2: tensor<8x16x12xbf16>,
                         %bias: tensor<8xf32>, %sw13: tensor<24x16xbf16>, %sw2: tensor<16x12xbf16>, %gate: tensor<1x16xbf16>,
                         %init: tensor<4x16xbf16>) -> tensor<4x16xbf16> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<4x16xbf16>, tensor<8x16xbf16>, tensor<8x24x16xbf16>, tensor<8x16x12xbf16>)
      bias(%bias : tensor<8xf32>) shared(%sw13, %sw2 : tensor<24x16xbf16>, tensor<16x12xbf16>)
      shared_gate(%gate : tensor<1x16xbf16>) outs(%init : tensor<4x16xbf16>)
      {k = 2 : i64, scoring = #moe.scoring<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64,
       renormalize, renorm_epsilon = 1.0e-20 : f64, scale = 2.5 : f64} -> tensor<4x16xbf16>
  return %y : tensor<4x16xbf16>
}

// gpt-oss: the router bias goes to the router matmul as a [1, E] bias, the
// expert biases to the two grouped matmuls; the selection bias stays absent.
// CHECK-LABEL: func.func @gpt_oss_like
// CHECK-SAME: %[[BR:[^:]*]]: tensor<8xbf16>, %[[B13:[^:]*]]: tensor<8x24xbf16>, %[[B2:[^:]*]]: tensor<8x16xbf16>
// CHECK: %[[BR2:.*]] = tensor.expand_shape %[[BR]] {{\[\[}}0, 1]] output_shape [1, 8] : tensor<8xbf16> into tensor<1x8xbf16>
// CHECK: %[[LOGITS:.*]] = moe.grouped_matmul ins({{.*}} : tensor<?x16xbf16>, tensor<1x8x16xbf16>, tensor<2xi32>) bias(%[[BR2]] : tensor<1x8xbf16>) {{.*}} -> tensor<?x8xf32>
// CHECK: moe.route %[[LOGITS]] {k = 4 : i64, scoring = #moe.scoring<softmax_topk>}
// CHECK: %[[H:.*]] = moe.grouped_matmul ins({{.*}} : tensor<?x16xf32>, tensor<8x24x16xbf16>, tensor<9xi32>) bias(%[[B13]] : tensor<8x24xbf16>)
// CHECK: moe.glu ins(%[[H]] : tensor<?x24xf32>) {{.*}}activation = #moe.activation<swiglu_oai>{{.*}}glu_layout = #moe.glu_layout<interleaved>
// CHECK: moe.grouped_matmul ins({{.*}} : tensor<?x12xf32>, tensor<8x16x12xbf16>, tensor<9xi32>) bias(%[[B2]] : tensor<8x16xbf16>)
// CHECK: moe.combine
func.func @gpt_oss_like(%x: tensor<?x16xbf16>, %router: tensor<8x16xbf16>, %w13: tensor<8x24x16xbf16>, %w2: tensor<8x16x12xbf16>,
                        %br: tensor<8xbf16>, %b13: tensor<8x24xbf16>, %b2: tensor<8x16xbf16>,
                        %init: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xbf16>, tensor<8x16xbf16>, tensor<8x24x16xbf16>, tensor<8x16x12xbf16>)
      router_bias(%br : tensor<8xbf16>) w13_bias(%b13 : tensor<8x24xbf16>) w2_bias(%b2 : tensor<8x16xbf16>)
      outs(%init : tensor<?x16xbf16>)
      {k = 4 : i64, scoring = #moe.scoring<softmax_topk>, activation = #moe.activation<swiglu_oai>,
       glu_layout = #moe.glu_layout<interleaved>} -> tensor<?x16xbf16>
  return %y : tensor<?x16xbf16>
}

// Weight-only int4: each expert matmul gets the layer's attribute, its
// projection's scales and zero points; the activations stay as they are.
// CHECK-LABEL: func.func @int4_layer
// CHECK-SAME: %[[W13:[^:]*]]: tensor<8x24x8xi8>, %[[W2:[^:]*]]: tensor<8x16x6xi8>, %[[S13:[^:]*]]: tensor<8x24x1xf32>, %[[S2:[^:]*]]: tensor<8x16x1xf32>, %[[Z13:[^:]*]]: tensor<8x24x1xi8>, %[[Z2:[^:]*]]: tensor<8x16x1xi8>
// CHECK: moe.grouped_matmul ins(%{{.*}}, %[[W13]], %{{.*}} : {{.*}}) rhs_scales(%[[S13]] : tensor<8x24x1xf32>) rhs_zero_points(%[[Z13]] : tensor<8x24x1xi8>) {{.*}}weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>
// CHECK: moe.grouped_matmul ins(%{{.*}}, %[[W2]], %{{.*}} : {{.*}}) rhs_scales(%[[S2]] : tensor<8x16x1xf32>) rhs_zero_points(%[[Z2]] : tensor<8x16x1xi8>) {{.*}}weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>
func.func @int4_layer(%x: tensor<?x16xf32>, %router: tensor<8x16xf32>, %w13: tensor<8x24x8xi8>, %w2: tensor<8x16x6xi8>, %s13: tensor<8x24x1xf32>, %s2: tensor<8x16x1xf32>, %z13: tensor<8x24x1xi8>, %z2: tensor<8x16x1xi8>, %init: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<8x16xf32>, tensor<8x24x8xi8>, tensor<8x16x6xi8>)
      scales(%s13, %s2 : tensor<8x24x1xf32>, tensor<8x16x1xf32>)
      zero_points(%z13, %z2 : tensor<8x24x1xi8>, tensor<8x16x1xi8>)
      outs(%init : tensor<?x16xf32>) {k = 2 : i64, renormalize,
      weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
