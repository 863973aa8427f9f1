// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// CHECK-LABEL: func.func @route_softmax
// CHECK: moe.route %{{.*}} {k = 2 : i64, renormalize} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
func.func @route_softmax(%logits: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %ids = moe.route %logits {k = 2 : i64, renormalize} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %ids : tensor<?x2xf32>, tensor<?x2xi32>
}

// CHECK-LABEL: func.func @route_deepseek
// CHECK-SAME: (%[[LOGITS:.*]]: tensor<?x256xf32>, %[[BIAS:.*]]: tensor<256xf32>)
// CHECK: moe.route %[[LOGITS]] bias(%[[BIAS]] : tensor<256xf32>)
// CHECK-SAME: n_group = 8 : i64
// CHECK-SAME: renorm_epsilon = 9.9999999999999995E-21 : f64
// CHECK-SAME: scale = 2.500000e+00 : f64
// CHECK-SAME: scoring = #moe.scoring<sigmoid>
// CHECK-SAME: topk_group = 4 : i64
func.func @route_deepseek(%logits: tensor<?x256xf32>, %bias: tensor<256xf32>) -> (tensor<?x8xf32>, tensor<?x8xi32>) {
  %w, %ids = moe.route %logits bias(%bias : tensor<256xf32>)
      {k = 8 : i64, scoring = #moe.scoring<sigmoid>, n_group = 8 : i64,
       topk_group = 4 : i64, group_score = #moe.group_score<sum_top2>, renormalize,
       renorm_epsilon = 1.0e-20 : f64, scale = 2.5 : f64}
      : tensor<?x256xf32> -> tensor<?x8xf32>, tensor<?x8xi32>
  return %w, %ids : tensor<?x8xf32>, tensor<?x8xi32>
}

