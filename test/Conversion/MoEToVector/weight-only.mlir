// Weight-only mxfp4, int4 and int8 weights in the nk kernel: the packed bytes
// of a weight row are decoded in registers before the f32 FMAs, and the
// kernel's scf.forall records how (moe.weight_decode).
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=skylake-avx512" | FileCheck %s --check-prefixes=CHECK,AVX512
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=haswell" | FileCheck %s --check-prefixes=CHECK,AVX2
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=skylake-avx512 vector-width=8" | FileCheck %s --check-prefixes=CHECK,WIDTH8
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="target-cpu=skylake-avx512" | FileCheck %s --check-prefix=LLVM
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="target-cpu=haswell" | FileCheck %s --check-prefix=LLVM
// The table lookups are selected as one permute per vector on AVX-512:
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="target-cpu=skylake-avx512" | mlir-translate --mlir-to-llvmir | llc -O2 -mcpu=skylake-avx512 | FileCheck %s --check-prefix=ASM
// ASM-LABEL: mxfp4:
// ASM: {{vpermd|vpermps}} {{.*}}%zmm
// ASM-LABEL: int4_asymmetric:
// ASM: {{vpermd|vpermps}} {{.*}}%zmm

// mxfp4: 16 bytes (32 k) per step; the low nibbles are the even k, the high
// nibbles the odd k, and the activations are split the same way. On AVX-512
// a 16-entry table (e2m1 values times the block's power of two) is looked
// up with vpermps; on AVX2 the codes are decoded with integer ops.
// CHECK-LABEL: func.func @mxfp4
// CHECK: scf.forall
// AVX512: %[[BYTES:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x24x32xi8>, vector<16xi8>
// AVX512: %[[LOW:.*]] = arith.extui %[[BYTES]] : vector<16xi8> to vector<16xi32>
// AVX512: %[[HIGH:.*]] = arith.shrui %[[LOW]]
// AVX512: %[[LOW_CODES:.*]] = arith.andi %[[LOW]]
// AVX512: tensor.extract %{{.*}} : tensor<4x24x2xf8E8M0FNU>
// AVX512: %[[SCALE:.*]] = vector.broadcast %{{.*}} : f32 to vector<16xf32>
// AVX512: %[[TABLE:.*]] = arith.mulf %[[SCALE]], %{{.*}} : vector<16xf32>
// AVX512: %[[CODE0:.*]] = vector.extract %[[LOW_CODES]][0] : i32 from vector<16xi32>
// AVX512: %[[AT0:.*]] = arith.index_castui %[[CODE0]] : i32 to index
// AVX512: vector.extract %[[TABLE]][%[[AT0]]] : f32 from vector<16xf32>
// AVX512: vector.from_elements {{.*}} : vector<16xf32>
// AVX512: vector.extract %[[HIGH]][0] : i32 from vector<16xi32>
// AVX512: vector.from_elements {{.*}} : vector<16xf32>
// AVX2-NOT: vector.from_elements
// AVX2: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x24x32xi8>, vector<16xi8>
// AVX2: arith.shli %{{.*}} : vector<16xi32>
// AVX2: arith.select %{{.*}} : vector<16xi1>, vector<16xf32>
// WIDTH8-NOT: vector.from_elements
// WIDTH8: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x24x32xi8>, vector<8xi8>
// CHECK: %[[A:.*]] = arith.extf %{{.*}} to vector<{{32|16}}xf32>
// CHECK: %[[EVEN:.*]] = vector.shuffle %[[A]], %[[A]] [0, 2, 4,
// CHECK: %[[ODD:.*]] = vector.shuffle %[[A]], %[[A]] [1, 3, 5,
// CHECK: %[[ACC:.*]] = vector.fma %[[EVEN]]
// CHECK: vector.fma %[[ODD]], %{{.*}}, %[[ACC]]
// AVX512: } {moe.weight_decode = "mxfp4_table_permute"}
// AVX2: } {moe.weight_decode = "mxfp4_integer_ops"}
// WIDTH8: } {moe.weight_decode = "mxfp4_integer_ops"}
// LLVM: llvm.func @mxfp4
func.func @mxfp4(%x: tensor<?x64xbf16>, %w: tensor<4x24x32xi8>, %o: tensor<5xi32>, %s: tensor<4x24x2xf8E8M0FNU>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xbf16>, tensor<4x24x32xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x24x2xf8E8M0FNU>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}

