// RUN: moe-opt %s --moe-lower-to-cpu-pipeline | FileCheck %s
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="c-interface=false fuse-routing=false" | FileCheck %s --check-prefix=NOWRAP

// The whole layer ends in the LLVM dialect; the result becomes an
// out-parameter and a C wrapper takes every buffer by descriptor pointer.
// CHECK-NOT: moe.
// CHECK-NOT: linalg.
// CHECK-NOT: tensor.
// CHECK: llvm.func @layer(
// CHECK: llvm.func @_mlir_ciface_layer(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// NOWRAP-NOT: _mlir_ciface_
func.func @layer(%x: tensor<?x16xf32>, %router: tensor<8x16xf32>, %w13: tensor<8x24x16xf32>, %w2: tensor<8x16x12xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x16xf32>
  %init = tensor.empty(%t) : tensor<?x16xf32>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<8x16xf32>, tensor<8x24x16xf32>, tensor<8x16x12xf32>)
      outs(%init : tensor<?x16xf32>) {k = 2 : i64, renormalize, activation = #moe.activation<gelu>} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
