// Weight-only grouped matmuls (weight_quant format mxfp4, int4, int8) on the
// GPU: moe-gpu-select-kernel-config gives both tile shapes the
// mma_sync_wonly kernel (k = 128 for the 4-bit formats, 64 for int8; 16-row
// tiles with two register stages for decode, 32-row tiles from 32 rows per
// expert) on sm_80 and newer; convert-moe-to-gpu launches it with no
// activation kernel: each lane loads 16 bytes of packed weights per weight
// row and step, dequantizes them in registers into bf16 pairs (the codes
// shifted and masked into bf16 fields, times the scale; int4 minus its zero
// point) and multiplies with the bf16 mma.sync (f16 pairs and the f16 MMA
// with f16 activations); int8's row scale multiplies the sums after the
// loop.
// RUN: moe-opt %s --moe-gpu-select-kernel-config --split-input-file | FileCheck %s --check-prefix=SELECT
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_80 --split-input-file | FileCheck %s --check-prefix=SELECT
// RUN: moe-opt %s --moe-gpu-select-kernel-config --convert-moe-to-gpu --split-input-file | FileCheck %s --check-prefix=LOWER

// gpt-oss's MXFP4 gate/up projection: interleaved GLU, bias, e8m0 scales.
// SELECT-LABEL: func.func @mxfp4_gate_up
// SELECT: moe.gpu_kernels = #moe.grouped_matmul_kernels<small = <kernel = mma_sync_wonly, rows = 16, columns = 64, k = 128, stages = 2, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large = <kernel = mma_sync_wonly, rows = 32, columns = 64, k = 128, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large_rows_per_expert = 32>
// LOWER-LABEL: func.func @mxfp4_gate_up
// LOWER-NOT:     moe_fp8_quantize_activations
// LOWER:       function(@moe_grouped_matmul_large)
// LOWER:       function(@moe_grouped_matmul_small)
// The packed weights, 16 bytes a lane, and the activations of the same K.
// LOWER:         vector.load {{.*}} : memref<?x256xbf16>, vector<8xbf16>
// LOWER:         vector.load {{.*}} : memref<8x512x128xi8>, vector<16xi8>
// LOWER:         memref.load {{.*}} : memref<8x512x8xf8E8M0FNU>
// The e8m0 scale as a bf16 (2^-127 for 0, NaN for 255).
// LOWER:         arith.shli {{.*}} : i32
// LOWER:         arith.select
// LOWER:         arith.bitcast {{.*}} : i16 to bf16
// The activations permuted as the weight pairs (k, k + 4).
// LOWER:         vector.shuffle {{.*}} [0, 4, 1, 5, 2, 6, 3, 7] : vector<8xbf16>, vector<8xbf16>
// Codes i and i + 4 of each word into bf16 sign, exponent and mantissa bits.
// LOWER:         arith.shrui {{.*}} : vector<4xi32>
// LOWER:         arith.andi {{.*}} : vector<4xi32>
// LOWER:         arith.shli {{.*}} : vector<4xi32>
// LOWER:         arith.ori {{.*}} : vector<4xi32>
// LOWER:         vector.bitcast {{.*}} : vector<4xi32> to vector<8xbf16>
// LOWER:         arith.mulf {{.*}} : vector<8xbf16>
// LOWER:         arith.mulf {{.*}} : vector<8xbf16>
// LOWER:         nvvm.mma.sync {{.*}} {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// The epilogue: the bias, then the GLU.
// LOWER:         memref.load {{.*}} : memref<8x512xbf16>
// LOWER:         math.exp
func.func @mxfp4_gate_up(%x: tensor<?x256xbf16>, %w: tensor<8x512x128xi8>, %offsets: tensor<9xi32>,
                         %b: tensor<8x512xbf16>, %s: tensor<8x512x8xf8E8M0FNU>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x256xbf16>, tensor<8x512x128xi8>, tensor<9xi32>)
      bias(%b : tensor<8x512xbf16>) rhs_scales(%s : tensor<8x512x8xf8E8M0FNU>) outs(%init : tensor<?x256xbf16>)
      {epilogue = #moe.activation<silu>, glu_layout = #moe.glu_layout<interleaved>,
       weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>}
      -> tensor<?x256xbf16>
  return %h : tensor<?x256xbf16>
}

// -----

// int4 with zero points, groups of 128: 128 + q in bf16, minus 128 + z,
// times the group's scale.
// SELECT-LABEL: func.func @int4_zero_points
// SELECT: small = <kernel = mma_sync_wonly, rows = 16, columns = 64, k = 128, stages = 2, unroll = 1,
// SELECT-SAME: large = <kernel = mma_sync_wonly, rows = 32, columns = 128, k = 128, stages = 1, unroll = 1,
// LOWER-LABEL: func.func @int4_zero_points
// LOWER:       function(@moe_grouped_matmul_small)
// LOWER:         vector.load {{.*}} : memref<4x96x128xi8>, vector<16xi8>
// LOWER:         memref.load {{.*}} : memref<4x96x2xf32>
// LOWER:         memref.load {{.*}} : memref<4x96x2xi8>
// LOWER:         arith.truncf {{.*}} : f32 to bf16
// LOWER:         arith.ori {{.*}} : i32
// LOWER:         arith.andi {{.*}} : vector<4xi32>
// LOWER:         arith.ori {{.*}} : vector<4xi32>
// LOWER:         arith.subf {{.*}} : vector<8xbf16>
// LOWER:         arith.mulf {{.*}} : vector<8xbf16>
// LOWER:         nvvm.mma.sync
func.func @int4_zero_points(%x: tensor<?x256xbf16>, %w: tensor<4x96x128xi8>, %offsets: tensor<5xi32>,
                            %s: tensor<4x96x2xf32>, %z: tensor<4x96x2xi8>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x256xbf16>, tensor<4x96x128xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x96x2xf32>) rhs_zero_points(%z : tensor<4x96x2xi8>) outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = int4, block = [1, 128], activation = none>} -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// -----

