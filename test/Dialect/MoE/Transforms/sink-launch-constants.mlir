// RUN: moe-opt %s --moe-sink-launch-constants | FileCheck %s
// RUN: moe-opt %s --moe-sink-launch-constants --gpu-kernel-outlining | FileCheck %s --check-prefix=OUTLINED
// RUN: moe-opt %s --moe-sink-launch-constants=kernels=marked_kernel --gpu-kernel-outlining | FileCheck %s --check-prefix=SKIPPED
// RUN: not moe-opt %s --moe-sink-launch-constants=kernels=marked_kernel,other,another 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: moe-opt %s --moe-sink-launch-constants=marked-only --gpu-kernel-outlining | FileCheck %s --check-prefix=MARKED

// Constants used by a launch body, the casts and pure arithmetic derived
// from them alone, and llvm constants move into the body; values that
// depend on the host's inputs stay outside and are passed.
// CHECK-LABEL: func.func @launch
// CHECK-SAME:    (%[[N:.*]]: index, %[[BUF:.*]]: memref<?xi64>)
// CHECK:         %[[SCALED:.*]] = arith.muli %[[N]]
// CHECK:         gpu.launch
// CHECK-DAG:       %[[FOUR:.*]] = arith.constant 4 : index
// CHECK-DAG:       %[[WIDE:.*]] = builtin.unrealized_conversion_cast %[[FOUR]] : index to i64
// CHECK-DAG:       %[[MASK:.*]] = arith.subi
// CHECK-DAG:       llvm.mlir.zero : !llvm.struct<(f32, f32)>
// CHECK:           arith.remui %{{.*}}, %[[FOUR]]
// CHECK:           arith.addi %[[WIDE]], %[[MASK]]
// CHECK:           arith.addi %{{.*}}, %[[SCALED]]

// OUTLINED: gpu.launch_func @launch_kernel::@launch_kernel {{.*}} args(%{{.*}} : index, %{{.*}} : memref<?xi64>)
// OUTLINED: gpu.func @launch_kernel(%{{.*}}: index, %{{.*}}: memref<?xi64>)
// Launches of other kernels than `kernels` names keep their parameters.
// SKIPPED: gpu.func @launch_kernel(%{{.*}}: index, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: index, %{{.*}}: !llvm.struct<(f32, f32)>, %{{.*}}: memref<?xi64>)
// SKIPPED: gpu.func @marked_kernel(%{{.*}}: index, %{{.*}}: memref<?xi64>)
// A name that no launch has is an error, not a launch silently left as it
// was (a misspelt kernel would otherwise keep its parameters unnoticed).
// UNKNOWN: error: moe-sink-launch-constants: kernels names 'other', 'another', which no gpu.launch in the module has as its function
// UNKNOWN-NOT: error
// With marked-only, only the launches marked moe.inline_constants (the GPU
// lowering marks those whose #moe.matmul_tile asks for it) take them in.
// MARKED: gpu.func @launch_kernel(%{{.*}}: index, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: index, %{{.*}}: !llvm.struct<(f32, f32)>, %{{.*}}: memref<?xi64>)
// MARKED: gpu.func @marked_kernel(%{{.*}}: index, %{{.*}}: memref<?xi64>)
func.func @launch(%n: index, %buf: memref<?xi64>) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8_i64 = arith.constant 8 : i64
  %c1_i64 = arith.constant 1 : i64
  %wide = builtin.unrealized_conversion_cast %c4 : index to i64
  %mask = arith.subi %c8_i64, %c1_i64 : i64
  %zero = llvm.mlir.zero : !llvm.struct<(f32, f32)>
  %scaled = arith.muli %n, %c4 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
    %s = arith.remui %tx, %c4 : index
    %v = arith.addi %wide, %mask : i64
    %w = arith.addi %s, %scaled : index
    %keep = llvm.extractvalue %zero[0] : !llvm.struct<(f32, f32)>
    memref.store %v, %buf[%w] : memref<?xi64>
    gpu.terminator
  }
  return
}

func.func @marked(%n: index, %buf: memref<?xi64>) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %scaled = arith.muli %n, %c4 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1)
             function(@marked_kernel) {
    %s = arith.remui %tx, %c4 : index
    %w = arith.addi %s, %scaled : index
    %v = arith.index_cast %w : index to i64
    memref.store %v, %buf[%w] : memref<?xi64>
    gpu.terminator
  } {moe.inline_constants}
  return
}
