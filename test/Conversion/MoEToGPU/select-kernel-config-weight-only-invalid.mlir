// Weight-only grouped matmuls the GPU kernel cannot take are errors at the
// op, in moe-gpu-select-kernel-config, naming the format and the reason: a
// chip before sm_80 (the bf16 mma.sync) and mxfp4 weights with f16
// activations (mxfp4 is multiplied in bf16, whose exponent range its
// scales need; int4 and int8 take f16 activations with an f16 MMA).
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_80 --split-input-file --verify-diagnostics
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=chip=sm_75 --split-input-file 2>&1 | FileCheck %s --check-prefix=SM75
// SM75: error: 'moe.grouped_matmul' op weight-only weights (weight_quant format mxfp4) on the GPU: the mma_sync_wonly kernel's bf16 mma.sync needs sm_80 or newer, got sm_75
// SM75: error: 'moe.grouped_matmul' op weight-only weights (weight_quant format mxfp4) on the GPU: the mma_sync_wonly kernel's bf16 mma.sync needs sm_80 or newer, got sm_75
// SM75: error: 'moe.grouped_matmul' op moe.gpu_kernels: the mma_sync_wonly kernel does not run on sm_75

// Valid on sm_80; refused on sm_75 (the SM75 run).
func.func @mxfp4(%x: tensor<?x64xbf16>, %w: tensor<4x32x32xi8>, %o: tensor<5xi32>,
                 %s: tensor<4x32x2xf8E8M0FNU>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x32xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x32x2xf8E8M0FNU>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

func.func @mxfp4_f16_activations(%x: tensor<?x256xf16>, %w: tensor<8x512x128xi8>, %o: tensor<9xi32>,
                                 %s: tensor<8x512x8xf8E8M0FNU>, %init: tensor<?x512xf32>) -> tensor<?x512xf32> {
  // expected-error @+1 {{weight-only weights (weight_quant format mxfp4) on the GPU: the mma_sync_wonly kernel multiplies mxfp4 weights in bf16 (their e8m0 scales span bf16's exponent range, not f16's): it needs bf16 or f32 activations, got 'f16'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x256xf16>, tensor<8x512x128xi8>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x512x8xf8E8M0FNU>) outs(%init : tensor<?x512xf32>)
      {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x512xf32>
  return %h : tensor<?x512xf32>
}

// -----

// The weight-only kernel pinned for a chip without bf16 mma.sync.
func.func @pinned_on_sm75(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xi8>, %o: tensor<5xi32>,
                          %s: tensor<4x32x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x32x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = int8, block = [1, 64], activation = none>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 16, columns = 64, k = 64, stages = 2, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 32, columns = 128, k = 64, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}
