// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles --cse --split-input-file | FileCheck %s
// Without dispatch-row-tiles: one moe.row_tiles per tensor-core matmul, one
// after CSE.
// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles=dispatch-row-tiles=false --cse \
// RUN:   --split-input-file | FileCheck %s --check-prefix=SEPARATE
// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles=dispatch-row-tiles=false --split-input-file \
// RUN:   | FileCheck %s --check-prefix=NOCSE
// With it, the dispatch's one result needs no CSE.
// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles --split-input-file \
// RUN:   | FileCheck %s --check-prefix=NOCSE-DISPATCH
// The result is valid IR that lowers, and running the pass twice changes
// nothing.
// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles --cse --moe-gpu-share-row-tiles \
// RUN:   --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles --cse --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefixes=LOWERED,LOWERED-DISPATCH
// RUN: moe-opt %s --moe-gpu-select-kernel-config=large-rows-per-expert=64 \
// RUN:   --moe-gpu-share-row-tiles=dispatch-row-tiles=false --cse \
// RUN:   --convert-moe-to-gpu --split-input-file \
// RUN:   | FileCheck %s --check-prefixes=LOWERED,LOWERED-SEPARATE
// RUN: not moe-opt %s --moe-gpu-share-row-tiles=dispatch-row-tiles=maybe 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BADOPTION
// BADOPTION: 'maybe' is invalid value for boolean argument

// The dispatch gains its inverse rows, which the combine of its rows reads,
// and the schedule of row tiles of the two projections over its rows, whose
// tile rows and threshold are those of their moe.gpu_kernels: a row_tiles
// result, which its one-block sort writes at decode sizes.
// CHECK-LABEL: func.func @experts
// CHECK:         %[[ROWS:.*]], %[[OFFSETS:.*]], %[[ROW_OF:.*]], %[[TILES:.*]] = moe.dispatch {{.*}} {large_rows_per_expert = 64 : i64, large_tile_rows = 128 : i64, num_experts = 4 : i64, small_tile_rows = 16 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<?xi32> row_tiles tensor<?xi32>
// CHECK-NOT:     moe.row_tiles
// CHECK:         moe.grouped_matmul ins({{.*}}, %[[OFFSETS]] : {{.*}}) rows(%[[ROWS]] : tensor<?xi32>) row_tiles(%[[TILES]] : tensor<?xi32>)
// CHECK:         moe.grouped_matmul ins({{.*}}, %[[OFFSETS]] : {{.*}}) rows(%[[ROWS]] : tensor<?xi32>) row_scale({{.*}}) row_tiles(%[[TILES]] : tensor<?xi32>)
// CHECK:         moe.combine {{.*}} row_of(%[[ROW_OF]] : tensor<?xi32>)
// Without dispatch-row-tiles the two read one moe.row_tiles (after CSE).
// SEPARATE-LABEL: func.func @experts
// SEPARATE:       %[[ROWS:.*]], %[[OFFSETS:.*]], %[[ROW_OF:.*]] = moe.dispatch {{.*}} {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<?xi32>{{$}}
// SEPARATE:       %[[TILES:.*]] = moe.row_tiles %[[OFFSETS]], %[[ROWS]] {large_rows_per_expert = 64 : i64, large_tile_rows = 128 : i64, small_tile_rows = 16 : i64}
// SEPARATE-NOT:   moe.row_tiles
// SEPARATE:       moe.grouped_matmul {{.*}} rows(%[[ROWS]] : tensor<?xi32>) row_tiles(%[[TILES]] : tensor<?xi32>)
// SEPARATE:       moe.grouped_matmul {{.*}} rows(%[[ROWS]] : tensor<?xi32>) row_scale({{.*}}) row_tiles(%[[TILES]] : tensor<?xi32>)
// SEPARATE:       moe.combine {{.*}} row_of(%[[ROW_OF]] : tensor<?xi32>)
// NOCSE-LABEL:   func.func @experts
// NOCSE-COUNT-2: moe.row_tiles
// NOCSE-DISPATCH-LABEL: func.func @experts
// NOCSE-DISPATCH-NOT:   moe.row_tiles
// NOCSE-DISPATCH-COUNT-2: row_tiles(%row_tiles : tensor<?xi32>)
// LOWERED-LABEL: func.func @experts
// LOWERED-NOT:   = moe.{{[a-z_]+}} 
// LOWERED:       return
func.func @experts(%x: tensor<?x64xbf16>, %w13: tensor<4x96x64xbf16>,
                   %w2: tensor<4x64x48xbf16>, %ids: tensor<?x2xi32>,
                   %w: tensor<?x2xf32>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>)
      {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %i0 = tensor.empty(%m) : tensor<?x48xf32>
  %h = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x64xbf16>,
      tensor<4x96x64xbf16>, tensor<5xi32>) rows(%rows : tensor<?xi32>)
      outs(%i0 : tensor<?x48xf32>) {epilogue = #moe.activation<silu>, gather,
      k = 2 : i64} -> tensor<?x48xf32>
  %i1 = tensor.empty(%m) : tensor<?x64xf32>
  %ys = moe.grouped_matmul ins(%h, %w2, %offsets : tensor<?x48xf32>,
      tensor<4x64x48xbf16>, tensor<5xi32>) rows(%rows : tensor<?xi32>)
      row_scale(%w : tensor<?x2xf32>) outs(%i1 : tensor<?x64xf32>)
      {k = 2 : i64} -> tensor<?x64xf32>
  %i2 = tensor.empty(%t) : tensor<?x64xbf16>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x64xf32>, tensor<?xi32>,
      tensor<?x2xf32>) outs(%i2 : tensor<?x64xbf16>) {prescaled}
      -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A matmul without routed rows, and one on the simt kernel (f32 weights),
