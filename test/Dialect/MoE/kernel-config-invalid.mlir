// The verifiers of #moe.matmul_tile, #moe.grouped_matmul_kernels and the
// moe.gpu_kernels attribute: one case per diagnostic.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{the wgmma kernel needs stages in [2, 4], got 5}}
func.func private @stages() attributes {t = #moe.matmul_tile<kernel = wgmma, rows = 128, columns = 256, k = 64, stages = 5, unroll = 1, split_k = 1, tile_group = 1, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync kernel needs stages in [1, 2], got 3}}
func.func private @decode_stages() attributes {t = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 3, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync kernel's rows are 16-row MMA tiles, got 24}}
func.func private @rows() attributes {t = #moe.matmul_tile<kernel = mma_sync, rows = 24, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync kernel's split_k is 1 (each of the 4 warps has its own columns) or 4 (the warps share them), got 2}}
func.func private @split() attributes {t = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 2, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync kernel's columns are 4 / split_k warps of 8 to 64 columns (a multiple of 8), got 20 with split_k = 1}}
func.func private @columns() attributes {t = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 20, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// A size that would overflow the kernel's arithmetic is refused before it.
// expected-error @+1 {{the mma_sync kernel needs columns in [8, 256], got 4611686018427387904}}
func.func private @huge_columns() attributes {t = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 4611686018427387904, k = 32, stages = 1, unroll = 1, split_k = 4, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_staged kernel needs a_layout in {padded}, got swizzle_128b}}
func.func private @layout() attributes {t = #moe.matmul_tile<kernel = mma_sync_staged, rows = 128, columns = 128, k = 32, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = padded, inline_constants = false>}

// -----

// expected-error @+1 {{the simt kernel needs columns = 128, got 64}}
func.func private @simt() attributes {t = #moe.matmul_tile<kernel = simt, rows = 1, columns = 64, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{a simt kernel has no second tile shape: small and large must both be simt, or neither}}
func.func private @mixed() attributes {t = #moe.grouped_matmul_kernels<
  small = #moe.matmul_tile<kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
  large = #moe.matmul_tile<kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
  large_rows_per_expert = 8>}

// -----

// expected-error @+1 {{large_rows_per_expert must be positive, got 0}}
func.func private @threshold() attributes {t = #moe.grouped_matmul_kernels<
  small = #moe.matmul_tile<kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
  large = #moe.matmul_tile<kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
  large_rows_per_expert = 0>}

// -----

func.func @wgmma_f32(%x: tensor<?x64xf32>, %w: tensor<4x256x64xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  // expected-error @+1 {{moe.gpu_kernels: the large kernel wgmma needs activations of the weights' type, got 'f32' against 'bf16'}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xf32>, tensor<4x256x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x256xbf16>) {moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 8, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma, rows = 128, columns = 256, k = 64, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 8>} -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// -----

func.func @glu_columns(%x: tensor<?x64xbf16>, %w: tensor<4x256x64xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x128xbf16>) -> tensor<?x128xbf16> {
  // expected-error @+1 {{moe.gpu_kernels: the large kernel wgmma_warp_specialized has 256 weight rows a block: 128 output columns with a GLU epilogue, got 256}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x256x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x128xbf16>) {epilogue = #moe.activation<silu>, moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 8, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma_warp_specialized, rows = 128, columns = 256, k = 64, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 8>} -> tensor<?x128xbf16>
  return %y : tensor<?x128xbf16>
}

// -----

func.func @f32_weights(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %offsets: tensor<5xi32>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync needs bf16 or f16 weights in the nk layout (others take simt)}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<5xi32>)
      outs(%init : tensor<?x128xf32>) {moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 8, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 8>} -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// expected-error @+1 {{moe.gpu_kernels applies to moe.grouped_matmul only}}
func.func private @wrong_op() attributes {moe.gpu_kernels = 1 : i64}

// -----

func.func @wrong_value(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %offsets: tensor<5xi32>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  // expected-error @+1 {{moe.gpu_kernels must be a #moe.grouped_matmul_kernels}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<5xi32>)
      outs(%init : tensor<?x128xf32>) {moe.gpu_kernels = "wgmma"} -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// expected-error @+1 {{unknown moe dialect attribute moe.tile}}
func.func private @unknown() attributes {moe.tile = 1 : i64}

// -----

// expected-error @+1 {{moe.inline_constants must be a unit attribute}}
func.func private @inline() attributes {moe.inline_constants = 1 : i64}

// -----

// expected-error @+1 {{moe.programmatic_launch must be a unit attribute}}
func.func private @programmatic() attributes {moe.programmatic_launch = 1 : i64}

// -----

// expected-error @+1 {{moe.programmatic_launch marks a gpu.launch, not a 'func.func'}}
func.func private @programmatic_func() attributes {moe.programmatic_launch}

// -----

func.func @row_tiles_mismatch(%x: tensor<?x64xbf16>, %w: tensor<4x128x64xbf16>, %offsets: tensor<5xi32>, %rows: tensor<?xi32>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %t = moe.row_tiles %offsets, %rows {small_tile_rows = 16 : i64, large_tile_rows = 64 : i64, large_rows_per_expert = 8 : i64}
      : tensor<5xi32>, tensor<?xi32> -> tensor<?xi32>
  // expected-error @+1 {{moe.gpu_kernels take tiles of 16 and 32 rows from 8 rows per expert, but 'row_tiles' schedules 16 and 64 from 8}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) row_tiles(%t : tensor<?xi32>)
      outs(%init : tensor<?x128xf32>) {gather, k = 1 : i64, moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 8, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 8>} -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// The dispatch's row tiles are checked against the kernels as a moe.row_tiles is.
func.func @dispatch_row_tiles_mismatch(%x: tensor<?x64xbf16>, %w: tensor<4x128x64xbf16>, %ids: tensor<?x1xi32>) -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %rows, %offsets, %t = moe.dispatch %ids {num_experts = 4 : i64, small_tile_rows = 16 : i64, large_tile_rows = 32 : i64, large_rows_per_expert = 64 : i64}
      : tensor<?x1xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %init = tensor.empty(%m) : tensor<?x128xf32>
  // expected-error @+1 {{moe.gpu_kernels take tiles of 16 and 32 rows from 8 rows per expert, but 'row_tiles' schedules 16 and 32 from 64}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) row_tiles(%t : tensor<?xi32>)
      outs(%init : tensor<?x128xf32>) {gather, k = 1 : i64, moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 8, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 8>} -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

func.func @row_tiles_simt(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %offsets: tensor<5xi32>, %rows: tensor<?xi32>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %t = moe.row_tiles %offsets, %rows {small_tile_rows = 1 : i64, large_tile_rows = 1 : i64, large_rows_per_expert = 64 : i64}
      : tensor<5xi32>, tensor<?xi32> -> tensor<?xi32>
  // expected-error @+1 {{moe.gpu_kernels: the simt kernel takes no 'row_tiles'}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) row_tiles(%t : tensor<?xi32>)
      outs(%init : tensor<?x128xf32>) {gather, k = 1 : i64, moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 64>} -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// expected-error @+1 {{the mma_sync_fp8 kernel's columns are 4 / split_k warps of 8 to 64 columns (a multiple of 8), got 48 with split_k = 1}}
func.func private @fp8_columns() attributes {t = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 48, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_fp8 kernel's rows are 16-row MMA tiles, got 24}}
func.func private @fp8_rows() attributes {t = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 24, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_fp8 kernel's split_k is 1 (each of the 4 warps has its own columns) or 4 (the warps share them, each taking a quarter of the K blocks), got 2}}
func.func private @fp8_split() attributes {t = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 2, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// With split_k = 4 the 4 warps share the block's columns: 64 of them would
// be 256 a warp.
// expected-error @+1 {{the mma_sync_fp8 kernel's columns are 4 / split_k warps of 8 to 64 columns (a multiple of 8), got 128 with split_k = 4}}
func.func private @fp8_split_columns() attributes {t = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 4, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_fp8 kernel's k is 32 (8 bytes per lane and row of a step) or 64 (16 bytes), got 48}}
func.func private @fp8_k() attributes {t = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 48, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_fp8 kernel needs stages in [1, 3], got 4}}
func.func private @fp8_stages() attributes {t = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 64, stages = 4, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// FP8 weights with another kernel pinned.
func.func @fp8_weights_mma_sync(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xf8E4M3FN>, %o: tensor<5xi32>,
                                %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: FP8 weights (weight_quant) take the mma_sync_fp8, mma_sync_fp8_f16 or wgmma_fp8 kernels, got mma_sync for the small kernel}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// FP8 weights with the simt kernel pinned.
func.func @fp8_weights_simt(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xf8E4M3FN>, %o: tensor<5xi32>,
                            %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: FP8 weights (weight_quant) take the mma_sync_fp8, mma_sync_fp8_f16 or wgmma_fp8 kernels, got simt for the small kernel}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = simt, rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// The FP8 kernel on bf16 weights.
func.func @fp8_kernel_bf16_weights(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xbf16>, %o: tensor<5xi32>,
                                   %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_fp8 needs FP8 weights (weight_quant)}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x32xf32>)
      {moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// k = 64: 16 bytes per lane and row, so K must be a multiple of 16.
func.func @fp8_k64_reduction(%x: tensor<?x200xbf16>, %w: tensor<4x32x200xf8E4M3FN>, %o: tensor<5xi32>,
                             %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_fp8 needs K a multiple of 16 with k = 64, got 200}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x200xbf16>, tensor<4x32x200xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 256], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 64, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// k = 64 with K blocks of 32: a step would span two blocks.
func.func @fp8_k64_block(%x: tensor<?x128xbf16>, %w: tensor<4x32x128xf8E4M3FN>, %o: tensor<5xi32>,
                         %s: tensor<4x1x4xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the large kernel mma_sync_fp8 needs K blocks of a multiple of 64 columns (or one block over K) with k = 64, got bk = 32 for K = 128}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x128xbf16>, tensor<4x32x128xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x4xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 32], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 32, columns = 128, k = 64, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// k = 64: a K block of 128 has 2 steps, which an unroll of 4 does not divide.
func.func @fp8_k64_unroll(%x: tensor<?x256xbf16>, %w: tensor<4x32x256xf8E4M3FN>, %o: tensor<5xi32>,
                          %s: tensor<4x1x2xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_fp8 needs unroll to divide the 2 steps of 64 of a K block, got 4}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x256xbf16>, tensor<4x32x256xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x2xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 16, k = 64, stages = 2, unroll = 4, split_k = 4, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// An unroll that does not divide the 2 steps of a K block (K = 64).
func.func @fp8_unroll(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xf8E4M3FN>, %o: tensor<5xi32>,
                      %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_fp8 needs unroll to divide the 2 steps of 32 of a K block, got 3}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 3, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32, stages = 1, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// expected-error @+1 {{the wgmma_fp8 kernel's columns are 128 (64 with a GLU epilogue), got 256}}
func.func private @wgmma_fp8_columns() attributes {t = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 256, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>}

// -----

// expected-error @+1 {{the wgmma_fp8 kernel needs k = 128, got 64}}
func.func private @wgmma_fp8_k() attributes {t = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 64, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>}

// -----

// expected-error @+1 {{the wgmma_fp8 kernel needs stages in [2, 6], got 7}}
func.func private @wgmma_fp8_stages() attributes {t = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 7, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>}

// -----

// expected-error @+1 {{the wgmma_fp8 kernel needs a_layout in {swizzle_128b}, got k_chunk_major}}
func.func private @wgmma_fp8_a_layout() attributes {t = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = k_chunk_major, b_layout = swizzle_128b, inline_constants = true>}

// -----

// The FP8 wgmma kernel on bf16 weights.
func.func @wgmma_fp8_bf16_weights(%x: tensor<?x64xbf16>, %w: tensor<4x32x64xbf16>, %o: tensor<5xi32>,
                                  %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the large kernel wgmma_fp8 needs FP8 weights (weight_quant)}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x32x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x32xf32>)
      {moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 16, k = 32, stages = 1, unroll = 2, split_k = 4, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// K = 200: the weights' TMA rows must be 16-byte multiples.
func.func @wgmma_fp8_k200(%x: tensor<?x200xbf16>, %w: tensor<4x32x200xf8E4M3FN>, %o: tensor<5xi32>,
                          %s: tensor<4x1x1xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the large kernel wgmma_fp8 needs K a multiple of 16, got 200}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x200xbf16>, tensor<4x32x200xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [256, 256], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// K blocks of 64 columns: a 128-wide K tile would take two blocks' scales.
func.func @wgmma_fp8_block64(%x: tensor<?x256xbf16>, %w: tensor<4x32x256xf8E4M3FN>, %o: tensor<5xi32>,
                             %s: tensor<4x1x4xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the large kernel wgmma_fp8 needs K blocks of a multiple of 128 columns (or one block over K), got bk = 64 for K = 256}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x256xbf16>, tensor<4x32x256xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x4xf32>) outs(%init : tensor<?x32xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [64, 64], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// A GLU epilogue: 64 output columns a block.
func.func @wgmma_fp8_glu_columns(%x: tensor<?x256xbf16>, %w: tensor<4x64x256xf8E4M3FN>, %o: tensor<5xi32>,
                                 %s: tensor<4x1x2xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the large kernel wgmma_fp8 has 128 weight rows a block: 64 output columns with a GLU epilogue, got 128}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x256xbf16>, tensor<4x64x256xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x2xf32>) outs(%init : tensor<?x32xf32>)
      {epilogue = #moe.activation<silu>,
       weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>,
        large_rows_per_expert = 32>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// -----

// expected-error @+1 {{the mma_sync_wonly kernel's rows are 16-row MMA tiles, got 24}}
func.func private @wonly_rows() attributes {t = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 24, columns = 64, k = 128, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_wonly kernel's columns are 4 warps of a multiple of 8 columns, got 48}}
func.func private @wonly_columns() attributes {t = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 16, columns = 48, k = 128, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_wonly kernel's k is 128 (4-bit weights) or 64 (int8), got 32}}
func.func private @wonly_k() attributes {t = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 16, columns = 64, k = 32, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// expected-error @+1 {{the mma_sync_wonly kernel needs stages in [1, 2], got 3}}
func.func private @wonly_stages() attributes {t = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 16, columns = 64, k = 128, stages = 3, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>}

// -----

// Weight-only weights with the bf16 kernel pinned.
func.func @wonly_weights_mma_sync(%x: tensor<?x64xbf16>, %w: tensor<8x64x32xi8>, %o: tensor<9xi32>, %s: tensor<8x64x2xf32>,
    %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{moe.gpu_kernels: weight-only weights (weight_quant format int4) take the mma_sync_wonly kernel, got mma_sync for the small kernel}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<8x64x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x64x2xf32>)
      outs(%init : tensor<?x64xf32>)
      {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 32, columns = 128, k = 128, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large_rows_per_expert = 32>} -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}

// -----

// The weight-only kernel on bf16 weights.
func.func @wonly_kernel_bf16_weights(%x: tensor<?x64xbf16>, %w: tensor<8x64x64xbf16>, %o: tensor<9xi32>,
    %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_wonly needs weight-only weights (weight_quant format mxfp4, int4 or int8)}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<8x64x64xbf16>, tensor<9xi32>)
      outs(%init : tensor<?x64xf32>)
      {moe.gpu_kernels = #moe.grouped_matmul_kernels<small = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 16, columns = 64, k = 128, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 32, columns = 128, k = 128, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large_rows_per_expert = 32>} -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}

// -----

// mxfp4 weights with int8's step.
func.func @wonly_k_of_int8(%x: tensor<?x64xbf16>, %w: tensor<8x64x32xi8>, %o: tensor<9xi32>, %s: tensor<8x64x2xf8E8M0FNU>,
    %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_wonly needs k = 128 for weight_quant format mxfp4 (16 bytes of weights per lane and weight row), got 64}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<8x64x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x64x2xf8E8M0FNU>)
      outs(%init : tensor<?x64xf32>)
      {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<small = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 16, columns = 64, k = 64, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 32, columns = 128, k = 128, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large_rows_per_expert = 32>} -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}

// -----

// mxfp4 weights with f16 activations: mxfp4 is multiplied in bf16.
func.func @wonly_f16_activations(%x: tensor<?x64xf16>, %w: tensor<8x64x32xi8>, %o: tensor<9xi32>, %s: tensor<8x64x2xf8E8M0FNU>,
    %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_wonly multiplies mxfp4 weights in bf16: it needs bf16 or f32 activations, got 'f16'}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xf16>, tensor<8x64x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x64x2xf8E8M0FNU>)
      outs(%init : tensor<?x64xf32>)
      {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<small = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 16, columns = 64, k = 128, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 32, columns = 128, k = 128, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large_rows_per_expert = 32>} -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}

// -----

// The FP8 kernel on int4 weights.
func.func @fp8_kernel_int4_weights(%x: tensor<?x64xbf16>, %w: tensor<8x64x32xi8>, %o: tensor<9xi32>, %s: tensor<8x64x2xf32>,
    %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{moe.gpu_kernels: the small kernel mma_sync_fp8 needs FP8 weights (weight_quant format fp8_e4m3), got format int4}}
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<8x64x32xi8>, tensor<9xi32>) rhs_scales(%s : tensor<8x64x2xf32>)
      outs(%init : tensor<?x64xf32>)
      {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>,
       moe.gpu_kernels = #moe.grouped_matmul_kernels<small = #moe.matmul_tile<kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync_wonly, rows = 32, columns = 128, k = 128, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large_rows_per_expert = 32>} -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}
