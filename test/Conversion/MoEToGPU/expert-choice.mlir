// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | FileCheck %s

// Expert-choice routing in two kernels: the softmax per token (loops over
// the experts), written expert-major; then one block per expert. Its block
// maps each probability to a key whose unsigned order is the ranking order
// (the f32 bits, flipped), finds the C-th largest key (C = min(capacity, T))
// by a radix select of 32 one-bit passes, each a count reduced by a block
// scan (a loop of log2(256) = 8 steps), and in one sweep over tiles of 256
// tokens takes the keys above it and the first of those equal to it (a scan
// in token order), writing the weights and placing the chosen tokens in
// ascending order (a second scan).

// CHECK-LABEL: func.func @expert_choice
// CHECK:       %[[C:.*]] = arith.minui %c4{{.*}}, %[[T:.*]] : index
// CHECK:       %[[PROBS:.*]] = memref.alloc(%[[T]]) : memref<8x?xf32>
// CHECK:       %[[ROWS:.*]] = arith.muli %[[C]], %c8
// CHECK:       memref.alloc(%[[ROWS]]) : memref<?xi32>
// CHECK:       gpu.launch {{.*}} function(@moe_expert_choice_softmax)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c8 step
// CHECK:           arith.maximumf
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c8 step
// CHECK:           math.exp
// CHECK:         scf.for %[[E:.*]] = %{{.*}} to %c8 step
// CHECK:           memref.store %{{.*}}, %[[PROBS]][%[[E]], %{{.*}}] : memref<8x?xf32>
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %c8{{.*}}, {{.*}} function(@moe_expert_choice_select) workgroup(%[[SCRATCH:.*]] : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK:         %[[FOUND:.*]]:2 = scf.for %{{.*}} = %{{.*}} to %c32 step %{{.*}} iter_args(%{{.*}} = %c0_i32, %{{.*}} = %{{.*}}) -> (i32, i32)
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[T]] step %c256
// CHECK:             arith.bitcast %{{.*}} : f32 to i32
// CHECK:           memref.store %{{.*}}, %[[SCRATCH]]
// CHECK:           scf.for %{{.*}} = %{{.*}} to %c8{{.*}} step
// CHECK:             gpu.barrier
// CHECK:         scf.for %{{.*}} = %{{.*}} to %[[T]] step %c256{{.*}} iter_args
// CHECK:           arith.cmpi ugt, %{{.*}}, %[[FOUND]]#0 : i32
// CHECK:           memref.store %{{.*}}, %{{.*}} : memref<?x8xf32>
// The flat selection t * E + e at e * C + (its place among the chosen).
// CHECK:           %[[TE:.*]] = arith.muli %{{.*}}, %c8{{.*}} : i32
// CHECK:           %[[FLAT:.*]] = arith.addi %[[TE]], %{{.*}} : i32
// CHECK:           memref.store %[[FLAT]], %{{.*}}[%{{.*}}] : memref<?xi32>
// CHECK:         memref.store %{{.*}}, %{{.*}}[%c8{{.*}}] : memref<9xi32>
// CHECK-NOT:   gpu.launch
func.func @expert_choice(%logits: tensor<?x8xf32>)
    -> (tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>) {
  %w, %rows, %offsets = moe.expert_choice %logits {capacity = 4 : i64}
      : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>
  return %w, %rows, %offsets : tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>
}

// -----

// 4096 experts: loops over the experts, nothing unrolled; one block per
// expert.

// CHECK-LABEL: func.func @many_experts
// CHECK:       gpu.launch {{.*}} function(@moe_expert_choice_softmax)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c4096 step
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %c4096{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) {{.*}} function(@moe_expert_choice_select)
// CHECK-NOT:   gpu.launch
func.func @many_experts(%logits: tensor<16x4096xf32>)
    -> (tensor<16x4096xf32>, tensor<4096xi32>, tensor<4097xi32>) {
  %w, %rows, %offsets = moe.expert_choice %logits {capacity = 1 : i64}
      : tensor<16x4096xf32> -> tensor<16x4096xf32>, tensor<4096xi32>, tensor<4097xi32>
  return %w, %rows, %offsets : tensor<16x4096xf32>, tensor<4096xi32>, tensor<4097xi32>
}
