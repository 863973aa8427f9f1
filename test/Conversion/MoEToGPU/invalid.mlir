// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file --verify-diagnostics
// RUN: not moe-opt %s --moe-gpu-select-kernel-config=small-split-k=3 --split-input-file 2>&1 \
// RUN:   | FileCheck %s --check-prefix=OPTION
// OPTION: error: moe-gpu-select-kernel-config: small-split-k must be 1 or 4, got 3

func.func @layer(%x: tensor<?x64xf32>, %router: tensor<8x64xf32>, %w13: tensor<8x256x64xf32>,
                 %w2: tensor<8x64x128xf32>, %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{must be decomposed first (moe-decompose-layer)}}
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xf32>, tensor<8x64xf32>,
                     tensor<8x256x64xf32>, tensor<8x64x128xf32>)
      outs(%init : tensor<?x64xf32>) {k = 2 : i64} -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @groups(%logits: tensor<?x128xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  // expected-error @+1 {{on the GPU supports at most 64 expert groups, got 128}}
  %w, %ids = moe.route %logits {k = 2 : i64, n_group = 128 : i64, topk_group = 2 : i64,
                                group_score = #moe.group_score<max>}
      : tensor<?x128xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %ids : tensor<?x2xf32>, tensor<?x2xi32>
}

// -----

func.func @panels(%a: tensor<8x16xbf16>, %w: tensor<4x2x16x16xbf16>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) -> tensor<8x32xf32> {
  // expected-error @+1 {{weights in the panels layout (the CPU kernel's packing) have no GPU lowering; use nk or kn}}
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xbf16>, tensor<4x2x16x16xbf16>, tensor<5xi32>) outs(%init : tensor<8x32xf32>) {rhs_layout = #moe.rhs_layout<panels>} -> tensor<8x32xf32>
  return %h : tensor<8x32xf32>
}

// -----

// convert-moe-to-gpu follows the kernels moe-gpu-select-kernel-config picked,
// and chooses none itself.
func.func @unselected(%x: tensor<?x64xbf16>, %w: tensor<4x128x64xbf16>, %offsets: tensor<5xi32>, %init: tensor<?x128xbf16>) -> tensor<?x128xbf16> {
  // expected-error @+1 {{has no moe.gpu_kernels attribute: run moe-gpu-select-kernel-config first}}
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x64xbf16>, tensor<4x128x64xbf16>, tensor<5xi32>)
      outs(%init : tensor<?x128xbf16>) -> tensor<?x128xbf16>
  return %y : tensor<?x128xbf16>
}
