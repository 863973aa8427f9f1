//===- MoEKernelConfig.cpp - GPU kernel configurations of moe ops ---------===//
//
// Verifies `#moe.matmul_tile`, `#moe.grouped_matmul_kernels` and the
// `moe.gpu_kernels` attribute that carries them on a `moe.grouped_matmul`:
// every tile shape a kernel cannot run is refused here, with the op's
// location, so neither the selection pass nor the lowering meets one.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A `#moe.matmul_tile`'s parameters.
struct TileParameters {
  int64_t rows, columns, k, stages, unroll, splitK, tileGroup;
  SharedLayout aLayout, bLayout;
};

/// A closed range of a parameter; lo == hi where a kernel fixes it.
struct Bounds {
  int64_t lo, hi;
};

/// What a kernel allows of its K loop: the K step, the stages, the unroll,
/// split-K, the tile group and the shared-memory layouts of A and weights.
struct LoopLimits {
  Bounds k, stages, unroll, splitK, tileGroup;
  SmallVector<SharedLayout, 2> aLayouts, bLayouts;
};

/// The value a kernel fixes for one parameter, or the range it allows.
struct Expect {
  function_ref<InFlightDiagnostic()> emitError;
  MatmulKernel kernel;

  LogicalResult equals(StringRef name, int64_t value, int64_t expected) const {
    if (value == expected)
      return success();
    return emitError() << "the " << stringifyMatmulKernel(kernel)
                       << " kernel needs " << name << " = " << expected
                       << ", got " << value;
  }
  LogicalResult within(StringRef name, int64_t value, int64_t lo,
                       int64_t hi) const {
    if (value >= lo && value <= hi)
      return success();
    return emitError() << "the " << stringifyMatmulKernel(kernel)
                       << " kernel needs " << name << " in [" << lo << ", "
                       << hi << "], got " << value;
  }
  LogicalResult layout(StringRef name, SharedLayout value,
                       ArrayRef<SharedLayout> allowed) const {
    if (llvm::is_contained(allowed, value))
      return success();
    InFlightDiagnostic diag = emitError();
    diag << "the " << stringifyMatmulKernel(kernel) << " kernel needs " << name
         << " in {";
    llvm::interleaveComma(allowed, diag, [&](SharedLayout l) {
      diag << stringifySharedLayout(l);
    });
    return diag << "}, got " << stringifySharedLayout(value);
  }
  /// `value` = lo where the kernel fixes it (lo == hi), else in [lo, hi].
  LogicalResult bounded(StringRef name, int64_t value, Bounds range) const {
    return range.lo == range.hi ? equals(name, value, range.lo)
                                : within(name, value, range.lo, range.hi);
  }

  /// The K loop's parameters against `limits`, the first violation reported.
  LogicalResult loop(const TileParameters &tile,
                     const LoopLimits &limits) const {
    return success(
        succeeded(bounded("k", tile.k, limits.k)) &&
        succeeded(bounded("stages", tile.stages, limits.stages)) &&
        succeeded(bounded("unroll", tile.unroll, limits.unroll)) &&
        succeeded(bounded("split_k", tile.splitK, limits.splitK)) &&
        succeeded(bounded("tile_group", tile.tileGroup, limits.tileGroup)) &&
        succeeded(layout("a_layout", tile.aLayout, limits.aLayouts)) &&
        succeeded(layout("b_layout", tile.bLayout, limits.bLayouts)));
  }

  /// A kernel of 128-row tiles staged through shared memory (mma_sync_staged,
  /// wgmma, wgmma_fp8): `fullColumns` output columns a block, half as many
  /// with a GLU epilogue (the gate and up halves share the weight rows).
  LogicalResult stagedTile(const TileParameters &tile, int64_t fullColumns,
                           const LoopLimits &limits) const {
    if (tile.columns != fullColumns / 2 && tile.columns != fullColumns)
      return emitError() << "the " << stringifyMatmulKernel(kernel)
                         << " kernel's columns are " << fullColumns << " ("
                         << fullColumns / 2 << " with a GLU epilogue), got "
                         << tile.columns;
    return success(succeeded(equals("rows", tile.rows, 128)) &&
                   succeeded(loop(tile, limits)));
  }
};

