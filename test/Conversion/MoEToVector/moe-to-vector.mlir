// RUN: moe-opt %s --convert-moe-to-vector="vector-width=8 row-block=2 column-tile=4 panel-row-block=2" | FileCheck %s
// RUN: not moe-opt %s --convert-moe-to-vector="vector-width=0" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: error: convert-moe-to-vector: vector-width must be a power of two in [1, 64], got 0
// Options past what the kernels can unroll are refused before any op is
// looked at, as is a negative prefetch distance.
// RUN: not moe-opt %s --convert-moe-to-vector="vector-width=99999999999" 2>&1 | FileCheck %s --check-prefix=HUGE
// HUGE: error: convert-moe-to-vector: vector-width must be a power of two in [1, 64], got 99999999999
// RUN: not moe-opt %s --convert-moe-to-vector="vector-width=12" 2>&1 | FileCheck %s --check-prefix=NOTPOW2
// NOTPOW2: error: convert-moe-to-vector: vector-width must be a power of two in [1, 64], got 12
// RUN: not moe-opt %s --convert-moe-to-vector="panel-row-block=100000" 2>&1 | FileCheck %s --check-prefix=PANELROWS
// PANELROWS: error: convert-moe-to-vector: panel-row-block must be in [1, 32], got 100000
// RUN: not moe-opt %s --convert-moe-to-vector="prefetch-distance=-1" 2>&1 | FileCheck %s --check-prefix=PREFETCH
// PREFETCH: error: convert-moe-to-vector: prefetch-distance must be in [0, 4096], got -1
// RUN: not moe-opt %s --moe-lower-to-cpu-pipeline="vector-width=99999999999" 2>&1 | FileCheck %s --check-prefix=PIPELINE
// PIPELINE: error: convert-moe-to-vector: vector-width must be a power of two in [1, 64], got 99999999999

// A fused grouped matmul becomes an scf.forall over (column tile, expert)
// items with f32 vector FMAs along K, a masked tail (K = 20 is not a multiple
// of 8), the GLU epilogue and the row scale per element.
// CHECK-LABEL: func.func @fused
// CHECK: %[[CLEARED:.*]] = linalg.fill
// CHECK: scf.forall (%[[ITEM:.*]]) in (12) shared_outs(%[[OUT:.*]] = %[[CLEARED]])
// CHECK: arith.remui %[[ITEM]], %c4
// CHECK: %[[TILE:.*]] = tensor.extract_slice %[[OUT]]
// CHECK: scf.for
// CHECK: tensor.extract %{{.*}} : tensor<?x2xf32>
// CHECK: scf.for
// CHECK: scf.for {{.*}} to %c16 step %c8
// CHECK: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x24x20xbf16>, vector<8xbf16>
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK: vector.fma
// CHECK: vector.transfer_read %{{.*}} : tensor<4x24x20xbf16>, vector<8xbf16>
// CHECK: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<8xf32> into f32
// CHECK: math.exp
// CHECK: scf.forall.in_parallel
// CHECK: tensor.parallel_insert_slice
// CHECK-NOT: moe.grouped_matmul
func.func @fused(%x: tensor<?x20xbf16>, %w: tensor<4x24x20xbf16>, %o: tensor<5xi32>, %r: tensor<?xi32>, %s: tensor<?x2xf32>, %init: tensor<?x12xf32>) -> tensor<?x12xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x20xbf16>, tensor<4x24x20xbf16>, tensor<5xi32>)
      rows(%r : tensor<?xi32>) row_scale(%s : tensor<?x2xf32>) outs(%init : tensor<?x12xf32>)
      {gather, k = 2 : i64, epilogue = #moe.activation<silu>} -> tensor<?x12xf32>
  return %h : tensor<?x12xf32>
}

