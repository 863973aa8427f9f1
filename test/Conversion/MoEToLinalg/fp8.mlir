// The reference lowering of an FP8 grouped matmul: the activation
// quantization as linalg (group amax, scales, rounding), then one generic
// whose body decodes each e4m3 weight (integer ops: no FP8 arithmetic) and
// multiplies it by its block's scale.
// RUN: moe-opt %s --convert-moe-to-linalg | FileCheck %s
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: func.func @fp8
// CHECK-SAME: (%[[X:.*]]: tensor<?x40xbf16>, %[[W:.*]]: tensor<4x24x40xf8E4M3FN>, %[[O:.*]]: tensor<5xi32>, %[[S:.*]]: tensor<4x2x3xf32>
// CHECK:   math.absf
// CHECK:   arith.maximumf
// CHECK:   math.roundeven
// CHECK: linalg.generic
// CHECK:   %[[WBYTE:.*]] = tensor.extract %[[W]]
// CHECK:   %[[SCALE:.*]] = tensor.extract %[[S]]
// CHECK:   arith.bitcast %[[WBYTE]] : f8E4M3FN to i8
// CHECK:   arith.mulf %{{.*}}, %[[SCALE]]
// CHECK-NOT: moe.grouped_matmul
// LLVM: llvm.func @fp8
func.func @fp8(%x: tensor<?x40xbf16>, %w: tensor<4x24x40xf8E4M3FN>, %o: tensor<5xi32>, %s: tensor<4x2x3xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x40xbf16>, tensor<4x24x40xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x3xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}
