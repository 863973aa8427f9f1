// vector-width=1 (in the option's range) with expert biases over kn weights:
// the outer-product kernel's accumulators are vector<1xf32>, and the bias
// term added to them must be one too. It was the scalar f32 that the
// dot-product kernel over nk weights adds (GroupedMatmulKernel::biasTerm
// returned a scalar for a width of 1), and the layer failed to lower with
//   error: 'arith.addf' op requires the same type for all operands and results
// (found by moe-cpu-pipeline-fuzzer). The numbers are checked against the
// oracle by test_grouped_matmul_bias_vector_width_1 in
// test/Integration/CPU/test_expert_ops.py.

// The kernel: the bias vector of each weight column, read as vector<1xf32>,
// goes into vector<1xf32> accumulators, for the gate/up projection (w13_bias
// [4, 16]) and the down projection (w2_bias [4, 16]).
// RUN: moe-opt %s --moe-decompose-layer --moe-fuse-routing \
// RUN:   --convert-moe-to-vector="vector-width=1 target-cpu=skylake-avx512" | FileCheck %s --check-prefix=KERNEL
// KERNEL-LABEL: func.func @layer
// KERNEL: vector.fma {{.*}} : vector<1xf32>
// KERNEL: %[[B13:.*]] = vector.transfer_read %{{.*}} : tensor<4x16xf32>, vector<1xf32>
// KERNEL: arith.addf %{{.*}}, %[[B13]] : vector<1xf32>
// KERNEL: vector.fma {{.*}} : vector<1xf32>
// KERNEL: %[[B2:.*]] = vector.transfer_read %{{.*}} : tensor<4x16xf32>, vector<1xf32>
// KERNEL: arith.addf %{{.*}}, %[[B2]] : vector<1xf32>
// KERNEL-NOT: moe.grouped_matmul

// The whole pipeline lowers the layer to the LLVM dialect.
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="vector-width=1 target-cpu=skylake-avx512" | FileCheck %s
// CHECK: llvm.func @layer(
// CHECK-NOT: moe.

func.func @layer(%x: tensor<?x16xf32>, %router: tensor<4x16xf32>, %w13: tensor<4x16x16xf32>, %w2: tensor<4x8x16xf32>, %w13_bias: tensor<4x16xf32>, %w2_bias: tensor<4x16xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x16xf32>
  %init = tensor.empty(%t) : tensor<?x16xf32>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x16x16xf32>, tensor<4x8x16xf32>) w13_bias(%w13_bias : tensor<4x16xf32>) w2_bias(%w2_bias : tensor<4x16xf32>) outs(%init : tensor<?x16xf32>) {k = 2 : i64, weight_layout = #moe.rhs_layout<kn>} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