// CHECK-LABEL: func.func @route_gshard
// CHECK: second_expert_policy = #moe.second_expert_policy<random>
// CHECK-SAME: seed = 7 : i64
func.func @route_gshard(%logits: tensor<16x8xf32>) -> (tensor<16x2xf32>, tensor<16x2xi32>) {
  %w, %ids = moe.route %logits {k = 2 : i64, renormalize,
      second_expert_policy = #moe.second_expert_policy<random>, seed = 7 : i64}
      : tensor<16x8xf32> -> tensor<16x2xf32>, tensor<16x2xi32>
  return %w, %ids : tensor<16x2xf32>, tensor<16x2xi32>
}

// CHECK-LABEL: func.func @route_gpt_oss
// CHECK: scoring = #moe.scoring<softmax_topk>
func.func @route_gpt_oss(%logits: tensor<?x32xf32>) -> (tensor<?x4xf32>, tensor<?x4xi32>) {
  %w, %ids = moe.route %logits {k = 4 : i64, scoring = #moe.scoring<softmax_topk>}
      : tensor<?x32xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
  return %w, %ids : tensor<?x4xf32>, tensor<?x4xi32>
}

// CHECK-LABEL: func.func @expert_choice
// CHECK: moe.expert_choice %{{.*}} {capacity = 4 : i64} : tensor<16x8xf32> -> tensor<16x8xf32>, tensor<32xi32>, tensor<9xi32>
func.func @expert_choice(%logits: tensor<16x8xf32>) -> (tensor<16x8xf32>, tensor<32xi32>, tensor<9xi32>) {
  %w, %rows, %offsets = moe.expert_choice %logits {capacity = 4 : i64}
      : tensor<16x8xf32> -> tensor<16x8xf32>, tensor<32xi32>, tensor<9xi32>
  return %w, %rows, %offsets : tensor<16x8xf32>, tensor<32xi32>, tensor<9xi32>
}

// CHECK-LABEL: func.func @dispatch_capacity
// CHECK: moe.dispatch %{{.*}} weights(%{{.*}} : tensor<?x2xf32>) {capacity = 3 : i64, drop_policy = #moe.drop_policy<score>, num_experts = 8 : i64}
func.func @dispatch_capacity(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> (tensor<?xi32>, tensor<9xi32>) {
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
      {num_experts = 8 : i64, capacity = 3 : i64, drop_policy = #moe.drop_policy<score>}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<9xi32>
}

// CHECK-LABEL: func.func @dispatch_expert_map
// CHECK: moe.dispatch %{{.*}} expert_map(%{{.*}} : tensor<8xi32>) {capacity_factor = 1.250000e+00 : f64, num_experts = 8 : i64}
func.func @dispatch_expert_map(%ids: tensor<16x2xi32>, %map: tensor<8xi32>) -> (tensor<32xi32>, tensor<5xi32>) {
  %rows, %offsets = moe.dispatch %ids expert_map(%map : tensor<8xi32>)
      {num_experts = 8 : i64, capacity_factor = 1.25 : f64}
      : tensor<16x2xi32> -> tensor<32xi32>, tensor<5xi32>
  return %rows, %offsets : tensor<32xi32>, tensor<5xi32>
}

// CHECK-LABEL: func.func @permute
// CHECK: moe.permute ins(%{{.*}}, %{{.*}} : tensor<16x64xbf16>, tensor<32xi32>) outs(%{{.*}} : tensor<32x64xbf16>) {k = 2 : i64} -> tensor<32x64xbf16>
func.func @permute(%x: tensor<16x64xbf16>, %rows: tensor<32xi32>, %init: tensor<32x64xbf16>) -> tensor<32x64xbf16> {
  %xs = moe.permute ins(%x, %rows : tensor<16x64xbf16>, tensor<32xi32>)
      outs(%init : tensor<32x64xbf16>) {k = 2 : i64} -> tensor<32x64xbf16>
  return %xs : tensor<32x64xbf16>
}

// CHECK-LABEL: func.func @grouped_matmul
// CHECK: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<32x64xf32>, tensor<8x256x64xf32>, tensor<9xi32>) outs(%{{.*}} : tensor<32x256xf32>) -> tensor<32x256xf32>
func.func @grouped_matmul(%xs: tensor<32x64xf32>, %w13: tensor<8x256x64xf32>, %offsets: tensor<9xi32>, %init: tensor<32x256xf32>) -> tensor<32x256xf32> {
  %h = moe.grouped_matmul ins(%xs, %w13, %offsets : tensor<32x64xf32>, tensor<8x256x64xf32>, tensor<9xi32>)
      outs(%init : tensor<32x256xf32>) -> tensor<32x256xf32>
  return %h : tensor<32x256xf32>
}

// CHECK-LABEL: func.func @grouped_matmul_fused
// CHECK: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<16x64xbf16>, tensor<8x64x256xbf16>, tensor<9xi32>) rows(%{{.*}} : tensor<32xi32>) row_scale(%{{.*}} : tensor<16x2xf32>) outs(%{{.*}} : tensor<32x128xf32>)
// CHECK-SAME: epilogue = #moe.activation<swiglu_oai>
// CHECK-SAME: gather
// CHECK-SAME: glu_layout = #moe.glu_layout<interleaved>
// CHECK-SAME: rhs_layout = #moe.rhs_layout<kn>
func.func @grouped_matmul_fused(%x: tensor<16x64xbf16>, %w13: tensor<8x64x256xbf16>, %offsets: tensor<9xi32>, %rows: tensor<32xi32>, %w: tensor<16x2xf32>, %init: tensor<32x128xf32>) -> tensor<32x128xf32> {
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<16x64xbf16>, tensor<8x64x256xbf16>, tensor<9xi32>)
      rows(%rows : tensor<32xi32>) row_scale(%w : tensor<16x2xf32>)
      outs(%init : tensor<32x128xf32>)
      {gather, k = 2 : i64, rhs_layout = #moe.rhs_layout<kn>, epilogue = #moe.activation<swiglu_oai>,
       glu_layout = #moe.glu_layout<interleaved>} -> tensor<32x128xf32>
  return %h : tensor<32x128xf32>
}

// CHECK-LABEL: func.func @grouped_matmul_fp8
// CHECK: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x256xbf16>, tensor<8x512x256xf8E4M3FN>, tensor<9xi32>) rhs_scales(%{{.*}} : tensor<8x4x2xf32>) outs(%{{.*}} : tensor<?x512xf32>)
// CHECK-SAME: weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>
func.func @grouped_matmul_fp8(%xs: tensor<?x256xbf16>, %w13: tensor<8x512x256xf8E4M3FN>, %offsets: tensor<9xi32>, %s: tensor<8x4x2xf32>, %init: tensor<?x512xf32>) -> tensor<?x512xf32> {
  %h = moe.grouped_matmul ins(%xs, %w13, %offsets
      : tensor<?x256xbf16>, tensor<8x512x256xf8E4M3FN>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x4x2xf32>)
      outs(%init : tensor<?x512xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3,
       block = [128, 128], activation = dynamic>} -> tensor<?x512xf32>
  return %h : tensor<?x512xf32>
}

// Per-channel weight scales (bk spans K) and a static activation scale.
// CHECK-LABEL: func.func @grouped_matmul_fp8_static
// CHECK: rhs_scales(%{{.*}} : tensor<8x96x1xf32>) lhs_scales(%{{.*}} : tensor<1xf32>)
// CHECK-SAME: weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [1, 4096], activation = static>
func.func @grouped_matmul_fp8_static(%xs: tensor<?x64xbf16>, %w: tensor<8x96x64xf8E4M3FN>, %offsets: tensor<9xi32>, %s: tensor<8x96x1xf32>, %si: tensor<1xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%xs, %w, %offsets
      : tensor<?x64xbf16>, tensor<8x96x64xf8E4M3FN>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x96x1xf32>) lhs_scales(%si : tensor<1xf32>)
      outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3,
       block = [1, 4096], activation = static>} -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// MXFP4 (gpt-oss): two e2m1 codes per i8 along K, one e8m0 scale per 32 K.
// CHECK-LABEL: func.func @grouped_matmul_mxfp4
// CHECK: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<8x96x32xi8>, tensor<9xi32>) rhs_scales(%{{.*}} : tensor<8x96x2xf8E8M0FNU>) outs(%{{.*}} : tensor<?x96xf32>)
// CHECK-SAME: weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>
func.func @grouped_matmul_mxfp4(%xs: tensor<?x64xbf16>, %w: tensor<8x96x32xi8>, %offsets: tensor<9xi32>, %s: tensor<8x96x2xf8E8M0FNU>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%xs, %w, %offsets
      : tensor<?x64xbf16>, tensor<8x96x32xi8>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x96x2xf8E8M0FNU>)
      outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = mxfp4,
       block = [1, 32], activation = none>} -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// int4 group-wise with zero points (asymmetric), group 128.
// CHECK-LABEL: func.func @grouped_matmul_int4
// CHECK: rhs_scales(%{{.*}} : tensor<8x512x2xf32>) rhs_zero_points(%{{.*}} : tensor<8x512x2xi8>)
// CHECK-SAME: weight_quant = #moe.weight_quant<format = int4, block = [1, 128], activation = none>
func.func @grouped_matmul_int4(%xs: tensor<?x256xbf16>, %w: tensor<8x512x128xi8>, %offsets: tensor<9xi32>, %s: tensor<8x512x2xf32>, %z: tensor<8x512x2xi8>, %init: tensor<?x512xf32>) -> tensor<?x512xf32> {
  %h = moe.grouped_matmul ins(%xs, %w, %offsets
      : tensor<?x256xbf16>, tensor<8x512x128xi8>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x512x2xf32>)
      rhs_zero_points(%z : tensor<8x512x2xi8>)
      outs(%init : tensor<?x512xf32>)
      {weight_quant = #moe.weight_quant<format = int4,
       block = [1, 128], activation = none>} -> tensor<?x512xf32>
  return %h : tensor<?x512xf32>
}

// int4 symmetric (no zero points: z = 8), group 32, K not a multiple of it.
// CHECK-LABEL: func.func @grouped_matmul_int4_symmetric
// CHECK: rhs_scales(%{{.*}} : tensor<8x16x3xf32>) outs(
// CHECK-SAME: weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>
func.func @grouped_matmul_int4_symmetric(%xs: tensor<?x80xf32>, %w: tensor<8x16x40xi8>, %offsets: tensor<9xi32>, %s: tensor<8x16x3xf32>, %init: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul ins(%xs, %w, %offsets
      : tensor<?x80xf32>, tensor<8x16x40xi8>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x16x3xf32>)
      outs(%init : tensor<?x16xf32>)
      {weight_quant = #moe.weight_quant<format = int4,
       block = [1, 32], activation = none>} -> tensor<?x16xf32>
  return %h : tensor<?x16xf32>
}

// int8 per-channel: one scale per output row.
// CHECK-LABEL: func.func @grouped_matmul_int8
// CHECK: tensor<8x96x64xi8>, tensor<9xi32>) rhs_scales(%{{.*}} : tensor<8x96x1xf32>)
// CHECK-SAME: weight_quant = #moe.weight_quant<format = int8, block = [1, 64], activation = none>
func.func @grouped_matmul_int8(%xs: tensor<?x64xbf16>, %w: tensor<8x96x64xi8>, %offsets: tensor<9xi32>, %s: tensor<8x96x1xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%xs, %w, %offsets
      : tensor<?x64xbf16>, tensor<8x96x64xi8>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x96x1xf32>)
      outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = int8,
       block = [1, 64], activation = none>} -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// CHECK-LABEL: func.func @layer_fp8
// CHECK: moe.layer {{.*}} scales(%{{.*}}, %{{.*}} : tensor<8x4x2xf32>, tensor<8x2x2xf32>)
// CHECK-SAME: weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>
func.func @layer_fp8(%x: tensor<?x256xbf16>, %router: tensor<8x256xbf16>, %w13: tensor<8x512x256xf8E4M3FN>, %w2: tensor<8x256x256xf8E4M3FN>, %s13: tensor<8x4x2xf32>, %s2: tensor<8x2x2xf32>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x256xbf16>,
      tensor<8x256xbf16>, tensor<8x512x256xf8E4M3FN>,
      tensor<8x256x256xf8E4M3FN>)
      scales(%s13, %s2 : tensor<8x4x2xf32>, tensor<8x2x2xf32>)
      outs(%init : tensor<?x256xbf16>) {k = 2 : i64, renormalize,
      weight_quant = #moe.weight_quant<format = fp8_e4m3,
      block = [128, 128], activation = dynamic>} -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// CHECK-LABEL: func.func @layer_int4
// CHECK: moe.layer {{.*}} tensor<8x512x128xi8>, tensor<8x256x128xi8>) scales(%{{.*}}, %{{.*}} : tensor<8x512x2xf32>, tensor<8x256x2xf32>) zero_points(%{{.*}}, %{{.*}} : tensor<8x512x2xi8>, tensor<8x256x2xi8>)
// CHECK-SAME: weight_quant = #moe.weight_quant<format = int4, block = [1, 128], activation = none>
func.func @layer_int4(%x: tensor<?x256xbf16>, %router: tensor<8x256xbf16>, %w13: tensor<8x512x128xi8>, %w2: tensor<8x256x128xi8>, %s13: tensor<8x512x2xf32>, %s2: tensor<8x256x2xf32>, %z13: tensor<8x512x2xi8>, %z2: tensor<8x256x2xi8>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x256xbf16>,
      tensor<8x256xbf16>, tensor<8x512x128xi8>, tensor<8x256x128xi8>)
      scales(%s13, %s2 : tensor<8x512x2xf32>, tensor<8x256x2xf32>)
      zero_points(%z13, %z2 : tensor<8x512x2xi8>, tensor<8x256x2xi8>)
      outs(%init : tensor<?x256xbf16>) {k = 2 : i64, renormalize,
      weight_quant = #moe.weight_quant<format = int4, block = [1, 128],
      activation = none>} -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// gpt-oss with MXFP4 experts: e8m0 scales, biases, interleaved gate/up.
// CHECK-LABEL: func.func @layer_mxfp4_gpt_oss
// CHECK: moe.layer {{.*}} tensor<8x128x32xi8>, tensor<8x64x32xi8>) router_bias(%{{.*}} : tensor<8xbf16>) w13_bias(%{{.*}} : tensor<8x128xbf16>) w2_bias(%{{.*}} : tensor<8x64xbf16>) scales(%{{.*}}, %{{.*}} : tensor<8x128x2xf8E8M0FNU>, tensor<8x64x2xf8E8M0FNU>) outs
// CHECK-SAME: weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>
func.func @layer_mxfp4_gpt_oss(%x: tensor<?x64xbf16>, %router: tensor<8x64xbf16>, %w13: tensor<8x128x32xi8>, %w2: tensor<8x64x32xi8>, %br: tensor<8xbf16>, %b13: tensor<8x128xbf16>, %b2: tensor<8x64xbf16>, %s13: tensor<8x128x2xf8E8M0FNU>, %s2: tensor<8x64x2xf8E8M0FNU>, %init: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>,
      tensor<8x64xbf16>, tensor<8x128x32xi8>, tensor<8x64x32xi8>)
      router_bias(%br : tensor<8xbf16>)
      w13_bias(%b13 : tensor<8x128xbf16>) w2_bias(%b2 : tensor<8x64xbf16>)
      scales(%s13, %s2 : tensor<8x128x2xf8E8M0FNU>, tensor<8x64x2xf8E8M0FNU>)
      outs(%init : tensor<?x64xbf16>)
      {k = 4 : i64, scoring = #moe.scoring<softmax_topk>,
       activation = #moe.activation<swiglu_oai>,
       glu_layout = #moe.glu_layout<interleaved>,
       weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32],
       activation = none>} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// CHECK-LABEL: func.func @layer_int8
