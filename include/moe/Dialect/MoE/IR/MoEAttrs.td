//===- MoEAttrs.td - Attributes of the moe dialect ---------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "moe/Dialect/MoE/IR/MoEDialect.td"
include "moe/Dialect/MoE/IR/MoEEnums.td"

class MoE_EnumAttr<EnumAttrInfo info, string mnemonic>
    : EnumAttr<MoE_Dialect, info, mnemonic> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_ScoringAttr : MoE_EnumAttr<MoE_Scoring, "scoring">;
def MoE_GroupScoreAttr : MoE_EnumAttr<MoE_GroupScore, "group_score">;
def MoE_SecondExpertPolicyAttr
    : MoE_EnumAttr<MoE_SecondExpertPolicy, "second_expert_policy">;
def MoE_DropPolicyAttr : MoE_EnumAttr<MoE_DropPolicy, "drop_policy">;
def MoE_ActivationAttr : MoE_EnumAttr<MoE_Activation, "activation">;
def MoE_GluLayoutAttr : MoE_EnumAttr<MoE_GluLayout, "glu_layout">;
def MoE_RhsLayoutAttr : MoE_EnumAttr<MoE_RhsLayout, "rhs_layout">;

def MoE_MatmulKernelAttr : MoE_EnumAttr<MoE_MatmulKernel, "matmul_kernel">;
def MoE_SharedLayoutAttr : MoE_EnumAttr<MoE_SharedLayout, "shared_layout">;

//===----------------------------------------------------------------------===//
// Quantized weights
//===----------------------------------------------------------------------===//

