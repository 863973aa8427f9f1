// A gpt-oss layer (router bias, expert biases, interleaved gate/up, clamped
// SwiGLU) through the whole GPU pipeline down to PTX, for sm_90a (wgmma) and
// sm_80 (staged mma.sync); the router's bias goes to the router matmul.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa" | FileCheck %s --check-prefixes=CHECK,SM90
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 format=isa" | FileCheck %s --check-prefixes=CHECK,SM80
// RUN: %if ptxas %{ moe-opt %s --moe-lower-to-nvvm-pipeline="format=bin" | FileCheck %s --check-prefix=BIN %}

// CHECK:      llvm.func @gpt_oss(
// CHECK:      gpu.binary @moe_kernels
// SM90-SAME:  .target sm_90a
// SM80-SAME:  .target sm_80
// The router matmul (with its bias), then the routing and the experts'.
// CHECK-SAME: .entry moe_grouped_matmul_large(
// SM90-SAME:  wgmma.mma_async
// CHECK-SAME: .entry moe_grouped_matmul_small(
// CHECK-SAME: mma.sync
// CHECK-SAME: .entry moe_route(
// CHECK-SAME: .entry moe_grouped_matmul_large_0(
// SM90-SAME:  wgmma.mma_async
// CHECK-SAME: .entry moe_grouped_matmul_small_0(
// CHECK-SAME: .entry moe_grouped_matmul_large_1(
// CHECK-SAME: .entry moe_grouped_matmul_small_1(
// CHECK-SAME: .entry moe_combine_wide(
// BIN:        gpu.binary @moe_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, properties = {ISAToBinaryTimeInMs

func.func @gpt_oss(%x: tensor<?x64xbf16>, %router: tensor<8x64xbf16>, %w13: tensor<8x96x64xbf16>,
                   %w2: tensor<8x64x48xbf16>, %br: tensor<8xbf16>, %b13: tensor<8x96xbf16>,
                   %b2: tensor<8x64xbf16>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %init = tensor.empty(%t) : tensor<?x64xbf16>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x64xbf16>, tensor<8x64xbf16>, tensor<8x96x64xbf16>, tensor<8x64x48xbf16>)
      router_bias(%br : tensor<8xbf16>) w13_bias(%b13 : tensor<8x96xbf16>) w2_bias(%b2 : tensor<8x64xbf16>)
      outs(%init : tensor<?x64xbf16>)
      {k = 4 : i64, scoring = #moe.scoring<softmax_topk>, activation = #moe.activation<swiglu_oai>,
       glu_layout = #moe.glu_layout<interleaved>} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
