// moe-lower-to-cpu-pipeline checks its options as a whole before any pass
// runs: an unknown target-cpu (empty included) is an error even where the
// vectorized kernel is off, and a kernel option given with vectorize=false,
// which would have no effect, is refused rather than ignored.
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="target-cpu=" 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="vectorize=false target-cpu=garbage" 2>&1 | FileCheck %s --check-prefix=GARBAGE
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="vectorize=false vector-width=0" 2>&1 | FileCheck %s --check-prefix=WIDTH
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="vectorize=false panel-row-block=4" 2>&1 | FileCheck %s --check-prefix=ROWS
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="vectorize=false panel-column-tile=99999999" 2>&1 | FileCheck %s --check-prefix=COLUMNS
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="vectorize=false prefetch-distance=-1" 2>&1 | FileCheck %s --check-prefix=PREFETCH
// The vectorized kernel's own ranges stay the vector pass's to check.
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="vector-width=3" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: moe-opt %s --moe-lower-to-cpu-pipeline="vectorize=false target-cpu=x86-64-v3" | FileCheck %s --check-prefix=OK

// EMPTY: error: moe-lower-to-cpu-pipeline: unknown target-cpu '' (an LLVM x86-64 CPU name such as skylake-avx512, or native)
// GARBAGE: error: moe-lower-to-cpu-pipeline: unknown target-cpu 'garbage'
// WIDTH: error: moe-lower-to-cpu-pipeline: vector-width applies to the vectorized kernel; it has no effect with vectorize=false
// ROWS: error: moe-lower-to-cpu-pipeline: panel-row-block applies to the vectorized kernel
// COLUMNS: error: moe-lower-to-cpu-pipeline: panel-column-tile applies to the vectorized kernel
// PREFETCH: error: moe-lower-to-cpu-pipeline: prefetch-distance applies to the vectorized kernel
// RANGE: error: convert-moe-to-vector: vector-width must be a power of two in [1, 64], got 3
// OK: llvm.func @z_loss

func.func @z_loss(%logits: tensor<?x8xf32>) -> tensor<f32> {
  %z = moe.z_loss %logits : tensor<?x8xf32> -> tensor<f32>
  return %z : tensor<f32>
}
