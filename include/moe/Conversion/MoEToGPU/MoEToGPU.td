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
    - `moe.dispatch`: a stable counting sort, in one block up to 256
      selections, else in three kernels over chunks of 256 selections
      (count, scan, place), honoring the expert map; it also writes each
      selection's row so the matching combine needs no inversion. Where the
      op returns `row_tiles`, the one block also writes the row-tile
      schedule from the experts' starts it holds in shared memory, and the
      chunked sort is followed by the schedule kernel. With a capacity (`capacity` or `capacity_factor`, either
      drop policy), the sort runs first in priority order (slot-major for
      `position`; as the ids are for `score`, whose keep kernel selects
      each expert's largest weights in one block), a kernel keeps the
      selections ranked below the capacity, and the kept ones are sorted
      again.
    - `moe.grouped_matmul`: for bf16/f16 weights in the `nk` layout with K
      a multiple of 8, a tensor-core kernel (`mma.sync.m16n8k16`, f32
      accumulators) whose row tiles are scheduled from the real per-expert
      row counts, with the gather, GLU and row-scale epilogues fused; two
      tile shapes, picked on the host from the rows per expert. Other
      weights take one thread per output element. Each grouped matmul's
      kernels are those its `moe.gpu_kernels` attribute names
      (`moe-gpu-select-kernel-config` attaches it); one without it is an
      error.
    - `moe.combine`, `moe.permute`, `moe.glu`: one thread per element;
      combine sums in ascending slot order (no atomics).
    - `moe.expert_choice`: the softmax per token, then one block per
      expert: a radix select of its C-th best probability and block scans
      that take the tokens above it and the first of those equal to it, and
      place them in ascending order.
    - `moe.aux_loss`, `moe.z_loss`: per-token values, then block reductions
      in a fixed order (no atomics).
    - element-wise `linalg.generic` (left by layer decomposition).

    An op that cannot be lowered (an undecomposed `moe.layer`, weights in
    the CPU's packed layouts) is reported with its location and the pass
    fails.
  }];
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

