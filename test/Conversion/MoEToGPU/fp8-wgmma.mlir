// FP8 grouped matmuls on sm_90a: moe-gpu-select-kernel-config gives the
// large tile shape the wgmma_fp8 kernel (128 rows by 128 weight rows, K
// tiles of 128, 4 stages) where K is a multiple of 16 and the K blocks are
// whole K tiles (bk a multiple of 128, or one block over K), and keeps
// mma_sync_fp8 for the small shape and for the ops wgmma_fp8 refuses; and
// convert-moe-to-gpu lowers it to a producer warpgroup (the weights by TMA,
// described as bytes, the quantized A rows by cp.async) and two consumer
// warpgroups (four e4m3 wgmma.mma_async per K tile, then the promotion with
// the rows' and the weight block's scales).
// RUN: moe-opt %s --moe-gpu-select-kernel-config --split-input-file | FileCheck %s --check-prefix=SELECT
// RUN: moe-opt %s --moe-gpu-select-kernel-config --convert-moe-to-gpu --split-input-file | FileCheck %s --check-prefix=LOWER

// DeepSeek's [128, 128] blocks, a GLU epilogue and a bias: 64 output
// columns (64 gate and 64 up weight rows) a block.
// SELECT-LABEL: func.func @gate_up
// SELECT: moe.gpu_kernels = #moe.grouped_matmul_kernels<small = <kernel = mma_sync_fp8, rows = 16, columns = 64, k = 64, stages = 2, unroll = 2, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large = <kernel = wgmma_fp8, rows = 128, columns = 64, k = 128, stages = 4, unroll = 1, split_k = 1, tile_group = 8, a_layout = swizzle_128b, b_layout = swizzle_128b, inline_constants = true>, large_rows_per_expert = 32>
// LOWER-LABEL: func.func @gate_up
// LOWER:       function(@moe_fp8_quantize_activations)
// The weights' tensor map, over their bytes: boxes of 64 rows x 128 K.
// LOWER:       builtin.unrealized_conversion_cast {{.*}} : memref<8x512x512xf8E4M3FN> to memref<8x512x512xui8>
// LOWER:       nvgpu.tma.create.descriptor {{.*}} : memref<*xui8> -> <tensor = memref<1x64x128xui8, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// 4 stages of 32 KiB, and room to align them to the swizzle atom.
// LOWER:       threads({{.*}}) in (%{{.*}} = %c384, {{.*}} dynamic_shared_memory_size %c132096_i32 module(@moe_kernels) function(@moe_grouped_matmul_large)
// The producer: both boxes by TMA, the quantized A rows by cp.async.
// LOWER:         nvgpu.tma.async.load
// LOWER:         nvgpu.tma.async.load
// LOWER:         nvgpu.device_async_copy {{.*}} : memref<?x512xi8> to memref<4x128x128xi8, #gpu.address_space<workgroup>>
// LOWER:         nvvm.cp.async.mbarrier.arrive
// The consumers: the scales first (the two rows', and one weight scale for
// the 8 gate tiles and one for the 8 up tiles), then four k32 steps, the
// first from zero.
// LOWER-COUNT-2: memref.load {{.*}} : memref<?x4xf32>
// LOWER-COUNT-2: memref.load {{.*}} : memref<8x4x4xf32>
// LOWER-NOT:     memref.load
// LOWER:         nvvm.wgmma.fence.aligned
// LOWER:         nvvm.wgmma.mma_async {{.*}} <m = 64, n = 128, k = 32>, D[<f32>, <zero>], A[<e4m3>, <one>, <row>], B[<e4m3>, <one>, <col>]
// LOWER-COUNT-3: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 128, k = 32>, D[<f32>, <one>], A[<e4m3>, <one>, <row>], B[<e4m3>, <one>, <col>]
// LOWER:         nvvm.wgmma.wait.group.sync.aligned 0
// The promotion: the row's scale times the weight block's, into the sums.
// LOWER:         arith.mulf
// LOWER:         math.fma
// The epilogue: the bias, then the GLU.
// LOWER:         memref.load {{.*}} : memref<8x512xbf16>
// LOWER:         math.exp
// LOWER:       function(@moe_grouped_matmul_small)
// LOWER:         llvm.inline_asm asm_dialect = att "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
func.func @gate_up(%x: tensor<?x512xbf16>, %w: tensor<8x512x512xf8E4M3FN>, %offsets: tensor<9xi32>,
                   %b: tensor<8x512xbf16>, %s: tensor<8x4x4xf32>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x512xbf16>, tensor<8x512x512xf8E4M3FN>, tensor<9xi32>)
      bias(%b : tensor<8x512xbf16>) rhs_scales(%s : tensor<8x4x4xf32>) outs(%init : tensor<?x256xbf16>)
      {epilogue = #moe.activation<silu>,
       weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>}
      -> tensor<?x256xbf16>
  return %h : tensor<?x256xbf16>
}

