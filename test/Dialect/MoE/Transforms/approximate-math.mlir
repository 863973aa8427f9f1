// RUN: moe-opt %s --moe-approximate-math | FileCheck %s

// exp, erf and tanh become inline arithmetic; other math ops stay.
// CHECK-LABEL: func.func @activations
// CHECK-NOT: math.exp
// CHECK-NOT: math.erf
// CHECK-NOT: math.tanh
// CHECK: arith.bitcast
// CHECK: math.log
func.func @activations(%x: f32) -> (f32, f32, f32, f32) {
  %e = math.exp %x : f32
  %r = math.erf %x : f32
  %t = math.tanh %x : f32
  %l = math.log %x : f32
  return %e, %r, %t, %l : f32, f32, f32, f32
}
