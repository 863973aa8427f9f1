// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_80 --moe-gpu-share-row-tiles \
// RUN:   --cse --convert-moe-to-gpu --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_80 large-staged=false" \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefix=UNSTAGED
// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefix=WGMMA
// RUN: moe-opt %s --moe-gpu-select-kernel-config="large-rows-per-expert=64 wgmma-producer=false" \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefix=ALLWARPS
// RUN: moe-opt %s --moe-gpu-select-kernel-config="large-rows-per-expert=64 wgmma-swizzled-a=false" \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefix=CHUNKMAJOR
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_80 small-split-k-from=32" \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefix=SPLITFROM
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_80 small-unroll=2" \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefix=STAGES
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_80 small-unroll=2 small-stages=1" \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefix=ONEGROUP

// The expert half of a layer: dispatch (three counting-sort kernels), the
// gathered gate/up matmul with its GLU epilogue and the down matmul with the
// row scale (each a tile schedule plus two tensor-core tile shapes picked on
// the host), and the combine, which reuses the dispatch's inverse rows.

// Without staging, the prefill warps load their fragments from global memory.
// UNSTAGED-LABEL: func.func @experts
// UNSTAGED:       gpu.launch {{.*}} function(@moe_grouped_matmul_large) {
// UNSTAGED-NOT:     nvgpu.
// UNSTAGED:         vector.load {{.*}} : memref<?x64xbf16>, vector<8xbf16>
// UNSTAGED:         nvvm.mma.sync

// With wgmma (sm_90a), two warpgroups multiply each 128 x 256 tile from
// shared memory, in K tiles of 64 with 4 stages, and a third (the producer)
// brings them: the weights by TMA (a descriptor made on the host, two
// 128-row boxes per stage, 128-byte swizzle) and the gathered A rows by
// cp.async, into the same swizzle (chunk c of row r at c xor r mod 8). A
// stage's full mbarrier completes on the TMA bytes and on each producer
// thread's cp.async arrival (129 arrivals); its empty one on every consumer
// thread's release (256). The roles branch on the warpgroup index read from
// lane 0. A consumer warpgroup whose 64 rows are past the tile's rows (a
// flag also read from lane 0) only waits for and releases each stage. Each
// K tile's group stays in flight while the next one is issued. The f32
// activations of the second matmul keep the mma.sync kernel.
// WGMMA-LABEL: func.func @experts
// WGMMA:       nvgpu.tma.create.descriptor %{{.*}} box[%{{.*}}, %{{.*}}, %{{.*}}] : memref<*xbf16> -> <tensor = memref<1x128x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// WGMMA:       gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c384{{.*}}) dynamic_shared_memory_size %c197632_i32 {{.*}} function(@moe_grouped_matmul_large)
// WGMMA:         memref.view {{.*}} to memref<4x256x64xbf16, #gpu.address_space<workgroup>>
// WGMMA:         memref.view {{.*}} to memref<4x128x64xbf16, #gpu.address_space<workgroup>>
// WGMMA:         %[[FULL:.*]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// WGMMA:         %[[EMPTY:.*]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// WGMMA:         nvgpu.mbarrier.init %[[FULL]][%{{.*}}], %c129
// WGMMA:         nvgpu.mbarrier.init %[[EMPTY]][%{{.*}}], %c256
// WGMMA:         nvgpu.mbarrier.init %[[FULL]][%{{.*}}], %c129
// WGMMA:         nvgpu.mbarrier.init %[[EMPTY]][%{{.*}}], %c256
// WGMMA:         nvgpu.mbarrier.init %[[FULL]][%{{.*}}], %c129
// WGMMA:         nvgpu.mbarrier.init %[[EMPTY]][%{{.*}}], %c256
// WGMMA:         nvgpu.mbarrier.init %[[FULL]][%{{.*}}], %c129
// WGMMA:         nvgpu.mbarrier.init %[[EMPTY]][%{{.*}}], %c256
// WGMMA:         gpu.barrier
// WGMMA:         gpu.shuffle idx
// WGMMA:         scf.for
// WGMMA:           nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// WGMMA:           nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768
// WGMMA-COUNT-2:   nvgpu.tma.async.load
// WGMMA:           arith.xori
// WGMMA-COUNT-8:   nvgpu.device_async_copy
// WGMMA:           nvgpu.mbarrier.get %[[FULL]]
// WGMMA:           nvvm.cp.async.mbarrier.arrive %{{.*}} {noinc = true}
// WGMMA:         gpu.shuffle idx
// WGMMA:         scf.if
// WGMMA:           scf.for
// WGMMA:             nvgpu.mbarrier.try_wait.parity %[[FULL]]
// WGMMA-NEXT:        nvgpu.mbarrier.arrive %[[EMPTY]]
// WGMMA:         } else {
// WGMMA:         scf.for
// WGMMA:           nvgpu.mbarrier.try_wait.parity %[[FULL]]
// WGMMA:           nvvm.fence.proxy
// WGMMA:           nvvm.wgmma.fence.aligned
// WGMMA-COUNT-4:   nvvm.wgmma.mma_async {{.*}} <m = 64, n = 256, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// WGMMA:           nvvm.wgmma.commit.group.sync.aligned
// WGMMA:           nvvm.wgmma.wait.group.sync.aligned 1
// WGMMA:           nvgpu.mbarrier.arrive %[[EMPTY]]
// WGMMA:         nvvm.wgmma.wait.group.sync.aligned 0
// WGMMA:       dynamic_shared_memory_size %c122880_i32 {{.*}} function(@moe_grouped_matmul_large)
// WGMMA-NOT:     nvvm.wgmma.mma_async
// WGMMA:         nvvm.mma.sync

