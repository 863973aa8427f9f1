// k = E = 4096, the largest k the verifier allows for 4096 experts: the
// selection is one scf.for over the k slots, so the IR, the compile time and
// the memory stay those of a small k (unrolled, this ran out of memory).
// RUN: moe-opt %s --convert-moe-to-linalg | FileCheck %s
// RUN: timeout 60 moe-opt %s --moe-lower-to-cpu-pipeline | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: func.func @route_all
// CHECK:       %[[K:.*]] = arith.constant 4096 : index
// CHECK:       scf.for %[[J:.*]] = %{{.*}} to %[[K]] step
// CHECK:         tensor.extract_slice
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK:         tensor.insert_slice %{{.*}} into %{{.*}}[0, %[[J]]] [%{{.*}}, 1] [1, 1]
// CHECK:         scf.yield
// CHECK-NOT:   scf.for
// CHECK:       return
// LLVM: llvm.func @route_all
func.func @route_all(%l: tensor<?x4096xf32>) -> (tensor<?x4096xf32>, tensor<?x4096xi32>) {
  %w, %ids = moe.route %l {k = 4096 : i64, renormalize}
      : tensor<?x4096xf32> -> tensor<?x4096xf32>, tensor<?x4096xi32>
  return %w, %ids : tensor<?x4096xf32>, tensor<?x4096xi32>
}
