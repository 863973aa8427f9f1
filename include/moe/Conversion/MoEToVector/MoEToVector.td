//===- MoEToVector.td - Vectorized CPU grouped matmul ------*- tablegen -*-===//

#ifndef MOE_CONVERSION_MOETOVECTOR_MOETOVECTOR_TD
#define MOE_CONVERSION_MOETOVECTOR_MOETOVECTOR_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToVectorPass : Pass<"convert-moe-to-vector"> {
  let summary = "Lowers moe.grouped_matmul to a parallel, vectorized CPU kernel";
  let description = [{
    Lowers every `moe.grouped_matmul` (fused forms included) to an
    `scf.forall` over (column tile, expert) work items writing disjoint tiles
    of the result, with `vector` dialect inner loops:

    - work items are ordered column-tile-major, so any contiguous chunk of
      them covers every expert: a static split over threads stays balanced
      when one expert holds most rows; experts with no rows return at once;
    - weights in the `nk` layout (`[E, N, K]`): each weight row `W[e, n, :]`
      is read once per block of `row-block` routed rows, whose A rows
      (gathered through `rows` when fused) stay in L1, and each A row load
      serves `column-block` output columns (with their up projections for a
      GLU); products accumulate in f32 `vector-width`-lane FMAs along K, with
      a masked tail when K is not a multiple of the width; the GLU epilogue,
      the row scale and the cast are applied per element;
    - weights in the `panels` layout (`[E, N / P, K, P]`, the packed layout
      of `moe_mlir.pack`) or the `kn` layout (`[E, K, N]`): each work item
      covers `panel-column-tile` output columns in panels of two weight
      vectors per k (2 x `vector-width` columns, or `vector-width` columns
      with their gate and up weights for a GLU). A register block of
      `panel-row-block` routed rows and `panel-column-block` panels
      accumulates rank-1 updates `broadcast(A[row, k]) * W[e, k, panels]`
      in 2 x `panel-row-block` x `panel-column-block` vector registers
      (each A broadcast feeds 2 x `panel-column-block` FMAs), with no
      horizontal reductions; the columns a whole block does not cover go
      one panel at a time, as do blocks of one row, and the rows whole
      blocks leave go in one block of their count. The GLU epilogue, the
      row scale and the cast work on whole vectors. Weights
      `prefetch-distance` rows of k ahead are prefetched. Panels whose width
      P (or GLU half width) is not a multiple of `vector-width` are left to
      the reference lowering;
    - bf16 weights in the `panels_vnni` layout (`[E, N / P, K / 2, 2P]`,
      each column's k in pairs): the same blocks, one k-pair per step. When
      `target-cpu` has AVX512_BF16, each row's pair of A elements is
      broadcast as one 32-bit word into `x86vector.avx512.dot`
      (`vdpbf16ps`: both products, f32 accumulation), with f32 or f16
      activations rounded to bf16 once before the work items (as the GPU's
      tensor cores take them); otherwise each weight word splits into its
      two bf16 as f32 by a shift and a mask, for two FMAs per vector.

    - quantized weights (`#moe.weight_quant`) in the `nk` layout are
      dequantized in registers before the f32 FMAs, and the scf.forall's
      `moe.weight_decode` attribute says how: FP8 (`fp8_e4m3_integer_ops`,
      activations quantized beforehand by `moe-quantize-activations`) with
      integer ops; int8 (`int8_row_scale`) converted to f32, the row's scale
      multiplying the sum; mxfp4 and int4 two nibbles per byte, a step of
      2 x `vector-width` k in one scale group, the even and odd k as two
      vectors (the activations split by two shuffles to match), decoded
      through a 16-entry table per step with vpermps
      (`mxfp4_table_permute`, `int4_table_permute`: `vector-width` 16 and
      an AVX-512 `target-cpu`) or with integer ops (`mxfp4_integer_ops`,
      `int4_integer_ops`: every other target, AVX2 included). A step that
      would span two scale groups (`vector-width` above 16) is left to the
      reference lowering.
    - quantized weights in the `panels` layout (`[E, N / P, Ks, P]`,
      `moe_mlir.pack.quantized_to_panels`; the weight-only formats' scales
      and zero points in panels too): steps of 4 weight vectors (64
      columns, or 32 with their up halves for a GLU) and blocks of up to 3
      routed rows; each stored row of a panel is decoded once per row block
      and feeds every row of it, the scales multiply partial sums once per
      scale group. `moe.weight_decode`: `mxfp4_panel_bf16_table_dot` and
      `int4_panel_bf16_table_dot` (bf16 activations and AVX512_BF16: a
      32-entry bf16 table per word, vpermw, into vdpbf16ps),
      `mxfp4_panel_bf16_word_table_dot` and `int4_panel_bf16_word_table_dot`
      (the same in 64-wide panels, whose rows are in the word order: the
      row's words, shifted, index the table as they are,
      `moe.x86.permute_words`), `int4_panel_bf16_word_table_dot_zero_sums`
      (the same for int4 with zero points: the table holds the codes, and
      z * s times the group's sum of each row's activations comes off the
      accumulators),
      `*_panel_table_permute` (vpermps f32 tables), `*_panel_integer_ops`
      (AVX2), `int8_panel_convert`, `fp8_e4m3_panel_f16` (e4m3 bits as f16
      times 2^-8, vcvtph2ps).

    Other bf16 and f16 weights and activations are extended to f32 in
    registers.
    Rows in no expert's range stay zero. Each output element is reduced by
    one thread in a fixed order, so results are deterministic run to run.
    Other moe ops are left for `convert-moe-to-linalg`.
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"16",
           "f32 lanes of the inner FMA loop (16 for AVX-512, 8 for AVX2)">,
    Option<"rowBlock", "row-block", "int64_t", /*default=*/"4",
           "nk weights: routed rows sharing each weight-row load">,
    Option<"columnBlock", "column-block", "int64_t", /*default=*/"2",
           "nk weights: output columns sharing each A-row load">,
    Option<"columnTile", "column-tile", "int64_t", /*default=*/"16",
           "nk weights: output columns per work item">,
    Option<"panelRowBlock", "panel-row-block", "int64_t", /*default=*/"6",
           "panels and kn weights: routed rows of the register block">,
    Option<"panelColumnBlock", "panel-column-block", "int64_t",
           /*default=*/"2",
           "panels and kn weights: panels of output columns (two weight "
           "vectors each) of the register block">,
    Option<"panelColumnTile", "panel-column-tile", "int64_t",
           /*default=*/"128",
           "panels and kn weights: output columns per work item">,
    Option<"prefetchDistance", "prefetch-distance", "int64_t",
           /*default=*/"16",
           "panels and kn weights: weight rows prefetched ahead (0: none)">,
    Option<"targetCpu", "target-cpu", "std::string", /*default=*/"\"native\"",
           "the CPU the code is for (an LLVM x86 CPU name; native: the "
           "host): decides whether panels_vnni weights use AVX512_BF16 "
           "and 4-bit weights AVX-512 vpermps tables">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
    "::mlir::x86vector::X86VectorDialect",
  ];
}

#endif // MOE_CONVERSION_MOETOVECTOR_MOETOVECTOR_TD