// -----

// No GLU: 128 output columns a block; N = 200 (a ragged last scale block)
// and K = 384, three K blocks.
// SELECT-LABEL: func.func @down_ragged_n
// SELECT: large = <kernel = wgmma_fp8, rows = 128, columns = 128, k = 128, stages = 4,
// LOWER-LABEL: func.func @down_ragged_n
// LOWER:       function(@moe_grouped_matmul_large)
// LOWER:         nvvm.wgmma.mma_async
func.func @down_ragged_n(%a: tensor<?x384xbf16>, %w: tensor<4x200x384xf8E4M3FN>, %offsets: tensor<5xi32>,
                         %s: tensor<4x2x3xf32>, %init: tensor<?x200xbf16>) -> tensor<?x200xbf16> {
  %h = moe.grouped_matmul ins(%a, %w, %offsets : tensor<?x384xbf16>, tensor<4x200x384xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x3xf32>) outs(%init : tensor<?x200xbf16>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>}
      -> tensor<?x200xbf16>
  return %h : tensor<?x200xbf16>
}

// -----

// One K block over K = 208 (per-channel scales): a multiple of 16, the
// last K tile partial; each of a thread's 32 columns takes its own weight
// scale.
// SELECT-LABEL: func.func @per_channel_k208
// SELECT: large = <kernel = wgmma_fp8, rows = 128, columns = 128, k = 128,
// LOWER-LABEL: func.func @per_channel_k208
// LOWER:       function(@moe_grouped_matmul_large)
// LOWER-COUNT-2: memref.load {{.*}} : memref<?x1xf32>
// LOWER-COUNT-32: memref.load {{.*}} : memref<4x96x1xf32>
// LOWER-NOT:     memref.load
// LOWER:         nvvm.wgmma.fence.aligned
func.func @per_channel_k208(%x: tensor<?x208xbf16>, %w: tensor<4x96x208xf8E4M3FN>, %offsets: tensor<5xi32>,
                            %s: tensor<4x96x1xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x208xbf16>, tensor<4x96x208xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x96x1xf32>) outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [1, 1048576], activation = dynamic>}
      -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// -----

// K = 200 is no multiple of 16 (the weights' rows would not be 16-byte
// aligned for TMA): mma_sync_fp8 takes both shapes.
// SELECT-LABEL: func.func @k200_keeps_mma_sync
// SELECT: large = <kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32,
func.func @k200_keeps_mma_sync(%x: tensor<?x200xbf16>, %w: tensor<4x96x200xf8E4M3FN>, %offsets: tensor<5xi32>,
                               %s: tensor<4x1x2xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x200xbf16>, tensor<4x96x200xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x2xf32>) outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>}
      -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// -----

// K blocks of 64: a 128-wide K tile would span two blocks' scales.
// SELECT-LABEL: func.func @block64_keeps_mma_sync
// SELECT: large = <kernel = mma_sync_fp8, rows = 32, columns = 128, k = 32,
func.func @block64_keeps_mma_sync(%x: tensor<?x256xbf16>, %w: tensor<4x96x256xf8E4M3FN>, %offsets: tensor<5xi32>,
                                  %s: tensor<4x2x4xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x256xbf16>, tensor<4x96x256xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x4xf32>) outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [64, 64], activation = dynamic>}
      -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}
