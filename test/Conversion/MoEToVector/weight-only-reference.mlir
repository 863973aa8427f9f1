// Where a step of the nk kernel (2 x vector-width k of a 4-bit format) would
// span two scale groups, one scale no longer covers it: the grouped matmul is
// left to the reference lowering, which dequantizes every weight.
// RUN: moe-opt %s --convert-moe-to-vector="vector-width=32" | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-vector="vector-width=32" --convert-moe-to-linalg | FileCheck %s --check-prefix=REFERENCE

// CHECK-LABEL: func.func @mxfp4_wide
// CHECK-NOT: scf.forall
// CHECK: moe.grouped_matmul
// REFERENCE-LABEL: func.func @mxfp4_wide
// REFERENCE: linalg.generic
func.func @mxfp4_wide(%x: tensor<?x64xf32>, %w: tensor<4x24x32xi8>, %o: tensor<5xi32>, %s: tensor<4x24x2xf8E8M0FNU>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x64xf32>, tensor<4x24x32xi8>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x24x2xf8E8M0FNU>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}

// int4 groups of 64 take 2 x 32 k per step: the kernel runs.
// CHECK-LABEL: func.func @int4_g64_wide
// CHECK: scf.forall
// CHECK: } {moe.weight_decode = "int4_integer_ops"}
func.func @int4_g64_wide(%x: tensor<?x128xf32>, %w: tensor<2x8x64xi8>, %o: tensor<3xi32>, %s: tensor<2x8x2xf32>, %init: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x128xf32>, tensor<2x8x64xi8>, tensor<3xi32>)
      rhs_scales(%s : tensor<2x8x2xf32>) outs(%init : tensor<?x8xf32>)
      {weight_quant = #moe.weight_quant<format = int4, block = [1, 64], activation = none>} -> tensor<?x8xf32>
  return %h : tensor<?x8xf32>
}
