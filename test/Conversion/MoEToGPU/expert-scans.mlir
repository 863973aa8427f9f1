// RUN: moe-opt %s --moe-gpu-select-kernel-config --moe-gpu-share-row-tiles \
// RUN:   --cse --convert-moe-to-gpu | FileCheck %s

// The dispatch's one-block kernel and the row-tile schedule scan the
// experts' counts with the whole block (a scratch of one i32 per thread
// beside the counts), not with one thread walking the experts: 300 experts,
// more than the block's 256 threads, take runs of two per thread. The
// one-block dispatch, which writes the row tiles too, scans twice: the
// experts' rows, then their tiles (a second buffer of 300 counts).
// CHECK-LABEL: func.func @experts
// CHECK:       threads({{.*}}) in (%{{.*}} = %c256{{.*}}) module(@moe_kernels) function(@moe_dispatch_block_row_tiles) workgroup(%{{.*}} : memref<300xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %[[TILES:.*]] : memref<300xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<2400xi32, #gpu.address_space<workgroup>>)
// CHECK:         scf.for %{{.*}} = %c0{{.*}} to %c8{{.*}} step %c1
// CHECK:         memref.store %{{.*}}, %[[TILES]][%{{.*}}] : memref<300xi32, #gpu.address_space<workgroup>>
// CHECK:         scf.for %{{.*}} = %c0{{.*}} to %c8{{.*}} step %c1
// CHECK:         gpu.terminator
// CHECK:       function(@moe_dispatch_scan) workgroup(%{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK:       blocks({{.*}}) in (%{{.*}} = %c2{{.*}}) threads({{.*}}) in (%{{.*}} = %c256{{.*}}) module(@moe_kernels) function(@moe_tile_schedule) workgroup(%{{.*}} : memref<300xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>)
// The scan's log2(256) = 8 steps, each between two barriers.
// CHECK:         scf.for %{{.*}} = %c0{{.*}} to %c8{{.*}} step %c1
// CHECK:           arith.shli %c1
// CHECK:           gpu.barrier
// CHECK:           gpu.barrier
func.func @experts(%x: tensor<?x64xbf16>, %w13: tensor<300x64x64xbf16>,
                   %ids: tensor<?x4xi32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %rows, %offsets = moe.dispatch %ids {num_experts = 300 : i64}
      : tensor<?x4xi32> -> tensor<?xi32>, tensor<301xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %i0 = tensor.empty(%m) : tensor<?x64xf32>
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x64xbf16>,
      tensor<300x64x64xbf16>, tensor<301xi32>) rows(%rows : tensor<?xi32>)
      outs(%i0 : tensor<?x64xf32>) {gather, k = 4 : i64} -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}