def MoEGPUSelectKernelConfigPass
    : Pass<"moe-gpu-select-kernel-config", "::mlir::ModuleOp"> {
  let summary = "Picks the GPU kernels of each grouped matmul and records "
                "them as an attribute";
  let description = [{
    Attaches `moe.gpu_kernels = #moe.grouped_matmul_kernels<...>` to every
    `moe.grouped_matmul`: the decode-sized kernel (`small`), the
    prefill-sized one (`large`) and the average rows per expert from which
    the host launches `large`. `convert-moe-to-gpu` reads only this
    attribute. The choice depends on the chip, the op's shapes and types,
    and the options below:

    - f32 weights, the `kn` layout, or K not a multiple of 8: `simt`.
    - FP8 weights (`weight_quant`): `mma_sync_fp8` with 16-row tiles, and
      from 32 rows per expert `wgmma_fp8` (128 x 128, K tiles of 128) on
      sm_90a with `wgmma` and `wgmma-fp8` where K is a multiple of 16 and the K blocks are
      whole K tiles (bk a multiple of 128, or one block over K), else
      `mma_sync_fp8` with 32-row tiles; on sm_89 and newer with quantized
      activations (dynamic or static); elsewhere, or with `activation =
      none`, an error at the op. mma_sync_fp8 needs PTX ISA 8.4: with `ptx`
      given (the pipeline passes its features' version), an older one is
      refused.
    - Weight-only weights (`weight_quant` format `mxfp4`, `int4`, `int8`):
      `mma_sync_wonly` for both shapes (16-row tiles, `small-stages`
      groups of `small-unroll` steps in flight, for decode; 32-row tiles
      from 32 rows per expert), on sm_80 and newer with bf16, f16 (int4,
      int8) or f32 activations; elsewhere an error at the op that names the reason.
    - `small`: `mma_sync` with 16-row tiles, `small-stages` groups of
      `small-unroll` K steps in flight, and `small-split-k` warps sharing
      the columns where K is at least `small-split-k-from`.
    - `large`: on sm_90a with `wgmma` and activations of the weights' type,
      `wgmma_warp_specialized` (or `wgmma` without `wgmma-producer`), the A
      tile in the 128-byte swizzle (`k_chunk_major` without
      `wgmma-swizzled-a`); else `mma_sync_staged` with `large-staged`
      where cp.async can copy the activations, else `mma_sync` with
      32-row tiles.

    An attribute already on the op is kept, so a user or a tuner can pin a
    configuration; one the chip cannot run (wgmma off sm_90a, tensor cores
    before sm_80) is an error at the op.

    ```mlir
    %y = moe.grouped_matmul ins(...) ... {moe.gpu_kernels =
        #moe.grouped_matmul_kernels<small = #moe.matmul_tile<kernel = mma_sync,
          rows = 16, columns = 16, k = 32, stages = 1, unroll = 8, split_k = 4,
          tile_group = 1, a_layout = none, b_layout = none,
          inline_constants = false>, large = ..., large_rows_per_expert = 8>}
    ```
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_90a\"",
           "the GPU the kernels are for (sm_80, sm_89, sm_90, sm_90a, ...)">,
    Option<"ptx", "ptx", "int64_t", /*default=*/"0",
           "the PTX ISA version the kernels are compiled for, e.g. 84 for "
           "8.4 (0: not checked); the FP8 kernel needs 84 or newer">,
    Option<"largeRowsPerExpert", "large-rows-per-expert", "int64_t",
           /*default=*/"0",
           "average rows per expert from which the prefill kernel runs (0: "
           "the chip's, 8 where the prefill kernel is wgmma, else 64)">,
    Option<"smallUnroll", "small-unroll", "int64_t", /*default=*/"0",
           "32-wide K steps whose loads the decode kernel issues together "
           "(1 to 16; 0: 4 where a warp's part of K has at least 32 steps "
           "or the weights have N >= 4096, else 2, and 8 for the FP8 kernel)">,
    Option<"smallStages", "small-stages", "int64_t", /*default=*/"2",
           "groups of small-unroll K steps the decode kernel keeps in flight "
           "in registers (1 or 2: with 2, each group's loads are issued "
           "before the previous group's MMAs)">,
    Option<"smallSplitK", "small-split-k", "int64_t", /*default=*/"4",
           "warps of a decode block that split K, summing through shared "
           "memory (1: each warp has its own columns; 4: the block's 4 "
           "warps share them)">,
    Option<"smallSplitKFrom", "small-split-k-from", "int64_t",
           /*default=*/"1024",
           "the smallest K whose decode tiles small-split-k splits (below "
           "it, each warp takes all of K)">,
    Option<"fp8SmallK", "fp8-small-k", "int64_t", /*default=*/"64",
           "FP8 decode kernel (mma_sync_fp8): the K of one step, 32 (8 bytes "
           "per lane and row) or 64 (16 bytes, where K is a multiple of 16 "
           "and its blocks of 64; else 32)">,
    Option<"fp8SmallStages", "fp8-small-stages", "int64_t", /*default=*/"2",
           "FP8 decode kernel: groups of K steps in registers (1 to 3: "
           "with S > 1, the loads and scales of the group S - 1 ahead are "
           "issued before each group's MMAs)">,
    Option<"fp8SmallSplitK", "fp8-small-split-k", "int64_t",
           /*default=*/"1",
           "FP8 decode kernel: warps of a block that split the K blocks, "
           "summing through shared memory in a fixed order (1 or 4; 4 from "
           "small-split-k-from)">,
    Option<"largeStaged", "large-staged", "bool", /*default=*/"true",
           "prefill kernel: 128 x 128 block tiles staged through shared "
           "memory with cp.async and read with ldmatrix (false: warps load "
           "their fragments from global memory)">,
    Option<"wgmmaFp8", "wgmma-fp8", "bool", /*default=*/"true",
           "FP8 prefill kernel: wgmma_fp8 (e4m3 wgmma.mma_async, TMA weights, "
           "per-K-block promotion) for the large tile on sm_90a (false: "
           "mma_sync_fp8 32-row tiles, 5-10x slower at prefill but closer "
           "to the FP8 oracle: the tensor cores' FP8 accumulation within a "
           "K block is below f32's in wgmma)">,
    Option<"wgmma", "wgmma", "bool", /*default=*/"true",
           "prefill kernel: wgmma.mma_async (two warpgroups per 128 x 256 "
           "tile, the weights brought by TMA) where the chip has it (sm_90a) "
           "and the activations have the weights' type">,
    Option<"wgmmaProducer", "wgmma-producer", "bool", /*default=*/"true",
           "with wgmma: a third warpgroup issues the tiles' copies while "
           "the other two multiply, full and empty mbarriers per stage "
           "(false: every warp copies and multiplies, passing two block "
           "barriers per K tile)">,
    Option<"wgmmaSwizzledA", "wgmma-swizzled-a", "bool", /*default=*/"true",
           "with wgmma: the A tile in the 128-byte swizzle of the weight "
           "tile, each warp copying whole 128-byte row segments (false: "
           "K-chunk-major without swizzling)">,
    Option<"largeTileGroup", "large-tile-group", "int64_t", /*default=*/"8",
           "prefill kernel: row tiles whose blocks sweep each column block "
           "of the weights together (1: no grouping; at most 64)">,
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoEGPUShareRowTilesPass
    : Pass<"moe-gpu-share-row-tiles", "::mlir::ModuleOp"> {
  let summary = "Shares the inverse rows and the row tiles between a "
                "layer's GPU kernels";
  let description = [{
    Makes the routing state that several kernels of a layer read into SSA
    values, computed once:

    - a `moe.combine` of the rows of a `moe.dispatch` (over selections of
      the same shape) reads the dispatch's inverse rows: the dispatch gets
      its `row_of` result, which its sort writes for free, and the combine
      its `row_of(...)` operand;
    - every `moe.grouped_matmul` over routed rows whose `moe.gpu_kernels`
      are tensor-core kernels reads its row tiles, with its kernels' tile
      rows and threshold, from the `moe.dispatch` that returns its rows and
      offsets (`dispatch-row-tiles`): the dispatch gets a `row_tiles` result
      and the tile shapes as attributes, and at decode sizes (T * k <= 256)
      its one-block sort writes the tiles from the per-expert counts it
      holds, so the schedule takes no launch of its own. Matmuls over the
      same rows with the same tile shapes (a layer's gate/up and down
      projections) read the same result. Elsewhere (rows of no dispatch,
      other tile shapes than the dispatch's, `dispatch-row-tiles=false`)
      the matmul reads a `moe.row_tiles` of its offsets and rows, scheduled
      by a kernel of its own; identical ones are merged by CSE.

    ```mlir
    %rows, %offsets = moe.dispatch %ids {num_experts = 4 : i64} : ...
    %h = moe.grouped_matmul ins(%x, %w13, %offsets : ...) rows(%rows : ...) ...
    ```
    becomes
    ```mlir
    %rows, %offsets, %tiles = moe.dispatch %ids {large_rows_per_expert = 8 : i64,
        large_tile_rows = 128 : i64, num_experts = 4 : i64,
        small_tile_rows = 16 : i64} : ... row_tiles tensor<?xi32>
    %h = moe.grouped_matmul ins(%x, %w13, %offsets : ...) rows(%rows : ...)
        row_tiles(%tiles : tensor<?xi32>) ...
    ```

    Run it after `moe-gpu-select-kernel-config` and follow it with `cse`.
    It changes no result.
  }];
  let options = [
    Option<"dispatchRowTiles", "dispatch-row-tiles", "bool", /*default=*/"true",
           "the dispatch of a matmul's rows schedules its row tiles (a "
           "row_tiles result), in its own one-block kernel at decode sizes "
           "(false: a moe.row_tiles, scheduled by a kernel of its own)">,
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoEGPUProgrammaticLaunchPass
    : Pass<"moe-gpu-programmatic-launch", "::mlir::ModuleOp"> {
  let summary = "Launches each kernel with programmatic dependent launch "
                "(sm_90), its prologue overlapping the kernel before";
  let description = [{
    Marks every `gpu.launch` `moe.programmatic_launch` and makes it safe to
    start before the kernel ahead of it on the stream has finished:

    - the body starts with `nvvm.griddepcontrol launch_dependents`, so the
      kernel after it may be scheduled as soon as every block of this one
      runs;
    - `nvvm.griddepcontrol wait` precedes the body's first operation that
      touches memory (loads, stores, barriers, anything with a memory
      effect, or a region that holds one): the index arithmetic before it
      overlaps the kernel ahead, and nothing the kernels ahead write (or
      read) is touched before they have finished and their writes are
      visible;
    - on the host, `llvm.call @moeCudaNextLaunchProgrammatic()` right
      before the launch asks the runtime to launch it through
      `cuLaunchKernelEx` with programmatic stream serialization.

    Every thread reaches the wait (it sits in the body's entry block), so a
    thread that returns early touches no memory. A kernel launched this way
    after one that never issues `launch_dependents` (another library's)
    starts when that one finishes, as without the attribute.
    `griddepcontrol` needs sm_90 and PTX ISA 7.8: `moe-lower-to-nvvm-pipeline`
    runs this pass with `pdl=true` (its default on sm_90 and newer) and
    refuses `pdl=true` on older chips.

    ```mlir
    gpu.launch blocks(...) threads(...) {
      %t = gpu.thread_id x
      %v = memref.load %in[%t] : memref<?xf32>
    ```
    becomes
    ```mlir
    llvm.call @moeCudaNextLaunchProgrammatic() : () -> ()
    gpu.launch blocks(...) threads(...) {
      nvvm.griddepcontrol launch_dependents
      %t = gpu.thread_id x
      nvvm.griddepcontrol wait
      %v = memref.load %in[%t] : memref<?xf32>
    } {moe.programmatic_launch}
    ```
  }];
  let dependentDialects = [
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
  ];
}

#endif // MOE_CONVERSION_MOETOGPU_MOETOGPU_TD
