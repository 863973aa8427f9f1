// RUN: moe-opt %s --convert-moe-to-gpu | FileCheck %s

// Past 1024 local experts the table of counts per warp and expert (8 x 4
// bytes an expert) would not fit in shared memory beside the starts: the
// dispatch keeps one thread per expert walking the chunk's selections, with
// no match.sync and no table.
// CHECK-LABEL: func.func @dispatch
// CHECK:       function(@moe_dispatch_block) workgroup(%{{.*}} : memref<1100xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK-NOT:   nvvm.match.sync
// CHECK:       function(@moe_dispatch_count) workgroup(%{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK-NOT:   nvvm.match.sync
// CHECK:       function(@moe_dispatch_place) workgroup(%{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK-NOT:   nvvm.match.sync
// CHECK-LABEL: func.func @dispatch_ranked
// CHECK:       function(@moe_dispatch_block) workgroup(%{{.*}} : memref<1024xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<8192xi32, #gpu.address_space<workgroup>>)
// CHECK:       nvvm.match.sync any
func.func @dispatch(%ids: tensor<?x4xi32>) -> (tensor<?xi32>, tensor<1101xi32>) {
  %rows, %offsets = moe.dispatch %ids {num_experts = 1100 : i64}
      : tensor<?x4xi32> -> tensor<?xi32>, tensor<1101xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<1101xi32>
}

func.func @dispatch_ranked(%ids: tensor<?x4xi32>) -> (tensor<?xi32>, tensor<1025xi32>) {
  %rows, %offsets = moe.dispatch %ids {num_experts = 1024 : i64}
      : tensor<?x4xi32> -> tensor<?xi32>, tensor<1025xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<1025xi32>
}
