// The whole GPU pipeline, down to PTX, for sm_90a and sm_80: the grouped
// matmuls run on tensor cores (mma.sync bf16 with f32 accumulation at decode
// sizes; the prefill kernel multiplies with wgmma on sm_90a, a producer
// warpgroup bringing its weights by TMA, and stages its tiles with cp.async
// for ldmatrix and mma.sync on sm_80 or with wgmma=false), every kernel sits
// in one module, and the host function takes its result and a workspace as
// arguments, with a size query beside it.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa" | FileCheck %s --check-prefixes=CHECK,WGMMA,NOPDL
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 format=isa" | FileCheck %s --check-prefixes=CHECK,SM80,STAGED,NOPDL
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa kernel-config={wgmma=false}" | FileCheck %s --check-prefixes=CHECK,SM90,STAGED,NOPDL
// Programmatic dependent launch (pdl=true, sm_90 and newer; off by
// default): every kernel waits for the one ahead (griddepcontrol.wait) and
// lets the next start (launch_dependents), and the host asks the runtime
// for a programmatic launch right before each. Without it the kernels
// launch in stream order; pdl=true before sm_90 is refused, as is a value
// that is no bool.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa pdl=true" | FileCheck %s --check-prefixes=CHECK,WGMMA,PDL
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_90 format=isa pdl=true kernel-config={wgmma=false}" | FileCheck %s --check-prefixes=CHECK,STAGED,PDL
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_80 features=+ptx70 pdl=true" 2>&1 | FileCheck %s --check-prefix=BADPDLCHIP
// BADPDLCHIP: moe-lower-to-nvvm-pipeline: pdl=true needs sm_90 or newer (griddepcontrol), chip is 'sm_80'
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="pdl=maybe" 2>&1 | FileCheck %s --check-prefix=BADPDL
// BADPDL: 'maybe' is invalid value for boolean argument
// The wgmma option picks wgmma where the chip has it (sm_90a), the staged
// mma.sync kernel elsewhere (sm_80 above). The kernel choices are the
// options of moe-gpu-select-kernel-config, forwarded as kernel-config and
// checked by that pass: 0 loads in flight, an empty tile group or an
// unknown option stop the pipeline before it runs.
// RUN: moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa kernel-config={small-unroll=2}" | FileCheck %s --check-prefixes=CHECK,WGMMA
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa kernel-config={small-unroll=17}" 2>&1 | FileCheck %s --check-prefix=BADUNROLL
// BADUNROLL: moe-gpu-select-kernel-config: small-unroll must be in [0, 16], got 17
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa kernel-config={large-tile-group=0}" 2>&1 | FileCheck %s --check-prefix=BADGROUP
// BADGROUP: moe-gpu-select-kernel-config: large-tile-group must be in [1, 64], got 0
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa kernel-config={small-split-k-from=0}" 2>&1 | FileCheck %s --check-prefix=BADFROM
// BADFROM: moe-gpu-select-kernel-config: small-split-k-from must be in [1, 2147483648], got 0
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa kernel-config={wgmmaa=false}" 2>&1 | FileCheck %s --check-prefix=BADNAME
// BADNAME: no such option wgmmaa
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="format=isa kernel-config={chip=sm_80}" 2>&1 | FileCheck %s --check-prefix=BADCHIPCONFIG
// BADCHIPCONFIG: kernel-config takes no chip or ptx: the pipeline's chip and features options set them
// The pipeline's own options are checked before any pass meets them, the
// chip and the PTX features against what LLVM's NVPTX backend knows (which
// would abort at an unknown chip, ignore an unknown feature, and stop the
// process at a PTX version older than the chip).
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="chip=" 2>&1 | FileCheck %s --check-prefix=BADCHIP
// BADCHIP: moe-lower-to-nvvm-pipeline: chip '' is not a CUDA chip LLVM knows; known: {{.*}}sm_90a
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="chip=sm_999" 2>&1 | FileCheck %s --check-prefix=HUGECHIP
// HUGECHIP: moe-lower-to-nvvm-pipeline: chip 'sm_999' is not a CUDA chip LLVM knows
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="features=" 2>&1 | FileCheck %s --check-prefix=BADFEATURES
// BADFEATURES: moe-lower-to-nvvm-pipeline: features is empty; give the PTX version, e.g. +ptx80
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="features=+ptx999" 2>&1 | FileCheck %s --check-prefix=UNKNOWNPTX
// UNKNOWNPTX: moe-lower-to-nvvm-pipeline: features: '+ptx999' is not +<feature> or -<feature> of an NVPTX feature LLVM knows
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="features=-ptx80" 2>&1 | FileCheck %s --check-prefix=OFFPTX
// OFFPTX: moe-lower-to-nvvm-pipeline: features: '-ptx80' turns a feature off, which chooses nothing
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="features=+ptx80,+sm_90a" 2>&1 | FileCheck %s --check-prefix=CHIPFEATURE
// CHIPFEATURE: moe-lower-to-nvvm-pipeline: features: '+sm_90a' is not a PTX version (+ptx80, ...); the chip is chip
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="features=+ptx60" 2>&1 | FileCheck %s --check-prefix=OLDPTX
// OLDPTX: moe-lower-to-nvvm-pipeline: features +ptx60 is older than chip 'sm_90a' needs: +ptx80 or newer
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="format=elf" 2>&1 | FileCheck %s --check-prefix=BADFORMAT
// BADFORMAT: moe-lower-to-nvvm-pipeline: format must be fatbin, bin, isa or offloading, got 'elf'
// RUN: not moe-opt %s --moe-lower-to-nvvm-pipeline="opt-level=99999999999" 2>&1 | FileCheck %s --check-prefix=BADOPT
// BADOPT: opt-level

