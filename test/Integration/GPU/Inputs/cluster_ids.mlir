// Each of 4 x 4 blocks, launched in clusters of 2 x 2, writes its cluster id
// and the cluster shape: a check of the runtime's cluster launch
// (mgpuLaunchClusterKernel, cuLaunchKernelEx) on sm_90a.
module attributes {gpu.container_module} {
  func.func @cluster_ids(%out: memref<16x4xi32>) attributes {llvm.emit_c_interface} {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    gpu.launch_func @kernels::@cluster_ids clusters in (%c2, %c2, %c1)
        blocks in (%c4, %c4, %c1) threads in (%c1, %c1, %c1)
        args(%out : memref<16x4xi32>)
    return
  }
  gpu.module @kernels {
    gpu.func @cluster_ids(%out: memref<16x4xi32>) kernel {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c3 = arith.constant 3 : index
      %c4 = arith.constant 4 : index
      %bx = gpu.block_id x
      %by = gpu.block_id y
      %row = arith.muli %by, %c4 : index
      %block = arith.addi %row, %bx : index
      %cx = gpu.cluster_id x
      %cy = gpu.cluster_id y
      %dx = gpu.cluster_dim x
      %dy = gpu.cluster_dim y
      %values = arith.constant 0 : i32
      %vcx = arith.index_cast %cx : index to i32
      %vcy = arith.index_cast %cy : index to i32
      %vdx = arith.index_cast %dx : index to i32
      %vdy = arith.index_cast %dy : index to i32
      memref.store %vcx, %out[%block, %c0] : memref<16x4xi32>
      memref.store %vcy, %out[%block, %c1] : memref<16x4xi32>
      memref.store %vdx, %out[%block, %c2] : memref<16x4xi32>
      memref.store %vdy, %out[%block, %c3] : memref<16x4xi32>
      gpu.return
    }
  }
}