// take no row tiles.
// CHECK-LABEL: func.func @unrouted
// CHECK-NOT:     moe.row_tiles
// CHECK-NOT:     row_tiles(
// CHECK:         return
func.func @unrouted(%x: tensor<?x16xbf16>, %w: tensor<2x32x16xbf16>,
                    %x32: tensor<?x13xf32>, %w32: tensor<2x7x13xf32>,
                    %offsets: tensor<3xi32>, %rows: tensor<?xi32>)
    -> (tensor<?x32xf32>, tensor<?x7xf32>) {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x16xbf16>
  %i0 = tensor.empty(%t) : tensor<?x32xf32>
  %a = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x16xbf16>,
      tensor<2x32x16xbf16>, tensor<3xi32>) outs(%i0 : tensor<?x32xf32>)
      -> tensor<?x32xf32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %i1 = tensor.empty(%m) : tensor<?x7xf32>
  %b = moe.grouped_matmul ins(%x32, %w32, %offsets : tensor<?x13xf32>,
      tensor<2x7x13xf32>, tensor<3xi32>) rows(%rows : tensor<?xi32>)
      outs(%i1 : tensor<?x7xf32>) {gather, k = 1 : i64} -> tensor<?x7xf32>
  return %a, %b : tensor<?x32xf32>, tensor<?x7xf32>
}

// -----

// A combine of other selections than the dispatch sorted (here k = 1 of a
// k = 2 dispatch's rows) keeps inverting its rows itself.
// CHECK-LABEL: func.func @other_selections
// CHECK:         moe.dispatch {{.*}} -> tensor<?xi32>, tensor<5xi32>{{$}}
// CHECK-NOT:     row_of(
// CHECK:         return
func.func @other_selections(%ids: tensor<8x2xi32>, %ys: tensor<?x16xf32>,
                            %w: tensor<16x1xf32>) -> tensor<16x16xf32> {
  %rows, %offsets = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<8x2xi32> -> tensor<?xi32>, tensor<5xi32>
  %init = tensor.empty() : tensor<16x16xf32>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x16xf32>, tensor<?xi32>,
      tensor<16x1xf32>) outs(%init : tensor<16x16xf32>) -> tensor<16x16xf32>
  return %y : tensor<16x16xf32>
}

// -----

