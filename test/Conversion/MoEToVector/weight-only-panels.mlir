// Quantized weights in the panels layout (LowBitPanelKernel): each weight
// vector is decoded once per stored row and block of routed rows, the scales
// multiply partial sums once per group, and the kernel's scf.forall records
// the decoding (moe.weight_decode).
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=sapphirerapids" | FileCheck %s --check-prefixes=CHECK,DOT
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=skylake-avx512" | FileCheck %s --check-prefixes=CHECK,TABLE
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=haswell" | FileCheck %s --check-prefixes=CHECK,INT
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="target-cpu=haswell" | FileCheck %s --check-prefix=LLVM
// The table lookups are selected as vpermw and the products as vdpbf16ps:
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="target-cpu=sapphirerapids" | mlir-translate --mlir-to-llvmir | llc -O2 -mcpu=sapphirerapids | FileCheck %s --check-prefix=ASM
// ASM-LABEL: mxfp4_bf16:
// ASM: vpermw {{.*}}%zmm
// ASM: vdpbf16ps {{.*}}%zmm
// ASM-LABEL: mxfp4_bf16_byte_lanes:
// ASM: vpermw {{.*}}%zmm
// ASM: vdpbf16ps {{.*}}%zmm
// ASM-LABEL: int4_asymmetric_bf16:
// ASM: vpermw {{.*}}%zmm
// ASM: vdpbf16ps {{.*}}%zmm
// ASM-LABEL: fp8_f32:
// ASM: vcvtph2ps{{x?}} {{.*}}%zmm

// mxfp4, bf16 activations, 64-wide panels (their rows in the word order,
// docs/quantization.md): a stored row is read once as 32 words for the
// step's four weight vectors; each vector's words, shifted right by 4 bits
// per block of 16 columns, index the e2m1 table in bf16 as they are
// (moe.x86.permute_words), and vdpbf16ps multiplies the pair by the row's
// two activations. The e8m0 scales (a vector per weight vector and group of
// 32 k) multiply the partial sums. The f32 decodings read the 32-bit lanes
// of the row and shift them the same way.
// CHECK-LABEL: func.func @mxfp4_bf16
// CHECK: scf.forall
// CHECK: scf.for
// CHECK: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x2x2x64xf8E8M0FNU>, vector<16xf8E8M0FNU>
// CHECK: scf.for
// CHECK: %[[ROW:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x2x32x64xi8>, vector<64xi8>
// DOT-NOT: vector.transfer_read %{{.*}} : tensor<4x2x32x64xi8>
// DOT: %[[WORDS:.*]] = vector.bitcast %[[ROW]] : vector<64xi8> to vector<32xi16>
// DOT: %[[INDEX:.*]] = arith.shrui %[[WORDS]], %{{.*}} : vector<32xi16>
// DOT: moe.x86.permute_words %{{.*}}[%[[INDEX]]] : vector<32xi16>
// DOT-NOT: vector.from_elements
// DOT: x86vector.avx512.dot {{.*}} : vector<32xbf16> -> vector<16xf32>
// TABLE: vector.bitcast %[[ROW]] : vector<64xi8> to vector<16xi32>
// TABLE: arith.shrui
// TABLE: vector.from_elements {{.*}} : vector<16xf32>
// TABLE: vector.fma
// INT-NOT: vector.from_elements
// INT: arith.select %{{.*}} : vector<16xi1>, vector<16xf32>
// INT: vector.fma
// CHECK: scf.yield
// CHECK: vector.fma
// DOT: } {moe.weight_decode = "mxfp4_panel_bf16_word_table_dot"}
// TABLE: } {moe.weight_decode = "mxfp4_panel_table_permute"}
// INT: } {moe.weight_decode = "mxfp4_panel_integer_ops"}
// LLVM: llvm.func @mxfp4_bf16
func.func @mxfp4_bf16(%x: tensor<?x64xbf16>, %w: tensor<4x2x32x64xi8>, %o: tensor<5xi32>, %s: tensor<4x2x2x64xf8E8M0FNU>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x2x32x64xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x2x64xf8E8M0FNU>) outs(%init : tensor<?x128xf32>)
      {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x128xf32>
  return %h : tensor<?x128xf32>
}