// Symmetric int4 (z = 8: 128 + 8 = 0x4308), K = 80 (groups of 32, the last
// partial): no whole step of 128, so the only step is the tail, whose loads
// are element by element and zero past K.
// SELECT-LABEL: func.func @int4_tail
// SELECT: small = <kernel = mma_sync_wonly, rows = 16, columns = 64, k = 128,
// LOWER-LABEL: func.func @int4_tail
// LOWER:       function(@moe_grouped_matmul_small)
// LOWER-NOT:     vector<16xi8>
// LOWER:         memref.load {{.*}} : memref<3x24x40xi8>
// LOWER:         vector.from_elements {{.*}} : vector<16xi8>
// LOWER:         arith.constant 17160 : i32
// LOWER:         nvvm.mma.sync
func.func @int4_tail(%x: tensor<?x80xbf16>, %w: tensor<3x24x40xi8>, %offsets: tensor<4xi32>,
                     %s: tensor<3x24x3xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x80xbf16>, tensor<3x24x40xi8>, tensor<4xi32>)
      rhs_scales(%s : tensor<3x24x3xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}

// -----

// int8 per channel with f32 activations (rounded to bf16 when read), K =
// 200: three steps of 64 and a tail of 8. Each byte xor 0x80 in the
// mantissa of 2^23, minus 2^23 + 128, is q (in natural K order: no
// permutation of the activations); the row scale multiplies the
// sums after the loop.
// SELECT-LABEL: func.func @int8_rows
// SELECT: small = <kernel = mma_sync_wonly, rows = 16, columns = 64, k = 64, stages = 2, unroll = 2,
// LOWER-LABEL: func.func @int8_rows
// LOWER:       function(@moe_grouped_matmul_small)
// LOWER:         vector.load {{.*}} : memref<?x200xf32>, vector<8xf32>
// LOWER:         vector.load {{.*}} : memref<4x96x200xi8>, vector<16xi8>
// LOWER:         arith.truncf {{.*}} : vector<8xf32> to vector<8xbf16>
// LOWER-NOT:     vector.shuffle {{.*}} [0, 4, 1, 5, 2, 6, 3, 7]
// LOWER:         vector.shuffle {{.*}} [0, 1, 2, 3, 4, 5, 6, 7] : vector<16xi8>, vector<16xi8>
// LOWER:         arith.extui {{.*}} : vector<8xi8> to vector<8xi32>
// LOWER:         arith.xori
// LOWER:         arith.ori
// LOWER:         arith.subf {{.*}} : vector<8xf32>
// LOWER:         arith.truncf {{.*}} : vector<8xf32> to vector<8xbf16>
// LOWER:         nvvm.mma.sync
// LOWER:         memref.load {{.*}} : memref<4x96x1xf32>
// LOWER:         arith.mulf {{.*}} : f32
func.func @int8_rows(%x: tensor<?x200xf32>, %w: tensor<4x96x200xi8>, %offsets: tensor<5xi32>,
                     %s: tensor<4x96x1xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x200xf32>, tensor<4x96x200xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x96x1xf32>) outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = int8, block = [1, 200], activation = none>} -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}

// -----

// AWQ's f16 activations with int4 weights (groups of 64, zero points): the
// MMA in f16, the codes ORed into f16 1024.0 (0x6400, whose ulp is 1), minus
// 1024 + z, times the scale rounded to f16.
// SELECT-LABEL: func.func @int4_f16
// SELECT: small = <kernel = mma_sync_wonly, rows = 16, columns = 64, k = 128, stages = 2, unroll = 1,
// LOWER-LABEL: func.func @int4_f16
// LOWER:       function(@moe_grouped_matmul_small)
// LOWER:         vector.load {{.*}} : memref<?x128xf16>, vector<8xf16>
// LOWER:         vector.load {{.*}} : memref<4x64x64xi8>, vector<16xi8>
// LOWER:         arith.truncf {{.*}} : f32 to f16
// LOWER:         arith.constant 25600 : i32
// LOWER:         arith.bitcast {{.*}} : i16 to f16
// LOWER:         arith.ori {{.*}} : vector<4xi32>
// LOWER:         arith.subf {{.*}} : vector<8xf16>
// LOWER:         arith.mulf {{.*}} : vector<8xf16>
// LOWER:         nvvm.mma.sync {{.*}} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
func.func @int4_f16(%x: tensor<?x128xf16>, %w: tensor<4x64x64xi8>, %offsets: tensor<5xi32>,
                    %s: tensor<4x64x2xf32>, %z: tensor<4x64x2xi8>, %init: tensor<?x64xf16>) -> tensor<?x64xf16> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x128xf16>, tensor<4x64x64xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x64x2xf32>) rhs_zero_points(%z : tensor<4x64x2xi8>) outs(%init : tensor<?x64xf16>)
      {weight_quant = #moe.weight_quant<format = int4, block = [1, 64], activation = none>} -> tensor<?x64xf16>
  return %h : tensor<?x64xf16>
}
