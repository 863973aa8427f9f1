// RUN: moe-opt %s --moe-gpu-workspace --split-input-file --verify-diagnostics | FileCheck %s

// The returned buffer becomes an out-parameter, the others views of one
// workspace (256-byte aligned), and a size query computes its bytes from the
// inputs.

// CHECK-LABEL: func.func @f(
// CHECK-SAME:    %[[A:.*]]: memref<?xf32>, %[[OUT:.*]]: memref<?xf32>, %[[WS:.*]]: memref<?xi8>)
// CHECK:         %[[N:.*]] = memref.dim %[[A]]
// CHECK:         memref.view %[[WS]][%{{.*}}][%[[N]]] : memref<?xi8> to memref<?xi32>
// CHECK:         gpu.launch
// CHECK:           memref.store {{.*}}, %[[OUT]]
// CHECK:         return{{$}}
// CHECK-LABEL: func.func @f_workspace_size(
// CHECK-SAME:    %[[A2:.*]]: memref<?xf32>) -> index
// CHECK:         %[[N2:.*]] = memref.dim %[[A2]]
// CHECK:         arith.muli %{{.*}}, %[[N2]]
// CHECK:         return
func.func @f(%a: memref<?xf32>) -> memref<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %a, %c0 : memref<?xf32>
  %out = memref.alloc(%n) : memref<?xf32>
  %scratch = memref.alloc(%n) : memref<?xi32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %v = memref.load %a[%c0] : memref<?xf32>
    memref.store %v, %out[%c0] : memref<?xf32>
    %i = arith.constant 1 : i32
    memref.store %i, %scratch[%c0] : memref<?xi32>
    gpu.terminator
  }
  return %out : memref<?xf32>
}

// -----

func.func @host_reads_buffer(%a: memref<?xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{host code of a GPU function reads or writes a buffer}}
  %v = memref.load %a[%c0] : memref<?xf32>
  return %v : f32
}

// -----

func.func @returns_argument(%a: memref<?xf32>) -> memref<?xf32> {
  // expected-error @+1 {{result #0 of a GPU function must be a buffer the function allocates}}
  return %a : memref<?xf32>
}