// mxfp4 in 32-wide panels (byte c of a row for column c): a weight vector is
// the k-pair of 16 columns (16 bytes); each lane's nibbles become a word
// pair indexing the table, the indices masked to the table.
// CHECK-LABEL: func.func @mxfp4_bf16_byte_lanes
// CHECK: scf.forall
// CHECK: %[[BYTES:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x4x32x32xi8>, vector<16xi8>
// DOT: %[[LANES:.*]] = arith.extui %[[BYTES]] : vector<16xi8> to vector<16xi32>
// DOT: arith.shli %[[LANES]]
// DOT: %[[INDEX:.*]] = vector.bitcast %{{.*}} : vector<16xi32> to vector<32xi16>
// DOT: vector.extract %[[INDEX]][0] : i16 from vector<32xi16>
// DOT: vector.from_elements {{.*}} : vector<32xi16>
// DOT: x86vector.avx512.dot {{.*}} : vector<32xbf16> -> vector<16xf32>
// TABLE: arith.extui %[[BYTES]] : vector<16xi8> to vector<16xi32>
// TABLE: vector.from_elements {{.*}} : vector<16xf32>
// DOT: } {moe.weight_decode = "mxfp4_panel_bf16_table_dot"}
// TABLE: } {moe.weight_decode = "mxfp4_panel_table_permute"}
// INT: } {moe.weight_decode = "mxfp4_panel_integer_ops"}
// LLVM: llvm.func @mxfp4_bf16_byte_lanes
func.func @mxfp4_bf16_byte_lanes(%x: tensor<?x64xbf16>, %w: tensor<4x4x32x32xi8>, %o: tensor<5xi32>, %s: tensor<4x4x2x32xf8E8M0FNU>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x4x32x32xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x4x2x32xf8E8M0FNU>) outs(%init : tensor<?x128xf32>)
      {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x128xf32>
  return %h : tensor<?x128xf32>
}

// int4 with zero points, bf16 activations: the table holds i - 16 and the
// indices are the codes plus 16 - z, the group's zero points added to both
// words of each lane.
// CHECK-LABEL: func.func @int4_asymmetric_bf16
// CHECK: scf.forall
// DOT: arith.subi %{{.*}} : vector<16xi32>
// DOT: vector.bitcast %{{.*}} : vector<16xi32> to vector<32xi16>
// DOT: arith.addi %{{.*}} : vector<32xi16>
// DOT: x86vector.avx512.dot
// TABLE: arith.uitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// TABLE: arith.subf
// DOT: } {moe.weight_decode = "int4_panel_bf16_table_dot"}
// TABLE: } {moe.weight_decode = "int4_panel_table_permute"}
// INT: } {moe.weight_decode = "int4_panel_integer_ops"}
// LLVM: llvm.func @int4_asymmetric_bf16
func.func @int4_asymmetric_bf16(%x: tensor<?x256xbf16>, %w: tensor<3x1x128x32xi8>, %o: tensor<4xi32>, %s: tensor<3x1x2x32xf32>, %z: tensor<3x1x2x32xi8>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x256xbf16>, tensor<3x1x128x32xi8>, tensor<4xi32>)
      rhs_scales(%s : tensor<3x1x2x32xf32>) rhs_zero_points(%z : tensor<3x1x2x32xi8>) outs(%init : tensor<?x32xf32>)
      {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = int4, block = [1, 128], activation = none>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// int8 with f32 activations and a GLU: one group spans K, so the column
// scales multiply the sums once; the gate and up vectors of 32 columns share
// the step.
// CHECK-LABEL: func.func @int8_glu
// CHECK: scf.forall
// CHECK: arith.sitofp %{{.*}} : vector<16xi8> to vector<16xf32>
// CHECK: vector.fma
// CHECK: } {moe.weight_decode = "int8_panel_convert"}
func.func @int8_glu(%x: tensor<?x48xf32>, %w: tensor<2x4x48x16xi8>, %o: tensor<3xi32>, %s: tensor<2x4x1x16xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x48xf32>, tensor<2x4x48x16xi8>, tensor<3xi32>)
      rhs_scales(%s : tensor<2x4x1x16xf32>) outs(%init : tensor<?x32xf32>)
      {epilogue = #moe.activation<silu>, rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = int8, block = [1, 48], activation = none>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// FP8: each byte sign-extended, shifted and masked is the f16 of the weight
// times 2^-8; the block's scale (times 2^8) multiplies the partial sums of
// each K block of 16.
// CHECK-LABEL: func.func @fp8_f32
// CHECK: scf.forall
// CHECK: arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK: arith.extsi %{{.*}} : vector<16xi8> to vector<16xi16>
// CHECK: arith.bitcast %{{.*}} : vector<16xi16> to vector<16xf16>
// CHECK: arith.extf %{{.*}} : vector<16xf16> to vector<16xf32>
// CHECK: } {moe.weight_decode = "fp8_e4m3_panel_f16"}
// LLVM: llvm.func @fp8_f32
func.func @fp8_f32(%x: tensor<?x64xf32>, %w: tensor<2x3x64x16xf8E4M3FN>, %o: tensor<3xi32>, %s: tensor<2x3x4xf32>, %init: tensor<?x48xf32>) -> tensor<?x48xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xf32>, tensor<2x3x64x16xf8E4M3FN>, tensor<3xi32>)
      rhs_scales(%s : tensor<2x3x4xf32>) outs(%init : tensor<?x48xf32>)
      {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = none>} -> tensor<?x48xf32>
  return %h : tensor<?x48xf32>
}

// Panels narrower than the vector width are left to the reference lowering.
// CHECK-LABEL: func.func @narrow_panels
// CHECK: moe.grouped_matmul
func.func @narrow_panels(%x: tensor<?x64xbf16>, %w: tensor<4x4x32x8xi8>, %o: tensor<5xi32>, %s: tensor<4x4x2x8xf8E8M0FNU>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x4x32x8xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x4x2x8xf8E8M0FNU>) outs(%init : tensor<?x32xf32>)
      {rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}