// CHECK: moe.layer {{.*}} scales(%{{.*}}, %{{.*}} : tensor<4x64x1xf32>, tensor<4x32x1xf32>) outs
// CHECK-SAME: weight_quant = #moe.weight_quant<format = int8, block = [1, 64], activation = none>
func.func @layer_int8(%x: tensor<?x32xf32>, %router: tensor<4x32xf32>, %w13: tensor<4x64x32xi8>, %w2: tensor<4x32x32xi8>, %s13: tensor<4x64x1xf32>, %s2: tensor<4x32x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x32xf32>, tensor<4x32xf32>, tensor<4x64x32xi8>, tensor<4x32x32xi8>)
      scales(%s13, %s2 : tensor<4x64x1xf32>, tensor<4x32x1xf32>)
      outs(%init : tensor<?x32xf32>) {k = 1 : i64,
      weight_quant = #moe.weight_quant<format = int8, block = [1, 64], activation = none>} -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @layer_panels
// CHECK: moe.layer {{.*}} tensor<8x4x64x16xf32>, tensor<8x4x32x16xf32>
// CHECK-SAME: weight_layout = #moe.rhs_layout<panels>
func.func @layer_panels(%x: tensor<?x64xf32>, %r: tensor<8x64xf32>, %w13: tensor<8x4x64x16xf32>, %w2: tensor<8x4x32x16xf32>, %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x4x64x16xf32>, tensor<8x4x32x16xf32>)
      outs(%init : tensor<?x64xf32>) {k = 2 : i64, weight_layout = #moe.rhs_layout<panels>} -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @grouped_matmul_panels_vnni
// CHECK: moe.grouped_matmul {{.*}} tensor<8x4x32x32xbf16>
// CHECK-SAME: rhs_layout = #moe.rhs_layout<panels_vnni>
func.func @grouped_matmul_panels_vnni(%x: tensor<16x64xbf16>, %w13: tensor<8x4x32x32xbf16>, %offsets: tensor<9xi32>, %init: tensor<16x64xf32>) -> tensor<16x64xf32> {
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<16x64xbf16>, tensor<8x4x32x32xbf16>, tensor<9xi32>)
      outs(%init : tensor<16x64xf32>) {rhs_layout = #moe.rhs_layout<panels_vnni>} -> tensor<16x64xf32>
  return %h : tensor<16x64xf32>
}

// CHECK-LABEL: func.func @glu
// CHECK: moe.glu ins(%{{.*}} : tensor<?x256xf32>) outs(%{{.*}} : tensor<?x128xf32>) {activation = #moe.activation<gelu_tanh>} -> tensor<?x128xf32>
func.func @glu(%h: tensor<?x256xf32>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %a = moe.glu ins(%h : tensor<?x256xf32>) outs(%init : tensor<?x128xf32>)
      {activation = #moe.activation<gelu_tanh>} -> tensor<?x128xf32>
  return %a : tensor<?x128xf32>
}

// CHECK-LABEL: func.func @combine
// CHECK: moe.combine ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<32x64xf32>, tensor<32xi32>, tensor<16x2xf32>) outs(%{{.*}} : tensor<16x64xbf16>) -> tensor<16x64xbf16>
func.func @combine(%ys: tensor<32x64xf32>, %rows: tensor<32xi32>, %w: tensor<16x2xf32>, %init: tensor<16x64xbf16>) -> tensor<16x64xbf16> {
  %y = moe.combine ins(%ys, %rows, %w : tensor<32x64xf32>, tensor<32xi32>, tensor<16x2xf32>)
      outs(%init : tensor<16x64xbf16>) -> tensor<16x64xbf16>
  return %y : tensor<16x64xbf16>
}

// CHECK-LABEL: func.func @layer
// CHECK: moe.layer ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>) bias(%{{.*}} : tensor<8xf32>) shared(%{{.*}}, %{{.*}} : tensor<96x64xf32>, tensor<64x48xf32>) shared_gate(%{{.*}} : tensor<1x64xf32>) outs(%{{.*}} : tensor<?x64xf32>)
// CHECK-SAME: capacity = 6 : i64
// CHECK-SAME: k = 2 : i64
func.func @layer(%x: tensor<?x64xf32>, %router: tensor<8x64xf32>, %w13: tensor<8x256x64xf32>, %w2: tensor<8x64x128xf32>,
                 %bias: tensor<8xf32>, %sw13: tensor<96x64xf32>, %sw2: tensor<64x48xf32>, %gate: tensor<1x64xf32>,
                 %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>)
      bias(%bias : tensor<8xf32>) shared(%sw13, %sw2 : tensor<96x64xf32>, tensor<64x48xf32>)
      shared_gate(%gate : tensor<1x64xf32>) outs(%init : tensor<?x64xf32>)
      {k = 2 : i64, scoring = #moe.scoring<sigmoid>, renormalize, capacity = 6 : i64} -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @losses
// CHECK: moe.aux_loss %{{.*}}, %{{.*}} : tensor<16x8xf32>, tensor<16x2xi32> -> tensor<f32>
// CHECK: moe.z_loss %{{.*}} : tensor<16x8xf32> -> tensor<f32>
func.func @losses(%logits: tensor<16x8xf32>, %ids: tensor<16x2xi32>) -> (tensor<f32>, tensor<f32>) {
  %aux = moe.aux_loss %logits, %ids : tensor<16x8xf32>, tensor<16x2xi32> -> tensor<f32>
  %z = moe.z_loss %logits : tensor<16x8xf32> -> tensor<f32>
  return %aux, %z : tensor<f32>, tensor<f32>
}

// CHECK-LABEL: func.func @combine_prescaled
// CHECK: moe.combine {{.*}} {prescaled} -> tensor<16x64xf32>
func.func @combine_prescaled(%ys: tensor<32x64xf32>, %rows: tensor<32xi32>, %w: tensor<16x2xf32>, %init: tensor<16x64xf32>) -> tensor<16x64xf32> {
  %y = moe.combine ins(%ys, %rows, %w : tensor<32x64xf32>, tensor<32xi32>, tensor<16x2xf32>)
      outs(%init : tensor<16x64xf32>) {prescaled} -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// CHECK-LABEL: func.func @grouped_matmul_bias
// CHECK: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<16x64xbf16>, tensor<8x256x64xbf16>, tensor<9xi32>) rows(%{{.*}} : tensor<32xi32>) bias(%{{.*}} : tensor<8x256xbf16>) outs(%{{.*}} : tensor<32x128xf32>)
// CHECK-SAME: epilogue = #moe.activation<swiglu_oai>
func.func @grouped_matmul_bias(%x: tensor<16x64xbf16>, %w13: tensor<8x256x64xbf16>, %offsets: tensor<9xi32>, %rows: tensor<32xi32>, %b: tensor<8x256xbf16>, %init: tensor<32x128xf32>) -> tensor<32x128xf32> {
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<16x64xbf16>, tensor<8x256x64xbf16>, tensor<9xi32>)
      rows(%rows : tensor<32xi32>) bias(%b : tensor<8x256xbf16>)
      outs(%init : tensor<32x128xf32>)
      {gather, k = 2 : i64, epilogue = #moe.activation<swiglu_oai>,
       glu_layout = #moe.glu_layout<interleaved>} -> tensor<32x128xf32>
  return %h : tensor<32x128xf32>
}

// CHECK-LABEL: func.func @grouped_matmul_bias_row_scale
// CHECK: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<32x128xf32>, tensor<8x64x128xf32>, tensor<9xi32>) rows(%{{.*}} : tensor<32xi32>) row_scale(%{{.*}} : tensor<16x2xf32>) bias(%{{.*}} : tensor<8x64xf32>) outs(%{{.*}} : tensor<32x64xf32>)
func.func @grouped_matmul_bias_row_scale(%a: tensor<32x128xf32>, %w2: tensor<8x64x128xf32>, %offsets: tensor<9xi32>, %rows: tensor<32xi32>, %w: tensor<16x2xf32>, %b: tensor<8x64xf32>, %init: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %y = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<32x128xf32>, tensor<8x64x128xf32>, tensor<9xi32>)
      rows(%rows : tensor<32xi32>) row_scale(%w : tensor<16x2xf32>) bias(%b : tensor<8x64xf32>)
      outs(%init : tensor<32x64xf32>) {k = 2 : i64} -> tensor<32x64xf32>
  return %y : tensor<32x64xf32>
}

// CHECK-LABEL: func.func @layer_gpt_oss
// CHECK: moe.layer ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<8x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>) router_bias(%{{.*}} : tensor<8xbf16>) w13_bias(%{{.*}} : tensor<8x256xbf16>) w2_bias(%{{.*}} : tensor<8x64xbf16>) outs(%{{.*}} : tensor<?x64xbf16>)
// CHECK-SAME: activation = #moe.activation<swiglu_oai>
// CHECK-SAME: glu_layout = #moe.glu_layout<interleaved>
// CHECK-SAME: scoring = #moe.scoring<softmax_topk>
func.func @layer_gpt_oss(%x: tensor<?x64xbf16>, %router: tensor<8x64xbf16>, %w13: tensor<8x256x64xbf16>, %w2: tensor<8x64x128xbf16>,
                         %br: tensor<8xbf16>, %b13: tensor<8x256xbf16>, %b2: tensor<8x64xbf16>,
                         %init: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>, tensor<8x64xbf16>, tensor<8x256x64xbf16>, tensor<8x64x128xbf16>)
      router_bias(%br : tensor<8xbf16>)
      w13_bias(%b13 : tensor<8x256xbf16>) w2_bias(%b2 : tensor<8x64xbf16>)
      outs(%init : tensor<?x64xbf16>)
      {k = 4 : i64, scoring = #moe.scoring<softmax_topk>,
       activation = #moe.activation<swiglu_oai>,
       glu_layout = #moe.glu_layout<interleaved>}
      -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// The GPU pipeline's routing state as values: the dispatch's inverse rows,
// read by the combine, and one schedule of row tiles shared by the matmuls.
// CHECK-LABEL: func.func @routing_state
// CHECK: %{{.*}}, %{{.*}}, %[[ROW_OF:.*]] = moe.dispatch %{{.*}} {num_experts = 4 : i64} : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>, tensor<16xi32>
// CHECK: %[[TILES:.*]] = moe.row_tiles %{{.*}}, %{{.*}} {large_rows_per_expert = 64 : i64, large_tile_rows = 128 : i64, small_tile_rows = 16 : i64} : tensor<5xi32>, tensor<16xi32> -> tensor<?xi32>
// CHECK: moe.grouped_matmul {{.*}} rows(%{{.*}} : tensor<16xi32>) row_tiles(%[[TILES]] : tensor<?xi32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: moe.combine {{.*}} row_of(%[[ROW_OF]] : tensor<16xi32>) outs(%{{.*}} : tensor<8x32xf32>)
func.func @routing_state(%ids: tensor<8x2xi32>, %x: tensor<8x32xbf16>, %w: tensor<4x32x32xbf16>,
                         %wt: tensor<8x2xf32>, %init: tensor<16x32xf32>, %yinit: tensor<8x32xf32>) -> tensor<8x32xf32> {
  %rows, %offsets, %row_of = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>, tensor<16xi32>
  %tiles = moe.row_tiles %offsets, %rows {small_tile_rows = 16 : i64,
      large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
      : tensor<5xi32>, tensor<16xi32> -> tensor<?xi32>
  %ys = moe.grouped_matmul ins(%x, %w, %offsets : tensor<8x32xbf16>, tensor<4x32x32xbf16>, tensor<5xi32>)
      rows(%rows : tensor<16xi32>) row_tiles(%tiles : tensor<?xi32>)
      outs(%init : tensor<16x32xf32>) {gather, k = 2 : i64} -> tensor<16x32xf32>
  %y = moe.combine ins(%ys, %rows, %wt : tensor<16x32xf32>, tensor<16xi32>, tensor<8x2xf32>)
      row_of(%row_of : tensor<16xi32>) outs(%yinit : tensor<8x32xf32>) -> tensor<8x32xf32>
  return %y : tensor<8x32xf32>
}

// The schedule of row tiles written by the dispatch (moe-gpu-share-row-tiles's
// dispatch-row-tiles): a row_tiles result, after the inverse rows where the
// op has both, with its tile shapes as attributes; the matmuls over the
// dispatch's rows read it.
// CHECK-LABEL: func.func @dispatch_row_tiles
// CHECK: %[[ROWS:.*]], %[[OFFSETS:.*]], %[[ROW_OF:.*]], %[[TILES:.*]] = moe.dispatch %{{.*}} {large_rows_per_expert = 8 : i64, large_tile_rows = 128 : i64, num_experts = 4 : i64, small_tile_rows = 16 : i64} : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>, tensor<16xi32> row_tiles tensor<?xi32>
// CHECK: moe.grouped_matmul ins(%{{.*}}, %{{.*}}, %[[OFFSETS]] : {{.*}}) rows(%[[ROWS]] : tensor<16xi32>) row_tiles(%[[TILES]] : tensor<?xi32>)
// CHECK: moe.combine {{.*}} row_of(%[[ROW_OF]] : tensor<16xi32>)
// CHECK: %{{.*}}, %{{.*}}, %[[ONLY:.*]] = moe.dispatch %{{.*}} {large_rows_per_expert = 0 : i64, large_tile_rows = 64 : i64, num_experts = 4 : i64, small_tile_rows = 32 : i64} : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi32>
// CHECK: return %{{.*}}, %[[ONLY]]
func.func @dispatch_row_tiles(%ids: tensor<8x2xi32>, %x: tensor<8x32xbf16>, %w: tensor<4x32x32xbf16>,
                              %wt: tensor<8x2xf32>, %init: tensor<16x32xf32>, %yinit: tensor<8x32xf32>)
    -> (tensor<8x32xf32>, tensor<?xi32>) {
  %rows, %offsets, %row_of, %tiles = moe.dispatch %ids {num_experts = 4 : i64,
      small_tile_rows = 16 : i64, large_tile_rows = 128 : i64, large_rows_per_expert = 8 : i64}
      : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>, tensor<16xi32> row_tiles tensor<?xi32>
  %ys = moe.grouped_matmul ins(%x, %w, %offsets : tensor<8x32xbf16>, tensor<4x32x32xbf16>, tensor<5xi32>)
      rows(%rows : tensor<16xi32>) row_tiles(%tiles : tensor<?xi32>)
      outs(%init : tensor<16x32xf32>) {gather, k = 2 : i64} -> tensor<16x32xf32>
  %y = moe.combine ins(%ys, %rows, %wt : tensor<16x32xf32>, tensor<16xi32>, tensor<8x2xf32>)
      row_of(%row_of : tensor<16xi32>) outs(%yinit : tensor<8x32xf32>) -> tensor<8x32xf32>
  %rows2, %offsets2, %only = moe.dispatch %ids {num_experts = 4 : i64,
      small_tile_rows = 32 : i64, large_tile_rows = 64 : i64, large_rows_per_expert = 0 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi32>
  return %y, %only : tensor<8x32xf32>, tensor<?xi32>
}

// Every optional operand of the grouped matmul at once, in their order: a bias,
// FP8 scales (static activations) and a shared schedule of row tiles.
// CHECK-LABEL: func.func @grouped_matmul_bias_fp8_row_tiles
// CHECK: moe.grouped_matmul {{.*}} rows(%{{.*}} : tensor<16xi32>) bias(%{{.*}} : tensor<4x32xbf16>) rhs_scales(%{{.*}} : tensor<4x2x2xf32>) lhs_scales(%{{.*}} : tensor<1xf32>) row_tiles(%{{.*}} : tensor<?xi32>) outs(%{{.*}} : tensor<16x32xf32>)
func.func @grouped_matmul_bias_fp8_row_tiles(%ids: tensor<8x2xi32>, %x: tensor<8x32xbf16>,
    %w: tensor<4x32x32xf8E4M3FN>, %b: tensor<4x32xbf16>, %s: tensor<4x2x2xf32>,
    %si: tensor<1xf32>, %init: tensor<16x32xf32>) -> tensor<16x32xf32> {
  %rows, %offsets = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>
  %tiles = moe.row_tiles %offsets, %rows {small_tile_rows = 16 : i64,
      large_tile_rows = 128 : i64, large_rows_per_expert = 64 : i64}
      : tensor<5xi32>, tensor<16xi32> -> tensor<?xi32>
  %ys = moe.grouped_matmul ins(%x, %w, %offsets : tensor<8x32xbf16>, tensor<4x32x32xf8E4M3FN>, tensor<5xi32>)
      rows(%rows : tensor<16xi32>) bias(%b : tensor<4x32xbf16>)
      rhs_scales(%s : tensor<4x2x2xf32>) lhs_scales(%si : tensor<1xf32>)
      row_tiles(%tiles : tensor<?xi32>)
      outs(%init : tensor<16x32xf32>) {gather, k = 2 : i64,
      weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = static>}
      -> tensor<16x32xf32>
  return %ys : tensor<16x32xf32>
}