/// Whether `kernel` multiplies with tensor cores.
bool isTensorCore(MatmulKernel kernel) { return kernel != MatmulKernel::simt; }

bool isWgmma(MatmulKernel kernel) {
  return kernel == MatmulKernel::wgmma ||
         kernel == MatmulKernel::wgmma_warp_specialized;
}

} // namespace

LogicalResult
MatmulTileAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                       MatmulKernel kernel, int64_t rows, int64_t columns,
                       int64_t k, int64_t stages, int64_t unroll,
                       int64_t splitK, int64_t tileGroup, SharedLayout aLayout,
                       SharedLayout bLayout, bool inlineConstants) {
  Expect e{emitError, kernel};
  TileParameters tile{rows,   columns,   k,       stages, unroll,
                      splitK, tileGroup, aLayout, bLayout};
  const SmallVector<SharedLayout, 2> none = {SharedLayout::none};
  switch (kernel) {
  case MatmulKernel::simt:
    return success(
        succeeded(e.equals("rows", rows, 1)) &&
        succeeded(e.equals("columns", columns, 128)) &&
        succeeded(
            e.loop(tile, {/*k=*/{1, 1}, /*stages=*/{1, 1}, /*unroll=*/{1, 1},
                          /*split_k=*/{1, 1}, /*tile_group=*/{1, 1},
                          /*a_layout=*/none, /*b_layout=*/none})));
  case MatmulKernel::mma_sync: {
    if (failed(e.within("rows", rows, 16, 64)))
      return failure();
    if (rows % 16)
      return emitError() << "the mma_sync kernel's rows are 16-row MMA tiles, "
                            "got "
                         << rows;
    // Bounded before it is multiplied: a huge `columns` must not wrap.
    if (failed(e.within("columns", columns, 8, 256)))
      return failure();
    if (splitK != 1 && splitK != 4)
      return emitError() << "the mma_sync kernel's split_k is 1 (each of the "
                            "4 warps has its own columns) or 4 (the warps "
                            "share them), got "
                         << splitK;
    // The block's 4 / split_k column groups of one warp each.
    int64_t warpColumns = columns * splitK / 4;
    if (columns < 1 || (columns * splitK) % 4 || warpColumns % 8 ||
        warpColumns > 64)
      return emitError() << "the mma_sync kernel's columns are 4 / split_k "
                            "warps of 8 to 64 columns (a multiple of 8), got "
                         << columns << " with split_k = " << splitK;
    // stages: groups of `unroll` K steps whose loads are in flight in
    // registers (2: the next group's loads go out before this group's MMAs).
    // split_k is 1 or 4, checked above.
    return e.loop(tile, {/*k=*/{32, 32}, /*stages=*/{1, 2}, /*unroll=*/{1, 16},
                         /*split_k=*/{1, 4}, /*tile_group=*/{1, 1},
                         /*a_layout=*/none, /*b_layout=*/none});
  }
  case MatmulKernel::mma_sync_fp8:
  case MatmulKernel::mma_sync_fp8_f16: {
    // The same main loops, with the MMA on e4m3 or on f16 fragments.
    StringRef name = stringifyMatmulKernel(kernel);
    if (failed(e.within("rows", rows, 16, 64)))
      return failure();
    if (rows % 16)
      return emitError() << "the " << name
                         << " kernel's rows are 16-row MMA "
                            "tiles, got "
                         << rows;
    // Bounded before it is multiplied: a huge `columns` must not wrap.
    if (failed(e.within("columns", columns, 8, 256)))
      return failure();
    if (splitK != 1 && splitK != 4)
      return emitError() << "the " << name
                         << " kernel's split_k is 1 (each of "
                            "the 4 warps has its own columns) or 4 (the warps "
                            "share them, each taking a quarter of the K "
                            "blocks), got "
                         << splitK;
    int64_t warpColumns = columns * splitK / 4;
    if ((columns * splitK) % 32 || warpColumns > 64)
      return emitError() << "the " << name
                         << " kernel's columns are 4 / "
                            "split_k warps of 8 to 64 columns (a multiple of "
                            "8), got "
                         << columns << " with split_k = " << splitK;
    // k: the K of one step, 8 bytes (one m16n8k32 MMA) or 16 bytes (two)
    // per lane and row.
    if (k != 32 && k != 64)
      return emitError() << "the " << name
                         << " kernel's k is 32 (8 bytes per "
                            "lane and row of a step) or 64 (16 bytes), got "
                         << k;
    // stages: groups of `unroll` steps in registers (S > 1: the loads of
    // the group S - 1 ahead go out before this group's MMAs).
    return e.loop(tile, {/*k=*/{32, 64}, /*stages=*/{1, 3}, /*unroll=*/{1, 16},
                         /*split_k=*/{1, 4}, /*tile_group=*/{1, 1},
                         /*a_layout=*/none, /*b_layout=*/none});
  }
  case MatmulKernel::mma_sync_wonly: {
    if (failed(e.within("rows", rows, 16, 64)))
      return failure();
    if (rows % 16)
      return emitError() << "the mma_sync_wonly kernel's rows are 16-row MMA "
                            "tiles, got "
                         << rows;
    if (failed(e.within("columns", columns, 32, 256)))
      return failure();
    if (columns % 32)
      return emitError() << "the mma_sync_wonly kernel's columns are 4 warps "
                            "of a multiple of 8 columns, got "
                         << columns;
    // k: 16 bytes of weights per lane and weight row, 4 lanes along K: 128
    // for the 4-bit formats, 64 for int8 (the op's verifier checks which).
    if (k != 64 && k != 128)
      return emitError() << "the mma_sync_wonly kernel's k is 128 (4-bit "
                            "weights) or 64 (int8), got "
                         << k;
    return success(
        succeeded(e.within("stages", stages, 1, 2)) &&
        succeeded(e.within("unroll", unroll, 1, 16)) &&
        succeeded(e.equals("split_k", splitK, 1)) &&
        succeeded(e.equals("tile_group", tileGroup, 1)) &&
        succeeded(e.layout("a_layout", aLayout, {SharedLayout::none})) &&
        succeeded(e.layout("b_layout", bLayout, {SharedLayout::none})));
  }
  case MatmulKernel::wgmma_fp8:
    // Stages of 32 KiB (128 x 128 bytes of A and of weights) in the 227 KiB
    // of an sm_90 block.
    return e.stagedTile(tile, /*fullColumns=*/128,
                        {/*k=*/{128, 128}, /*stages=*/{2, 6}, /*unroll=*/{1, 1},
                         /*split_k=*/{1, 1}, /*tile_group=*/{1, 64},
                         /*a_layout=*/{SharedLayout::swizzle_128b},
                         /*b_layout=*/{SharedLayout::swizzle_128b}});
  case MatmulKernel::mma_sync_staged:
    return e.stagedTile(tile, /*fullColumns=*/128,
                        {/*k=*/{32, 32}, /*stages=*/{2, 6}, /*unroll=*/{1, 1},
                         /*split_k=*/{1, 1}, /*tile_group=*/{1, 64},
                         /*a_layout=*/{SharedLayout::padded},
                         /*b_layout=*/{SharedLayout::padded}});
  case MatmulKernel::wgmma:
  case MatmulKernel::wgmma_warp_specialized:
    // Stages of 48 KiB (a 128 x 64 A tile and a 256 x 64 weight tile, 2
    // bytes an element) in the 227 KiB of an sm_90 block.
    return e.stagedTile(
        tile, /*fullColumns=*/256,
        {/*k=*/{64, 64}, /*stages=*/{2, 4}, /*unroll=*/{1, 1},
         /*split_k=*/{1, 1}, /*tile_group=*/{1, 64},
         /*a_layout=*/{SharedLayout::swizzle_128b, SharedLayout::k_chunk_major},
         /*b_layout=*/{SharedLayout::swizzle_128b}});
  }
  return emitError() << "unknown matmul kernel";
}