// Without the producer, every warp copies and multiplies: the copies of
// the tile `stages - 1` ahead are issued after a block barrier, once the
// previous tile's multiplications are done.
// ALLWARPS-LABEL: func.func @experts
// ALLWARPS:       gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c256{{.*}}) dynamic_shared_memory_size %c197632_i32 {{.*}} function(@moe_grouped_matmul_large)
// ALLWARPS-COUNT-4: nvgpu.mbarrier.init %{{.*}}, %c1{{.*}}
// ALLWARPS-NOT:     gpu.shuffle
// ALLWARPS:         nvgpu.mbarrier.try_wait.parity
// ALLWARPS:         nvvm.wgmma.wait.group.sync.aligned 1
// ALLWARPS:         gpu.barrier
// ALLWARPS:         nvgpu.tma.async.load
// ALLWARPS:         nvgpu.device_async_copy
// ALLWARPS:         nvvm.wgmma.wait.group.sync.aligned 0

// Without the swizzle, the A stages are K-chunk-major: [chunk of 8 K][row][8].
// CHUNKMAJOR-LABEL: func.func @experts
// CHUNKMAJOR:       function(@moe_grouped_matmul_large)
// CHUNKMAJOR:         memref.view {{.*}} to memref<4x256x64xbf16, #gpu.address_space<workgroup>>
// CHUNKMAJOR:         memref.view {{.*}} to memref<4x8x128x8xbf16, #gpu.address_space<workgroup>>
// CHUNKMAJOR-NOT:     arith.xori
// CHUNKMAJOR:         nvvm.wgmma.mma_async

// Below small-split-k-from (1024 by default) the decode kernel's 4 warps
// each take all of K, over 4 times the columns (one block of columns here);
// from it, they share their columns (3 blocks of them for the 48 columns)
// and sum their quarters of K through shared memory.
// SPLITFROM-LABEL: func.func @experts
// SPLITFROM:       gpu.launch blocks({{.*}}) in (%{{.*}} = %c3, {{.*}} function(@moe_grouped_matmul_small) workgroup(

