// Per-slot code is unrolled up to k = 8 and loops past it: k = E = 4096,
// which the verifier allows, lowers to kernels of the same size as k = 16
// (unrolled, the NVVM pipeline ran for minutes and ran out of memory).
// RUN: moe-opt %s --convert-moe-to-gpu | FileCheck %s
// RUN: timeout 60 moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa" | FileCheck %s --check-prefix=PTX

// Routing: the k selection passes and each pass over the picked weights are
// loops over the slots.
// CHECK-LABEL: func.func @route_all
// CHECK:       gpu.launch {{.*}} function(@moe_route)
// CHECK:         %[[K:.*]] = arith.constant 4096 : index
// CHECK:         scf.for %{{.*}} = %{{.*}} to %[[K]] step %{{.*}} iter_args({{.*}}) -> (f32, i32, f32)
// CHECK:           scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (f32, i32, f32)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}}) -> (f32)
// CHECK:           arith.maximumf
// CHECK:         scf.for
// CHECK:           math.exp
// PTX: moe_route
func.func @route_all(%logits: tensor<?x4096xf32>) -> (tensor<?x4096xf32>, tensor<?x4096xi32>) {
  %w, %ids = moe.route %logits {k = 4096 : i64, scoring = #moe.scoring<softmax_topk>, renormalize, scale = 2.0 : f64}
      : tensor<?x4096xf32> -> tensor<?x4096xf32>, tensor<?x4096xi32>
  return %w, %ids : tensor<?x4096xf32>, tensor<?x4096xi32>
}

// Combine: both variants (16-byte and scalar loads) sum the slots in a loop,
// in ascending slot order as at small k.
// CHECK-LABEL: func.func @combine_all
// CHECK:       gpu.launch {{.*}} function(@moe_combine_wide)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}}) -> (vector<4xf32>)
// CHECK-COUNT-1:   vector.load
// CHECK:       gpu.launch {{.*}} function(@moe_combine)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}}) -> (f32)
// PTX: moe_combine
func.func @combine_all(%ys: tensor<?x64xf32>, %rows: tensor<?xi32>, %w: tensor<?x4096xf32>, %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x4096xf32>) outs(%init : tensor<?x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
