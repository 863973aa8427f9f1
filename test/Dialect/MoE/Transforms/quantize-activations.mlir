// RUN: moe-opt %s --moe-quantize-activations | FileCheck %s

// Dynamic: the group amax per row and block of 16 columns (K = 40: three
// groups, the last one ragged), the scales (amax / 448, 1 for a zero group)
// and the rounded values; the matmul keeps its weight scales and quantizes
// nothing more.
// CHECK-LABEL: func.func @dynamic
// CHECK-SAME: (%[[X:.*]]: tensor<?x40xbf16>, %[[W:.*]]: tensor<4x24x40xf8E4M3FN>, %[[O:.*]]: tensor<5xi32>, %[[S:.*]]: tensor<4x2x3xf32>
// CHECK: %[[AMAX:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:   math.absf
// CHECK:   arith.maximumf
// CHECK: %[[SCALES:.*]] = linalg.generic {{.*}} ins(%[[AMAX]] : tensor<?x3xf32>)
// CHECK:   arith.divf
// CHECK:   arith.select
// CHECK: %[[XQ:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<?x40xbf16>)
// CHECK:   tensor.extract %[[SCALES]]
// CHECK:   math.roundeven
// CHECK: moe.grouped_matmul ins(%[[XQ]], %[[W]], %[[O]] : tensor<?x40xf32>, tensor<4x24x40xf8E4M3FN>, tensor<5xi32>) rhs_scales(%[[S]] : tensor<4x2x3xf32>)
// CHECK-SAME: activation = none
func.func @dynamic(%x: tensor<?x40xbf16>, %w: tensor<4x24x40xf8E4M3FN>, %o: tensor<5xi32>, %s: tensor<4x2x3xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x40xbf16>, tensor<4x24x40xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x3xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}

// Static: one scale for the tensor, no amax; lhs_scales goes away.
// CHECK-LABEL: func.func @static
// CHECK: %[[SCALE:.*]] = tensor.extract %{{.*}}[%{{.*}}] : tensor<1xf32>
// CHECK: %[[XQ:.*]] = linalg.generic
// CHECK:   arith.divf %{{.*}}, %[[SCALE]]
// CHECK:   math.roundeven
// CHECK: moe.grouped_matmul ins(%[[XQ]], {{.*}} rhs_scales(%{{.*}} : tensor<4x24x1xf32>) outs
// CHECK-SAME: activation = none
func.func @static(%x: tensor<?x40xbf16>, %w: tensor<4x24x40xf8E4M3FN>, %o: tensor<5xi32>, %s: tensor<4x24x1xf32>, %si: tensor<1xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x40xbf16>, tensor<4x24x40xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x24x1xf32>) lhs_scales(%si : tensor<1xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [1, 40], activation = static>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}
