// At decode sizes (T * k <= 256 selections) the one-block dispatch also
// writes the grouped matmuls' row tiles (dispatch-row-tiles, the default):
// that path launches no schedule kernel, one launch fewer per call (at
// T = 1: the dispatch, the two decode matmuls and the combine). Larger
// dispatches keep the chunked sort, then the schedule kernel. With
// dispatch-row-tiles=false the schedule is a launch of its own on every
// path, after the dispatch.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa" | FileCheck %s --check-prefixes=CHECK,FUSED
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa dispatch-row-tiles=false" | FileCheck %s --check-prefixes=CHECK,SEPARATE
// On sm_80 the same (the dispatch's block is no sm_90 feature).
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 format=isa" | FileCheck %s --check-prefixes=CHECK,FUSED
// Under programmatic dependent launch the fused kernel waits for the call's
// inputs and lets the decode matmul start, as every kernel does.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa pdl=true" | FileCheck %s --check-prefix=PDL
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="dispatch-row-tiles=2" 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: '2' is invalid value for boolean argument
// A cubin needs ptxas:
// RUN: %if ptxas %{ moe-opt %s --moe-lower-to-nvvm-pipeline="format=bin" | FileCheck %s --check-prefix=BIN %}

// CHECK-LABEL:   llvm.func @experts(
// CHECK:         %[[ONE:.*]] = llvm.icmp "ule" %{{.*}}, %{{.*}} : i64
// CHECK-NEXT:    llvm.cond_br %[[ONE]], ^[[BLOCK:bb[0-9]+]], ^[[CHUNKED:bb[0-9]+]]
// CHECK-NEXT:  ^[[BLOCK]]:
// FUSED-NEXT:    gpu.launch_func  @moe_kernels::@moe_dispatch_block_row_tiles blocks in
// SEPARATE-NEXT: gpu.launch_func  @moe_kernels::@moe_dispatch_block blocks in
// FUSED-NEXT:    llvm.br ^[[MATMULS:bb[0-9]+]]
// SEPARATE-NEXT: llvm.br ^[[SORTED:bb[0-9]+]]
// CHECK-NEXT:  ^[[CHUNKED]]:
// CHECK:         gpu.launch_func  @moe_kernels::@moe_dispatch_count
// CHECK:         gpu.launch_func  @moe_kernels::@moe_dispatch_scan
// CHECK:         gpu.launch_func  @moe_kernels::@moe_dispatch_place
// The chunked path schedules the tiles after its sort, in large or small
// tiles, and joins the one-block path before the matmuls.
// FUSED:         gpu.launch_func  @moe_kernels::@moe_tile_schedule blocks
// FUSED-NEXT:    llvm.br ^[[MATMULS]]
// FUSED:         gpu.launch_func  @moe_kernels::@moe_tile_schedule_0 blocks
// FUSED-NEXT:    llvm.br ^[[MATMULS]]
// FUSED-NEXT:  ^[[MATMULS]]:  // 3 preds: ^[[BLOCK]], ^bb{{[0-9]+}}, ^bb{{[0-9]+}}
// Without it, the schedule comes after both paths of the sort.
// SEPARATE:    ^[[SORTED]]:  // 3 preds: ^[[BLOCK]], ^bb{{[0-9]+}}, ^bb{{[0-9]+}}
// SEPARATE:      gpu.launch_func  @moe_kernels::@moe_tile_schedule blocks
// SEPARATE:      gpu.launch_func  @moe_kernels::@moe_tile_schedule_0 blocks
// Both matmuls and the combine read what the dispatch wrote; no other
// schedule is launched.
// CHECK-NOT:     moe_tile_schedule
// CHECK:         gpu.launch_func  @moe_kernels::@moe_grouped_matmul_small blocks
// CHECK-NOT:     moe_tile_schedule
// CHECK:         gpu.launch_func  @moe_kernels::@moe_grouped_matmul_small_0 blocks
// CHECK-NOT:     moe_tile_schedule
// CHECK:         gpu.launch_func  @moe_kernels::@moe_combine
// CHECK:         llvm.func @_mlir_ciface_experts(
// The fused kernel divides each expert's rows by the tile rows the host
// picked (a kernel argument) and stores the schedule to global memory.
// CHECK:         gpu.binary @moe_kernels
// FUSED-SAME:    .entry moe_dispatch_block_row_tiles(
// FUSED-SAME:    div.u32
// FUSED-SAME:    st.global.b32
// SEPARATE-NOT:  moe_dispatch_block_row_tiles
// SEPARATE-SAME: .entry moe_dispatch_block(
// CHECK-SAME:    .entry moe_dispatch_count(
// CHECK-SAME:    .entry moe_tile_schedule(
// CHECK-SAME:    .entry moe_grouped_matmul_small(

// PDL-LABEL:     llvm.func @experts(
// PDL:           llvm.call @moeCudaNextLaunchProgrammatic() : () -> ()
// PDL-NEXT:      gpu.launch_func  @moe_kernels::@moe_dispatch_block_row_tiles
// PDL:           gpu.binary @moe_kernels
// PDL-SAME:      .entry moe_dispatch_block_row_tiles(
// PDL-SAME:      griddepcontrol.launch_dependents
// PDL-SAME:      griddepcontrol.wait
// PDL-SAME:      .entry moe_dispatch_count(

// BIN:           gpu.binary @moe_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, properties = {ISAToBinaryTimeInMs

// Qwen3-30B-A3B's experts (E = 128, k = 8): up to T = 32 one block sorts
// the selections and writes the tiles.
func.func @experts(%x: tensor<?x2048xbf16>, %w13: tensor<128x1536x2048xbf16>,
                   %w2: tensor<128x2048x768xbf16>, %ids: tensor<?x8xi32>,
                   %w: tensor<?x8xf32>) -> tensor<?x2048xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x2048xbf16>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x8xf32>) {num_experts = 128 : i64}
      : tensor<?x8xi32> -> tensor<?xi32>, tensor<129xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %i1 = tensor.empty(%m) : tensor<?x768xbf16>
  %a = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x2048xbf16>, tensor<128x1536x2048xbf16>, tensor<129xi32>)
      rows(%rows : tensor<?xi32>) outs(%i1 : tensor<?x768xbf16>)
      {epilogue = #moe.activation<silu>, gather, k = 8 : i64} -> tensor<?x768xbf16>
  %i2 = tensor.empty(%m) : tensor<?x2048xbf16>
  %ys = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<?x768xbf16>, tensor<128x2048x768xbf16>, tensor<129xi32>)
      rows(%rows : tensor<?xi32>) row_scale(%w : tensor<?x8xf32>) outs(%i2 : tensor<?x2048xbf16>)
      {k = 8 : i64} -> tensor<?x2048xbf16>
  %i3 = tensor.empty(%t) : tensor<?x2048xbf16>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x2048xbf16>, tensor<?xi32>, tensor<?x8xf32>)
      outs(%i3 : tensor<?x2048xbf16>) {prescaled} -> tensor<?x2048xbf16>
  return %y : tensor<?x2048xbf16>
}