// With two groups in flight (small-stages = 2, the default) the decode
// kernel's K loop carries the next group's fragments (2 steps of 2 A rows
// and 4 weight rows here, for the GLU's gate and up tiles) beside the 16
// accumulators: each iteration loads the next group, then multiplies the
// one loaded before.
// STAGES-LABEL: func.func @experts
// STAGES:       function(@moe_grouped_matmul_small)
// STAGES:         scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>) {
// STAGES:           vector.load
// STAGES-NOT:       scf.yield
// STAGES:           nvvm.mma.sync
// STAGES:           scf.yield
// With one group (small-stages = 1) the loop carries the accumulators alone.
// ONEGROUP-LABEL: func.func @experts
// ONEGROUP:       function(@moe_grouped_matmul_small)
// ONEGROUP:         scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// ONEGROUP:           vector.load
// ONEGROUP:           nvvm.mma.sync
// ONEGROUP:           scf.yield

// Up to 256 selections (decode) the dispatch is one block in one launch,
// its counts and starts in shared memory; beyond, three kernels over chunks.
// Each block first stages its chunk's experts in shared memory. The routed
// rows' tiles (the dispatch's row_tiles) are scheduled once, in large or in
// small tiles as the host picks from the rows per expert, and both
// projections read them: by the one-block dispatch itself (tile counts in a
// fourth shared buffer), else by the schedule kernel after the chunked sort.
// Each chunk ranks its selections by warps: match.any finds the lanes of a
// warp on the same expert, and a fifth buffer counts each of the 8 warps'
// selections per expert (8 x 4), so each thread places its own selection.
// CHECK-LABEL: func.func @experts
// CHECK:     %[[SCHEDULE:.*]] = memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK:     %[[TILE_ROWS:.*]] = arith.select %{{.*}}, %c128{{.*}}, %c16{{.*}} : index
// CHECK:     %[[ONE:.*]] = arith.cmpi ule, %{{.*}}, %c256
// CHECK:     scf.if %[[ONE]] {
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_block_row_tiles) workgroup(%{{.*}} : memref<4xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<4xi32, #gpu.address_space<workgroup>>, %[[TABLE:.*]] : memref<32xi32, #gpu.address_space<workgroup>>)
// CHECK:         gpu.barrier
// CHECK:         %[[SAME:.*]] = nvvm.match.sync any %{{.*}}, %{{.*}} : i32 -> i32
// CHECK:         %[[BELOW:.*]] = arith.andi %[[SAME]], %{{.*}} : i32
// CHECK:         llvm.intr.ctpop(%[[SAME]])
// CHECK:         memref.store %{{.*}}, %[[TABLE]]
// CHECK:         gpu.barrier
// CHECK:         llvm.intr.ctpop(%[[BELOW]])
// CHECK:         gpu.barrier
// CHECK:         gpu.barrier
// CHECK:         arith.index_cast %[[TILE_ROWS]] : index to i32
// CHECK:         memref.store %{{.*}}, %[[SCHEDULE]]
// CHECK:         gpu.terminator
// CHECK-NOT:   gpu.launch
// CHECK:     } else {
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_count) workgroup(%{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<32xi32, #gpu.address_space<workgroup>>)
// CHECK:         nvvm.match.sync any
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_scan)
// CHECK:         gpu.barrier
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_place)
// CHECK:         nvvm.match.sync any
// CHECK:       scf.if
// CHECK:         gpu.launch {{.*}} function(@moe_tile_schedule)
// CHECK:       } else {
// CHECK:         gpu.launch {{.*}} function(@moe_tile_schedule)
// CHECK:       }
// CHECK:     }
// The prefill shape stages 128 x 128 tiles of K through 4 stages of dynamic
// shared memory: read with ldmatrix when the activations have the weights'
// type, read as f32 pairs and rounded for the second matmul's f32 ones.
// CHECK-NOT:   function(@moe_tile_schedule)
// CHECK:     scf.if
// CHECK:       gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c256{{.*}}) dynamic_shared_memory_size %c81920_i32 {{.*}} function(@moe_grouped_matmul_large)
// CHECK:         gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK:         memref.view {{.*}} to memref<4x128x40xbf16, #gpu.address_space<workgroup>>
// CHECK:         memref.view {{.*}}[%c40960][] {{.*}} to memref<4x128x40xbf16, #gpu.address_space<workgroup>>
// CHECK:         nvgpu.device_async_copy {{.*}} : memref<?x64xbf16> to memref<4x128x40xbf16, #gpu.address_space<workgroup>>
// CHECK:         nvvm.cp.async.commit.group
// CHECK:         nvvm.cp.async.wait.group 2
// CHECK:         gpu.barrier
// CHECK:         nvgpu.ldmatrix {{.*}} {numTiles = 4 : i32, transpose = false}
// CHECK:         nvvm.mma.sync {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>{{.*}}shape = #nvvm.shape<m = 16, n = 8, k = 16>
// CHECK:     } else {
// CHECK-NOT:   function(@moe_tile_schedule)
// CHECK:       gpu.launch {{.*}} function(@moe_grouped_matmul_small)
// CHECK:         nvvm.mma.sync
// The down projection, over the same rows and offsets, reads the same tiles.
// CHECK-NOT:   function(@moe_tile_schedule)
// CHECK:       gpu.launch {{.*}} dynamic_shared_memory_size %c122880_i32 {{.*}} function(@moe_grouped_matmul_large)
// CHECK:         memref.view {{.*}} to memref<4x128x40xf32, #gpu.address_space<workgroup>>
// CHECK:         nvgpu.device_async_copy {{.*}} : memref<?x48xf32> to memref<4x128x40xf32, #gpu.address_space<workgroup>>
// CHECK:         vector.load {{.*}} : memref<4x128x40xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// CHECK:         arith.truncf {{.*}} : vector<2xf32> to vector<2xbf16>
// CHECK:         nvvm.mma.sync
// CHECK-NOT: function(@moe_tile_schedule)
// The combine loads 16 bytes of each row at once (4 f32 columns) where ys
// and the output are 16-byte aligned, else one column per thread.
// CHECK:     scf.if
// CHECK:       gpu.launch {{.*}} function(@moe_combine_wide)
// CHECK:         vector.load {{.*}} {alignment = 16 : i64} : memref<?x64xf32>, vector<4xf32>
// CHECK:         arith.truncf {{.*}} : vector<4xf32> to vector<4xbf16>
// CHECK:         vector.store {{.*}} {alignment = 8 : i64} : memref<?x64xbf16>, vector<4xbf16>
// CHECK:     } else {
// CHECK:       gpu.launch {{.*}} function(@moe_combine)
// CHECK-NOT: moe.
// CHECK:     return
func.func @experts(%x: tensor<?x64xbf16>, %w13: tensor<4x96x64xbf16>, %w2: tensor<4x64x48xbf16>,
                   %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>) {num_experts = 4 : i64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %i1 = tensor.empty(%m) : tensor<?x48xf32>
  %a = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x64xbf16>, tensor<4x96x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) outs(%i1 : tensor<?x48xf32>)
      {epilogue = #moe.activation<silu>, gather, k = 2 : i64} -> tensor<?x48xf32>
  %i2 = tensor.empty(%m) : tensor<?x64xf32>
  %ys = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<?x48xf32>, tensor<4x64x48xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) row_scale(%w : tensor<?x2xf32>) outs(%i2 : tensor<?x64xf32>)
      {k = 2 : i64} -> tensor<?x64xf32>
  %i3 = tensor.empty(%t) : tensor<?x64xbf16>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32>)
      outs(%i3 : tensor<?x64xbf16>) {prescaled} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// f32 weights, and K not a multiple of 8, take one thread per output.

