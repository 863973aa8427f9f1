// Open finding of moe-cpu-pipeline-fuzzer: with vector-width=1, the kernel
// over kn (and panels) weights adds a bias term (gpt-oss's w13_bias and
// w2_bias) that GroupedMatmulKernel::biasTerm returns as a scalar f32 for a
// width of 1, to accumulators that are vector<1xf32>:
//   error: 'arith.addf' op requires the same type for all operands and results
// vector-width=1 is in the option's range, so the layer must lower. The fuzz
// target leaves this case out (moe-cpu-pipeline-fuzzer.cpp) until it does.
// XFAIL: *
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="vector-width=1 target-cpu=skylake-avx512" | FileCheck %s

// CHECK: llvm.func @layer(
func.func @layer(%x: tensor<?x16xf32>, %router: tensor<4x16xf32>, %w13: tensor<4x16x16xf32>, %w2: tensor<4x8x16xf32>, %w13_bias: tensor<4x16xf32>, %w2_bias: tensor<4x16xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x16xf32>
  %init = tensor.empty(%t) : tensor<?x16xf32>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x16x16xf32>, tensor<4x8x16xf32>) w13_bias(%w13_bias : tensor<4x16xf32>) w2_bias(%w2_bias : tensor<4x16xf32>) outs(%init : tensor<?x16xf32>) {k = 2 : i64, weight_layout = #moe.rhs_layout<kn>} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
