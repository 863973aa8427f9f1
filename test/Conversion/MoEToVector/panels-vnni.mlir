// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=sapphirerapids" | FileCheck %s --check-prefixes=CHECK,DOT
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=skylake-avx512" | FileCheck %s --check-prefixes=CHECK,WIDEN
// RUN: moe-opt %s --convert-moe-to-vector="target-cpu=sapphirerapids panel-row-block=2 panel-column-block=2" | FileCheck %s --check-prefix=BLOCK
// RUN: not moe-opt %s --convert-moe-to-vector="target-cpu=pentium-9000" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-opt %s --convert-moe-to-vector="panel-column-block=5" 2>&1 | FileCheck %s --check-prefix=COLUMNS

// BAD: error: convert-moe-to-vector: unknown target-cpu 'pentium-9000' (an LLVM x86-64 CPU name such as skylake-avx512, or native)
// COLUMNS: error: convert-moe-to-vector: panel-column-block must be in [1, 4], got 5

// bf16 weights in the panels_vnni layout ([E, N / P, K / 2, 2P], P = 16): the
// loop runs over the 10 k-pairs of K = 20, each weight vector is one 32 x
// bf16 load. With AVX512_BF16 (sapphirerapids) the f32 activations are
// rounded to bf16 once, before the work items (an scf.forall over blocks of
// rows, 16 lanes at a time with a masked tail for K = 20), and each row's
// pair is one 32-bit broadcast into vdpbf16ps; without it (skylake-avx512)
// each weight word splits into two f32 vectors (shift, mask) for two FMAs.
// CHECK-LABEL: func.func @vnni
// DOT: scf.forall
// DOT: arith.truncf %{{.*}} : vector<16xf32> to vector<16xbf16>
// DOT: vector.transfer_write %{{.*}} {in_bounds = [true]} : vector<16xbf16>, tensor<?x20xbf16>
// DOT: arith.truncf %{{.*}} : vector<16xf32> to vector<16xbf16>
// DOT: vector.transfer_write %{{.*}} : vector<16xbf16>, tensor<?x20xbf16>
// DOT: tensor.parallel_insert_slice
// CHECK: scf.forall
// CHECK: scf.for %{{.*}} = %c0{{(_[0-9]+)?}} to %c10{{(_[0-9]+)?}} step %c1{{(_[0-9]+)?}} iter_args
// CHECK: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x4x10x32xbf16>, vector<32xbf16>
// DOT: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<?x20xbf16>, vector<2xbf16>
// DOT: vector.bitcast %{{.*}} : vector<2xbf16> to vector<1xi32>
// DOT: vector.broadcast %{{.*}} : vector<1xi32> to vector<16xi32>
// DOT: x86vector.avx512.dot %{{.*}} : vector<32xbf16> -> vector<16xf32>
// WIDEN-NOT: x86vector.avx512.dot
// WIDEN: arith.shli %{{.*}} : vector<16xi32>
// WIDEN: arith.andi %{{.*}} : vector<16xi32>
// WIDEN: vector.fma
// CHECK: math.exp %{{.*}} : vector<16xf32>
// CHECK-NOT: moe.grouped_matmul
// A register block of 2 rows and 2 panels (32 GLU output columns: 4 weight
// vectors per k-pair, their gate and up halves): each row's broadcast feeds
// four vdpbf16ps. The columns a whole block does not cover go one panel (2
// weight vectors) at a time, then the partial panel under masks.
// BLOCK-LABEL: func.func @vnni
// BLOCK: scf.for %{{.*}} step %c32
// BLOCK: scf.for %{{.*}} = %c0{{(_[0-9]+)?}} to %c10{{(_[0-9]+)?}} step %c1{{(_[0-9]+)?}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// BLOCK-COUNT-4: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x4x10x32xbf16>, vector<32xbf16>
// BLOCK: vector.broadcast %{{.*}} : vector<1xi32> to vector<16xi32>
// BLOCK-COUNT-4: x86vector.avx512.dot
// BLOCK-NEXT: vector.transfer_read %{{.*}} : tensor<?x20xbf16>, vector<2xbf16>
// BLOCK: vector.broadcast %{{.*}} : vector<1xi32> to vector<16xi32>
// BLOCK-COUNT-4: x86vector.avx512.dot
// BLOCK: scf.for %{{.*}} step %c16
// BLOCK: scf.for %{{.*}} step %c16
func.func @vnni(%x: tensor<?x20xf32>, %w: tensor<4x4x10x32xbf16>, %o: tensor<5xi32>, %r: tensor<?xi32>, %s: tensor<?x2xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x20xf32>, tensor<4x4x10x32xbf16>, tensor<5xi32>)
      rows(%r : tensor<?xi32>) row_scale(%s : tensor<?x2xf32>) outs(%init : tensor<?x32xf32>)
      {gather, k = 2 : i64, epilogue = #moe.activation<silu>, rhs_layout = #moe.rhs_layout<panels_vnni>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// f32 weights in the panels_vnni layout are left to the reference lowering.
// CHECK-LABEL: func.func @vnni_f32
// CHECK: moe.grouped_matmul
func.func @vnni_f32(%a: tensor<8x16xf32>, %w: tensor<4x2x8x32xf32>, %o: tensor<5xi32>, %init: tensor<8x32xf32>) -> tensor<8x32xf32> {
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x2x8x32xf32>, tensor<5xi32>)
      outs(%init : tensor<8x32xf32>) {rhs_layout = #moe.rhs_layout<panels_vnni>} -> tensor<8x32xf32>
  return %h : tensor<8x32xf32>
}