// CHECK-LABEL: func.func @plain
// CHECK:       gpu.launch {{.*}} function(@moe_grouped_matmul_plain)
// CHECK-NOT:   nvvm.mma.sync
func.func @plain(%x: tensor<?x13xf32>, %w: tensor<2x7x13xf32>, %offsets: tensor<3xi32>)
    -> tensor<?x7xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x13xf32>
  %init = tensor.empty(%t) : tensor<?x7xf32>
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x13xf32>, tensor<2x7x13xf32>, tensor<3xi32>)
      outs(%init : tensor<?x7xf32>) -> tensor<?x7xf32>
  return %y : tensor<?x7xf32>
}

// -----

// Routing: one thread per token.

// CHECK-LABEL: func.func @route
// CHECK:       gpu.launch {{.*}} function(@moe_route)
// CHECK:         arith.shli {{.*}} : i64
func.func @route(%logits: tensor<?x32xf32>, %bias: tensor<32xf32>)
    -> (tensor<?x8xf32>, tensor<?x8xi32>) {
  %w, %ids = moe.route %logits bias(%bias : tensor<32xf32>)
      {k = 8 : i64, scoring = #moe.scoring<sigmoid>, n_group = 8 : i64, topk_group = 4 : i64,
       renormalize, scale = 2.5 : f64} : tensor<?x32xf32> -> tensor<?x8xf32>, tensor<?x8xi32>
  return %w, %ids : tensor<?x8xf32>, tensor<?x8xi32>
}