// Weights in the panels layout ([E, N / P, K, P], P = 16): 2 rows x 2 weight
// vectors of 8 lanes per k (the gate and up halves), rank-1 updates with the
// A element broadcast, weight prefetch, and a vector epilogue with no
// horizontal reduction.
// CHECK-LABEL: func.func @panels
// CHECK: scf.forall
// CHECK: bufferization.to_buffer %{{.*}} read_only
// CHECK: scf.for {{.*}} step %c8{{(_[0-9]+)?}} iter_args
// CHECK: scf.for {{.*}} step %c2{{(_[0-9]+)?}} iter_args
// CHECK: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x4x20x16xbf16>, vector<8xbf16>
// CHECK: memref.prefetch
// CHECK: vector.broadcast %{{.*}} : f32 to vector<8xf32>
// CHECK: vector.fma
// CHECK-NOT: vector.reduction
// CHECK: math.exp %{{.*}} : vector<8xf32>
// CHECK: vector.transfer_write %{{.*}} : vector<8xf32>, tensor<?x?xf32>
// CHECK-NOT: moe.grouped_matmul
func.func @panels(%x: tensor<?x20xbf16>, %w: tensor<4x4x20x16xbf16>, %o: tensor<5xi32>, %r: tensor<?xi32>, %s: tensor<?x2xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x20xbf16>, tensor<4x4x20x16xbf16>, tensor<5xi32>)
      rows(%r : tensor<?xi32>) row_scale(%s : tensor<?x2xf32>) outs(%init : tensor<?x32xf32>)
      {gather, k = 2 : i64, epilogue = #moe.activation<silu>, rhs_layout = #moe.rhs_layout<panels>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// A bias: nk weights add bias[e, n] to each reduced column (the gate's and
// the up's), panels add the bias vectors of the panel's weight columns to the
// accumulators before the GLU, a partial panel reading them masked.
// CHECK-LABEL: func.func @fused_bias
// CHECK: vector.reduction <add>
// CHECK: %[[B:.*]] = tensor.extract %{{.*}} : tensor<4x24xbf16>
// CHECK: %[[BF:.*]] = arith.extf %[[B]] : bf16 to f32
// CHECK: arith.addf %{{.*}}, %[[BF]] : f32
// CHECK: math.exp
func.func @fused_bias(%x: tensor<?x20xbf16>, %w: tensor<4x24x20xbf16>, %o: tensor<5xi32>, %r: tensor<?xi32>, %b: tensor<4x24xbf16>, %init: tensor<?x12xf32>) -> tensor<?x12xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x20xbf16>, tensor<4x24x20xbf16>, tensor<5xi32>)
      rows(%r : tensor<?xi32>) bias(%b : tensor<4x24xbf16>) outs(%init : tensor<?x12xf32>)
      {gather, k = 2 : i64, epilogue = #moe.activation<silu>} -> tensor<?x12xf32>
  return %h : tensor<?x12xf32>
}

// CHECK-LABEL: func.func @panels_bias
// CHECK: vector.fma
// CHECK: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<4x64xf32>, vector<8xf32>
// CHECK: arith.addf %{{.*}} : vector<8xf32>
// CHECK: vector.shuffle
// CHECK: vector.transfer_read %{{.*}} : tensor<4x64xf32>, vector<8xf32>
// CHECK: arith.addf %{{.*}} : vector<8xf32>
func.func @panels_bias(%x: tensor<?x20xbf16>, %w: tensor<4x4x20x16xbf16>, %o: tensor<5xi32>, %b: tensor<4x64xf32>, %init: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x20xbf16>, tensor<4x4x20x16xbf16>, tensor<5xi32>)
      bias(%b : tensor<4x64xf32>) outs(%init : tensor<?x32xf32>)
      {epilogue = #moe.activation<swiglu_oai>, glu_layout = #moe.glu_layout<interleaved>, rhs_layout = #moe.rhs_layout<panels>} -> tensor<?x32xf32>
  return %h : tensor<?x32xf32>
}

// Panels narrower than a vector are left to the reference lowering.
// CHECK-LABEL: func.func @narrow_panels
// CHECK: moe.grouped_matmul
func.func @narrow_panels(%a: tensor<8x16xf32>, %w: tensor<4x6x16x4xf32>, %o: tensor<5xi32>, %init: tensor<8x24xf32>) -> tensor<8x24xf32> {
  %h = moe.grouped_matmul ins(%a, %w, %o : tensor<8x16xf32>, tensor<4x6x16x4xf32>, tensor<5xi32>)
      outs(%init : tensor<8x24xf32>) {rhs_layout = #moe.rhs_layout<panels>} -> tensor<8x24xf32>
  return %h : tensor<8x24xf32>
}