LogicalResult
GroupedMatmulKernelsAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 MatmulTileAttr small, MatmulTileAttr large,
                                 int64_t largeRowsPerExpert) {
  if (largeRowsPerExpert < 1)
    return emitError() << "large_rows_per_expert must be positive, got "
                       << largeRowsPerExpert;
  bool smallSimt = small.getKernel() == MatmulKernel::simt;
  bool largeSimt = large.getKernel() == MatmulKernel::simt;
  if (smallSimt != largeSimt)
    return emitError() << "a simt kernel has no second tile shape: small and "
                          "large must both be simt, or neither";
  return success();
}

/// Whether `op` can run the FP8 `tile`: FP8 weights in the nk layout,
/// quantized activations; for mma_sync_fp8, K a multiple of 8 (8-byte
/// fragment loads), K blocks of whole 32-wide steps and `unroll` dividing a
/// block's steps; for wgmma_fp8, K a multiple of 16 (the weights' TMA rows
/// are 16-byte aligned), K blocks of whole 128-wide K tiles (each tile's
/// partial sums take one scale) and the block's weight rows.
static LogicalResult verifyFp8TileForOp(GroupedMatmulOp op, StringRef slot,
                                        MatmulTileAttr tile) {
  StringRef kernel = stringifyMatmulKernel(tile.getKernel());
  auto fail = [&]() {
    return op.emitOpError()
           << "moe.gpu_kernels: the " << slot << " kernel " << kernel << " ";
  };
  WeightQuantAttr quant = op.getWeightQuantAttr();
  if (!quant)
    return fail() << "needs FP8 weights (weight_quant)";
  if (quant.getFormat() != WeightFormat::fp8_e4m3)
    return fail() << "needs FP8 weights (weight_quant format fp8_e4m3), got "
                     "format "
                  << stringifyWeightFormat(quant.getFormat());
  if (quant.getActivation() == ActivationQuant::none)
    return fail() << "multiplies e4m3 activations: it needs activation = "
                     "dynamic or static, got none";
  if (op.getRhsLayout() != RhsLayout::nk)
    return fail() << "needs the weights in the nk layout";
  auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
  int64_t reduction = weightShape(rhsType, op.getRhsLayout()).reduction;
  int64_t blockK = std::min(quant.getBlockK(), reduction);
  if (tile.getKernel() == MatmulKernel::wgmma_fp8) {
    if (reduction % 16)
      return fail() << "needs K a multiple of 16, got " << reduction;
    if (blockK < reduction && blockK % 128)
      return fail() << "needs K blocks of a multiple of 128 columns (or one "
                       "block over K), got bk = "
                    << quant.getBlockK() << " for K = " << reduction;
    int64_t columns = op.getEpilogue() ? 64 : 128;
    if (tile.getColumns() != columns)
      return fail() << "has 128 weight rows a block: " << columns
                    << " output columns "
                    << (op.getEpilogue() ? "with" : "without")
                    << " a GLU epilogue, got " << tile.getColumns();
    return success();
  }
  // A lane's k / 4 bytes of a step are all inside K or all past it, and a
  // step never spans two K blocks.
  int64_t stepK = tile.getK();
  if (reduction % (stepK / 4))
    return fail() << "needs K a multiple of " << stepK / 4
                  << " with k = " << stepK << ", got " << reduction;
  if (blockK < reduction && blockK % stepK)
    return fail() << "needs K blocks of a multiple of " << stepK
                  << " columns (or one block over K) with k = " << stepK
                  << ", got bk = " << quant.getBlockK()
                  << " for K = " << reduction;
  int64_t steps = llvm::divideCeil(blockK, stepK);
  if (steps % tile.getUnroll())
    return fail() << "needs unroll to divide the " << steps << " steps of "
                  << stepK << " of a K block, got " << tile.getUnroll();
  return success();
}