// A cubin needs ptxas:
// RUN: %if ptxas %{ moe-opt %s --moe-lower-to-nvvm-pipeline="format=bin" | FileCheck %s --check-prefix=BIN %}

// CHECK:     llvm.func @experts(
// PDL:       llvm.call @moeCudaNextLaunchProgrammatic() : () -> ()
// PDL-NEXT:  gpu.launch_func @moe_kernels::@moe_dispatch_block
// NOPDL-NOT: moeCudaNextLaunchProgrammatic
// CHECK:     gpu.launch_func @moe_kernels::@moe_dispatch_count
// CHECK:     llvm.func @_mlir_ciface_experts(
// CHECK:     gpu.binary @moe_kernels
// SM90-SAME: chip = "sm_90a"
// SM90-SAME: .target sm_90a
// SM80-SAME: chip = "sm_80"
// SM80-SAME: .target sm_80
// CHECK-SAME: .entry moe_dispatch_count
// PDL-SAME:  griddepcontrol.launch_dependents
// PDL-SAME:  griddepcontrol.wait
// NOPDL-NOT: griddepcontrol
// CHECK-SAME: .entry moe_grouped_matmul_large(
// WGMMA-SAME: mbarrier.init.shared.b64
// WGMMA-SAME: cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes
// WGMMA-SAME: cp.async.cg.shared.global
// WGMMA-SAME: cp.async.mbarrier.arrive.noinc.shared.b64
// WGMMA-SAME: mbarrier.try_wait.parity.shared.b64
// WGMMA-SAME: wgmma.fence.sync.aligned
// WGMMA-SAME: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// WGMMA-SAME: wgmma.commit_group.sync.aligned
// STAGED-NOT: wgmma
// STAGED-SAME: cp.async.cg.shared.global
// STAGED-SAME: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// STAGED-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-SAME: .entry moe_grouped_matmul_small
// CHECK-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-SAME: .entry moe_combine
// PDL-SAME:  griddepcontrol.launch_dependents
// PDL-SAME:  griddepcontrol.wait
// CHECK:     llvm.func @experts_workspace_size({{.*}}) -> i64
// BIN:       gpu.binary @moe_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, properties = {ISAToBinaryTimeInMs

func.func @experts(%x: tensor<?x64xbf16>, %w13: tensor<4x96x64xbf16>, %w2: tensor<4x64x48xbf16>,
                   %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %rows, %offsets = moe.dispatch %ids weights(%w : tensor<?x2xf32>) {num_experts = 4 : i64}
      : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>
  %m = tensor.dim %rows, %c0 : tensor<?xi32>
  %i1 = tensor.empty(%m) : tensor<?x48xf32>
  %a = moe.grouped_matmul ins(%x, %w13, %offsets : tensor<?x64xbf16>, tensor<4x96x64xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) outs(%i1 : tensor<?x48xf32>)
      {epilogue = #moe.activation<silu>, gather, k = 2 : i64} -> tensor<?x48xf32>
  %i2 = tensor.empty(%m) : tensor<?x64xf32>
  %ys = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<?x48xf32>, tensor<4x64x48xbf16>, tensor<5xi32>)
      rows(%rows : tensor<?xi32>) row_scale(%w : tensor<?x2xf32>) outs(%i2 : tensor<?x64xf32>)
      {k = 2 : i64} -> tensor<?x64xf32>
  %i3 = tensor.empty(%t) : tensor<?x64xbf16>
  %y = moe.combine ins(%ys, %rows, %w : tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xf32>)
      outs(%i3 : tensor<?x64xbf16>) {prescaled} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
