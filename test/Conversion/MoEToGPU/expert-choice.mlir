// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | FileCheck %s

// Expert-choice routing in three kernels: the softmax per token (loops over
// the experts), each (token, expert) pair's rank in its expert's column (a
// loop over the tokens; chosen below C = min(capacity, T)), and one block
// per expert placing its chosen tokens in ascending order through a block
// scan over tiles of 256 tokens (a loop of log2(256) = 8 steps).

// CHECK-LABEL: func.func @expert_choice
// CHECK:       %[[C:.*]] = arith.minui %c4{{.*}}, %[[T:.*]] : index
// CHECK:       %[[ROWS:.*]] = arith.muli %[[C]], %c8
// CHECK:       memref.alloc(%[[ROWS]]) : memref<?xi32>
// CHECK:       gpu.launch {{.*}} function(@moe_expert_choice_softmax)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c8 step
// CHECK:           arith.maximumf
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c8 step
// CHECK:           math.exp
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %{{.*}}, %{{.*}} = %c8{{.*}}, %{{.*}} = %{{.*}}) {{.*}} function(@moe_expert_choice_select)
// CHECK:         %[[AHEAD:.*]] = scf.for %{{.*}} = %{{.*}} to %[[T]] step %{{.*}} iter_args
// CHECK:           arith.cmpf ogt
// CHECK:         %[[PICK:.*]] = arith.cmpi ult, %[[AHEAD]], %[[C]] : index
// CHECK:         arith.select %[[PICK]], %{{.*}}, %cst{{.*}} : f32
// CHECK:       gpu.launch {{.*}} function(@moe_expert_choice_place) workgroup(%[[SCRATCH:.*]] : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %[[T]] step %c256
// CHECK:           gpu.barrier
// CHECK:           scf.for %{{.*}} = %{{.*}} to %c8{{.*}} step
// CHECK:             gpu.barrier
// CHECK:             gpu.barrier
// CHECK:           %[[TOTAL:.*]] = memref.load %[[SCRATCH]][%c255{{.*}}]
// CHECK:           gpu.barrier
// The flat selection t * E + e at e * C + (its place among the chosen).
// CHECK:           %[[BEFORE:.*]] = arith.subi %[[INCLUSIVE:.*]], %[[FLAG:.*]] : i32
// CHECK:           %[[PICKED:.*]] = arith.cmpi ne, %[[FLAG]], %c0{{.*}} : i32
// CHECK:           scf.if %[[PICKED]]
// CHECK:             %[[PLACE:.*]] = arith.addi %[[PLACED:.*]], %[[BEFORE]] : i32
// CHECK:             %[[TE:.*]] = arith.muli %{{.*}}, %c8{{.*}} : i32
// CHECK:             %[[FLAT:.*]] = arith.addi %[[TE]], %{{.*}} : i32
// CHECK:             memref.store %[[FLAT]], %{{.*}}[%{{.*}}] : memref<?xi32>
// CHECK:           arith.addi %[[PLACED]], %[[TOTAL]] : i32
// CHECK:         memref.store %{{.*}}, %{{.*}}[%c8{{.*}}] : memref<9xi32>
func.func @expert_choice(%logits: tensor<?x8xf32>)
    -> (tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>) {
  %w, %rows, %offsets = moe.expert_choice %logits {capacity = 4 : i64}
      : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>
  return %w, %rows, %offsets : tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>
}

// -----

// 4096 experts: loops over the experts, nothing unrolled; the rank kernel's
// grid has one row of blocks per expert.

// CHECK-LABEL: func.func @many_experts
// CHECK:       gpu.launch {{.*}} function(@moe_expert_choice_softmax)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c4096 step
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %{{.*}}, %{{.*}} = %c4096{{.*}}, %{{.*}} = %{{.*}}) {{.*}} function(@moe_expert_choice_select)
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %c4096{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) {{.*}} function(@moe_expert_choice_place)
// CHECK-NOT:   gpu.launch
func.func @many_experts(%logits: tensor<16x4096xf32>)
    -> (tensor<16x4096xf32>, tensor<4096xi32>, tensor<4097xi32>) {
  %w, %rows, %offsets = moe.expert_choice %logits {capacity = 1 : i64}
      : tensor<16x4096xf32> -> tensor<16x4096xf32>, tensor<4096xi32>, tensor<4097xi32>
  return %w, %rows, %offsets : tensor<16x4096xf32>, tensor<4096xi32>, tensor<4097xi32>
}
