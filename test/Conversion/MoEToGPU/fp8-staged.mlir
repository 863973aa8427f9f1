// The FP8 decode tile with the staged main loop: fp8-small-k=64 (the
// default) gives 16-byte steps (two m16n8k32 MMAs each), fp8-small-stages=2
// (the default) issues the next group's loads and scales before this group's
// MMAs, and fp8-small-split-k=4 (opt-in, from small-split-k-from) lets the 4
// warps share 16 columns and split the K blocks, part 0 adding the others'
// sums from shared memory. fp8-small-k=32 fp8-small-stages=1 is the first
// main loop (fp8.mlir); where K is not a multiple of 16, k stays 32.
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_90a fp8-small-k=64 fp8-small-stages=2 fp8-small-split-k=4" --split-input-file | FileCheck %s --check-prefix=SELECT
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_90a fp8-small-k=32" --split-input-file | FileCheck %s --check-prefix=STAGES
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_90a fp8-small-k=64 fp8-small-stages=2 fp8-small-split-k=4" --convert-moe-to-gpu --split-input-file | FileCheck %s --check-prefix=LOWER
// fp8-small-stages=3: the loop carries two groups (each 2 steps of words
// and their inside-K flags, then the group's 10 scales) beside the sums.
// RUN: moe-opt %s --moe-gpu-select-kernel-config="chip=sm_90a fp8-small-stages=3" --convert-moe-to-gpu --split-input-file | FileCheck %s --check-prefix=THREE
// THREE-LABEL: func.func @gate_up
// THREE:       function(@moe_grouped_matmul_small)
// THREE:         scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, i1, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, i1, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, i1, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, i1, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {

// DeepSeek-like [128, 128] blocks, K = 2048 (16 blocks, 4 a part), a GLU.
// SELECT-LABEL: func.func @gate_up
// SELECT: small = <kernel = mma_sync_fp8, rows = 16, columns = 16, k = 64, stages = 2, unroll = 2, split_k = 4, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>, large = <kernel = wgmma_fp8,
// STAGES-LABEL: func.func @gate_up
// STAGES: small = <kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 2, unroll = 4, split_k = 1,
// LOWER-LABEL: func.func @gate_up
// LOWER:       function(@moe_fp8_quantize_activations)
// LOWER:       function(@moe_grouped_matmul_small) workgroup(%{{.*}} : memref<1536xf32, #gpu.address_space<workgroup>>)
// The first group, then the loop: the next group's loads and scales before
// this group's MMAs. The loop carries the words as loaded and whether each
// step is inside K (i1); they are masked where the MMAs take them, so
// nothing in the loading iteration uses its own loads.
// LOWER:         vector.load {{.*}} : memref<?x2048xi8>, vector<16xi8>
// LOWER:         vector.load {{.*}} : memref<8x512x2048xf8E4M3FN>, vector<16xf8E4M3FN>
// LOWER:         memref.load {{.*}} : memref<?x16xf32>
// LOWER:         memref.load {{.*}} : memref<8x4x16xf32>
// LOWER:         scf.for {{.*}} -> ({{.*}}vector<4xi32>, i1, vector<4xi32>{{.*}}, i1, f32
// LOWER:           vector.load {{.*}} : memref<?x2048xi8>, vector<16xi8>
// LOWER-NEXT:      %[[WORDS:.*]] = vector.bitcast
// LOWER-NOT:       %[[WORDS]]
// LOWER:           vector.load {{.*}} : memref<8x512x2048xf8E4M3FN>, vector<16xf8E4M3FN>
// LOWER-NOT:       %[[WORDS]]
// LOWER:           memref.load {{.*}} : memref<?x16xf32>
// LOWER:           memref.load {{.*}} : memref<8x4x16xf32>
// LOWER:           llvm.inline_asm asm_dialect = att "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// The promotion of the group's partial sums.
// LOWER:           arith.mulf
// LOWER:           arith.mulf
// LOWER:           arith.addf
// LOWER:           scf.yield
// The parts' sums in a fixed order through shared memory.
// LOWER:         memref.store {{.*}} : memref<1536xf32, #gpu.address_space<workgroup>>
// LOWER:         gpu.barrier
// LOWER:         memref.load {{.*}} : memref<1536xf32, #gpu.address_space<workgroup>>
// LOWER:         math.exp
func.func @gate_up(%x: tensor<?x2048xbf16>, %w: tensor<8x512x2048xf8E4M3FN>, %offsets: tensor<9xi32>,
                   %s: tensor<8x4x16xf32>, %init: tensor<?x256xbf16>) -> tensor<?x256xbf16> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x2048xbf16>, tensor<8x512x2048xf8E4M3FN>, tensor<9xi32>)
      rhs_scales(%s : tensor<8x4x16xf32>) outs(%init : tensor<?x256xbf16>)
      {epilogue = #moe.activation<silu>,
       weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>}
      -> tensor<?x256xbf16>
  return %h : tensor<?x256xbf16>
}

// -----

// K = 200 (not a multiple of 16) and below small-split-k-from: 8-byte
// steps, no split; one K block of 7 steps.
// SELECT-LABEL: func.func @narrow
// SELECT: small = <kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 2, unroll = 7, split_k = 1,
// STAGES-LABEL: func.func @narrow
// STAGES: small = <kernel = mma_sync_fp8, rows = 16, columns = 64, k = 32, stages = 2, unroll = 7, split_k = 1,
// LOWER-LABEL: func.func @narrow
// LOWER:       function(@moe_grouped_matmul_small)
// LOWER-NOT:     workgroup
// LOWER:         vector.load {{.*}} : memref<?x224xi8>, vector<8xi8>
// LOWER:         scf.for
// LOWER:           vector.load {{.*}} : memref<?x224xi8>, vector<8xi8>
// LOWER:           llvm.inline_asm asm_dialect = att "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
func.func @narrow(%x: tensor<?x200xf32>, %w: tensor<4x96x200xf8E4M3FN>, %offsets: tensor<5xi32>,
                  %s: tensor<4x1x1xf32>, %init: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x200xf32>, tensor<4x96x200xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x1x1xf32>) outs(%init : tensor<?x96xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 1048576], activation = dynamic>}
      -> tensor<?x96xf32>
  return %h : tensor<?x96xf32>
}
