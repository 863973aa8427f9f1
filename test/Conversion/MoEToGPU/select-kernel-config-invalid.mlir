// A pinned configuration that the chip cannot run is an error at the op;
// so are bad options, before any op is looked at.
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_80 --split-input-file --verify-diagnostics
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=chip=sm80 2>&1 | FileCheck %s --check-prefix=CHIP
// CHIP: error: moe-gpu-select-kernel-config: chip must be an sm_XY name (sm_80, sm_90a, ...), got 'sm80'
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=chip=sm_999 2>&1 | FileCheck %s --check-prefix=NO-CHIP
// NO-CHIP: error: moe-gpu-select-kernel-config: chip 'sm_999' is not one the project builds for (sm_70, {{.*}}, sm_90a, {{.*}})
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=large-tile-group=65 2>&1 | FileCheck %s --check-prefix=GROUP
// GROUP: error: moe-gpu-select-kernel-config: large-tile-group must be in [1, 64], got 65
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=small-unroll=-1 2>&1 | FileCheck %s --check-prefix=UNROLL
// UNROLL: error: moe-gpu-select-kernel-config: small-unroll must be in [0, 16], got -1
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=small-stages=3 2>&1 | FileCheck %s --check-prefix=STAGES
// STAGES: error: moe-gpu-select-kernel-config: small-stages must be in [1, 2], got 3
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=fp8-small-k=48 2>&1 | FileCheck %s --check-prefix=FP8-K
// FP8-K: error: moe-gpu-select-kernel-config: fp8-small-k must be 32 or 64, got 48
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=fp8-small-stages=4 2>&1 | FileCheck %s --check-prefix=FP8-STAGES
// FP8-STAGES: error: moe-gpu-select-kernel-config: fp8-small-stages must be in [1, 3], got 4
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=fp8-small-split-k=2 2>&1 | FileCheck %s --check-prefix=FP8-SPLIT
// FP8-SPLIT: error: moe-gpu-select-kernel-config: fp8-small-split-k must be 1 or 4, got 2

func.func @wgmma_on_sm80(%x: tensor<?x64xbf16>, %w: tensor<4x256x64xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  // expected-error @+1 {{moe.gpu_kernels: the wgmma_warp_specialized kernel does not run on sm_80}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x256x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x256xbf16>) {moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 8, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma_warp_specialized, rows = 128, columns = 256, k = 64, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 8>} -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// -----

func.func @pinned_fp8_on_sm80(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xf8E4M3FN>, %o: tensor<5xi32>,
                              %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the mma_sync_fp8 kernel does not run on sm_80}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}