def MoE_WeightQuantAttr : AttrDef<MoE_Dialect, "WeightQuant"> {
  let mnemonic = "weight_quant";
  let summary = "how a grouped matmul's weights and activations are quantized";
  let description = [{
    The quantization of a `moe.grouped_matmul`'s (or a `moe.layer`'s)
    expert weights, with the scales as explicit operands:

    - `format`: the weights' element format. `fp8_e4m3`: `f8E4M3FN`
      weights `W[e, n, k]` with f32 scales `S[e, ceil(N / bn),
      ceil(K / bk)]`; the weight is `W[e, n, k] * S[e, n / bn, k / bk]`
      (the checkpoint's `weight_scale_inv`).
    - `mxfp4` (OCP Microscaling, gpt-oss): `f4E2M1FN` values packed two per
      byte along K in `i8` weights `[E, N, K / 2]` (the low nibble holds the
      even k), one `f8E8M0FNU` scale per 32 consecutive K (`block = [1,
      32]`); the weight is `fp4 * 2^(scale - 127)`.
    - `int4` (group-wise, AWQ/GPTQ): `q` in `[0, 15]` packed two per byte
      along K in `i8` weights `[E, N, K / 2]` (the low nibble first), f32
      scales and, optionally, `i8` zero points `[E, N, ceil(K / g)]` for
      `block = [1, g]`, g in {32, 64, 128}; the weight is `(q - z) * s`,
      `z = 8` without zero points (symmetric).
    - `int8` (per-channel, weight-only): `i8` weights `[E, N, K]` in
      `[-127, 127]`, one f32 scale per output row (`block = [1, K]`).
    - `block = [bn, bk]`: the block of weights that shares a scale. A block
      size at least the dimension makes one block across it: `[1, K]` is
      per-channel, `[N, K]` per-tensor.
    - `activation`: how the matmul's input rows are quantized before the
      product. `dynamic`: each row (after the gather) in groups of `bk`
      along K, scale `amax(|a|) / 448` in f32 (1 for an all-zero group);
      `static`: one f32 scale for the whole tensor (the `lhs_scales`
      operand, `[1]`). Either way `a / scale` (f32) is clamped to
      `[-448, 448]`, rounded to the nearest `e4m3` value (ties to even) and
      multiplied by the scale again; `none`: the input is used as it is.

    The products accumulate in f32.

    The weight-only formats (`mxfp4`, `int4`, `int8`) take `activation =
    none` and the `nk` layout.

    Example: `#moe.weight_quant<format = fp8_e4m3, block = [128, 128],
    activation = dynamic>`, `#moe.weight_quant<format = int4, block = [1,
    128], activation = none>`
  }];
  let parameters = (ins
    EnumParameter<MoE_WeightFormat>:$format,
    ArrayRefParameter<"int64_t">:$block,
    EnumParameter<MoE_ActivationQuant>:$activation
  );
  let assemblyFormat = [{
    `<` `format` `=` $format `,` `block` `=` `[` $block `]` `,`
    `activation` `=` $activation `>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The block's extent along N (bn) and along K (bk).
    int64_t getBlockN() const { return getBlock()[0]; }
    int64_t getBlockK() const { return getBlock()[1]; }
    /// The element type of weights in this format (the storage type of
    /// the packed 4-bit formats).
    ::mlir::Type getWeightElementType() const;
    /// The element type of the scales: f8E8M0FNU for mxfp4, else f32.
    ::mlir::Type getScaleElementType() const;
    /// How many weights one stored element holds along K (2 for the
    /// packed 4-bit formats, else 1).
    int64_t getWeightsPerElement() const;
    /// Whether the weights may come with zero points (int4).
    bool allowsZeroPoints() const;
  }];
}

//===----------------------------------------------------------------------===//
// GPU kernel configurations
//===----------------------------------------------------------------------===//

def MoE_MatmulTileAttr : AttrDef<MoE_Dialect, "MatmulTile"> {
  let mnemonic = "matmul_tile";
  let summary = "one GPU kernel of a grouped matmul and its tile shape";
  let description = [{
    The kernel that computes a grouped matmul's tiles and how: the block
    tile (`rows` routed rows by `columns` output columns), the K that one
    step of the main loop takes, the K tiles kept in flight, the loads
    issued together, the warps that split K, the row tiles that sweep the
    weights together, and the shared-memory layout of each operand.

    | kernel | rows | columns (GLU: output columns) | k | stages | layouts (a, b) |
    |---|---|---|---|---|---|
    | `simt` | 1 | 128 | 1 | 1 | none, none |
    | `mma_sync` | 16, 32, 48 or 64 | (4 / split_k) warps x a multiple of 8 | 32 | 1 | none, none |
    | `mma_sync_staged` | 128 | 128 (64) | 32 | 2 to 6 | padded, padded |
    | `wgmma`, `wgmma_warp_specialized` | 128 | 256 (128) | 64 | 2 to 4 | swizzle_128b or k_chunk_major, swizzle_128b |
    | `mma_sync_fp8` | 16, 32, 48 or 64 | (4 / split_k) warps x a multiple of 8 (8 to 64 each) | 32 or 64 | 1 or 2 | none, none |
    | `wgmma_fp8` | 128 | 128 (64) | 128 | 2 to 6 | swizzle_128b, swizzle_128b |
    | `mma_sync_wonly` | 16, 32, 48 or 64 | 4 warps x a multiple of 8 (32 to 256) | 128 (4-bit), 64 (int8) | 1 or 2 | none, none |

    - `simt`: one thread per output element (f32 weights, the `kn` layout,
      K not a multiple of 8).
    - `mma_sync`: 4 warps load their `mma.sync.m16n8k16` fragments straight
      from global memory, `unroll` steps of 32 K in flight; with
      `split_k = 4` the block's warps share their columns and each takes a
      quarter of K (decode).
    - `mma_sync_staged`: 8 warps; tiles copied into shared memory with
      cp.async (rows padded by 8 elements) and read with ldmatrix.
    - `wgmma`: two warpgroups multiply with `wgmma.mma_async` (sm_90a), the
      weights brought by TMA in the 128-byte swizzle; every warp copies and
      multiplies.
    - `wgmma_warp_specialized`: the same with a third warpgroup that issues
      the copies, stages handed over through full and empty mbarriers.
    - `mma_sync_fp8`: FP8 weights (`weight_quant`, sm_89 and newer, PTX ISA
      8.4): the activations quantized to e4m3 by a kernel of their own, then
      4 warps load `mma.sync.m16n8k32` e4m3 fragments from global memory,
      `unroll` steps of `k` in flight (a divisor of the steps of one K
      block), summing each K block in f32 before scaling it into the
      accumulators; `k = 64` loads 16 bytes per lane and row a step (two
      MMAs), `stages = 2` issues the next group's loads and scales before
      this group's MMAs, and `split_k = 4` lets the 4 warps share their
      columns and each take a quarter of the K blocks.
    - `wgmma_fp8`: FP8 weights on sm_90a (prefill; K blocks of a multiple
      of 128 columns, or one over K): the activations quantized to e4m3 by
      a kernel of their own; a producer warpgroup brings the weights by TMA
      and the quantized A rows by cp.async, both in the 128-byte swizzle,
      in K tiles of 128; two consumer warpgroups multiply each with four
      `wgmma.mma_async.m64n128k32` e4m3 into f32 partial sums per K tile and
      scale them into the f32 accumulators with the rows' and the weight
      block's scales.
    - `mma_sync_wonly`: weight-only weights (`weight_quant` format
      `mxfp4`, `int4` or `int8`; sm_80 and newer): 4 warps load the packed
      weights from global memory, 16 bytes per lane and weight row for a
      step of `k` (128 for the 4-bit formats, 64 for int8), dequantize them
      in registers into bf16 pairs (f16 with f16 activations) and feed
      `mma.sync.m16n8k16` with f32 accumulators; `stages = 2` issues the next group's loads before
      this group's MMAs.

    `tile_group` row tiles sweep each column block of the weights together
    (the staged kernels). `inline_constants`: the kernel sees the host's
    constants as constants (`moe-sink-launch-constants`).

    Example: `#moe.matmul_tile<kernel = mma_sync, rows = 16, columns = 16,
    k = 32, stages = 1, unroll = 8, split_k = 4, tile_group = 1,
    a_layout = none, b_layout = none, inline_constants = false>`
  }];
  let parameters = (ins
    EnumParameter<MoE_MatmulKernel>:$kernel,
    "int64_t":$rows,
    "int64_t":$columns,
    "int64_t":$k,
    "int64_t":$stages,
    "int64_t":$unroll,
    "int64_t":$split_k,
    "int64_t":$tile_group,
    EnumParameter<MoE_SharedLayout>:$a_layout,
    EnumParameter<MoE_SharedLayout>:$b_layout,
    "bool":$inline_constants
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MoE_GroupedMatmulKernelsAttr : AttrDef<MoE_Dialect, "GroupedMatmulKernels"> {
  let mnemonic = "grouped_matmul_kernels";
  let summary = "the GPU kernels of one grouped matmul";
  let description = [{
    The configuration that `moe-gpu-select-kernel-config` picks for a
    `moe.grouped_matmul` and `convert-moe-to-gpu` follows, attached as the
    op's `moe.gpu_kernels` attribute: the decode-sized kernel (`small`), the
    prefill-sized one (`large`), and the average rows per expert from which
    the host launches `large`. A `simt` configuration has no second shape:
    both are `simt`. Written in the input IR, it pins the kernels.

    ```mlir
    %y = moe.grouped_matmul ... {moe.gpu_kernels = #moe.grouped_matmul_kernels<
        small = #moe.matmul_tile<kernel = mma_sync, ...>,
        large = #moe.matmul_tile<kernel = wgmma_warp_specialized, ...>,
        large_rows_per_expert = 8>}
    ```
  }];
  let parameters = (ins
    MoE_MatmulTileAttr:$small,
    MoE_MatmulTileAttr:$large,
    "int64_t":$large_rows_per_expert
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD
