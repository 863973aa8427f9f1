// Bad input is a located error and exit status 1, never a crash or an abort.
// RUN: not moe-opt %s -split-input-file 2>&1 | FileCheck %s
// RUN: moe-opt %s -split-input-file > /dev/null 2>&1 || test $? -eq 1

// CHECK: exit-status.mlir:[[@LINE+2]]:14: error: 'moe.route' op k = 9 is out of range: expected 1 <= k <= E = 8
func.func @k_above_experts(%l: tensor<4x8xf32>) {
  %w, %ids = moe.route %l {k = 9 : i64} : tensor<4x8xf32> -> tensor<4x9xf32>, tensor<4x9xi32>
  return
}

// -----

// CHECK: exit-status.mlir:[[@LINE+2]]:{{[0-9]+}}: error: {{.*}}'moe.route' op attribute 'k' failed to satisfy constraint
func.func @k_zero(%l: tensor<4x8xf32>) {
  %w, %ids = moe.route %l {k = 0 : i64} : tensor<4x8xf32> -> tensor<4x0xf32>, tensor<4x0xi32>
  return
}

// -----

// CHECK: exit-status.mlir:[[@LINE+2]]:14: error: 'moe.route' op n_group = 3 must divide the number of experts E = 8
func.func @n_group(%l: tensor<4x8xf32>) {
  %w, %ids = moe.route %l {k = 2 : i64, n_group = 3 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

// CHECK: exit-status.mlir:[[@LINE+2]]:8: error: 'moe.grouped_matmul' op 'offsets' must have length E + 1 = 5 for the 4 experts of 'rhs', got 'tensor<4xi32>'
func.func @offsets(%a: tensor<8x16xf32>, %w: tensor<4x32x16xf32>, %o: tensor<4xi32>, %init: tensor<8x32xf32>) {
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x32x16xf32>, tensor<4xi32>) outs(%init : tensor<8x32xf32>) -> tensor<8x32xf32>
  return
}

// -----

// CHECK: exit-status.mlir:[[@LINE+2]]:8: error: 'moe.glu' op 'h' has odd width 7: a GLU needs an even width [M, 2I]
func.func @glu_odd(%h: tensor<8x7xf32>, %init: tensor<8x3xf32>) {
  %a = moe.glu ins(%h : tensor<8x7xf32>) outs(%init : tensor<8x3xf32>) -> tensor<8x3xf32>
  return
}

// -----

// CHECK: exit-status.mlir:[[@LINE+2]]:9: error: 'moe.permute' op 'x' must be a 2-D f32/bf16/f16 tensor [T, H], got 'tensor<4x16xi8>'
func.func @element_type(%x: tensor<4x16xi8>, %rows: tensor<8xi32>, %init: tensor<8x16xf32>) {
  %xs = moe.permute ins(%x, %rows : tensor<4x16xi8>, tensor<8xi32>) outs(%init : tensor<8x16xf32>) {k = 2 : i64} -> tensor<8x16xf32>
  return
}

// -----

// CHECK: exit-status.mlir:[[@LINE+2]]:8: error: 'moe.combine' op 'init' dimension 1 (H) must be 16, got 'tensor<4x12xf32>'
func.func @shape(%ys: tensor<8x16xf32>, %rows: tensor<8xi32>, %w: tensor<4x2xf32>, %init: tensor<4x12xf32>) {
  %y = moe.combine ins(%ys, %rows, %w : tensor<8x16xf32>, tensor<8xi32>, tensor<4x2xf32>) outs(%init : tensor<4x12xf32>) -> tensor<4x12xf32>
  return
}