// A matmul over the dispatch's rows whose kernels take other tile shapes
// (pinned here) reads a moe.row_tiles of its own: the dispatch writes one
// schedule, for the first matmul over its rows.
// CHECK-LABEL: func.func @other_tile_shapes
// CHECK:         %[[ROWS:.*]], %[[OFFSETS:.*]], %[[TILES:.*]] = moe.dispatch {{.*}} {large_rows_per_expert = 64 : i64, large_tile_rows = 128 : i64, num_experts = 4 : i64, small_tile_rows = 16 : i64}
// CHECK:         moe.grouped_matmul {{.*}} rows(%[[ROWS]] : tensor<?xi32>) row_tiles(%[[TILES]] : tensor<?xi32>)
// CHECK:         %[[OWN:.*]] = moe.row_tiles %[[OFFSETS]], %[[ROWS]] {large_rows_per_expert = 8 : i64, large_tile_rows = 32 : i64, small_tile_rows = 16 : i64}
// CHECK:         moe.grouped_matmul {{.*}} rows(%[[ROWS]] : tensor<?xi32>) row_tiles(%[[OWN]] : tensor<?xi32>)
// LOWERED-LABEL: func.func @other_tile_shapes
// LOWERED:       return
func.func @other_tile_shapes(%x: tensor<?x64xbf16>, %w: tensor<4x128x64xbf16>,
                             %ids: tensor<?x1xi32>) -> (tensor<?x128xf32>, tensor<?x128xf32>) {
  %c0 = arith.constant 0 : index
  %rows, %offsets = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<?x1xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %init = tensor.empty(%m) : tensor<?x128xf32>
  %a = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) outs(%init : tensor<?x128xf32>) {gather, k = 1 : i64}
      -> tensor<?x128xf32>
  %b = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) outs(%init : tensor<?x128xf32>) {gather, k = 1 : i64,
      moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 64, k = 32, stages = 1, unroll = 8, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large = #moe.matmul_tile<kernel = mma_sync, rows = 32, columns = 128, k = 32, stages = 1, unroll = 1, split_k = 1, tile_group = 1, a_layout = none, b_layout = none, inline_constants = false>,
        large_rows_per_expert = 8>} -> tensor<?x128xf32>
  return %a, %b : tensor<?x128xf32>, tensor<?x128xf32>
}

// -----

// A capacity-limited dispatch writes the row tiles as well (its last sort is
// the uncapped one's); rows that no dispatch returns (expert choice) keep a
// moe.row_tiles.
// CHECK-LABEL: func.func @capacity_and_expert_choice
// CHECK:         %[[ROWS:.*]], %[[OFFSETS:.*]], %[[TILES:.*]] = moe.dispatch {{.*}} {capacity = 2 : i64, large_rows_per_expert = 64 : i64, large_tile_rows = 128 : i64, num_experts = 4 : i64, small_tile_rows = 16 : i64} : tensor<?x1xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi32>
// CHECK:         moe.grouped_matmul {{.*}} rows(%[[ROWS]] : tensor<?xi32>) row_tiles(%[[TILES]] : tensor<?xi32>)
// CHECK:         %{{.*}}, %[[EC_ROWS:.*]], %[[EC_OFFSETS:.*]] = moe.expert_choice
// CHECK:         %[[EC_TILES:.*]] = moe.row_tiles %[[EC_OFFSETS]], %[[EC_ROWS]]
// CHECK:         moe.grouped_matmul {{.*}} rows(%[[EC_ROWS]] : tensor<8xi32>) row_tiles(%[[EC_TILES]] : tensor<?xi32>)
// LOWERED-LABEL:    func.func @capacity_and_expert_choice
// LOWERED-DISPATCH: function(@moe_dispatch_block_row_tiles)
// LOWERED-SEPARATE-NOT: function(@moe_dispatch_block_row_tiles)
// LOWERED:          function(@moe_tile_schedule)
// LOWERED:          return
func.func @capacity_and_expert_choice(%x: tensor<?x64xbf16>, %w: tensor<4x128x64xbf16>,
                                      %ids: tensor<?x1xi32>, %logits: tensor<8x4xf32>,
                                      %x8: tensor<8x64xbf16>)
    -> (tensor<?x128xf32>, tensor<8x128xf32>) {
  %c0 = arith.constant 0 : index
  %rows, %offsets = moe.dispatch %ids {num_experts = 4 : i64, capacity = 2 : i64}
      : tensor<?x1xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %init = tensor.empty(%m) : tensor<?x128xf32>
  %a = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) outs(%init : tensor<?x128xf32>) {gather, k = 1 : i64}
      -> tensor<?x128xf32>
  %wt, %ec_rows, %ec_offsets = moe.expert_choice %logits {capacity = 2 : i64}
      : tensor<8x4xf32> -> tensor<8x4xf32>, tensor<8xi32>, tensor<5xi32>
  %init8 = tensor.empty() : tensor<8x128xf32>
  %b = moe.grouped_matmul ins(%x8, %w, %ec_offsets : tensor<8x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%ec_rows : tensor<8xi32>) outs(%init8 : tensor<8x128xf32>) {gather, k = 4 : i64}
      -> tensor<8x128xf32>
  return %a, %b : tensor<?x128xf32>, tensor<8x128xf32>
}