// int4 with zero points, K = 80 (two whole steps of 32, then 16 k read under
// a mask): the table is (c - z) * s for the step's group.
// CHECK-LABEL: func.func @int4_asymmetric
// CHECK: scf.forall
// AVX512: tensor.extract %{{.*}} : tensor<3x20x3xf32>
// AVX512: tensor.extract %{{.*}} : tensor<3x20x3xi8>
// AVX512: arith.sitofp %{{.*}} : i8 to f32
// AVX512: arith.subf %{{.*}} : vector<16xf32>
// AVX512: arith.mulf %{{.*}} : vector<16xf32>
// AVX512: vector.from_elements {{.*}} : vector<16xf32>
// AVX2: arith.andi %{{.*}} : vector<16xi32>
// AVX2: arith.uitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// AVX2: arith.subf %{{.*}} : vector<16xf32>
// CHECK: vector.fma
// The last 16 k: 8 bytes of the row and 16 activations, the rest padded.
// CHECK: vector.transfer_read %{{.*}} : tensor<3x20x40xi8>, vector<{{16|8}}xi8>
// CHECK: vector.transfer_read %{{.*}} : tensor<?x80xf32>, vector<{{32|16}}xf32>
// AVX512: } {moe.weight_decode = "int4_table_permute"}
// AVX2: } {moe.weight_decode = "int4_integer_ops"}
// WIDTH8: } {moe.weight_decode = "int4_integer_ops"}
// LLVM: llvm.func @int4_asymmetric
func.func @int4_asymmetric(%x: tensor<?x80xf32>, %w: tensor<3x20x40xi8>, %o: tensor<4xi32>, %s: tensor<3x20x3xf32>, %z: tensor<3x20x3xi8>, %init: tensor<?x20xf32>) -> tensor<?x20xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x80xf32>, tensor<3x20x40xi8>, tensor<4xi32>)
      rhs_scales(%s : tensor<3x20x3xf32>) rhs_zero_points(%z : tensor<3x20x3xi8>) outs(%init : tensor<?x20xf32>)
      {weight_quant = #moe.weight_quant<format = int4, block = [1, 32], activation = none>} -> tensor<?x20xf32>
  return %h : tensor<?x20xf32>
}

// int8: the bytes are converted to f32 and the row's one scale multiplies
// the reduced sum.
// CHECK-LABEL: func.func @int8
// CHECK: scf.forall
// CHECK: %[[Q:.*]] = vector.transfer_read %{{.*}} : tensor<4x24x40xi8>, vector<{{16|8}}xi8>
// CHECK: arith.sitofp %[[Q]] : vector<{{16|8}}xi8> to vector<{{16|8}}xf32>
// CHECK: vector.fma
// CHECK: %[[ROW_SCALE:.*]] = tensor.extract %{{.*}} : tensor<4x24x1xf32>
// CHECK: %[[SUM:.*]] = vector.reduction <add>
// CHECK: arith.mulf %[[SUM]], %[[ROW_SCALE]] : f32
// CHECK: } {moe.weight_decode = "int8_row_scale"}
// LLVM: llvm.func @int8
func.func @int8(%x: tensor<?x40xf32>, %w: tensor<4x24x40xi8>, %o: tensor<5xi32>, %s: tensor<4x24x1xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x40xf32>, tensor<4x24x40xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x24x1xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = int8, block = [1, 40], activation = none>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}
