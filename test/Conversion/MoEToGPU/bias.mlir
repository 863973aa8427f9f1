// The bias of a grouped matmul is added in every kernel's epilogue, before
// the GLU and the row scale: the staged mma.sync and decode kernels (sm_80),
// the wgmma kernel (sm_90a) and the one-thread-per-element kernel (f32
// weights) each load bias[expert, column] where they store.
// RUN: moe-opt %s --moe-gpu-select-kernel-config=chip=sm_80 --convert-moe-to-gpu \
// RUN:   --split-input-file | FileCheck %s --check-prefixes=CHECK,SM80
// RUN: moe-opt %s --moe-gpu-select-kernel-config --convert-moe-to-gpu \
// RUN:   --split-input-file | FileCheck %s --check-prefixes=CHECK,SM90
// Down to PTX (the lead runs these kernels on the GPU):
// RUN: moe-opt %s --split-input-file --moe-lower-to-nvvm-pipeline="format=isa" \
// RUN:   | FileCheck %s --check-prefix=PTX
// RUN: moe-opt %s --split-input-file \
// RUN:   --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 format=isa" \
// RUN:   | FileCheck %s --check-prefix=PTX

// CHECK-LABEL: func.func @experts_bias
// CHECK:       function(@moe_grouped_matmul_large)
// SM90:          nvvm.wgmma.mma_async
// SM80:          nvvm.mma.sync
// CHECK:         memref.load {{.*}} : memref<4x96xbf16>
// CHECK:         math.exp
// CHECK:       function(@moe_grouped_matmul_small)
// CHECK:         nvvm.mma.sync
// CHECK:         memref.load {{.*}} : memref<4x96xbf16>
// CHECK:       function(@moe_grouped_matmul_large)
// CHECK:         memref.load {{.*}} : memref<4x64xf32>
// CHECK:       function(@moe_grouped_matmul_small)
// CHECK:         memref.load {{.*}} : memref<4x64xf32>
// CHECK:       function(@moe_combine_wide)
// PTX:         .entry moe_grouped_matmul_large(
// PTX:         .entry moe_grouped_matmul_small(
func.func @experts_bias(%x: tensor<?x64xbf16>, %w13: tensor<4x96x64xbf16>, %w2: tensor<4x64x48xbf16>,
                        %b13: tensor<4x96xbf16>, %b2: tensor<4x64xf32>,
                        %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>) {num_experts = 4 : i64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %i1 = tensor.empty(%m) : tensor<?x48xf32>
  %a = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x64xbf16>, tensor<4x96x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) bias(%b13 : tensor<4x96xbf16>) outs(%i1 : tensor<?x48xf32>)
      {epilogue = #moe.activation<swiglu_oai>, glu_layout = #moe.glu_layout<interleaved>,
       gather, k = 2 : i64} -> tensor<?x48xf32>
  %i2 = tensor.empty(%m) : tensor<?x64xf32>
  %ys = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<?x48xf32>, tensor<4x64x48xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) row_scale(%w : tensor<?x2xf32>) bias(%b2 : tensor<4x64xf32>)
      outs(%i2 : tensor<?x64xf32>) {k = 2 : i64} -> tensor<?x64xf32>
  %i3 = tensor.empty(%t) : tensor<?x64xbf16>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32>)
      outs(%i3 : tensor<?x64xbf16>) {prescaled} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// CHECK-LABEL: func.func @plain_bias
// CHECK:       function(@moe_grouped_matmul_plain)
// CHECK:         memref.load {{.*}} : memref<2x7xf16>
// CHECK-NOT:   nvvm.mma.sync
// PTX:         .entry moe_grouped_matmul_plain(
func.func @plain_bias(%x: tensor<?x13xf32>, %w: tensor<2x7x13xf32>, %offsets: tensor<3xi32>,
                      %b: tensor<2x7xf16>) -> tensor<?x7xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x13xf32>
  %init = tensor.empty(%t) : tensor<?x7xf32>
  %y = moe.grouped_matmul ins(%x, %w, %offsets : tensor<?x13xf32>, tensor<2x7x13xf32>, tensor<3xi32>)
      bias(%b : tensor<2x7xf16>) outs(%init : tensor<?x7xf32>) -> tensor<?x7xf32>
  return %y : tensor<?x7xf32>
}