/// Whether `op` can run the weight-only `tile` (mma_sync_wonly): mxfp4,
/// int4 or int8 weights (the dialect keeps them nk), bf16, f16 (int4 and int8
/// only: the MMA is then f16) or f32 activations, and the tile's k the format's
/// step (16 bytes per lane and weight row, 4 lanes along K).
static LogicalResult verifyWeightOnlyTileForOp(GroupedMatmulOp op,
                                               StringRef slot,
                                               MatmulTileAttr tile) {
  auto fail = [&]() {
    return op.emitOpError()
           << "moe.gpu_kernels: the " << slot << " kernel mma_sync_wonly ";
  };
  WeightQuantAttr quant = op.getWeightQuantAttr();
  if (!quant || quant.getFormat() == WeightFormat::fp8_e4m3)
    return fail() << "needs weight-only weights (weight_quant format mxfp4, "
                     "int4 or int8)";
  Type lhs = cast<RankedTensorType>(op.getLhs().getType()).getElementType();
  if (!(lhs.isBF16() || lhs.isF16() || lhs.isF32()))
    return fail() << "needs bf16, f16 or f32 activations, got " << lhs;
  if (lhs.isF16() && quant.getFormat() == WeightFormat::mxfp4)
    return fail() << "multiplies mxfp4 weights in bf16: it needs bf16 or f32 "
                     "activations, got "
                  << lhs;
  int64_t stepK = 64 * quant.getWeightsPerElement();
  if (tile.getK() != stepK)
    return fail() << "needs k = " << stepK << " for weight_quant format "
                  << stringifyWeightFormat(quant.getFormat())
                  << " (16 bytes of weights per lane and weight row), got "
                  << tile.getK();
  return success();
}