// -----

// With K >= 1024 the decode tile shape has its 4 warps split K and add their
// sums through workgroup memory, in a fixed order, before the epilogue.

// CHECK-LABEL: func.func @split_k
// CHECK:       gpu.launch {{.*}} function(@moe_grouped_matmul_small) workgroup(%{{.*}} : memref<768xf32, #gpu.address_space<workgroup>>)
// CHECK:         nvvm.mma.sync
// CHECK:         gpu.barrier
// CHECK:         memref.load {{.*}} : memref<768xf32, #gpu.address_space<workgroup>>
func.func @split_k(%x: tensor<?x1024xbf16>, %w: tensor<4x32x1024xbf16>, %offsets: tensor<5xi32>)
    -> tensor<?x32xbf16> {
  %c0 = arith.constant 0 : index
  %m = tensor.dim %x, %c0 : tensor<?x1024xbf16>
  %init = tensor.empty(%m) : tensor<?x32xbf16>
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x1024xbf16>, tensor<4x32x1024xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x32xbf16>) -> tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}

// -----

// CUDA launches at most 65535 blocks along y. Rows on y are launched in
// slices of 65535 from a host loop, each launch adding its first row to its
// block's y.

// CHECK-LABEL: func.func @many_rows
// CHECK:       %[[ROWS:.*]] = memref.dim %{{.*}}, %c0
// CHECK:       scf.for %[[FIRST:.*]] = %{{.*}} to %[[ROWS]] step %c65535 {
// CHECK:         %[[LEFT:.*]] = arith.subi %[[ROWS]], %[[FIRST]]
// CHECK:         %[[COUNT:.*]] = arith.minui %[[LEFT]], %c65535
// CHECK:         gpu.launch blocks(%{{[^)]*}}) in (%{{[^,]*}}, %{{[^ ]*}} = %[[COUNT]], {{.*}} function(@moe_glu)
// CHECK:           %[[BY:.*]] = gpu.block_id y
// CHECK:           %[[ROW:.*]] = arith.addi %[[BY]], %[[FIRST]]
// CHECK-NOT:       gpu.block_id y
// CHECK:           memref.load %{{.*}}[%[[ROW]], %{{.*}}]
func.func @many_rows(%h: tensor<?x64xf32>) -> tensor<?x32xf32> {
  %c0 = arith.constant 0 : index
  %m = tensor.dim %h, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%m) : tensor<?x32xf32>
  %y = moe.glu ins(%h : tensor<?x64xf32>) outs(%init : tensor<?x32xf32>) -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
