// RUN: moe-opt %s --moe-fuse-routing | FileCheck %s

// CHECK-LABEL: func.func @expert_ffn
// CHECK-SAME: (%[[X:.*]]: tensor<?x16xf32>, %[[ROWS:.*]]: tensor<?xi32>, %[[OFFSETS:.*]]: tensor<9xi32>, %[[W:.*]]: tensor<?x2xf32>, %[[W13:.*]]: tensor<8x24x16xf32>, %[[W2:.*]]: tensor<8x16x12xf32>
// CHECK-NOT: moe.permute
// CHECK-NOT: moe.glu
// CHECK: %[[A:.*]] = moe.grouped_matmul ins(%[[X]], %[[W13]], %[[OFFSETS]] : tensor<?x16xf32>, tensor<8x24x16xf32>, tensor<9xi32>) rows(%[[ROWS]] : tensor<?xi32>) outs(%{{.*}} : tensor<?x12xf32>) {epilogue = #moe.activation<gelu_tanh>, gather, glu_layout = #moe.glu_layout<interleaved>, k = 2 : i64} -> tensor<?x12xf32>
// CHECK: %[[YS:.*]] = moe.grouped_matmul ins(%[[A]], %[[W2]], %[[OFFSETS]] : tensor<?x12xf32>, tensor<8x16x12xf32>, tensor<9xi32>) rows(%[[ROWS]] : tensor<?xi32>) row_scale(%[[W]] : tensor<?x2xf32>) outs(%{{.*}} : tensor<?x16xf32>) {k = 2 : i64} -> tensor<?x16xf32>
// CHECK: %[[Y:.*]] = moe.combine ins(%[[YS]], %[[ROWS]], %[[W]] : tensor<?x16xf32>, tensor<?xi32>, tensor<?x2xf32>) outs(%{{.*}} : tensor<?x16xf32>) {prescaled} -> tensor<?x16xf32>
// CHECK: return %[[Y]]
func.func @expert_ffn(%x: tensor<?x16xf32>, %rows: tensor<?xi32>, %offsets: tensor<9xi32>, %w: tensor<?x2xf32>,
                      %w13: tensor<8x24x16xf32>, %w2: tensor<8x16x12xf32>,
                      %i0: tensor<?x16xf32>, %i1: tensor<?x24xf32>, %i2: tensor<?x12xf32>, %i3: tensor<?x16xf32>,
                      %out: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %xs = moe.permute ins(%x, %rows : tensor<?x16xf32>, tensor<?xi32>) outs(%i0 : tensor<?x16xf32>) {k = 2 : i64} -> tensor<?x16xf32>
  %h = moe.grouped_matmul ins(%xs, %w13, %offsets : tensor<?x16xf32>, tensor<8x24x16xf32>, tensor<9xi32>) outs(%i1 : tensor<?x24xf32>) -> tensor<?x24xf32>
  %a = moe.glu ins(%h : tensor<?x24xf32>) outs(%i2 : tensor<?x12xf32>)
      {activation = #moe.activation<gelu_tanh>, glu_layout = #moe.glu_layout<interleaved>} -> tensor<?x12xf32>
  %ys = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<?x12xf32>, tensor<8x16x12xf32>, tensor<9xi32>) outs(%i3 : tensor<?x16xf32>) -> tensor<?x16xf32>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x16xf32>, tensor<?xi32>, tensor<?x2xf32>) outs(%out : tensor<?x16xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// A matmul result with a second user keeps its GLU and its weights apart.
// CHECK-LABEL: func.func @shared_result
// CHECK: moe.glu
// CHECK: moe.combine
// CHECK-NOT: prescaled
func.func @shared_result(%a: tensor<8x16xf32>, %offsets: tensor<5xi32>, %w13: tensor<4x24x16xf32>,
                         %i1: tensor<8x24xf32>, %i2: tensor<8x12xf32>, %rows: tensor<8xi32>, %w: tensor<4x2xf32>,
                         %out: tensor<4x24xf32>) -> (tensor<8x12xf32>, tensor<4x24xf32>) {
  %h = moe.grouped_matmul ins(%a, %w13, %offsets : tensor<8x16xf32>, tensor<4x24x16xf32>, tensor<5xi32>) outs(%i1 : tensor<8x24xf32>) -> tensor<8x24xf32>
  %g = moe.glu ins(%h : tensor<8x24xf32>) outs(%i2 : tensor<8x12xf32>) -> tensor<8x12xf32>
  %y = moe.combine ins(%h, %rows, %w : tensor<8x24xf32>, tensor<8xi32>, tensor<4x2xf32>) outs(%out : tensor<4x24xf32>) -> tensor<4x24xf32>
  return %g, %y : tensor<8x12xf32>, tensor<4x24xf32>
}

// Biases come before the epilogue and the row scale: every fold keeps them.
// CHECK-LABEL: func.func @expert_ffn_biases
// CHECK-SAME: %[[B13:[^:]*]]: tensor<8x24xf32>, %[[B2:[^:]*]]: tensor<8x16xf32>
// CHECK-NOT: moe.permute
// CHECK-NOT: moe.glu
// CHECK: %[[A:.*]] = moe.grouped_matmul ins({{.*}}) rows(%{{.*}} : tensor<?xi32>) bias(%[[B13]] : tensor<8x24xf32>) outs(%{{.*}} : tensor<?x12xf32>) {epilogue = #moe.activation<swiglu_oai>, gather, glu_layout = #moe.glu_layout<interleaved>, k = 2 : i64}
// CHECK: %[[YS:.*]] = moe.grouped_matmul ins(%[[A]], {{.*}}) rows(%{{.*}} : tensor<?xi32>) row_scale(%{{.*}} : tensor<?x2xf32>) bias(%[[B2]] : tensor<8x16xf32>) outs(%{{.*}} : tensor<?x16xf32>) {k = 2 : i64}
// CHECK: moe.combine ins(%[[YS]], {{.*}} {prescaled}
func.func @expert_ffn_biases(%x: tensor<?x16xf32>, %rows: tensor<?xi32>, %offsets: tensor<9xi32>, %w: tensor<?x2xf32>,
                             %w13: tensor<8x24x16xf32>, %w2: tensor<8x16x12xf32>,
                             %b13: tensor<8x24xf32>, %b2: tensor<8x16xf32>,
                             %i0: tensor<?x16xf32>, %i1: tensor<?x24xf32>, %i2: tensor<?x12xf32>, %i3: tensor<?x16xf32>,
                             %out: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %xs = moe.permute ins(%x, %rows : tensor<?x16xf32>, tensor<?xi32>) outs(%i0 : tensor<?x16xf32>) {k = 2 : i64} -> tensor<?x16xf32>
  %h = moe.grouped_matmul ins(%xs, %w13, %offsets : tensor<?x16xf32>, tensor<8x24x16xf32>, tensor<9xi32>) bias(%b13 : tensor<8x24xf32>) outs(%i1 : tensor<?x24xf32>) -> tensor<?x24xf32>
  %a = moe.glu ins(%h : tensor<?x24xf32>) outs(%i2 : tensor<?x12xf32>)
      {activation = #moe.activation<swiglu_oai>, glu_layout = #moe.glu_layout<interleaved>} -> tensor<?x12xf32>
  %ys = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<?x12xf32>, tensor<8x16x12xf32>, tensor<9xi32>) bias(%b2 : tensor<8x16xf32>) outs(%i3 : tensor<?x16xf32>) -> tensor<?x16xf32>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x16xf32>, tensor<?xi32>, tensor<?x2xf32>) outs(%out : tensor<?x16xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