static LogicalResult verifyTileForOp(GroupedMatmulOp op, StringRef slot,
                                     MatmulTileAttr tile) {
  MatmulKernel kernel = tile.getKernel();
  if (kernel == MatmulKernel::mma_sync_fp8 ||
      kernel == MatmulKernel::mma_sync_fp8_f16 ||
      kernel == MatmulKernel::wgmma_fp8)
    return verifyFp8TileForOp(op, slot, tile);
  if (kernel == MatmulKernel::mma_sync_wonly)
    return verifyWeightOnlyTileForOp(op, slot, tile);
  WeightQuantAttr quant = op.getWeightQuantAttr();
  if (quant && quant.getFormat() != WeightFormat::fp8_e4m3)
    return op.emitOpError()
           << "moe.gpu_kernels: weight-only weights (weight_quant format "
           << stringifyWeightFormat(quant.getFormat())
           << ") take the mma_sync_wonly kernel, got "
           << stringifyMatmulKernel(kernel) << " for the " << slot << " kernel";
  if (quant)
    return op.emitOpError()
           << "moe.gpu_kernels: FP8 weights (weight_quant) take the "
              "mma_sync_fp8, mma_sync_fp8_f16 or wgmma_fp8 kernels, got "
           << stringifyMatmulKernel(kernel) << " for the " << slot << " kernel";
  if (!isTensorCore(kernel))
    return success();
  auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
  Type rhs = rhsType.getElementType();
  Type lhs = cast<RankedTensorType>(op.getLhs().getType()).getElementType();
  WeightShape weights = weightShape(rhsType, op.getRhsLayout());
  auto fail = [&]() {
    return op.emitOpError() << "moe.gpu_kernels: the " << slot << " kernel "
                            << stringifyMatmulKernel(kernel) << " ";
  };
  if (op.getRhsLayout() != RhsLayout::nk || !(rhs.isBF16() || rhs.isF16()))
    return fail() << "needs bf16 or f16 weights in the nk layout (others "
                     "take simt)";
  if (weights.reduction % 8)
    return fail() << "needs K a multiple of 8, got " << weights.reduction;
  if (!(lhs.isF32() || lhs.isBF16() || lhs.isF16()))
    return fail() << "needs f32, bf16 or f16 activations";
  if (kernel == MatmulKernel::mma_sync_staged && lhs != rhs && !lhs.isF32())
    return fail() << "copies activations as bytes: they need the weights' "
                     "type or f32";
  if (isWgmma(kernel) && lhs != rhs)
    return fail() << "needs activations of the weights' type, got " << lhs
                  << " against " << rhs;
  bool glu = op.getEpilogue().has_value();
  int64_t gluColumns = kernel == MatmulKernel::mma_sync_staged ? 64 : 128;
  if (kernel != MatmulKernel::mma_sync &&
      tile.getColumns() != (glu ? gluColumns : 2 * gluColumns))
    return fail() << "has " << 2 * gluColumns << " weight rows a block: "
                  << (glu ? gluColumns : 2 * gluColumns) << " output columns "
                  << (glu ? "with" : "without") << " a GLU epilogue, got "
                  << tile.getColumns();
  return success();
}

