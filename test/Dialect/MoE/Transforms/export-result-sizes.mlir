// RUN: moe-opt %s --moe-export-result-sizes --split-input-file --verify-diagnostics | FileCheck %s

// A layer's result rows are its init's, the token count: the sizes function
// folds to the argument's size, the layer itself erased.
// CHECK-LABEL: func.func @layer(
// CHECK:         moe.layer
// CHECK-LABEL: func.func @layer__result_sizes(
// CHECK-SAME:      %[[X:.*]]: tensor<?x16xf32>, %{{.*}}: tensor<4x16xf32>, %{{.*}}: tensor<4x16x16xf32>, %{{.*}}: tensor<4x16x8xf32>) -> tensor<1xi64>
// CHECK-NOT:     moe.layer
// CHECK:         %[[T:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x16xf32>
// CHECK:         %[[N:.*]] = arith.index_cast %[[T]] : index to i64
// CHECK:         %[[SIZES:.*]] = tensor.from_elements %[[N]] : tensor<1xi64>
// CHECK:         return %[[SIZES]] : tensor<1xi64>
func.func @layer(%x: tensor<?x16xf32>, %r: tensor<4x16xf32>, %w13: tensor<4x16x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x16xf32>
  %init = tensor.empty(%t) : tensor<?x16xf32>
  %y = moe.layer ins(%x, %r, %w13, %w2 : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x16x16xf32>, tensor<4x16x8xf32>)
      outs(%init : tensor<?x16xf32>) {k = 2 : i64} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Dispatch's rows are T * k: the dims of every result, in order, static
// results skipped; the function keeps what the sizes depend on.
// CHECK-LABEL: func.func @dispatch__result_sizes(
// CHECK-SAME:      -> tensor<2xi64>
// CHECK:         %[[ROWS:.*]], %{{.*}} = moe.dispatch
// CHECK:         %[[A:.*]] = tensor.dim %[[ROWS]]
// CHECK:         %[[B:.*]] = tensor.dim %{{.*}}
// CHECK:         tensor.from_elements %{{.*}}, %{{.*}} : tensor<2xi64>
func.func @dispatch(%ids: tensor<?x2xi32>, %extra: tensor<?x3xf32>) -> (tensor<?xi32>, tensor<9xi32>, tensor<?x3xf32>) {
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %rows, %offsets, %extra : tensor<?xi32>, tensor<9xi32>, tensor<?x3xf32>
}

// -----

// Dynamic input sizes an op ties but its verifier cannot check (both
// dynamic): @<f>__check_sizes gives 0 where they agree, else the 1-based
// index of the first that does not, described in moe.size_relations.
// CHECK-LABEL: func.func @dispatch_weights__check_sizes(
// CHECK-SAME:      %[[IDS:.*]]: tensor<?x2xi32>, %[[W:.*]]: tensor<?x2xf32>) -> tensor<1xi32>
// CHECK-SAME:      attributes {moe.size_relations = ["moe.dispatch at {{.*}}export-result-sizes.mlir:{{[0-9]+}}:{{[0-9]+}}: the rows of weights and of ids"]}
// CHECK-NOT:     moe.dispatch
// CHECK-DAG:     %[[A:.*]] = tensor.dim %[[W]]
// CHECK-DAG:     %[[B:.*]] = tensor.dim %[[IDS]]
// CHECK:         %[[NE:.*]] = arith.cmpi ne, %[[A]], %[[B]] : index
// CHECK:         %[[CODE:.*]] = arith.extui %[[NE]] : i1 to i32
// CHECK:         tensor.from_elements %[[CODE]] : tensor<1xi32>
func.func @dispatch_weights(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<9xi32> {
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
      {num_experts = 8 : i64, capacity = 3 : i64, drop_policy = #moe.drop_policy<score>}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %offsets : tensor<9xi32>
}

// -----

// Static results, and private functions, need no sizes function.
// CHECK-LABEL: func.func @static
// CHECK-NOT:   __result_sizes
func.func @static(%x: tensor<?x8xf32>) -> tensor<f32> {
  %z = moe.z_loss %x : tensor<?x8xf32> -> tensor<f32>
  return %z : tensor<f32>
}
func.func private @helper(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  return %x : tensor<?x8xf32>
}

// -----

// expected-error @+1 {{moe-export-result-sizes: @clash__result_sizes already exists}}
func.func @clash(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  return %x : tensor<?x8xf32>
}
func.func @clash__result_sizes(%x: tensor<?x8xf32>) -> tensor<1xi64> {
  %c = arith.constant dense<0> : tensor<1xi64>
  return %c : tensor<1xi64>
}
