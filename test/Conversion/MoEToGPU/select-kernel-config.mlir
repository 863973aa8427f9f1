// moe-gpu-select-kernel-config: which kernels each grouped matmul gets, per
// chip, shape and option. The codegen of each configuration is tested in
// experts.mlir; this file tests the choice alone.
// RUN: moe-opt %s --moe-gpu-select-kernel-config --split-input-file | FileCheck %s --check-prefix=SM90A
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_80 --split-input-file | FileCheck %s --check-prefix=SM80
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_90 --split-input-file | FileCheck %s --check-prefix=SM80
// RUN: moe-opt %s --moe-gpu-select-kernel-config="small-split-k=1 small-stages=1 wgmma-producer=false wgmma-swizzled-a=false large-tile-group=2 large-rows-per-expert=32" --split-input-file | FileCheck %s --check-prefix=OPTIONS
// RUN: moe-opt %s --moe-gpu-select-kernel-config="wgmma=false large-staged=false" --split-input-file | FileCheck %s --check-prefix=UNSTAGED

// A gate/up projection with a GLU epilogue, K = 2048: the decode kernel's 4
// warps share 16 columns and split K, two groups of 2 steps in flight (a
// warp's part is 16 steps; 4 with small-split-k=1, 64 steps); the prefill kernel on sm_90a is the
// warp-specialized wgmma kernel, 128 output columns (256 weight rows) a
// block, and runs from 8 rows per expert; elsewhere the staged mma.sync
// kernel (64 output columns) from 64.
// SM90A-LABEL: func.func @gate_up
// SM90A: moe.gpu_kernels = #moe.grouped_matmul_kernels<small = <kernel = mma_sync, rows = 16, columns = 16, k = 32, stages = 2, unroll = 2, split_k = 4, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large = <kernel = wgmma_warp_specialized, rows = 128, columns = 128, k = 64, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>, large_rows_per_expert = 8>
// SM80-LABEL: func.func @gate_up
// SM80: large = <kernel = mma_sync_staged, rows = 128, columns = 64, k = 32, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = padded, b_layout = padded, inline_constants = true>, large_rows_per_expert = 64>
// OPTIONS-LABEL: func.func @gate_up
// OPTIONS: small = <kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 4, split_k = 1,
// OPTIONS-SAME: large = <kernel = wgmma, rows = 128, columns = 128, k = 64, stages = 4, unroll = 1, split_k = 1, tile_group = 2, a_layout = k_chunk_major, b_layout = swizzle_128b, inline_constants = true>, large_rows_per_expert = 32>
// UNSTAGED-LABEL: func.func @gate_up
// UNSTAGED: large = <kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = true>, large_rows_per_expert = 64>
func.func @gate_up(%x: tensor<?x2048xbf16>, %w13: tensor<8x512x2048xbf16>, %offsets: tensor<9xi32>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x2048xbf16>, tensor<8x512x2048xbf16>, tensor<9xi32>)
      outs(%init : tensor<?x256xbf16>) {epilogue = #moe.activation<silu>} -> tensor<?x256xbf16>
  return %h : tensor<?x256xbf16>
}

// -----

// A down projection (no GLU) with K = 768, below small-split-k-from: each
// decode warp takes all of K (24 steps, two groups of 2 in flight) over its
// own 16 columns (64 a block); the
// wgmma block covers 256 output columns.
// SM90A-LABEL: func.func @down
// SM90A: small = <kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 2, unroll = 2, split_k = 1,
// SM90A-SAME: large = <kernel = wgmma_warp_specialized, rows = 128, columns = 256,
// SM80-LABEL: func.func @down
// SM80: large = <kernel = mma_sync_staged, rows = 128, columns = 128,
func.func @down(%x: tensor<?x768xbf16>, %w2: tensor<8x2048x768xbf16>, %offsets: tensor<9xi32>, %init: tensor<?x2048xbf16>) -> tensor<?x2048xbf16> {
  %y = moe.grouped_matmul ins(%x, %w2, %offsets : tensor<?x768xbf16>, tensor<8x2048x768xbf16>, tensor<9xi32>)
      outs(%init : tensor<?x2048xbf16>) -> tensor<?x2048xbf16>
  return %y : tensor<?x2048xbf16>
}

// -----

