// FP8 grouped matmuls (weight_quant) on the GPU: moe-gpu-select-kernel-config
// gives both tile shapes the mma_sync_fp8 kernel on sm_89 (unroll: the
// largest divisor of a K block's 32-wide steps up to small-unroll), and the
// small one on sm_90a, and the large one where wgmma_fp8 refuses the op or
// is off (wgmma-fp8=false)
// (fp8-wgmma.mlir); and convert-moe-to-gpu launches the activation
// quantization (e4m3 bytes and their f32 scales per row and K block), then
// the kernel, whose MMA is the e4m3 mma.sync as inline PTX, each K block's
// sums scaled into the f32 accumulators before the epilogue (bias, GLU,
// routing weight). The decode tile here is the first main loop (8-byte
// steps, no register stages: fp8-small-k=32 fp8-small-stages=1); the default
// staged loop is fp8-staged.mlir's.
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_89 fp8-small-k=32 fp8-small-stages=1" --split-input-file | FileCheck %s --check-prefix=SELECT
// RUN: moe-opt %s --moe-gpu-select-kernel-config="wgmma=false fp8-small-k=32 fp8-small-stages=1" --split-input-file | FileCheck %s --check-prefix=SELECT
// RUN: moe-opt %s --moe-gpu-select-kernel-config="wgmma-fp8=false fp8-small-k=32 fp8-small-stages=1" --split-input-file | FileCheck %s --check-prefix=SELECT
// On sm_80 both tile shapes take mma_sync_fp8_f16 (the same loops, the
// e4m3 fragments widened to f16; nvvm-pipeline-fp8.mlir lowers it).
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_80 --split-input-file | FileCheck %s --check-prefix=SM80
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_89 fp8-small-k=32 fp8-small-stages=1" --convert-moe-to-gpu --split-input-file | FileCheck %s --check-prefix=LOWER

// DeepSeek's [128, 128] blocks, dynamic activations, a GLU epilogue and a
// bias: 4 steps of 32 per K block; the 32-row tile has 64 output columns
// with a GLU (128 without).
// SELECT-LABEL: func.func @gate_up
// SM80-LABEL: func.func @gate_up
// SM80: small = <kernel = mma_sync_fp8_f16, rows = 16, columns = 64, k = 64, stages = 2, unroll = 2, split_k = 1, {{.*}}large = <kernel = mma_sync_fp8_f16, rows = 32, columns = 64, k = 32, stages = 1, unroll = 4,
// SELECT: moe.gpu_kernels = #moe.grouped_matmul_kernels<small = <kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 4, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large = <kernel = mma_sync_fp8, rows = 32, columns = 64, k = 32, stages = 1, unroll = 4, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large_rows_per_expert = 32>
// LOWER-LABEL: func.func @gate_up
// The activations: one warp per row and K block, the amax of the block
// (each lane's, then the warp's by a butterfly of shuffles), its scale and
// the e4m3 bytes.
// LOWER:       memref.alloc({{.*}}) : memref<?x512xi8>
// LOWER:       memref.alloc({{.*}}) : memref<?x4xf32>
// LOWER:       function(@moe_fp8_quantize_activations)
// LOWER:         arith.maximumf
// LOWER-COUNT-5: gpu.shuffle  xor
// LOWER:         arith.divf
// LOWER:         math.roundeven
// LOWER:         arith.trunci {{.*}} : i32 to i8
// LOWER:       function(@moe_grouped_matmul_large)
// LOWER:         vector.load {{.*}} : memref<?x512xi8>, vector<8xi8>
// LOWER:         vector.load {{.*}} : memref<8x512x512xf8E4M3FN>, vector<8xf8E4M3FN>
// LOWER:         llvm.inline_asm asm_dialect = att "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// The promotion: the row's and the weight block's scales.
// LOWER:         memref.load {{.*}} : memref<?x4xf32>
// LOWER:         memref.load {{.*}} : memref<8x4x4xf32>
// LOWER:         arith.mulf
// LOWER:         arith.addf
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

// One static scale for the activations, per-channel weight scales (one K
// block of K = 200, 7 steps: unroll 7); the static scale is read, not
// computed, and the rows are zero-padded to 224 bytes.
// SELECT-LABEL: func.func @static_per_channel
// SELECT: small = <kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 1, unroll = 7,
// LOWER-LABEL: func.func @static_per_channel
// LOWER:       memref.alloc({{.*}}) : memref<?x224xi8>
// LOWER:       function(@moe_fp8_quantize_activations)
// LOWER:         memref.load {{.*}} : memref<1xf32>
// LOWER:         math.roundeven
// LOWER:       function(@moe_grouped_matmul_small)
// LOWER:         llvm.inline_asm asm_dialect = att "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
func.func @static_per_channel(%x: tensor<?x200xf32>, %w: tensor<4x96x200xf8E4M3FN>, %offsets: tensor<5xi32>,
                              %s: tensor<4x96x1xf32>, %si: tensor<1xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x200xf32>, tensor<4x96x200xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x96x1xf32>) lhs_scales(%si : tensor<1xf32>) outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [1, 1048576], activation = static>}
      -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}
