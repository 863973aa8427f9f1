// out = in through shared memory, loaded by TMA: the host encodes the
// tensor map (mgpuTensorMapEncodeTiledMemref, cuTensorMapEncodeTiled) and
// one thread issues the bulk copy, completed on an mbarrier. A check of the
// runtime's tensor-map encoding on sm_90a.
!map = !nvgpu.tensormap.descriptor<tensor = memref<64x8xf32, 3>, swizzle = none, l2promo = none, oob = zero, interleave = none>
!barrier = !nvgpu.mbarrier.group<memorySpace = #gpu.address_space<workgroup>>
memref.global "private" @tile : memref<64x8xf32, 3>
func.func @tma_copy(%in: memref<64x8xf32>, %out: memref<64x8xf32>) attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %bytes = arith.constant 2048 : index
  %timeout = arith.constant 10000000 : index
  %phase = arith.constant false
  %unranked = memref.cast %in : memref<64x8xf32> to memref<*xf32>
  %map = nvgpu.tma.create.descriptor %unranked box[%c64, %c8] : memref<*xf32> -> !map
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c128, %sy = %c1, %sz = %c1) {
    %tile = memref.get_global @tile : memref<64x8xf32, 3>
    %bar = nvgpu.mbarrier.create -> !barrier
    nvgpu.mbarrier.init %bar[%c0], %c128 : !barrier
    gpu.barrier
    %first = arith.cmpi eq, %tx, %c0 : index
    scf.if %first {
      nvgpu.mbarrier.arrive.expect_tx %bar[%c0], %bytes : !barrier
      nvgpu.tma.async.load %map[%c0, %c0], %bar[%c0] to %tile : !map, !barrier -> memref<64x8xf32, 3>
    } else {
      nvgpu.mbarrier.arrive.expect_tx %bar[%c0], %c0 : !barrier
    }
    nvgpu.mbarrier.try_wait.parity %bar[%c0], %phase, %timeout : !barrier
    scf.for %i = %tx to %c64 step %c128 {
      scf.for %j = %c0 to %c8 step %c1 {
        %v = memref.load %tile[%i, %j] : memref<64x8xf32, 3>
        memref.store %v, %out[%i, %j] : memref<64x8xf32>
      }
    }
    gpu.terminator
  }
  return
}
