//===- TensorCoreKernel.cpp - The grouped matmul on tensor cores ----------===//
//
// The grid and launch every tensor-core kernel of a grouped matmul shares:
//
//   grid.y: row tiles of one expert each, from the tile schedule (tiles past
//           the last one zero the unrouted rows and return); grid.x: column
//           blocks of the block tile's width. With tile_group > 1 (the
//           staged kernels), groups of row tiles sweep every column block
//           together.
//
//===----------------------------------------------------------------------===//

#include "TensorCoreKernel.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

TensorCoreConfig TensorCoreConfig::fromTile(MatmulTileAttr tile) {
  TensorCoreConfig config;
  config.unroll = tile.getUnroll();
  config.splitK = tile.getSplitK();
  config.tileGroup = tile.getTileGroup();
  switch (tile.getKernel()) {
  case MatmulKernel::mma_sync:
  case MatmulKernel::mma_sync_wonly:
    config.registerStages = tile.getStages();
    config.mTiles = tile.getRows() / 16;
    config.warpColumns = tile.getColumns() * config.splitK / kWarpsPerBlock;
    break;
  case MatmulKernel::mma_sync_fp8:
  case MatmulKernel::mma_sync_fp8_f16:
    config.fp8ViaF16 = tile.getKernel() == MatmulKernel::mma_sync_fp8_f16;
    config.registerStages = tile.getStages();
    config.stepK = tile.getK();
    config.mTiles = tile.getRows() / 16;
    config.warpColumns = tile.getColumns() * config.splitK / kWarpsPerBlock;
    break;
  case MatmulKernel::mma_sync_staged:
    config.staged = true;
    config.mTiles = kStagedMTiles;
    config.warpColumns = tile.getColumns() / kStagedWarpsN;
    break;
  case MatmulKernel::wgmma_fp8:
  case MatmulKernel::wgmma_warp_specialized:
    config.wgmmaProducer = true;
    [[fallthrough]];
  case MatmulKernel::wgmma:
    // A warp holds 16 rows of its warpgroup's 64 against all of the block's
    // columns.
    config.staged = config.wgmma = true;
    config.mTiles = 1;
    config.warpColumns = tile.getColumns();
    config.wgmmaSwizzledA = tile.getALayout() == SharedLayout::swizzle_128b;
    break;
  case MatmulKernel::simt:
    llvm_unreachable("the simt kernel has no tensor-core configuration");
  }
  return config;
}

std::unique_ptr<TensorCoreKernel>
TensorCoreKernel::create(const GroupedMatmul &mm, MatmulTileAttr tile) {
  TensorCoreConfig config = TensorCoreConfig::fromTile(tile);
  switch (tile.getKernel()) {
  case MatmulKernel::mma_sync:
    return createDecodeKernel(mm, config);
  case MatmulKernel::mma_sync_fp8:
  case MatmulKernel::mma_sync_fp8_f16:
    // The first loop where a step is 8 bytes, one group is in flight and
    // each warp takes all of K; the staged one otherwise.
    if (config.stepK == 32 && config.registerStages == 1 && config.splitK == 1)
      return createFp8DecodeKernel(mm, config);
    return createFp8StagedDecodeKernel(mm, config);
  case MatmulKernel::mma_sync_wonly:
    return createWeightOnlyDecodeKernel(mm, config);
  case MatmulKernel::mma_sync_staged:
    return createStagedKernel(mm, config, tile.getStages());
  case MatmulKernel::wgmma:
  case MatmulKernel::wgmma_warp_specialized:
    return createWgmmaKernel(mm, config, tile.getStages());
  case MatmulKernel::wgmma_fp8:
    return createFp8WgmmaKernel(mm, config, tile.getStages());
  case MatmulKernel::simt:
    break;
  }
  llvm_unreachable("the simt kernel is not a tensor-core kernel");
}

TensorCoreKernel::TensorCoreKernel(const GroupedMatmul &mm,
                                   const TensorCoreConfig &config)
    : mm(mm), config(config),
      // Weight-only weights (i8 storage) are dequantized to pairs of the
      // activations' type where it is f16, else bf16.
      fragments(!mm.rhsElement.isInteger(8) ? mm.rhsElement
                : mm.lhsType.isF16()
                    ? mm.lhsType
                    : Type(BFloat16Type::get(mm.rhsElement.getContext())),
                mm.reduction) {
  outputTiles = config.warpColumns / 8;
  bTiles = mm.glu ? 2 * outputTiles : outputTiles;
}

int64_t TensorCoreKernel::tileRows() const {
  return config.staged ? stagedRows : 16 * config.mTiles;
}

int64_t TensorCoreKernel::blockColumns() const {
  if (config.wgmma)
    return config.warpColumns;
  if (config.staged)
    return kStagedWarpsN * config.warpColumns;
  return kWarpsPerBlock / config.splitK * config.warpColumns;
}

int64_t TensorCoreKernel::threads() const {
  if (config.wgmma)
    return (kWgmmaWarpgroups + (config.wgmmaProducer ? 1 : 0)) *
           kWarpgroupThreads;
  return (config.staged ? kStagedWarpsM * kStagedWarpsN : kWarpsPerBlock) *
         kWarpSize;
}

/// The launch's marks: moe.inline_constants where the tile asks for it.
static SmallVector<NamedAttribute> launchAttributes(KernelBuilder &b,
                                                    MatmulTileAttr tile) {
  if (!tile.getInlineConstants())
    return {};
  return {b.getNamedAttr(MoEDialect::getInlineConstantsAttrName(),
                         b.getUnitAttr())};
}

