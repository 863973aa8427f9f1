// moe-compile exports only signatures the C ABI describes: num_tokens is its
// one dynamic size, the leading size of token tensors. A result whose dynamic
// leading size is not provably num_tokens (here T * k routed rows) would make
// the library write past the caller's buffer of num_tokens rows: refused, as
// is a dynamic size in any other dimension.

// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-compile %s --function=route --name=route --emit=header -o %t
// RUN: FileCheck %s --check-prefix=ROUTE < %t/moe_route.h
// ROUTE: in  arg0 [num_tokens, 8] f32
// ROUTE: out result0 [num_tokens, 2] f32
// ROUTE: out result1 [num_tokens, 2] i32
func.func @route(%logits: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %ids = moe.route %logits {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %ids : tensor<?x2xf32>, tensor<?x2xi32>
}

// RUN: moe-compile %s --function=scaled --name=scaled --emit=header -o %t
// RUN: FileCheck %s --check-prefix=SCALED < %t/moe_scaled.h
// SCALED: out y [num_tokens, 8] f32
func.func @scaled(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %init = tensor.empty(%t) : tensor<?x8xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<?x8xf32>) outs(%init : tensor<?x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %s = arith.addf %in, %in : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// RUN: not moe-compile %s --function=routed_rows --name=rows -o %t 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ROWS
// ROWS: moe-compile: error: {{.*}}abi-extents.mlir:[[@LINE+4]]:3: @routed_rows: result 0 (tensor<?xi32>) has a dynamic leading size that is not provably num_tokens
// ROWS-NOT: error
func.func @routed_rows(%ids: tensor<?x2xi32>) -> tensor<?xi32> {
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %rows : tensor<?xi32>
}

// RUN: not moe-compile %s --function=doubled_rows --name=doubled -o %t 2>&1 \
// RUN:   | FileCheck %s --check-prefix=DOUBLED
// DOUBLED: error: {{.*}}:[[@LINE+7]]:3: @doubled_rows: result 0 (tensor<?x8xf32>) has a dynamic leading size that is not provably num_tokens
func.func @doubled_rows(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %n = arith.muli %t, %c2 : index
  %y = tensor.empty(%n) : tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// RUN: not moe-compile %s --function=inner --name=inner -o %t 2>&1 \
// RUN:   | FileCheck %s --check-prefix=INNER
// INNER: error: {{.*}}abi-extents.mlir:[[@LINE+1]]:18: @inner: argument 0 (tensor<4x?xf32>) has a dynamic size in dimension 1; the C ABI's only dynamic size is num_tokens, in the leading dimension
func.func @inner(%x: tensor<4x?xf32>) -> tensor<4xf32> {
  %c0 = arith.constant 0 : index
  %v = tensor.extract %x[%c0, %c0] : tensor<4x?xf32>
  %y = tensor.splat %v : tensor<4xf32>
  return %y : tensor<4xf32>
}