// The decode kernel's group size where small-unroll is not given: 4 steps
// where a warp's part of K has at least 32 steps or the weights have N >=
// 4096, else 2. DeepSeek-V3's down projection (K 2048 split over 4 warps:
// 16 steps a part, N 7168) takes 4; Qwen3-30B-A3B's gate/up (16 steps a
// part, N 1536) keeps 2, as does a narrow down projection whose part is
// 16 steps (N 2048); DeepSeek-V3's gate/up (56 steps a part) takes 4.
// SM90A-LABEL: func.func @deepseek_v3_down
// SM90A: small = <kernel = mma_sync, rows = 16, columns = 16, k = 32, stages = 2, unroll = 4, split_k = 4,
// SM90A-LABEL: func.func @qwen3_gate_up
// SM90A: small = <kernel = mma_sync, rows = 16, columns = 16, k = 32, stages = 2, unroll = 2, split_k = 4,
// SM90A-LABEL: func.func @narrow_down
// SM90A: small = <kernel = mma_sync, rows = 16, columns = 16, k = 32, stages = 2, unroll = 2, split_k = 4,
// SM90A-LABEL: func.func @deepseek_v3_gate_up
// SM90A: small = <kernel = mma_sync, rows = 16, columns = 16, k = 32, stages = 2, unroll = 4, split_k = 4,
func.func @deepseek_v3_down(%x: tensor<?x2048xbf16>, %w2: tensor<4x7168x2048xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x7168xbf16>) -> tensor<?x7168xbf16> {
  %y = moe.grouped_matmul ins(%x, %w2, %offsets : tensor<?x2048xbf16>, tensor<4x7168x2048xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x7168xbf16>) -> tensor<?x7168xbf16>
  return %y : tensor<?x7168xbf16>
}
func.func @qwen3_gate_up(%x: tensor<?x2048xbf16>, %w13: tensor<4x1536x2048xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x768xbf16>) -> tensor<?x768xbf16> {
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x2048xbf16>, tensor<4x1536x2048xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x768xbf16>) {epilogue = #moe.activation<silu>} -> tensor<?x768xbf16>
  return %h : tensor<?x768xbf16>
}
func.func @narrow_down(%x: tensor<?x2048xbf16>, %w2: tensor<4x2048x2048xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x2048xbf16>) -> tensor<?x2048xbf16> {
  %y = moe.grouped_matmul ins(%x, %w2, %offsets : tensor<?x2048xbf16>, tensor<4x2048x2048xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x2048xbf16>) -> tensor<?x2048xbf16>
  return %y : tensor<?x2048xbf16>
}
func.func @deepseek_v3_gate_up(%x: tensor<?x7168xbf16>, %w13: tensor<4x4096x7168xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x2048xbf16>) -> tensor<?x2048xbf16> {
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x7168xbf16>, tensor<4x4096x7168xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x2048xbf16>) {epilogue = #moe.activation<silu>} -> tensor<?x2048xbf16>
  return %h : tensor<?x2048xbf16>
}

// -----

// f32 activations against bf16 weights: cp.async copies them as they are and
// the staged kernel rounds them when read; wgmma needs the weights' type.
// SM90A-LABEL: func.func @f32_activations
// SM90A: large = <kernel = mma_sync_staged, rows = 128, columns = 128,
func.func @f32_activations(%x: tensor<?x64xf32>, %w: tensor<4x128x64xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x128xbf16>) -> tensor<?x128xbf16> {
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xf32>, tensor<4x128x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x128xbf16>) -> tensor<?x128xbf16>
  return %y : tensor<?x128xbf16>
}

// -----

// f32 weights, the kn layout and K not a multiple of 8 take the simt kernel.
// SM90A-LABEL: func.func @simt
// SM90A-COUNT-3: moe.gpu_kernels = #moe.grouped_matmul_kernels<small = <kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large = <kernel = simt
func.func @simt(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %wkn: tensor<4x64x128xbf16>, %x12: tensor<?x12xbf16>, %w12: tensor<4x128x12xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x128xf32>) -> (tensor<?x128xf32>, tensor<?x128xf32>, tensor<?x128xf32>) {
  %a = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<5xi32>)
      outs(%init : tensor<?x128xf32>) -> tensor<?x128xf32>
  %b = moe.grouped_matmul ins(%x, %wkn, %offsets : tensor<?x64xf32>, tensor<4x64x128xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x128xf32>) {rhs_layout = #moe.rhs_layout<kn>} -> tensor<?x128xf32>
  %c = moe.grouped_matmul ins(%x12, %w12, %offsets : tensor<?x12xbf16>, tensor<4x128x12xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x128xf32>) -> tensor<?x128xf32>
  return %a, %b, %c : tensor<?x128xf32>, tensor<?x128xf32>, tensor<?x128xf32>
}

// -----

// A configuration written in the input is kept as it is, whatever the
// options: a user or a tuner pins it.
// SM90A-LABEL: func.func @pinned
// SM90A: small = <kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large = <kernel = mma_sync_staged, rows = 128, columns = 128, k = 32, stages = 3, unroll = 1, split_k = 1, tile_group = 4, a_layout = padded, b_layout = padded, inline_constants = false>, large_rows_per_expert = 100>
// SM80-LABEL: func.func @pinned
// SM80: large_rows_per_expert = 100
func.func @pinned(%x: tensor<?x64xbf16>, %w: tensor<4x128x64xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x128xbf16>) -> tensor<?x128xbf16> {
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x128xbf16>) {moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_staged, rows = 128, columns = 128, k = 32, stages = 3, unroll = 1, split_k = 1, tile_group = 4, a_layout = padded, b_layout = padded, inline_constants = false>,
        large_rows_per_expert = 100>} -> tensor<?x128xbf16>
  return %y : tensor<?x128xbf16>
}
