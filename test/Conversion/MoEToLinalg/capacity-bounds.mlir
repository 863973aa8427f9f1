// A capacity past what routed rows (i32) can count keeps every selection: it
// lowers to the i32 maximum, not to its truncation (4294967297 would read 1),
// and a capacity factor's ceil is clamped in f64 before it becomes an i32.
// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file | FileCheck %s

// CHECK-LABEL: func.func @huge_capacity
// CHECK: arith.constant 2147483647 : i32
// CHECK-NOT: arith.constant 1 : i32
func.func @huge_capacity(%ids: tensor<?x2xi32>) -> (tensor<?xi32>, tensor<9xi32>) {
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity = 4294967297 : i64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<9xi32>
}

// -----

// CHECK-LABEL: func.func @huge_factor
// CHECK: %[[CEIL:.*]] = math.ceil
// CHECK: %[[CLAMPED:.*]] = arith.minimumf %[[CEIL]], %{{.*}} : f64
// CHECK: arith.fptosi %[[CLAMPED]] : f64 to i32
func.func @huge_factor(%ids: tensor<?x2xi32>) -> (tensor<?xi32>, tensor<9xi32>) {
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity_factor = 1.0e+300 : f64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<9xi32>
}