// -----

// A dispatch that returns its inverse rows already keeps their type when it
// gains the row tiles, so their uses stay valid.
// CHECK-LABEL: func.func @row_of_kept
// CHECK:         %{{.*}}, %{{.*}}, %[[ROW_OF:.*]], %[[TILES:.*]] = moe.dispatch {{.*}} : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>, tensor<?xi32> row_tiles tensor<?xi32>
// CHECK:         moe.grouped_matmul {{.*}} row_tiles(%[[TILES]] : tensor<?xi32>)
// CHECK:         return %{{.*}}, %[[ROW_OF]] : tensor<16x128xf32>, tensor<?xi32>
// LOWERED-LABEL: func.func @row_of_kept
// LOWERED:       return
func.func @row_of_kept(%x: tensor<8x64xbf16>, %w: tensor<4x128x64xbf16>, %ids: tensor<8x2xi32>)
    -> (tensor<16x128xf32>, tensor<?xi32>) {
  %rows, %offsets, %row_of = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<8x2xi32> -> tensor<16xi32>, tensor<5xi32>, tensor<?xi32>
  %init = tensor.empty() : tensor<16x128xf32>
  %a = moe.grouped_matmul ins(%x, %w, %offsets : tensor<8x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<16xi32>) outs(%init : tensor<16x128xf32>) {gather, k = 2 : i64}
      -> tensor<16x128xf32>
  return %a, %row_of : tensor<16x128xf32>, tensor<?xi32>
}

// -----

// Under an expert map the dispatch's row tiles cover the local experts (its
// offsets' 4), as the matmuls over its rows count them.
// CHECK-LABEL: func.func @local_experts
// CHECK:         %[[ROWS:.*]], %[[OFFSETS:.*]], %[[TILES:.*]] = moe.dispatch %{{.*}} expert_map(%{{.*}} : tensor<8xi32>) {{.*}} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32> row_tiles tensor<?xi32>
// CHECK:         moe.grouped_matmul {{.*}} rows(%[[ROWS]] : tensor<?xi32>) row_tiles(%[[TILES]] : tensor<?xi32>)
// LOWERED-LABEL:    func.func @local_experts
// LOWERED-DISPATCH: function(@moe_dispatch_block_row_tiles) workgroup(%{{.*}} : memref<4xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<256xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<4xi32, #gpu.address_space<workgroup>>, %{{.*}} : memref<32xi32, #gpu.address_space<workgroup>>)
// LOWERED:          return
func.func @local_experts(%x: tensor<?x64xbf16>, %w: tensor<4x128x64xbf16>, %ids: tensor<?x2xi32>,
                         %map: tensor<8xi32>) -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %rows, %offsets = moe.dispatch %ids expert_map(%map : tensor<8xi32>) {num_experts = 8 : i64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %init = tensor.empty(%m) : tensor<?x128xf32>
  %a = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) outs(%init : tensor<?x128xf32>) {gather, k = 2 : i64}
      -> tensor<?x128xf32>
  return %a : tensor<?x128xf32>
}
