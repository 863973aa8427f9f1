// With approximate-math=false, the vectorized kernels' erf (GELU in the
// grouped matmul's epilogue) becomes libm calls, one per lane: the scalarization math-to-libm does makes vector.extract and
// vector.insert, which the pipeline must lower too. Left behind, they made
// the translation to LLVM IR fail (found by moe-cpu-pipeline-fuzzer).
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="approximate-math=false target-cpu=haswell" | FileCheck %s
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="approximate-math=false target-cpu=haswell vector-width=64" | FileCheck %s

// CHECK: llvm.func @erff(f32) -> f32
// CHECK-NOT: = vector.
// CHECK: llvm.call @erff(%{{.*}}) : (f32) -> f32
// CHECK-NOT: = vector.
func.func @gelu(%x: tensor<?x16xf32>, %router: tensor<4x16xf32>, %w13: tensor<4x16x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x16xf32>
  %init = tensor.empty(%t) : tensor<?x16xf32>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x16x16xf32>, tensor<4x16x8xf32>) outs(%init : tensor<?x16xf32>) {activation = #moe.activation<gelu>, k = 2 : i64} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
