// FP8 grouped matmuls the GPU kernels cannot take are errors at the op, in
// moe-gpu-select-kernel-config: unquantized activations, K blocks that are
// not whole 32-wide steps, K not a multiple of 8, and (with its ptx option,
// which moe-lower-to-nvvm-pipeline passes from its features) a PTX version
// older than the e4m3 mma.sync's 8.4.
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_89 --split-input-file --verify-diagnostics
// RUN: not moe-opt %s --moe-gpu-select-kernel-config="ptx=80" --split-input-file 2>&1 | FileCheck %s --check-prefix=PTX
// PTX: error: 'moe.grouped_matmul' op moe.gpu_kernels: the mma_sync_fp8 kernel needs PTX ISA 8.4 or newer (features +ptx84), got ptx = 80
// RUN: not moe-opt %s --moe-gpu-select-kernel-config="ptx=7" 2>&1 | FileCheck %s --check-prefix=RANGE
// RANGE: error: moe-gpu-select-kernel-config: ptx must be in [60, 999], got 7

func.func @activation_none(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xf8E4M3FN>, %o: tensor<5xi32>,
                           %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{FP8 weights (weight_quant) on the GPU: the mma_sync_fp8 kernel multiplies e4m3 activations: activation = none has no GPU kernel}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = none>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

func.func @block_of_16(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xf8E4M3FN>, %o: tensor<5xi32>,
                       %s: tensor<4x2x4xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{FP8 weights (weight_quant) on the GPU: the mma_sync_fp8 kernel needs K blocks of a multiple of 32 columns (or one block over K), got bk = 16}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x4xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

func.func @k_of_60(%x: tensor<?x60xbf16>, %w: tensor<4x32x60xf8E4M3FN>, %o: tensor<5xi32>,
                   %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{FP8 weights (weight_quant) on the GPU: the mma_sync_fp8 kernel needs the nk layout and K a multiple of 8, got K = 60}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x60xbf16>, tensor<4x32x60xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// Valid on sm_89 with any PTX version the run does not name; the PTX RUN
// line gives ptx = 80, which this op is refused for.
func.func @ptx_version(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xf8E4M3FN>, %o: tensor<5xi32>,
                       %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// The FP8 wgmma kernel pinned for a chip without wgmma.
func.func @wgmma_fp8_on_sm89(%x: tensor<?x256xbf16>, %w: tensor<4x32x256xf8E4M3FN>, %o: tensor<5xi32>,
                             %s: tensor<4x1x2xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the wgmma_fp8 kernel does not run on sm_89}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x256xbf16>, tensor<4x32x256xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x2xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 4, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}
