// An FP8 layer (DeepSeek's [128, 128] blocks, dynamic activations) through
// the whole GPU pipeline down to PTX: both grouped matmuls quantize their
// inputs and multiply with the e4m3 mma.sync for decode, which needs PTX
// ISA 8.4 (the features of the run), and for prefill with the e4m3 wgmma
// on sm_90a (its weights by TMA, its A rows by cp.async), the e4m3 mma.sync
// on sm_89; on sm_80 (PTX 7.0 is enough) the same loops widen the e4m3
// fragments to f16 for the f16 mma.sync (mma_sync_fp8_f16), with no e4m3
// instruction left; an older PTX version is refused at the op where the
// e4m3 MMA needs 8.4, and so is a chip before sm_80.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="features=+ptx84 format=isa" | FileCheck %s --check-prefixes=CHECK,SM90A
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_89 features=+ptx84 format=isa" | FileCheck %s --check-prefixes=CHECK,SM89
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa" 2>&1 | FileCheck %s --check-prefix=PTX80
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 format=isa" | FileCheck %s --check-prefix=SM80
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 format=isa" | FileCheck %s --check-prefix=SM80-NOT
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_75 features=+ptx70 format=isa" 2>&1 | FileCheck %s --check-prefix=SM75
// RUN: %if ptxas %{ moe-opt %s --moe-lower-to-nvvm-pipeline="features=+ptx84 format=bin" | FileCheck %s --check-prefix=BIN %}

// CHECK:      llvm.func @fp8_layer(
// CHECK:      gpu.binary @moe_kernels
// CHECK-SAME: .version 8.4
// The router (bf16) first, then the routing; each FP8 grouped matmul
// quantizes its input and multiplies with the e4m3 mma.sync.
// CHECK-SAME: .entry moe_route(
// CHECK-SAME: .entry moe_fp8_quantize_activations(
// CHECK-SAME: cvt.rni.f32.f32
// CHECK-SAME: .entry moe_grouped_matmul_large_0(
// SM90A-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes
// SM90A-SAME: cp.async.cg.shared.global
// SM90A-SAME: cp.async.mbarrier.arrive.noinc.shared.b64
// SM90A-SAME: wgmma.fence.sync.aligned
// SM90A-SAME: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// SM90A-SAME: wgmma.commit_group.sync.aligned
// SM90A-SAME: wgmma.wait_group.sync.aligned \090;
// SM90A-SAME: fma.rn.f32
// SM89-SAME:  mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// CHECK-SAME: .entry moe_grouped_matmul_small_0(
// CHECK-SAME: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// CHECK-SAME: .entry moe_fp8_quantize_activations_0(
// CHECK-SAME: .entry moe_grouped_matmul_large_1(
// SM90A-SAME: wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3
// SM89-SAME:  mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// CHECK-SAME: .entry moe_grouped_matmul_small_1(
// CHECK-SAME: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32
// PTX80: error: 'moe.grouped_matmul' op moe.gpu_kernels: the mma_sync_fp8 kernel needs PTX ISA 8.4 or newer (features +ptx84), got ptx = 80
// SM80:      .target sm_80
// SM80:      .entry moe_fp8_quantize_activations(
// SM80:      .entry moe_grouped_matmul_large_0(
// SM80:      mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// SM80:      .entry moe_grouped_matmul_small_0(
// SM80:      mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// SM80:      .entry moe_grouped_matmul_large_1(
// SM80:      mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// SM80:      .entry moe_grouped_matmul_small_1(
// SM80:      mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// SM80-NOT-NOT: e4m3
// SM75: error: 'moe.grouped_matmul' op FP8 weights (weight_quant) on the GPU: the FP8 kernels need sm_80 or newer (mma.sync with e4m3 operands from sm_89, widened to f16 on sm_80), got sm_75
// BIN: gpu.binary @moe_kernels

func.func @fp8_layer(%x: tensor<?x256xbf16>, %router: tensor<8x256xbf16>, %w13: tensor<8x512x256xf8E4M3FN>,
                     %w2: tensor<8x256x256xf8E4M3FN>, %s13: tensor<8x4x2xf32>, %s2: tensor<8x2x2xf32>) -> tensor<?x256xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x256xbf16>
  %init = tensor.empty(%t) : tensor<?x256xbf16>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x256xbf16>, tensor<8x256xbf16>,
      tensor<8x512x256xf8E4M3FN>, tensor<8x256x256xf8E4M3FN>)
      scales(%s13, %s2 : tensor<8x4x2xf32>, tensor<8x2x2xf32>)
      outs(%init : tensor<?x256xbf16>) {k = 2 : i64, renormalize,
      weight_quant = #moe.weight_quant<format = fp8_e4m3, block = [128, 128], activation = dynamic>}
      -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}
