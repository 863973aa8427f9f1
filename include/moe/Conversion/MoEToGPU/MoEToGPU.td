//===- MoEToGPU.td - moe ops to GPU kernels ----------------*- tablegen -*-===//

#ifndef MOE_CONVERSION_MOETOGPU_MOETOGPU_TD
#define MOE_CONVERSION_MOETOGPU_MOETOGPU_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToGPUPass : Pass<"convert-moe-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lowers moe ops on tensors to gpu.launch kernels on memrefs";
  let description = [{
    Replaces every moe op of the (decomposed, usually fused) layer by GPU
    kernels written as `gpu.launch` bodies over memrefs. Operands are read
    through `bufferization.to_buffer`, results are fresh buffers wrapped by
    `bufferization.to_tensor`, so One-Shot Bufferize finishes the host side.

    - `moe.route`: one thread per token; softmax, sigmoid, softmax over the
      picks, bias, expert groups (`sum_top2` or `max`, up to 64 groups),
      renormalization, the GShard second-expert drop and the scale, with
      the reference's tie order.
    - `moe.dispatch`: a stable counting sort in three kernels over chunks
      of 256 selections (count, scan, place), honoring the expert map; it
      also writes each selection's row so the matching combine needs no
      inversion. Capacity limits are not lowered.
    - `moe.grouped_matmul`: for bf16/f16 weights in the `nk` layout with K
      a multiple of 8, a tensor-core kernel (`mma.sync.m16n8k16`, f32
      accumulators) whose row tiles are scheduled from the real per-expert
      row counts, with the gather, GLU and row-scale epilogues fused; two
      tile shapes, picked on the host from the rows per expert. Other
      weights take one thread per output element.
    - `moe.combine`, `moe.permute`, `moe.glu`: one thread per element;
      combine sums in ascending slot order (no atomics).
    - element-wise `linalg.generic` (left by layer decomposition).

    Ops without a GPU lowering (capacity, expert choice, the losses) are
    reported with their location and the pass fails.
  }];
  let options = [
    Option<"largeRowsPerExpert", "large-rows-per-expert", "int64_t",
           /*default=*/"64",
           "average rows per expert from which the prefill tile shape is used">,
    Option<"smallUnroll", "small-unroll", "int64_t", /*default=*/"8",
           "32-wide K steps whose loads the decode tile shape issues together">,
    Option<"smallSplitK", "small-split-k", "int64_t", /*default=*/"4",
           "warps of a block that split K in the decode tile shape, summing "
           "through shared memory (1: each warp has its own columns; 4: the "
           "block's 4 warps share them)">,
    Option<"smallSplitKFrom", "small-split-k-from", "int64_t",
           /*default=*/"1024",
           "the smallest K whose decode tiles small-split-k splits (below "
           "it, each warp takes all of K)">,
    Option<"largeStaged", "large-staged", "bool", /*default=*/"true",
           "prefill tile shape: 64 x 128 block tiles staged through shared "
           "memory with cp.async and read with ldmatrix (false: warps load "
           "their fragments from global memory)">,
    Option<"wgmma", "wgmma", "bool", /*default=*/"false",
           "sm_90a only: the staged prefill shape multiplies with "
           "wgmma.mma_async (two warpgroups per 128 x 256 tile, the weights "
           "brought by TMA, both operands read from shared memory through "
           "matrix descriptors) when the activations have the weights' type">,
    Option<"wgmmaProducer", "wgmma-producer", "bool", /*default=*/"true",
           "with wgmma: a third warpgroup issues the tiles' copies (A by "
           "cp.async, the weights by TMA) while the other two multiply; "
           "full and empty mbarriers per stage hand the stages over, with "
           "no block barrier in the K loop (false: every warp copies and "
           "multiplies, passing two block barriers per K tile)">,
    Option<"wgmmaSwizzledA", "wgmma-swizzled-a", "bool", /*default=*/"true",
           "with wgmma: the A tile in shared memory in the 128-byte swizzle "
           "of the weight tile, each warp's cp.async copying whole 128-byte "
           "row segments (false: the K-chunk-major layout without swizzling, "
           "each warp copying one 32-byte sector of each of 16 rows)">,
    Option<"largeTileGroup", "large-tile-group", "int64_t", /*default=*/"8",
           "prefill tile shape: row tiles whose blocks run together, each "
           "column block of the weights once for all of them, before the "
           "next group (1: every column block of a row tile first)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

#endif // MOE_CONVERSION_MOETOGPU_MOETOGPU_TD
