// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file --verify-diagnostics | FileCheck %s

// Every op becomes linalg on tensors; nothing of the moe dialect is left.
// CHECK-NOT: moe.

// Routing: softmax, then k selection passes over the experts, each a
// reduction that keeps the best candidate ranking after the previous pick.
// CHECK-LABEL: func.func @route
// CHECK: math.exp
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK: arith.cmpf uno
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK: arith.divf
func.func @route(%l: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %ids = moe.route %l {k = 2 : i64, renormalize} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %ids : tensor<?x2xf32>, tensor<?x2xi32>
}

// CHECK-LABEL: func.func @route_groups
// CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2]] output_shape [4, 4, 2] : tensor<4x8xf32> into tensor<4x4x2xf32>
func.func @route_groups(%l: tensor<4x8xf32>, %b: tensor<8xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>) {
  %w, %ids = moe.route %l bias(%b : tensor<8xf32>) {k = 2 : i64, scoring = #moe.scoring<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64}
      : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return %w, %ids : tensor<4x2xf32>, tensor<4x2xi32>
}

// CHECK-LABEL: func.func @dispatch
// Capacity in slot order: a scan over slots, then tokens.
// CHECK: math.ceil
// CHECK: scf.for
// CHECK: scf.for
// CHECK: tensor.insert
func.func @dispatch(%ids: tensor<?x2xi32>) -> (tensor<?xi32>, tensor<9xi32>) {
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity_factor = 1.5 : f64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<9xi32>
}

// CHECK-LABEL: func.func @grouped_matmul_fused
// CHECK: tensor.extract %{{.*}} : tensor<4x32x16xbf16>
// CHECK: arith.extf
// CHECK: tensor.extract_slice %{{.*}}[0, 1] [%{{.*}}, 16] [1, 2]
// CHECK: arith.truncf
func.func @grouped_matmul_fused(%x: tensor<?x16xbf16>, %w: tensor<4x32x16xbf16>, %o: tensor<5xi32>, %r: tensor<?xi32>, %s: tensor<?x2xf32>, %init: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x16xbf16>, tensor<4x32x16xbf16>, tensor<5xi32>)
      rows(%r : tensor<?xi32>) row_scale(%s : tensor<?x2xf32>) outs(%init : tensor<?x16xbf16>)
      {gather, k = 2 : i64, epilogue = #moe.activation<silu>, glu_layout = #moe.glu_layout<interleaved>} -> tensor<?x16xbf16>
  return %h : tensor<?x16xbf16>
}

// The bias of the row's expert is added to the f32 accumulator, rows of no
// expert excepted, before the GLU.
// CHECK-LABEL: func.func @grouped_matmul_bias
// CHECK: arith.mulf
// CHECK: linalg.generic
// CHECK: %[[E:.*]] = arith.maxsi
// CHECK: %[[EI:.*]] = arith.index_cast %[[E]]
// CHECK: %[[B:.*]] = tensor.extract %{{.*}}[%[[EI]], %{{.*}}] : tensor<4x32xbf16>
// CHECK: %[[BF:.*]] = arith.extf %[[B]] : bf16 to f32
// CHECK: %[[SUM:.*]] = arith.addf %{{.*}}, %[[BF]] : f32
// CHECK: arith.select %{{.*}}, %[[SUM]]
// CHECK: tensor.extract_slice %{{.*}}[0, 1] [%{{.*}}, 16] [1, 2]
// CHECK: arith.minimumf
func.func @grouped_matmul_bias(%x: tensor<?x16xbf16>, %w: tensor<4x32x16xbf16>, %o: tensor<5xi32>, %b: tensor<4x32xbf16>, %init: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x16xbf16>, tensor<4x32x16xbf16>, tensor<5xi32>)
      bias(%b : tensor<4x32xbf16>) outs(%init : tensor<?x16xbf16>)
      {epilogue = #moe.activation<swiglu_oai>, glu_layout = #moe.glu_layout<interleaved>} -> tensor<?x16xbf16>
  return %h : tensor<?x16xbf16>
}

// CHECK-LABEL: func.func @combine
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.mulf
// CHECK: arith.addf
func.func @combine(%ys: tensor<8x16xf32>, %rows: tensor<8xi32>, %w: tensor<4x2xf32>, %init: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %y = moe.combine ins(%ys, %rows, %w : tensor<8x16xf32>, tensor<8xi32>, tensor<4x2xf32>) outs(%init : tensor<4x16xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// CHECK-LABEL: func.func @losses
// CHECK: math.log
func.func @losses(%l: tensor<4x8xf32>, %ids: tensor<4x2xi32>) -> (tensor<f32>, tensor<f32>) {
  %a = moe.aux_loss %l, %ids : tensor<4x8xf32>, tensor<4x2xi32> -> tensor<f32>
  %z = moe.z_loss %l : tensor<4x8xf32> -> tensor<f32>
  return %a, %z : tensor<f32>, tensor<f32>
}

// -----

func.func @layer_needs_decomposition(%x: tensor<4x16xf32>, %r: tensor<8x16xf32>, %w13: tensor<8x32x16xf32>, %w2: tensor<8x16x16xf32>, %init: tensor<4x16xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{must be decomposed first: run moe-decompose-layer}}
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<4x16xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x16x16xf32>) outs(%init : tensor<4x16xf32>) {k = 2 : i64} -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// The GPU kernels' schedule of row tiles is no value the reference computes.
func.func @dispatch_row_tiles(%ids: tensor<4x2xi32>) -> tensor<?xi32> {
  // expected-error @+1 {{returns 'row_tiles', the GPU kernels' row-tile schedule, which has no linalg lowering}}
  %rows, %offsets, %tiles = moe.dispatch %ids {num_experts = 8 : i64,
      small_tile_rows = 16 : i64, large_tile_rows = 128 : i64, large_rows_per_expert = 8 : i64}
      : tensor<4x2xi32> -> tensor<8xi32>, tensor<9xi32> row_tiles tensor<?xi32>
  return %tiles : tensor<?xi32>
}

// -----

// panels_vnni weights [E, N / P, K / 2, 2P] are unpacked to [E, N, K]: each
// panel row split into (column, k % 2), the columns moved before the k-pairs.
// CHECK-LABEL: func.func @grouped_matmul_panels_vnni
// CHECK: %[[SPLIT:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0], [1], [2], [3, 4]] output_shape [4, 2, 8, 16, 2] : tensor<4x2x8x32xbf16> into tensor<4x2x8x16x2xbf16>
// CHECK: %[[MOVED:.*]] = linalg.transpose ins(%[[SPLIT]] : tensor<4x2x8x16x2xbf16>) outs(%{{.*}} : tensor<4x2x16x8x2xbf16>) permutation = [0, 1, 3, 2, 4]
// CHECK: tensor.collapse_shape %[[MOVED]] {{\[\[}}0], [1, 2], [3, 4]] : tensor<4x2x16x8x2xbf16> into tensor<4x32x16xbf16>
// CHECK-NOT: moe.grouped_matmul
func.func @grouped_matmul_panels_vnni(%a: tensor<8x16xbf16>, %w: tensor<4x2x8x32xbf16>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) -> tensor<8x32xf32> {
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xbf16>, tensor<4x2x8x32xbf16>, tensor<5xi32>)
      outs(%init : tensor<8x32xf32>) {rhs_layout = #moe.rhs_layout<panels_vnni>} -> tensor<8x32xf32>
  return %h : tensor<8x32xf32>
}
