// FP8 weights in the nk kernel: each vector of e4m3 weights is decoded with
// integer ops and multiplied by its block's scale before the f32 FMAs; the
// activation quantization must already be explicit.
// RUN: moe-opt %s --convert-moe-to-vector="vector-width=8 row-block=2 column-tile=4" | FileCheck %s
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: func.func @weight_only
// CHECK: scf.forall
// CHECK: %[[V:.*]] = vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x24x40xf8E4M3FN>, vector<8xf8E4M3FN>
// CHECK: arith.bitcast %[[V]] : vector<8xf8E4M3FN> to vector<8xi8>
// CHECK: arith.extui
// CHECK: %[[SCALE:.*]] = tensor.extract %{{.*}} : tensor<4x2x3xf32>
// CHECK: %[[SPLAT:.*]] = vector.broadcast %[[SCALE]] : f32 to vector<8xf32>
// CHECK: arith.mulf %{{.*}}, %[[SPLAT]] : vector<8xf32>
// CHECK: vector.fma
// LLVM: llvm.func @weight_only
func.func @weight_only(%x: tensor<?x40xf32>, %w: tensor<4x24x40xf8E4M3FN>, %o: tensor<5xi32>, %s: tensor<4x2x3xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x40xf32>, tensor<4x24x40xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x3xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = none>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}

// Activations still to quantize, or a block along K that splits a vector:
// left to the reference lowering.
// CHECK-LABEL: func.func @dynamic
// CHECK-NOT: scf.forall
// CHECK: moe.grouped_matmul
// LLVM: llvm.func @dynamic
func.func @dynamic(%x: tensor<?x40xf32>, %w: tensor<4x24x40xf8E4M3FN>, %o: tensor<5xi32>, %s: tensor<4x2x3xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x40xf32>, tensor<4x24x40xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x3xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 16], activation = dynamic>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}

// CHECK-LABEL: func.func @ragged_block
// CHECK-NOT: scf.forall
// CHECK: moe.grouped_matmul
func.func @ragged_block(%x: tensor<?x40xf32>, %w: tensor<4x24x40xf8E4M3FN>, %o: tensor<5xi32>, %s: tensor<4x2x4xf32>, %init: tensor<?x24xf32>) -> tensor<?x24xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x40xf32>, tensor<4x24x40xf8E4M3FN>, tensor<5xi32>)
      rhs_scales(%s : tensor<4x2x4xf32>) outs(%init : tensor<?x24xf32>)
      {weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [16, 12], activation = none>} -> tensor<?x24xf32>
  return %h : tensor<?x24xf32>
}
