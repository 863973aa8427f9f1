// Whole capacity-limited layers through the GPU pipeline, down to PTX:
// Switch (top-1, capacity factor 1.25, position drop, ReLU GLU) and GShard
// (top-2, renormalized, random second expert, capacity factor 2) both
// lower; the random draw lives in the route kernel, the capacity in the
// dispatch's keep kernel between its two counting sorts, and the combine
// reads the final sort's inverse rows.
// RUN: moe-opt %s --split-input-file --moe-lower-to-nvvm-pipeline="format=isa" | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 format=isa" | FileCheck %s
// RUN: %if ptxas %{ moe-opt %s --split-input-file --moe-lower-to-nvvm-pipeline="format=bin" | FileCheck %s --check-prefix=BIN %}

// CHECK-LABEL: llvm.func @switch(
// CHECK:       gpu.launch_func @moe_kernels::@moe_route
// CHECK:       gpu.launch_func @moe_kernels::@moe_dispatch_slot_major
// CHECK:       gpu.launch_func @moe_kernels::@moe_dispatch_capacity_keep_position
// CHECK:       gpu.launch_func @moe_kernels::@moe_combine
// CHECK:       gpu.binary @moe_kernels
// CHECK-SAME:  .entry moe_route
// CHECK-SAME:  .entry moe_dispatch_slot_major
// CHECK-SAME:  .entry moe_dispatch_capacity_clear
// CHECK-SAME:  .entry moe_dispatch_capacity_keep_position
// CHECK-SAME:  mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-SAME:  .entry moe_combine
// CHECK-NOT:   moe_combine_invert
// BIN:         gpu.binary @moe_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, properties = {ISAToBinaryTimeInMs
func.func @switch(%x: tensor<?x64xbf16>, %router: tensor<8x64xbf16>, %w13: tensor<8x96x64xbf16>,
                  %w2: tensor<8x64x48xbf16>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %init = tensor.empty(%t) : tensor<?x64xbf16>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>, tensor<8x64xbf16>,
                     tensor<8x96x64xbf16>, tensor<8x64x48xbf16>)
      outs(%init : tensor<?x64xbf16>) {k = 1 : i64, capacity_factor = 1.25 : f64,
      drop_policy = #moe.drop_policy<position>, activation = #moe.activation<relu>}
      -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// CHECK-LABEL: llvm.func @gshard(
// CHECK:       gpu.launch_func @moe_kernels::@moe_route
// CHECK:       gpu.launch_func @moe_kernels::@moe_dispatch_capacity_keep_position
// CHECK:       gpu.launch_func @moe_kernels::@moe_combine
// CHECK:       gpu.binary @moe_kernels
// CHECK-SAME:  .entry moe_route
// CHECK-SAME:  .entry moe_dispatch_capacity_keep_position
// CHECK-SAME:  .entry moe_combine
// BIN:         gpu.binary @moe_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, properties = {ISAToBinaryTimeInMs
func.func @gshard(%x: tensor<?x64xbf16>, %router: tensor<8x64xbf16>, %w13: tensor<8x96x64xbf16>,
                  %w2: tensor<8x64x48xbf16>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %init = tensor.empty(%t) : tensor<?x64xbf16>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>, tensor<8x64xbf16>,
                     tensor<8x96x64xbf16>, tensor<8x64x48xbf16>)
      outs(%init : tensor<?x64xbf16>) {k = 2 : i64, renormalize,
      second_expert_policy = #moe.second_expert_policy<random>, seed = 7 : i64,
      capacity_factor = 2.0 : f64, drop_policy = #moe.drop_policy<position>}
      -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// The routing ops of training, each alone: expert choice, both losses, and
// the score-policy dispatch.

// CHECK-LABEL: llvm.func @training_routing(
// CHECK:       gpu.binary @moe_kernels
// CHECK-SAME:  .entry moe_expert_choice_softmax
// CHECK-SAME:  .entry moe_expert_choice_select
// CHECK-SAME:  bar.sync
// CHECK-SAME:  .entry moe_aux_loss_token_stats
// CHECK-SAME:  .entry moe_aux_loss_experts
// CHECK-SAME:  .entry moe_aux_loss_total
// CHECK-SAME:  .entry moe_z_loss_tokens
// CHECK-SAME:  .entry moe_z_loss_mean
// CHECK-SAME:  .entry moe_dispatch_capacity_keep_score
func.func @training_routing(%logits: tensor<?x8xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>)
    -> (tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>, tensor<f32>, tensor<f32>,
        tensor<?xi32>, tensor<9xi32>) {
  %cw, %crows, %coffsets = moe.expert_choice %logits {capacity = 2 : i64}
      : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>
  %aux = moe.aux_loss %logits, %ids : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<f32>
  %z = moe.z_loss %logits : tensor<?x8xf32> -> tensor<f32>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
      {num_experts = 8 : i64, capacity = 3 : i64, drop_policy = #moe.drop_policy<score>}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<9xi32>
  return %cw, %crows, %coffsets, %aux, %z, %rows, %offsets
      : tensor<?x8xf32>, tensor<?xi32>, tensor<9xi32>, tensor<f32>, tensor<f32>,
        tensor<?xi32>, tensor<9xi32>
}