void TensorCoreKernel::launch(KernelBuilder &b, StringRef name,
                              const TileSchedule &schedule, bool scheduled,
                              MatmulTileAttr tile) {
  Value gridX = b.index(llvm::divideCeil(mm.width, blockColumns()));
  Value gridY = maxTiles(b, mm.numRows, mm.numExperts, tileRows());
  if (!scheduled)
    scheduleTiles(b, mm.expertRows(), schedule, tileRows());
  SmallVector<Type> workgroup;
  int64_t dynamicBytes = 0;
  prepareLaunch(b, workgroup, dynamicBytes);
  b.launch(
      name, gridX, gridY, threads(), workgroup,
      [&](KernelBuilder &kb, ValueRange shared) {
        bindSharedMemory(kb, shared);
        body(kb, schedule, gridY);
      },
      dynamicBytes, launchAttributes(b, tile));
}

void TensorCoreKernel::body(KernelBuilder &b, const TileSchedule &schedule,
                            Value numTiles) {
  Value tile = b.blockId(gpu::Dimension::y);
  Value columnBlock = b.blockId(gpu::Dimension::x);
  if (config.staged && config.tileGroup > 1)
    std::tie(tile, columnBlock) = groupedOrder(b, tile, columnBlock, numTiles);
  TileWork work = lookUpTile(b, mm.expertRows(), schedule, tile, tileRows());
  Value blockColumn =
      b.create<arith::MulIOp>(columnBlock, b.index(blockColumns()));
  b.ifThenElse(
      work.isExpertTile,
      [&](KernelBuilder &tb) { computeTile(tb, work, blockColumn); },
      [&](KernelBuilder &eb) { clearRows(eb, work, blockColumn); });
}

/// The (row tile, column block) that block (y, x) of the grid computes,
/// in groups of `tileGroup` row tiles: the blocks of one column block and
/// the group's row tiles are consecutive, and the group sweeps every
/// column block before the next group starts. Blocks that run together
/// then read the same weight columns (one expert's, mostly) and a few A
/// tiles, which stay in L2, where row-major order would stream all of an
/// expert's weights once per row tile.
std::pair<Value, Value> TensorCoreKernel::groupedOrder(KernelBuilder &b,
                                                       Value y, Value x,
                                                       Value numTiles) {
  Value numColumns = b.index(llvm::divideCeil(mm.width, blockColumns()));
  Value linear =
      b.create<arith::AddIOp>(b.create<arith::MulIOp>(y, numColumns), x);
  Value perGroup =
      b.create<arith::MulIOp>(numColumns, b.index(config.tileGroup));
  Value firstTile = b.create<arith::MulIOp>(
      b.create<arith::DivUIOp>(linear, perGroup), b.index(config.tileGroup));
  Value groupTiles = b.minIndex(b.create<arith::SubIOp>(numTiles, firstTile),
                                b.index(config.tileGroup));
  Value within = b.create<arith::RemUIOp>(linear, perGroup);
  Value tile = b.create<arith::AddIOp>(
      firstTile, b.create<arith::RemUIOp>(within, groupTiles));
  return {tile, b.create<arith::DivUIOp>(within, groupTiles)};
}

void TensorCoreKernel::clearRows(KernelBuilder &b, const TileWork &work,
                                 Value blockColumn) {
  Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(mm.outType));
  Value columnEnd =
      b.minIndex(b.create<arith::AddIOp>(blockColumn, b.index(blockColumns())),
                 b.index(mm.width));
  Value firstColumn = b.create<arith::AddIOp>(blockColumn, b.threadId());
  b.forEach(work.zeroStart, work.zeroEnd, b.index(1),
            [&](KernelBuilder &rb, Value r) {
              rb.forEach(firstColumn, columnEnd, rb.index(threads()),
                         [&](KernelBuilder &cb, Value column) {
                           cb.store(zero, mm.out.buffer, {r, column});
                         });
            });
}

TensorCoreKernel::WarpRows TensorCoreKernel::warpRows(KernelBuilder &b,
                                                      const TileWork &work,
                                                      Value g) const {
  WarpRows rows;
  for (int64_t i = 0; i < config.mTiles; ++i)
    for (int64_t half = 0; half < 2; ++half) {
      Value r = b.create<arith::AddIOp>(
          work.start, b.create<arith::AddIOp>(g, b.index(16 * i + 8 * half)));
      Value valid = b.lessThan(r, work.end);
      Value safe = b.create<arith::SelectOp>(valid, r, work.start);
      auto [source, exists] = mm.sourceRow(b, safe);
      rows.a.push_back({source, b.create<arith::AndIOp>(valid, exists)});
      rows.out.push_back(r);
      rows.outValid.push_back(valid);
    }
  return rows;
}

SmallVector<Operand> TensorCoreKernel::warpWeightRows(KernelBuilder &b,
                                                      Value warpColumn,
                                                      Value g) const {
  SmallVector<Operand> rows;
  for (int64_t u = 0; u < bTiles; ++u) {
    Value row = weightRow(b, warpColumn, u, g);
    Value valid = b.lessThan(row, b.index(mm.n));
    rows.push_back({b.create<arith::SelectOp>(valid, row, b.index(0)), valid});
  }
  return rows;
}

Value TensorCoreKernel::weightRow(KernelBuilder &b, Value warpColumn, int64_t u,
                                  Value g) const {
  Value base;
  if (!mm.glu) {
    base = b.create<arith::AddIOp>(warpColumn, b.index(8 * u));
  } else if (mm.interleaved) {
    base = b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(warpColumn, b.index(2)), b.index(8 * u));
  } else {
    // Gate tiles first, then the matching up tiles I columns further.
    int64_t t = u % outputTiles;
    int64_t shift = u < outputTiles ? 0 : mm.width;
    base = b.create<arith::AddIOp>(warpColumn, b.index(8 * t + shift));
  }
  return b.create<arith::AddIOp>(base, g);
}
