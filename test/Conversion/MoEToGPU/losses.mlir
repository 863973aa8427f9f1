// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | FileCheck %s

// aux_loss = E / T^2 * sum_e count_e * colsum_e. Per token the softmax's max
// and sum; one block per expert reduces its column of probabilities and its
// selection count, each thread adding a strided set of tokens in order and a
// shared-memory tree (8 halving steps of a loop) adding the partial sums, so
// the sums come in a fixed order; one thread adds the experts' products.

// CHECK-LABEL: func.func @aux_loss
// CHECK:       %[[MAX:.*]] = memref.alloc(%[[T:.*]]) : memref<?xf32>
// CHECK:       %[[SUM:.*]] = memref.alloc(%[[T]]) : memref<?xf32>
// CHECK:       %[[PRODUCTS:.*]] = memref.alloc() : memref<8xf32>
// CHECK:       %[[LOSS:.*]] = memref.alloc() : memref<f32>
// CHECK:       gpu.launch {{.*}} function(@moe_aux_loss_token_stats)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c8 step
// CHECK:         memref.store %{{.*}}, %[[MAX]]
// CHECK:         memref.store %{{.*}}, %[[SUM]]
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %c8{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) threads({{.*}}) in (%{{.*}} = %c256{{.*}}, {{.*}} function(@moe_aux_loss_experts) workgroup(%[[PROBS:.*]] : memref<256xf32, #gpu.address_space<workgroup>>, %[[COUNTS:.*]] : memref<256xi32, #gpu.address_space<workgroup>>)
// CHECK:         scf.for %{{.*}} = %[[TID:.*]] to %[[T]] step %c256
// CHECK:         memref.store %{{.*}}, %[[PROBS]]
// CHECK:         gpu.barrier
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c8{{.*}} step
// CHECK:           arith.shrui %c128{{.*}}, %{{.*}} : index
// CHECK:           arith.addf
// CHECK:           gpu.barrier
// CHECK:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c256
// CHECK:           arith.cmpi eq, %{{.*}}, %{{.*}} : i32
// CHECK:         memref.store %{{.*}}, %[[COUNTS]]
// CHECK:         arith.sitofp %{{.*}} : i32 to f32
// CHECK:         memref.store %{{.*}}, %[[PRODUCTS]][%{{.*}}] : memref<8xf32>
// CHECK:       gpu.launch {{.*}} function(@moe_aux_loss_total)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c8 step
// CHECK:         arith.divf
// CHECK:         arith.divf
// CHECK:         arith.mulf %{{.*}}, %cst{{.*}} : f32
// CHECK:         memref.store %{{.*}}, %[[LOSS]][] : memref<f32>
func.func @aux_loss(%logits: tensor<?x8xf32>, %ids: tensor<?x2xi32>) -> tensor<f32> {
  %loss = moe.aux_loss %logits, %ids : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// z_loss: logsumexp squared per token (max + log of the sum of
// exponentials, an entry at the max counting exp(0) = 1 so that infinite
// logits give the exact limit), then one block's fixed-order reduction
// divided by T.

// CHECK-LABEL: func.func @z_loss
// CHECK:       gpu.launch {{.*}} function(@moe_z_loss_tokens)
// CHECK:         %[[MAX:.*]] = scf.for
// CHECK:           arith.maximumf
// CHECK:         %[[SUM:.*]] = scf.for
// CHECK:           %[[AT:.*]] = arith.cmpf oeq, %{{.*}}, %[[MAX]] : f32
// CHECK:           arith.select %[[AT]], %cst{{.*}}, %{{.*}} : f32
// CHECK:           math.exp
// CHECK:         %[[LOG:.*]] = math.log %[[SUM]]
// CHECK:         %[[LSE:.*]] = arith.addf %[[LOG]], %[[MAX]]
// CHECK:         arith.mulf %[[LSE]], %[[LSE]] : f32
// CHECK:       gpu.launch {{.*}} function(@moe_z_loss_mean) workgroup(%{{.*}} : memref<256xf32, #gpu.address_space<workgroup>>)
// CHECK:         gpu.barrier
// CHECK:         arith.divf
// CHECK:         memref.store %{{.*}}, %{{.*}}[] : memref<f32>
func.func @z_loss(%logits: tensor<?x?xf32>) -> tensor<f32> {
  %loss = moe.z_loss %logits : tensor<?x?xf32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// 4096 experts and k = 64: loops, nothing unrolled.

// CHECK-LABEL: func.func @aux_loss_large
// CHECK:       gpu.launch {{.*}} function(@moe_aux_loss_token_stats)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c4096 step
// CHECK:       gpu.launch {{.*}} in (%{{.*}} = %c4096{{.*}}, {{.*}} function(@moe_aux_loss_experts)
// CHECK:       gpu.launch {{.*}} function(@moe_aux_loss_total)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c4096 step
// CHECK-NOT:   gpu.launch
func.func @aux_loss_large(%logits: tensor<?x4096xf32>, %ids: tensor<?x64xi32>) -> tensor<f32> {
  %loss = moe.aux_loss %logits, %ids : tensor<?x4096xf32>, tensor<?x64xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
