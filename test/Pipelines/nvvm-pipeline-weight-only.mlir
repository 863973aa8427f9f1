// Weight-only layers through the whole GPU pipeline down to PTX: an int4
// layer with zero points (groups of 128) and an MXFP4 one (gpt-oss's
// interleaved swiglu_oai, biases), both grouped matmuls of each with the
// mma_sync_wonly kernel: 16-byte packed weight loads, the codes masked into
// bf16 pairs (minus the zero point, times the scale, in bf16x2
// arithmetic), and the bf16 mma.sync. sm_80 takes them too; a chip before
// it is refused at the op.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa" | FileCheck %s --check-prefixes=CHECK,SM90A
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_80 format=isa" | FileCheck %s --check-prefixes=CHECK
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_75 format=isa" 2>&1 | FileCheck %s --check-prefix=SM75
// RUN: %if ptxas %{ moe-opt %s --moe-lower-to-nvvm-pipeline="format=bin" | FileCheck %s --check-prefix=BIN %}

// CHECK:      llvm.func @int4_layer(
// CHECK:      gpu.binary @moe_kernels
// CHECK-SAME: .entry moe_route(
// CHECK-NOT:  moe_fp8_quantize_activations
// CHECK-SAME: .entry moe_grouped_matmul_large_0(
// CHECK-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-SAME: .entry moe_grouped_matmul_small_0(
// CHECK-SAME: ld.global.v4.b32
// SM90A-SAME: sub.rn.bf16x2
// SM90A-SAME: mul.rn.bf16x2
// CHECK-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-SAME: .entry moe_grouped_matmul_small_1(
// CHECK-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// The MXFP4 layer (its router, with a bias, is _2): the e8m0 scale read as a
// byte.
// CHECK-SAME: .entry moe_grouped_matmul_small_3(
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: ld.global.{{u|b}}8
// SM90A-SAME: mul.rn.bf16x2
// CHECK-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK:      llvm.func @mxfp4_layer(
// SM75: error: 'moe.grouped_matmul' op weight-only weights (weight_quant format int4) on the GPU: the mma_sync_wonly kernel's bf16 mma.sync needs sm_80 or newer, got sm_75
// BIN: gpu.binary @moe_kernels

func.func @int4_layer(%x: tensor<?x256xbf16>, %router: tensor<8x256xbf16>, %w13: tensor<8x512x128xi8>,
                      %w2: tensor<8x256x128xi8>, %s13: tensor<8x512x2xf32>, %s2: tensor<8x256x2xf32>,
                      %z13: tensor<8x512x2xi8>, %z2: tensor<8x256x2xi8>) -> tensor<?x256xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x256xbf16>
  %init = tensor.empty(%t) : tensor<?x256xbf16>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x256xbf16>, tensor<8x256xbf16>,
      tensor<8x512x128xi8>, tensor<8x256x128xi8>)
      scales(%s13, %s2 : tensor<8x512x2xf32>, tensor<8x256x2xf32>)
      zero_points(%z13, %z2 : tensor<8x512x2xi8>, tensor<8x256x2xi8>)
      outs(%init : tensor<?x256xbf16>) {k = 2 : i64, renormalize,
      weight_quant = #moe.weight_quant<format = int4, block = [1, 128], activation = none>}
      -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

func.func @mxfp4_layer(%x: tensor<?x256xbf16>, %router: tensor<8x256xbf16>, %w13: tensor<8x512x128xi8>,
                       %w2: tensor<8x256x128xi8>, %br: tensor<8xbf16>, %b13: tensor<8x512xbf16>, %b2: tensor<8x256xbf16>,
                       %s13: tensor<8x512x8xf8E8M0FNU>, %s2: tensor<8x256x8xf8E8M0FNU>) -> tensor<?x256xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x256xbf16>
  %init = tensor.empty(%t) : tensor<?x256xbf16>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x256xbf16>, tensor<8x256xbf16>,
      tensor<8x512x128xi8>, tensor<8x256x128xi8>)
      router_bias(%br : tensor<8xbf16>)
      w13_bias(%b13 : tensor<8x512xbf16>) w2_bias(%b2 : tensor<8x256xbf16>)
      scales(%s13, %s2 : tensor<8x512x8xf8E8M0FNU>, tensor<8x256x8xf8E8M0FNU>)
      outs(%init : tensor<?x256xbf16>)
      {k = 4 : i64, scoring = #moe.scoring<softmax_topk>,
       activation = #moe.activation<swiglu_oai>,
       glu_layout = #moe.glu_layout<interleaved>,
       weight_quant = #moe.weight_quant<format = mxfp4, block = [1, 32], activation = none>}
      -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}