/// The kernels read their row tiles from `op`'s moe.row_tiles (or its
/// dispatch's row_tiles), so it must schedule the tile rows they take, under
/// the same threshold.
static LogicalResult
verifyRowTilesForKernels(GroupedMatmulOp op, GroupedMatmulKernelsAttr kernels) {
  Value tiles = op.getRowTiles();
  if (!tiles)
    return success();
  if (kernels.getSmall().getKernel() == MatmulKernel::simt)
    return op.emitOpError() << "moe.gpu_kernels: the simt kernel takes no "
                               "'row_tiles'";
  std::optional<RowTileShapes> schedule =
      rowTileShapesOver(tiles, op.getOffsets(), op.getRows());
  if (!schedule)
    return success(); // The op's verifier reports it.
  int64_t small = kernels.getSmall().getRows();
  int64_t large = kernels.getLarge().getRows();
  int64_t threshold = kernels.getLargeRowsPerExpert();
  if (schedule->smallTileRows != small || schedule->largeTileRows != large ||
      schedule->largeRowsPerExpert != threshold)
    return op.emitOpError()
           << "moe.gpu_kernels take tiles of " << small << " and " << large
           << " rows from " << threshold
           << " rows per expert, but 'row_tiles' schedules "
           << schedule->smallTileRows << " and " << schedule->largeTileRows
           << " from " << schedule->largeRowsPerExpert;
  return success();
}

LogicalResult MoEDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (name == getInlineConstantsAttrName()) {
    if (!isa<UnitAttr>(attribute.getValue()))
      return op->emitError() << name << " must be a unit attribute";
    return success();
  }
  // moe-gpu-programmatic-launch's mark: the launch's body waits with
  // griddepcontrol.wait, which only a kernel launch can do.
  if (name == getProgrammaticLaunchAttrName()) {
    if (!isa<UnitAttr>(attribute.getValue()))
      return op->emitError() << name << " must be a unit attribute";
    if (op->getName().getStringRef() != "gpu.launch")
      return op->emitError()
             << name << " marks a gpu.launch, not a '" << op->getName() << "'";
    return success();
  }
  // What moe-export-result-sizes records on a @<f>__check_sizes function:
  // the size relation each of its failure codes names.
  if (name == "moe.size_relations") {
    auto relations = dyn_cast<ArrayAttr>(attribute.getValue());
    if (!relations || !llvm::all_of(relations, llvm::IsaPred<StringAttr>))
      return op->emitError() << name << " must be an array of strings";
    return success();
  }
  // What convert-moe-to-vector records on a kernel's scf.forall: how it
  // decodes quantized weights (docs/quantization.md, "Lowering").
  if (name == "moe.weight_decode") {
    // The nk kernel's decodings, then the panels kernel's.
    static constexpr StringLiteral kDecodings[] = {
        "fp8_e4m3_integer_ops",
        "mxfp4_table_permute",
        "mxfp4_integer_ops",
        "int4_table_permute",
        "int4_integer_ops",
        "int8_row_scale",
        "mxfp4_panel_bf16_table_dot",
        "int4_panel_bf16_table_dot",
        "mxfp4_panel_bf16_word_table_dot",
        "int4_panel_bf16_word_table_dot",
        "int4_panel_bf16_word_table_dot_zero_sums",
        "mxfp4_panel_table_permute",
        "int4_panel_table_permute",
        "mxfp4_panel_integer_ops",
        "int4_panel_integer_ops",
        "int8_panel_convert",
        "fp8_e4m3_panel_f16"};
    auto decode = dyn_cast<StringAttr>(attribute.getValue());
    if (!decode || !llvm::is_contained(kDecodings, decode.getValue())) {
      InFlightDiagnostic diag = op->emitError() << name << " must be one of ";
      llvm::interleaveComma(kDecodings, diag, [&](StringRef decoding) {
        diag << "\"" << decoding << "\"";
      });
      return diag;
    }
    return success();
  }
  if (name != getGpuKernelsAttrName())
    return op->emitError() << "unknown moe dialect attribute " << name;
  auto matmul = dyn_cast<GroupedMatmulOp>(op);
  if (!matmul)
    return op->emitError() << name << " applies to moe.grouped_matmul only";
  auto kernels = dyn_cast<GroupedMatmulKernelsAttr>(attribute.getValue());
  if (!kernels)
    return op->emitError() << name << " must be a #moe.grouped_matmul_kernels";
  if (failed(verifyTileForOp(matmul, "small", kernels.getSmall())) ||
      failed(verifyTileForOp(matmul, "large", kernels.getLarge())))
    return failure();
  return verifyRowTilesForKernels(matmul, kernels);
}
