// Malformed IR is a located parse error and exit status 1, never a crash.
// RUN: not moe-opt %s 2>&1 | FileCheck %s
// RUN: moe-opt %s > /dev/null 2>&1 || test $? -eq 1

// CHECK: malformed.mlir:[[@LINE+2]]:{{[0-9]+}}: error: expected ':'
func.func @f(%l: tensor<4x8xf32>) {
  %w, %ids = moe.route %l {k = 2 : i64} tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}
