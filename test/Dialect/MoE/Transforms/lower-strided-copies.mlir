// RUN: moe-opt %s --moe-lower-strided-copies | FileCheck %s

// CHECK-LABEL: func.func @strided
// CHECK: %[[TILE:.*]] = memref.subview
// CHECK: linalg.copy ins(%[[TILE]] : memref<4x4xf32, strided<[16, 1]>>) outs(%{{.*}} : memref<4x4xf32>)
// CHECK-NOT: memref.copy
func.func @strided(%a: memref<8x16xf32>, %b: memref<4x4xf32>) {
  %tile = memref.subview %a[0, 0] [4, 4] [1, 1] : memref<8x16xf32> to memref<4x4xf32, strided<[16, 1]>>
  memref.copy %tile, %b : memref<4x4xf32, strided<[16, 1]>> to memref<4x4xf32>
  return
}

// Contiguous copies stay: they lower to a memcpy.
// CHECK-LABEL: func.func @contiguous
// CHECK: memref.copy
func.func @contiguous(%a: memref<?x16xf32>, %b: memref<?x16xf32>) {
  memref.copy %a, %b : memref<?x16xf32> to memref<?x16xf32>
  return
}
