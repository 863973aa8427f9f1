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

// Dispatch's rows are T * k (its result sizes are reified from the ids'):
// the dims of every result, in order, static results skipped; the dispatch
// itself goes.
// CHECK-LABEL: func.func @dispatch__result_sizes(
// CHECK-SAME:      %[[IDS:[^:]*]]: tensor<?x2xi32>, %[[EXTRA:[^:]*]]: tensor<?x3xf32>) -> tensor<2xi64>
// CHECK-NOT:     moe.dispatch
// CHECK:         %[[T:.*]] = tensor.dim %[[IDS]]
// CHECK:         arith.muli %[[T]], %{{.*}} : index
// CHECK:         tensor.dim %[[EXTRA]]
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

// A routed layer as its ops: every size a relation ties follows from the
// token count (the router matmul's and the matmuls' inits, the routing ops'
// reified sizes), so the check folds to 0 and runs no router matmul, no
// routing and no dispatch.
// CHECK-LABEL: func.func @routed__check_sizes(
// CHECK-SAME:      the rows of init and of weights"]} {
// CHECK-NOT:     = moe.
// CHECK:         %[[ZERO:.*]] = arith.constant dense<0> : tensor<1xi32>
// CHECK:         return %[[ZERO]] : tensor<1xi32>
func.func @routed(%x: tensor<?x16xf32>, %router: tensor<1x4x16xf32>, %w13: tensor<4x16x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0 : i32
  %tokens = tensor.dim %x, %c0 : tensor<?x16xf32>
  %tokens_i32 = arith.index_cast %tokens : index to i32
  %all = tensor.from_elements %zero, %tokens_i32 : tensor<2xi32>
  %logits_init = tensor.empty(%tokens) : tensor<?x4xf32>
  %logits = moe.grouped_matmul ins(%x, %router, %all : tensor<?x16xf32>, tensor<1x4x16xf32>, tensor<2xi32>) outs(%logits_init : tensor<?x4xf32>) -> tensor<?x4xf32>
  %w, %ids = moe.route %logits {k = 2 : i64, renormalize} : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>) {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %h_init = tensor.empty(%m) : tensor<?x8xf32>
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x16xf32>, tensor<4x16x16xf32>, tensor<5xi32>) rows(%rows : tensor<?xi32>) outs(%h_init : tensor<?x8xf32>) {epilogue = #moe.activation<silu>, gather, k = 2 : i64} -> tensor<?x8xf32>
  %ys_init = tensor.empty(%m) : tensor<?x16xf32>
  %ys = moe.grouped_matmul ins(%h, %w2, %offsets : tensor<?x8xf32>, tensor<4x16x8xf32>, tensor<5xi32>) rows(%rows : tensor<?xi32>) row_scale(%w : tensor<?x2xf32>) outs(%ys_init : tensor<?x16xf32>) {k = 2 : i64} -> tensor<?x16xf32>
  %y_init = tensor.empty(%tokens) : tensor<?x16xf32>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x16xf32>, tensor<?xi32>, tensor<?x2xf32>) outs(%y_init : tensor<?x16xf32>) {prescaled} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
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

// -----

// The ops of the functions a public function calls, through any depth of
// calls, are checked as its own: the callee is inlined into the check, and
// the relation names the op where it is.
// CHECK-LABEL: func.func @calls_dispatch__check_sizes(
// CHECK-SAME:      %[[IDS:.*]]: tensor<?x2xi32>, %[[W:.*]]: tensor<?x2xf32>) -> tensor<1xi32>
// CHECK-SAME:      attributes {moe.size_relations = ["moe.dispatch at {{.*}}export-result-sizes.mlir:[[# @LINE + 14]]:{{[0-9]+}}: the rows of weights and of ids"]}
// CHECK-NOT:     call
// CHECK-DAG:     %[[A:.*]] = tensor.dim %[[W]]
// CHECK-DAG:     %[[B:.*]] = tensor.dim %[[IDS]]
// CHECK:         arith.cmpi ne, %[[A]], %[[B]] : index
func.func @calls_dispatch(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<9xi32> {
  %offsets = func.call @outer(%ids, %w) : (tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<9xi32>
  return %offsets : tensor<9xi32>
}
func.func private @outer(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<9xi32> {
  %offsets = func.call @inner(%w, %ids) : (tensor<?x2xf32>, tensor<?x2xi32>) -> tensor<9xi32>
  return %offsets : tensor<9xi32>
}
func.func private @inner(%w: tensor<?x2xf32>, %ids: tensor<?x2xi32>) -> tensor<9xi32> {
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
      {num_experts = 8 : i64, capacity = 3 : i64, drop_policy = #moe.drop_policy<score>}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %offsets : tensor<9xi32>
}

// -----

// Sizes tied by an op whose operands are not in scope at the return (in a
// loop body) cannot be checked before the call: refused, not left out.
// expected-note @+1 {{in @in_loop, a public function}}
func.func @in_loop(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %n: index) -> tensor<9xi32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant dense<0> : tensor<9xi32>
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %zero) -> tensor<9xi32> {
    // expected-error @+1 {{moe-export-result-sizes: moe.dispatch at}}
    %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
        {num_experts = 8 : i64, capacity = 3 : i64, drop_policy = #moe.drop_policy<score>}
        : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
    scf.yield %offsets : tensor<9xi32>
  }
  return %r : tensor<9xi32>
}

// -----

// So are those of a function that calls itself (it cannot be inlined).
func.func @recursive(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<9xi32> {
  %offsets = func.call @again(%ids, %w) : (tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<9xi32>
  return %offsets : tensor<9xi32>
}
func.func private @again(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<9xi32> {
  // expected-error @+1 {{more than 1024 calls to inline}}
  %unused = func.call @again(%ids, %w) : (tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<9xi32>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
      {num_experts = 8 : i64, capacity = 3 : i64, drop_policy = #moe.drop_policy<score>}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %offsets : tensor<9xi32>
}
