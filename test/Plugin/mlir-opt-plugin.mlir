// Upstream mlir-opt loads the moe dialect and passes from the plugin and runs
// the moe pipelines. A sanitizer-instrumented plugin cannot load into the
// uninstrumented mlir-opt of the system.
// UNSUPPORTED: asan
// RUN: mlir-opt --load-dialect-plugin=%moe_plugin --load-pass-plugin=%moe_plugin %s \
// RUN:   --pass-pipeline="builtin.module(moe-decompose-layer,moe-fuse-routing)" | FileCheck %s
// RUN: mlir-opt --load-dialect-plugin=%moe_plugin --load-pass-plugin=%moe_plugin %s \
// RUN:   --pass-pipeline="builtin.module(moe-lower-to-cpu-pipeline)" | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: func.func @layer
// CHECK: moe.route
// CHECK: moe.grouped_matmul {{.*}} {epilogue = #moe.activation<silu>, gather, k = 2 : i64}
// CHECK: moe.combine {{.*}} {prescaled}
// LLVM: llvm.func @_mlir_ciface_layer
func.func @layer(%x: tensor<?x16xf32>, %router: tensor<8x16xf32>, %w13: tensor<8x24x16xf32>, %w2: tensor<8x16x12xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x16xf32>
  %init = tensor.empty(%t) : tensor<?x16xf32>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x16xf32>, tensor<8x16xf32>, tensor<8x24x16xf32>, tensor<8x16x12xf32>)
      outs(%init : tensor<?x16xf32>) {k = 2 : i64, renormalize} -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
