// RUN: moe-opt %s --moe-gpu-programmatic-launch --split-input-file | FileCheck %s
// Running it twice changes nothing: a marked launch keeps its one wait.
// RUN: moe-opt %s --moe-gpu-programmatic-launch --moe-gpu-programmatic-launch \
// RUN:   --split-input-file | FileCheck %s
// The marked launches outline and lower to NVVM with their griddepcontrol.
// RUN: moe-opt %s --moe-gpu-programmatic-launch --gpu-kernel-outlining \
// RUN:   --convert-gpu-to-nvvm --split-input-file | FileCheck %s --check-prefix=NVVM

// Each launch: the runtime call before it on the host; in the body, the
// launch of the dependents first, and the wait after the index arithmetic,
// right before the first load.
// CHECK:       llvm.func @moeCudaNextLaunchProgrammatic()
// CHECK-LABEL: func.func @two_kernels
// CHECK:         llvm.call @moeCudaNextLaunchProgrammatic() : () -> ()
// CHECK-NEXT:    gpu.launch
// CHECK-NEXT:      nvvm.griddepcontrol launch_dependents
// CHECK-NEXT:      gpu.thread_id x
// CHECK-NEXT:      gpu.block_id x
// CHECK-NEXT:      arith.muli
// CHECK-NEXT:      arith.addi
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-NEXT:      memref.load
// CHECK-NOT:       nvvm.griddepcontrol
// CHECK:         } {moe.programmatic_launch}
// CHECK:         llvm.call @moeCudaNextLaunchProgrammatic() : () -> ()
// CHECK-NEXT:    gpu.launch
// CHECK-NEXT:      nvvm.griddepcontrol launch_dependents
// CHECK-NEXT:      gpu.thread_id x
// CHECK-NEXT:      arith.cmpi
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-NEXT:      scf.if
// CHECK:         } {moe.programmatic_launch}
// NVVM-LABEL:  func.func @two_kernels
// NVVM:          llvm.call @moeCudaNextLaunchProgrammatic() : () -> ()
// NVVM-NEXT:     gpu.launch_func @two_kernels_kernel::@two_kernels_kernel
// NVVM:          llvm.call @moeCudaNextLaunchProgrammatic() : () -> ()
// NVVM-NEXT:     gpu.launch_func @two_kernels_kernel_0::@two_kernels_kernel
// NVVM-LABEL:  gpu.module @two_kernels_kernel {
// NVVM:          nvvm.griddepcontrol launch_dependents
// NVVM:          nvvm.read.ptx.sreg.tid.x
// NVVM:          nvvm.griddepcontrol wait
// NVVM-NEXT:     llvm.extractvalue
// NVVM-NEXT:     llvm.getelementptr
// NVVM-NEXT:     llvm.load
// NVVM-LABEL:  gpu.module @two_kernels_kernel_0 {
// NVVM:          nvvm.griddepcontrol launch_dependents
// NVVM:          nvvm.griddepcontrol wait
func.func @two_kernels(%in: memref<?xf32>, %out: memref<?xf32>, %n: index) {
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1) {
    %t = gpu.thread_id x
    %b = gpu.block_id x
    %base = arith.muli %b, %c128 : index
    %i = arith.addi %base, %t : index
    %v = memref.load %in[%i] : memref<?xf32>
    memref.store %v, %out[%i] : memref<?xf32>
    gpu.terminator
  }
  // The first memory access inside a region: the wait goes before the
  // region, so no thread skips it.
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1) {
    %t = gpu.thread_id x
    %first = arith.cmpi eq, %t, %c1 : index
    scf.if %first {
      %v = memref.load %out[%t] : memref<?xf32>
      memref.store %v, %in[%t] : memref<?xf32>
    }
    gpu.terminator
  }
  return
}

// -----

// A barrier touches (shared) memory: the wait precedes it. A body without
// any memory access waits at its end.
// CHECK-LABEL: func.func @barrier_first
// CHECK:         gpu.launch
// CHECK-NEXT:      nvvm.griddepcontrol launch_dependents
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-NEXT:      gpu.barrier
// CHECK:         gpu.launch
// CHECK-NEXT:      nvvm.griddepcontrol launch_dependents
// CHECK-NEXT:      gpu.thread_id x
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-NEXT:      gpu.terminator
func.func @barrier_first() {
  %c1 = arith.constant 1 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    gpu.barrier
    gpu.terminator
  }
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %t = gpu.thread_id x
    gpu.terminator
  }
  return
}

// -----

// A module without launches is left alone: no runtime declaration.
// CHECK-LABEL: func.func @no_kernels
// CHECK-NOT:   moeCudaNextLaunchProgrammatic
func.func @no_kernels() {
  return
}
