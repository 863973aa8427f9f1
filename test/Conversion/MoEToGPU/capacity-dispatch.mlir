// RUN: moe-opt %s --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file | FileCheck %s
// Code size does not grow with k or E: k = 64 over 4096 experts (the last
// case) lowers to no more IR than k = 2 over 8 (the second, same policy).
// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | %python -c \
// RUN:   "import sys; n = [len(c.splitlines()) for c in sys.stdin.read().split('// ' + '-' * 5)]; assert n[-1] <= n[1], n"

// A capacity-limited dispatch is the uncapped counting sort run twice around
// two small kernels. Position policy: the ids are first laid out slot-major
// (row j * T + t holds ids[t, j]), so the first sort's stable order within
// an expert is the policy's priority and a row's rank is its distance from
// the expert's first row; the kept ids (-1 where dropped) are sorted again.

// CHECK-LABEL: func.func @position
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_slot_major)
// CHECK:         %[[T:.*]] = arith.divui %[[F:.*]], %c2
// CHECK:         %[[J:.*]] = arith.remui %[[F]], %c2
// CHECK:         %[[JT:.*]] = arith.muli %[[J]], %{{.*}} : index
// CHECK:         %[[P:.*]] = arith.addi %[[JT]], %[[T]] : index
// CHECK:         %[[ID:.*]] = memref.load %{{.*}}[%[[T]], %[[J]]] : memref<?x2xi32>
// CHECK:         memref.store %[[ID]], %{{.*}}[%[[P]], %{{.*}}] : memref<?x1xi32>
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_block)
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_count)
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_scan)
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_place)
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_capacity_clear)
// CHECK:         memref.store %c-1_i32, %{{.*}} : memref<?x2xi32>
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_capacity_keep_position)
// The row's expert: a binary search over the 9 offsets, ceil(log2(9)) steps.
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c4 step
// CHECK:         %[[RANK:.*]] = arith.subi
// CHECK:         %[[ROOM:.*]] = arith.cmpi ult, %[[RANK]], %{{.*}} : index
// CHECK:         scf.if %[[ROOM]]
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_block)
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_place)
// The combine reads the final sort's inverse rows: no inversion of its own.
// CHECK-NOT:   moe_combine_invert
// CHECK:       gpu.launch {{.*}} function(@moe_combine)
func.func @position(%ids: tensor<?x2xi32>, %ys: tensor<?x16xf32>, %w: tensor<?x2xf32>,
                    %init: tensor<?x16xf32>) -> (tensor<?x16xf32>, tensor<9xi32>) {
  %rows, %offsets = moe.dispatch %ids {num_experts = 8 : i64, capacity = 3 : i64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x16xf32>, tensor<?xi32>, tensor<?x2xf32>)
      outs(%init : tensor<?x16xf32>) -> tensor<?x16xf32>
  return %y, %offsets : tensor<?x16xf32>, tensor<9xi32>
}

// -----

// Score policy with a capacity factor: C = ceil(f * T * k / E) on the host,
// in f64, clamped to [0, T * k]. The first sort runs over the ids as they
// are, so each expert's rows are in flat order; one block per expert then
// keeps its C largest weights (larger, then lower flat index, NaN last): a
// radix select of 32 one-bit passes over order-preserving keys, each a count
// reduced by a block scan, then a sweep over tiles of 256 rows.

// CHECK-LABEL: func.func @score
// CHECK:       math.ceil %{{.*}} : f64
// CHECK:       arith.minimumf
// CHECK:       %[[CAP:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK-NOT:   moe_dispatch_slot_major
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_block)
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_capacity_clear)
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %c8{{.*}}, {{.*}} threads({{.*}}) in (%{{.*}} = %c256{{.*}}, {{.*}} function(@moe_dispatch_capacity_keep_score) workgroup(%{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK:         %[[FIRST:.*]] = arith.index_cast %{{.*}} : i32 to index
// CHECK:         %[[LAST:.*]] = arith.maxui %{{.*}}, %[[FIRST]] : index
// CHECK:         %[[ROWS:.*]] = arith.subi %[[LAST]], %[[FIRST]] : index
// CHECK:         arith.minui %[[CAP]], %[[ROWS]] : index
// CHECK:         %[[FOUND:.*]]:2 = scf.for %{{.*}} = %{{.*}} to %c32 step
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[LAST]] step %c256
// CHECK:             memref.load %{{.*}} : memref<?x2xf32>
// CHECK:             arith.bitcast %{{.*}} : f32 to i32
// CHECK:             arith.cmpf uno
// CHECK:           gpu.barrier
// CHECK:         scf.for %{{.*}} = %[[FIRST]] to %[[LAST]] step %c256
// CHECK:           arith.cmpi ugt, %{{.*}}, %[[FOUND]]#0 : i32
// CHECK:           memref.store %{{.*}}, %{{.*}} : memref<?x2xi32>
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_block)
func.func @score(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> (tensor<?xi32>, tensor<9xi32>) {
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
      {num_experts = 8 : i64, capacity_factor = 1.25 : f64, drop_policy = #moe.drop_policy<score>}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<9xi32>
}

// -----

// With an expert map, both sorts take it: only local experts get rows and
// a capacity.

// CHECK-LABEL: func.func @expert_map
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_block)
// CHECK:         memref.load %{{.*}}[%{{.*}}] : memref<8xi32>
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_capacity_keep_score)
// CHECK:       gpu.launch {{.*}} function(@moe_dispatch_block)
// CHECK:         memref.load %{{.*}}[%{{.*}}] : memref<8xi32>
func.func @expert_map(%ids: tensor<16x2xi32>, %w: tensor<16x2xf32>, %map: tensor<8xi32>)
    -> (tensor<32xi32>, tensor<5xi32>) {
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<16x2xf32>) expert_map(%map : tensor<8xi32>)
      {num_experts = 8 : i64, capacity = 2 : i64, drop_policy = #moe.drop_policy<score>}
      : tensor<16x2xi32> -> tensor<32xi32>, tensor<5xi32>
  return %rows, %offsets : tensor<32xi32>, tensor<5xi32>
}

// -----

// k = 64 over 4096 experts: the same kernels, one block per expert and
// loops over the bits and the rows.

// CHECK-LABEL: func.func @large
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %c4096{{.*}}, {{.*}} function(@moe_dispatch_capacity_keep_score)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c32 step
func.func @large(%ids: tensor<?x64xi32>, %w: tensor<?x64xf32>) -> (tensor<?xi32>, tensor<4097xi32>) {
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x64xf32>)
      {num_experts = 4096 : i64, capacity = 3 : i64, drop_policy = #moe.drop_policy<score>}
      : tensor<?x64xi32> -> tensor<?xi32>, tensor<4097xi32>
  return %rows, %offsets : tensor<?xi32>, tensor<4097xi32>
}
