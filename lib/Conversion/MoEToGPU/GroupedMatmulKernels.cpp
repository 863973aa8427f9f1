//===- GroupedMatmulKernels.cpp - Grouped matmul on tensor cores ----------===//
//
// The tensor-core kernel (bf16/f16 weights in the nk layout):
//
//   grid.y: tiles of `16 * mTiles` rows of one expert, scheduled from the
//           real row counts by a small kernel that lists each tile's expert
//           and first row (tiles past the last one zero the unrouted rows
//           and return); grid.x: 4 warps of `warpColumns` output columns,
//           or, with `splitK`, 4 warps that share `warpColumns` columns and
//           each take a quarter of K, adding their sums through shared
//           memory in a fixed order (decode: 4x the warps, and the bytes in
//           flight, that a short, wide expert matrix would otherwise get).
//   warp:   for each 32-wide step of K, every lane loads 16 bytes of each of
//           its A rows (gathered through `rows`) and weight rows, and feeds
//           them to two mma.sync.m16n8k16 steps with f32 accumulators. K is
//           permuted the same way for A and B inside each step, which leaves
//           the dot products unchanged and lets every load be 16 bytes wide.
//           `unroll` steps of loads are issued before their MMAs, so enough
//           bytes are in flight to stream the weights at decode sizes.
//   store:  GLU (gate and up columns share a lane), row scale, cast.
//
// Everything else (f32 weights, the kn layout, K not a multiple of 8) takes a
// plain kernel with one thread per output element.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Utils/Activation.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <functional>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

// NVGPUDialect.h has a kWarpSize of its own.
using gpu_lowering::kWarpSize;

/// K per step of the wide loads: two m16n8k16 MMAs.
constexpr int64_t kStepK = 32;

/// The staged (prefill) kernel: 2 x 4 warps of 64 rows and 32 weight rows
/// each, so a block computes 128 rows against 128 weight rows; tiles of 32
/// of K go through dynamic shared memory in 4 stages (80 KiB, 120 KiB for
/// f32 activations, which are converted as fragments are read), rows padded
/// by 8 elements so that a warp's fragment reads hit different banks.
constexpr int64_t kStagedWarpsM = 2, kStagedWarpsN = 4;
constexpr int64_t kStagedMTiles = 4, kStagedStages = 4;
constexpr int64_t kTileK = 32, kPaddedK = kTileK + 8;

/// The wgmma (sm_90a) form of the staged kernel: two warpgroups per 128 x
/// 256 block tile, each multiplying its 64 rows against all 256 weight rows
/// (m64n256k16), K tiles of 64 in 4 stages of dynamic shared memory
/// (192 KiB), and with wgmmaProducer a third that issues the copies. The
/// weight tile comes by TMA, two boxes of 128 rows x 64 K completing on the
/// stage's mbarrier, in the 128-byte swizzle: each row's 128 bytes with its
/// 16-byte chunks permuted by the row's index mod 8, 8-row atoms 1024 bytes
/// apart. The gathered A rows are copied with cp.async into the same
/// swizzle (wgmmaSwizzledA), 8 lanes per row, so that each warp reads whole
/// 128-byte lines and stores 512 contiguous bytes; or K-chunk-major,
/// [chunk of 8 K][row][8], wgmma's K-major layout without swizzling, whose
/// conflict-free stores take a warp 32-byte pieces of 16 rows, four times
/// the L2 requests (on an H200: Mixtral T = 4096 7.0 against 5.2 ms).
constexpr int64_t kWarpgroupThreads = 128, kWgmmaWarpgroups = 2;
constexpr int64_t kWgmmaRows = 64, kWgmmaWeightRows = 256;
constexpr int64_t kWgmmaTileK = 64, kWgmmaStages = 4;
constexpr int64_t kTmaBoxRows = 128, kSwizzleAtomBytes = 1024;

/// What the kernels of one grouped matmul share: its buffers, sizes and
/// epilogue.
class GroupedMatmul {
public:
  GroupedMatmul(GroupedMatmulOp op, KernelBuilder &b) : op(op) {
    auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
    WeightShape weights = weightShape(rhsType, op.getRhsLayout());
    numExperts = weights.experts;
    kn = op.getRhsLayout() == RhsLayout::kn;
    reduction = weights.reduction;
    n = weights.columns;
    glu = op.getEpilogue().has_value();
    interleaved = glu && op.getGluLayout() == GluLayout::interleaved;
    width = glu ? n / 2 : n;
    outType = cast<RankedTensorType>(op.getInit().getType()).getElementType();
    lhsType = cast<RankedTensorType>(op.getLhs().getType()).getElementType();
    rhsElement = rhsType.getElementType();

    lhs = readBuffer(b, op.getLhs());
    rhs = readBuffer(b, op.getRhs());
    offsets = OffsetsSource::fromTensor(b, op.getOffsets());
    if (op.getRows())
      rows = readBuffer(b, op.getRows());
    if (op.getRowScale())
      scale = readBuffer(b, op.getRowScale());
    out = allocateLike(b, op.getInit());
    numRows = b.create<memref::DimOp>(out.buffer, 0);
    if (op.getGather())
      gatherTokens = b.create<memref::DimOp>(lhs, 0);
    if (scale)
      scaleTokens = b.create<memref::DimOp>(scale, 0);
  }

  bool tensorCoreEligible() const {
    return !kn && (rhsElement.isBF16() || rhsElement.isF16()) &&
           reduction % 8 == 0 &&
           (lhsType.isF32() || lhsType.isBF16() || lhsType.isF16());
  }

  /// The lhs row that output row r reads and whether it exists.
  std::pair<Value, Value> sourceRow(KernelBuilder &b, Value r) const {
    if (!op.getGather())
      return {r, b.create<arith::ConstantIntOp>(b.getI1Type(), 1)};
    auto selection =
        b.decodeSelection(b.load(rows, r), gatherTokens, op.getK());
    return {selection.token, selection.valid};
  }

  /// The routing weight that output row r is scaled by (0 for a row of no
  /// selection), or null without a row scale. `r` must be a row of the
  /// output.
  Value rowScale(KernelBuilder &b, Value r) const {
    if (!scale)
      return Value();
    auto selection = b.decodeSelection(b.load(rows, r), scaleTokens, op.getK());
    Value w = b.load(scale, {selection.token, selection.slot});
    return b.create<arith::SelectOp>(selection.valid, w, b.f32(0.0));
  }

  /// GLU and row scale (`factor`, from rowScale, or null) of one output
  /// element, as f32.
  Value epilogue(KernelBuilder &b, Value value, Value up, Value factor) const {
    if (glu)
      value = gluActivation(b, value, up, *op.getEpilogue(),
                            op.getAlpha().convertToDouble(),
                            op.getLimit().convertToDouble());
    if (factor)
      value = b.create<arith::MulFOp>(value, factor);
    return value;
  }

  /// GLU, row scale and cast of one output element, then the store.
  void storeOutput(KernelBuilder &b, Value r, Value column, Value value,
                   Value up) const {
    value = epilogue(b, value, up, rowScale(b, r));
    b.store(b.castFloat(value, outType), out.buffer, {r, column});
  }

  /// Whether the output is aligned to a pair of elements, which a caller's
  /// buffer, aligned to its element only, may not be.
  Value outputPairAligned(KernelBuilder &b) const {
    return b.alignedTo(out.buffer, pairBytes());
  }

  int64_t pairBytes() const { return 2 * outType.getIntOrFloatBitWidth() / 8; }

  /// Whether a lane's two adjacent columns of each tile are stored as a
  /// pair (storePair), with one routing weight per row.
  bool storesPairs() const { return !interleaved && width % 2 == 0; }

  /// Two adjacent output elements (columns `column`, `column + 1`, which
  /// the caller keeps inside the row and even with an even width) in one
  /// store where the output is `aligned` to a pair (outputPairAligned),
  /// else in two.
  void storePair(KernelBuilder &b, Value aligned, Value r, Value column,
                 Value first, Value second) const {
    Value cast[2] = {b.castFloat(first, outType), b.castFloat(second, outType)};
    int64_t bytes = pairBytes();
    b.ifThenElse(
        aligned,
        [&](KernelBuilder &vb) {
          Value pair = vb.create<vector::FromElementsOp>(
              VectorType::get({2}, outType), ValueRange{cast[0], cast[1]});
          vb.create<vector::StoreOp>(pair, out.buffer, ValueRange{r, column},
                                     false, llvm::MaybeAlign(bytes));
        },
        [&](KernelBuilder &sb) {
          sb.store(cast[0], out.buffer, {r, column});
          sb.store(cast[1], out.buffer,
                   {r, sb.create<arith::AddIOp>(column, sb.index(1))});
        });
  }

  /// [lo, hi) of expert e, clamped to the output rows.
  std::pair<Value, Value> expertRange(KernelBuilder &b, Value e) const {
    Value lo = offsets.at(b, e, b.index(0), numRows);
    Value hi = offsets.at(b, b.create<arith::AddIOp>(e, b.index(1)), lo,
                          numRows);
    return {lo, hi};
  }

  mutable GroupedMatmulOp op;
  int64_t numExperts, n, reduction, width;
  bool kn, glu, interleaved;
  Type outType, lhsType, rhsElement;
  Value lhs, rhs, rows, scale, numRows, gatherTokens, scaleTokens;
  OffsetsSource offsets;
  OutputBuffer out;
};

//===----------------------------------------------------------------------===//
// Tensor-core kernel
//===----------------------------------------------------------------------===//

/// Where each row tile starts: tile t covers rows [tileStart[t],
/// min(tileStart[t] + tileRows, end of its expert)) of expert tileExpert[t];
/// tileCount[0] holds the number of tiles. One thread per expert writes its
/// own tiles after summing the tile counts of the experts below it (staged
/// in shared memory), so the matmul's blocks find their work with two loads
/// instead of a scan.
struct TileSchedule {
  Value expert, start, count;
};

/// Row tiles of at most `tileRows` rows: the rows' tiles, plus a partial
/// tile for each expert that has rows (at most min(E, M) of them), plus one
/// partial tile of unrouted rows.
Value maxTiles(KernelBuilder &b, const GroupedMatmul &mm, int64_t tileRows) {
  Value partial = b.minIndex(mm.numRows, b.index(mm.numExperts));
  return b.create<arith::AddIOp>(
      b.create<arith::AddIOp>(b.ceilDiv(mm.numRows, tileRows), partial),
      b.index(1));
}

/// Buffers for the schedule of tiles of at least `minTileRows` rows; they
/// are allocated outside the host's choice of tile shape.
TileSchedule allocateSchedule(KernelBuilder &b, const GroupedMatmul &mm,
                              int64_t minTileRows) {
  auto i32Buffer = [&](Value size) {
    return b.create<memref::AllocOp>(
        MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
        ValueRange{size});
  };
  Value size = maxTiles(b, mm, minTileRows);
  return {i32Buffer(size), i32Buffer(size), i32Buffer(b.index(1))};
}

/// The first row of expert e and its number of row tiles.
std::pair<Value, Value> expertTiles(KernelBuilder &b, const GroupedMatmul &mm,
                                    Value e, int64_t tileRows) {
  auto [lo, hi] = mm.expertRange(b, e);
  return {lo, b.ceilDiv(b.create<arith::SubIOp>(hi, lo), tileRows)};
}

void scheduleTiles(KernelBuilder &b, const GroupedMatmul &mm,
                   const TileSchedule &schedule, int64_t tileRows) {
  int64_t numExperts = mm.numExperts;
  Value grid = b.index(llvm::divideCeil(numExperts, kBlockThreads));
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto countsType = MemRefType::get({numExperts}, b.getI32Type(),
                                    MemRefLayoutAttrInterface(), space);
  b.launch(
      "moe_tile_schedule", grid, b.index(1), kBlockThreads,
      TypeRange{countsType}, [&](KernelBuilder &kb, ValueRange shared) {
        // Every block first counts every expert's tiles into shared memory,
        // a strided share per thread: the loads of the offsets go out
        // together, where a thread summing the experts below it from
        // global memory would wait on each in turn.
        Value counts = shared.front();
        kb.forEach(kb.threadId(), kb.index(numExperts), kb.index(kBlockThreads),
                   [&](KernelBuilder &lb, Value j) {
                     Value tiles = expertTiles(lb, mm, j, tileRows).second;
                     lb.store(lb.fromIndex(tiles, lb.getI32Type()), counts, j);
                   });
        kb.create<gpu::BarrierOp>();
        Value e = kb.globalThreadId(kBlockThreads);
        kb.ifThen(kb.lessThan(e, kb.index(numExperts)), [&](KernelBuilder &tb) {
          // A loop over all experts (a constant trip count) with the ones
          // below e selected, so the shared-memory reads can overlap.
          Value before =
              tb.forLoop(tb.index(0), tb.index(numExperts), tb.index(1),
                         ValueRange{tb.index(0)},
                         [&](KernelBuilder &lb, Value j, ValueRange acc) {
                           Value tiles = lb.toIndex(lb.load(counts, j));
                           Value below = lb.lessThan(j, e);
                           Value added =
                               lb.create<arith::AddIOp>(acc[0], tiles);
                           return SmallVector<Value>{lb.create<arith::SelectOp>(
                               below, added, acc[0])};
                         })
                  .front();
          Value firstRow = expertTiles(tb, mm, e, tileRows).first;
          Value tiles = tb.toIndex(tb.load(counts, e));
          Value expert = tb.fromIndex(e, tb.getI32Type());
          tb.forEach(
              tb.index(0), tiles, tb.index(1), [&](KernelBuilder &lb, Value t) {
                Value at = lb.create<arith::AddIOp>(before, t);
                Value start = lb.create<arith::AddIOp>(
                    firstRow, lb.create<arith::MulIOp>(t, lb.index(tileRows)));
                lb.store(expert, schedule.expert, at);
                lb.store(lb.fromIndex(start, lb.getI32Type()), schedule.start,
                         at);
              });
          Value last = tb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, e,
                                                tb.index(numExperts - 1));
          tb.ifThen(last, [&](KernelBuilder &lb) {
            Value total = lb.create<arith::AddIOp>(before, tiles);
            lb.store(lb.fromIndex(total, lb.getI32Type()), schedule.count,
                     lb.index(0));
          });
        });
      });
}

/// The work of one block: rows [start, end) of `expert`, or, for tiles past
/// the experts' ones, the unrouted rows [zeroStart, zeroEnd) to clear.
struct TileWork {
  Value isExpertTile, expert, start, end;
  Value zeroStart, zeroEnd;
};

TileWork lookUpTile(KernelBuilder &b, const GroupedMatmul &mm,
                    const TileSchedule &schedule, Value tile,
                    int64_t tileRows) {
  Value total = b.toIndex(b.load(schedule.count, b.index(0)));
  Value isExpertTile = b.lessThan(tile, total);
  Value safe = b.create<arith::SelectOp>(isExpertTile, tile, b.index(0));
  TileWork work;
  work.isExpertTile = isExpertTile;
  // Clamped into [0, E): with no tile at all, slot 0 was never written.
  work.expert = b.toIndex(b.create<arith::MinSIOp>(
      b.create<arith::MaxSIOp>(b.load(schedule.expert, safe), b.i32(0)),
      b.i32(mm.numExperts - 1)));
  work.start = b.toIndex(b.create<arith::MaxSIOp>(
      b.load(schedule.start, safe), b.i32(0)));
  work.end = mm.expertRange(b, work.expert).second;
  Value routedEnd = mm.offsets.at(b, b.index(mm.numExperts), b.index(0),
                                  mm.numRows);
  Value beyond = b.create<arith::SubIOp>(
      b.create<arith::MaxUIOp>(tile, total), total);
  work.zeroStart = b.create<arith::AddIOp>(
      routedEnd, b.create<arith::MulIOp>(beyond, b.index(tileRows)));
  work.zeroEnd = b.minIndex(
      b.create<arith::AddIOp>(work.zeroStart, b.index(tileRows)),
      mm.numRows);
  return work;
}

} // namespace

TensorCoreConfig TensorCoreConfig::fromTile(MatmulTileAttr tile) {
  TensorCoreConfig config;
  config.unroll = tile.getUnroll();
  config.splitK = tile.getSplitK();
  config.tileGroup = tile.getTileGroup();
  switch (tile.getKernel()) {
  case MatmulKernel::mma_sync:
    config.mTiles = tile.getRows() / 16;
    config.warpColumns = tile.getColumns() * config.splitK / kWarpsPerBlock;
    break;
  case MatmulKernel::mma_sync_staged:
    config.staged = true;
    config.mTiles = kStagedMTiles;
    config.warpColumns = tile.getColumns() / kStagedWarpsN;
    break;
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

namespace {

class TensorCoreKernel {
public:
  /// The kernel `tile` describes; moe.gpu_kernels' verifier has checked
  /// that it fits the op.
  TensorCoreKernel(const GroupedMatmul &mm, MatmulTileAttr tile)
      : mm(mm), config(TensorCoreConfig::fromTile(tile)) {
    if (config.wgmma) {
      stagedRows = kWgmmaWarpgroups * kWgmmaRows;
      weightRows = kWgmmaWeightRows;
      tileK = kWgmmaTileK;
      stages = tile.getStages();
    } else if (config.staged) {
      stagedRows = 16 * kStagedMTiles * kStagedWarpsM;
      stages = tile.getStages();
    }
    mmaType = mm.rhsElement.isBF16() ? NVVM::MMATypes::bf16
                                     : NVVM::MMATypes::f16;
    // B tiles per warp: gate and up tiles for a GLU, else output tiles.
    outputTiles = config.warpColumns / 8;
    bTiles = mm.glu ? 2 * outputTiles : outputTiles;
  }

  int64_t tileRows() const {
    return config.staged ? stagedRows : 16 * config.mTiles;
  }
  int64_t blockColumns() const {
    if (config.wgmma)
      return config.warpColumns;
    if (config.staged)
      return kStagedWarpsN * config.warpColumns;
    return kWarpsPerBlock / config.splitK * config.warpColumns;
  }
  int64_t threads() const {
    if (config.wgmma)
      return (kWgmmaWarpgroups + (config.wgmmaProducer ? 1 : 0)) *
             kWarpgroupThreads;
    return (config.staged ? kStagedWarpsM * kStagedWarpsN : kWarpsPerBlock) *
           kWarpSize;
  }
  int64_t numAcc() const { return config.mTiles * bTiles * 4; }
  /// K tiles of the staged kernels.
  int64_t kTiles() const { return llvm::divideCeil(mm.reduction, tileK); }

  static int64_t bytes(MemRefType type) {
    return type.getNumElements() * type.getElementTypeBitWidth() / 8;
  }

  /// Launches the kernel; `scheduled`: `schedule` already holds this tile
  /// shape's tiles of the same rows.
  void launch(KernelBuilder &b, StringRef name, const TileSchedule &schedule,
              bool scheduled, MatmulTileAttr tile) {
    Value gridX = b.index(llvm::divideCeil(mm.width, blockColumns()));
    Value gridY = maxTiles(b, mm, tileRows());
    if (!scheduled)
      scheduleTiles(b, mm, schedule, tileRows());
    SmallVector<Type> workgroup;
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    int64_t dynamicBytes = 0;
    MemRefType lhsTile, rhsTile;
    if (config.wgmma) {
      // The swizzled A stages follow the weight stages, so they start at a
      // multiple of the atom size too.
      lhsTile =
          config.wgmmaSwizzledA
              ? MemRefType::get({stages, stagedRows, tileK}, mm.rhsElement,
                                MemRefLayoutAttrInterface(), space)
              : MemRefType::get({stages, tileK / 8, stagedRows, 8},
                                mm.rhsElement, MemRefLayoutAttrInterface(),
                                space);
      rhsTile = MemRefType::get({stages, weightRows, tileK}, mm.rhsElement,
                                MemRefLayoutAttrInterface(), space);
      // The swizzled weight stages start at a multiple of the atom size,
      // found in the kernel: room for the shift that takes.
      dynamicBytes = kSwizzleAtomBytes + bytes(lhsTile) + bytes(rhsTile);
      weightMap = createWeightMap(b);
    } else if (config.staged) {
      lhsTile = MemRefType::get({stages, stagedRows, kPaddedK}, mm.lhsType,
                                MemRefLayoutAttrInterface(), space);
      rhsTile = MemRefType::get({stages, weightRows, kPaddedK}, mm.rhsElement,
                                MemRefLayoutAttrInterface(), space);
      dynamicBytes = bytes(lhsTile) + bytes(rhsTile);
    } else if (config.splitK > 1) {
      // The accumulators of every warp but the first, lane-minor.
      workgroup.push_back(MemRefType::get(
          {(config.splitK - 1) * numAcc() * kWarpSize}, b.getF32Type(),
          MemRefLayoutAttrInterface(), space));
    }
    b.launch(
        name, gridX, gridY, threads(), workgroup,
        [&](KernelBuilder &kb, ValueRange shared) {
          if (config.wgmma) {
            dynamicShared = kb.create<gpu::DynamicSharedMemoryOp>(
                MemRefType::get({ShapedType::kDynamic}, kb.getIntegerType(8),
                                MemRefLayoutAttrInterface(), space));
            Value address = kb.create<memref::ExtractAlignedPointerAsIndexOp>(
                dynamicShared);
            Value atom = kb.index(kSwizzleAtomBytes);
            rhsShift = kb.create<arith::RemUIOp>(
                kb.create<arith::SubIOp>(
                    atom, kb.create<arith::RemUIOp>(address, atom)),
                atom);
            stagedRhs = kb.create<memref::ViewOp>(rhsTile, dynamicShared,
                                                  rhsShift, ValueRange{});
            stagedLhs = kb.create<memref::ViewOp>(
                lhsTile, dynamicShared,
                kb.create<arith::AddIOp>(rhsShift, kb.index(bytes(rhsTile))),
                ValueRange{});
          } else if (config.staged) {
            // Both tiles are views of the block's dynamic shared memory.
            Value all = kb.create<gpu::DynamicSharedMemoryOp>(
                MemRefType::get({ShapedType::kDynamic}, kb.getIntegerType(8),
                                MemRefLayoutAttrInterface(), space));
            stagedLhs = kb.create<memref::ViewOp>(lhsTile, all, kb.index(0),
                                                  ValueRange{});
            stagedRhs = kb.create<memref::ViewOp>(
                rhsTile, all, kb.index(bytes(lhsTile)), ValueRange{});
          } else if (!shared.empty()) {
            partials = shared.front();
          }
          body(kb, schedule, gridY);
        },
        dynamicBytes, launchAttributes(b, tile));
  }

private:
  /// The launch's marks: moe.inline_constants where the tile asks for it.
  static SmallVector<NamedAttribute> launchAttributes(KernelBuilder &b,
                                                      MatmulTileAttr tile) {
    if (!tile.getInlineConstants())
      return {};
    return {b.getNamedAttr(MoEDialect::getInlineConstantsAttrName(),
                           b.getUnitAttr())};
  }

  void body(KernelBuilder &b, const TileSchedule &schedule, Value numTiles) {
    Value tile = b.blockId(gpu::Dimension::y);
    Value columnBlock = b.blockId(gpu::Dimension::x);
    if (config.staged && config.tileGroup > 1)
      std::tie(tile, columnBlock) =
          groupedOrder(b, tile, columnBlock, numTiles);
    TileWork work = lookUpTile(b, mm, schedule, tile, tileRows());
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
  std::pair<Value, Value> groupedOrder(KernelBuilder &b, Value y, Value x,
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

  void clearRows(KernelBuilder &b, const TileWork &work, Value blockColumn) {
    Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(mm.outType));
    Value columnEnd = b.minIndex(
        b.create<arith::AddIOp>(blockColumn, b.index(blockColumns())),
        b.index(mm.width));
    Value firstColumn = b.create<arith::AddIOp>(blockColumn, b.threadId());
    b.forEach(work.zeroStart, work.zeroEnd, b.index(1),
              [&](KernelBuilder &rb, Value r) {
                rb.forEach(firstColumn, columnEnd,
                           rb.index(threads()),
                           [&](KernelBuilder &cb, Value column) {
                             cb.store(zero, mm.out.buffer, {r, column});
                           });
              });
  }

  /// The weight row that B tile u of this warp reads for lane group g.
  Value weightRow(KernelBuilder &b, Value warpColumn, int64_t u, Value g) {
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

  struct Operand {
    Value row;   // clamped, safe to read
    Value valid; // i1
  };

  /// 8 consecutive elements of row `row` from column k as 4 packed i32
  /// pairs of the MMA type, zero when the row is not valid.
  Value wideLoad(KernelBuilder &b, Value memref, ValueRange prefix,
                 Operand row, Value k, Type element) {
    SmallVector<Value> indices(prefix);
    indices.append({row.row, k});
    int64_t bytes = 8 * element.getIntOrFloatBitWidth() / 8;
    Value v = b.create<vector::LoadOp>(VectorType::get({8}, element),
                                       memref, indices, false,
                                       llvm::MaybeAlign(std::min<int64_t>(
                                           bytes, 16)));
    Type mmaElement = mm.rhsElement;
    if (element != mmaElement) {
      if (!element.isF32())
        v = b.create<arith::ExtFOp>(VectorType::get({8}, b.getF32Type()), v);
      v = b.create<arith::TruncFOp>(VectorType::get({8}, mmaElement), v);
    }
    Value packed = b.create<vector::BitCastOp>(
        VectorType::get({4}, b.getI32Type()), v);
    Value zero = b.create<arith::ConstantOp>(
        DenseElementsAttr::get(VectorType::get({4}, b.getI32Type()),
                               b.getI32IntegerAttr(0)));
    return b.create<arith::SelectOp>(row.valid, packed, zero);
  }

  /// Element pair (k, k + 1) of a row as one packed i32 of the MMA type,
  /// with columns at or past K reading zero (the tail of K).
  Value tailPair(KernelBuilder &b, Value memref, ValueRange prefix,
                 Operand row, Value k) {
    Type mmaElement = mm.rhsElement;
    SmallVector<Value> elements;
    for (int64_t q = 0; q < 2; ++q) {
      Value column = b.create<arith::AddIOp>(k, b.index(q));
      Value inside = b.lessThan(column, b.index(mm.reduction));
      Value safe = b.create<arith::SelectOp>(inside, column, b.index(0));
      SmallVector<Value> indices(prefix);
      indices.append({row.row, safe});
      Value x = b.castFloat(b.load(memref, indices), mmaElement);
      Value keep = b.create<arith::AndIOp>(inside, row.valid);
      Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(mmaElement));
      elements.push_back(b.create<arith::SelectOp>(keep, x, zero));
    }
    Value pair = b.create<vector::FromElementsOp>(
        VectorType::get({2}, mmaElement), elements);
    Value packed = b.create<vector::BitCastOp>(
        VectorType::get({1}, b.getI32Type()), pair);
    return b.create<vector::ExtractOp>(packed, ArrayRef<int64_t>{0});
  }

  /// acc (4 f32) += A (4 i32) * B (2 i32), each i32 a pair of the MMA
  /// type.
  void mma(KernelBuilder &b, ArrayRef<Value> a, ArrayRef<Value> bFrag,
           MutableArrayRef<Value> acc) {
    Type f32 = b.getF32Type();
    auto resultType = LLVM::LLVMStructType::getLiteral(
        b.getContext(), {f32, f32, f32, f32});
    // nvvm.mma.sync takes bf16 pairs as i32 but f16 pairs as vector<2xf16>.
    auto operands = [&](ArrayRef<Value> words) -> SmallVector<Value> {
      if (mmaType != NVVM::MMATypes::f16)
        return SmallVector<Value>(words);
      SmallVector<Value> pairs;
      for (Value word : words)
        pairs.push_back(b.create<LLVM::BitcastOp>(
            VectorType::get({2}, b.getF16Type()), word));
      return pairs;
    };
    Value d = b.create<NVVM::MmaOp>(
        resultType, operands(a), operands(bFrag), ValueRange(acc),
        ArrayRef<int64_t>{16, 8, 16},
        std::nullopt, std::nullopt,
        std::array<NVVM::MMATypes, 2>{mmaType, mmaType},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                       NVVM::MMALayout::col});
    for (int64_t q = 0; q < 4; ++q)
      acc[q] = b.create<LLVM::ExtractValueOp>(d, ArrayRef<int64_t>{q});
  }

  Value element(KernelBuilder &b, Value packed, int64_t q) {
    return b.create<vector::ExtractOp>(packed, ArrayRef<int64_t>{q});
  }

  /// The thread's warp and lane, and the lane's MMA fragment coordinates:
  /// group g = lane / 4 and c = lane % 4.
  struct ThreadPosition {
    Value warp, lane, g, c;
  };
  ThreadPosition threadPosition(KernelBuilder &b) {
    Value tid = b.threadId();
    Value warp = b.create<arith::DivUIOp>(tid, b.index(kWarpSize));
    Value lane = b.create<arith::RemUIOp>(tid, b.index(kWarpSize));
    return {warp, lane, b.create<arith::DivUIOp>(lane, b.index(4)),
            b.create<arith::RemUIOp>(lane, b.index(4))};
  }

  void computeTile(KernelBuilder &b, const TileWork &work, Value blockColumn) {
    if (config.wgmma) {
      computeWgmma(b, work, blockColumn);
      return;
    }
    if (config.staged) {
      computeStaged(b, work, blockColumn);
      return;
    }
    ThreadPosition at = threadPosition(b);
    Value warp = at.warp, lane = at.lane, g = at.g, c = at.c;
    if (config.splitK > 1) {
      // Every warp has the block's columns (in range, by the grid), so all
      // reach the barrier of the sum.
      computeWarp(b, work, blockColumn, warp, lane, g, c);
      return;
    }
    Value warpColumn = b.create<arith::AddIOp>(
        blockColumn,
        b.create<arith::MulIOp>(warp, b.index(config.warpColumns)));
    b.ifThen(b.lessThan(warpColumn, b.index(mm.width)),
             [&](KernelBuilder &wb) {
               computeWarp(wb, work, warpColumn, b.index(0), lane, g, c);
             });
  }

  /// Computes the tile's columns from warpColumn over part `part` of K (of
  /// config.splitK), then sums the parts and stores.
  void computeWarp(KernelBuilder &b, const TileWork &work, Value warpColumn,
                   Value part, Value lane, Value g, Value c) {
    // A rows: for m tile i, rows g and g + 8.
    SmallVector<Operand> aRows;
    SmallVector<Value> outRows, outValid;
    for (int64_t i = 0; i < config.mTiles; ++i)
      for (int64_t half = 0; half < 2; ++half) {
        Value r = b.create<arith::AddIOp>(
            work.start,
            b.create<arith::AddIOp>(g, b.index(16 * i + 8 * half)));
        Value valid = b.lessThan(r, work.end);
        Value safe = b.create<arith::SelectOp>(valid, r, work.start);
        auto [source, exists] = mm.sourceRow(b, safe);
        aRows.push_back({source, b.create<arith::AndIOp>(valid, exists)});
        outRows.push_back(r);
        outValid.push_back(valid);
      }
    SmallVector<Operand> bRows;
    for (int64_t u = 0; u < bTiles; ++u) {
      Value row = weightRow(b, warpColumn, u, g);
      Value valid = b.lessThan(row, b.index(mm.n));
      bRows.push_back(
          {b.create<arith::SelectOp>(valid, row, b.index(0)), valid});
    }
    Value expert = work.expert;
    Value lastPart = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, part,
                                             b.index(config.splitK - 1));

    SmallVector<Value> init(numAcc(), b.f32(0.0));
    auto accIndex = [&](int64_t i, int64_t u) { return (i * bTiles + u) * 4; };

    // Main loop: `unroll` wide steps per iteration, loads first.
    int64_t fullK = mm.reduction - mm.reduction % kStepK;
    int64_t unrolledK = fullK - fullK % (kStepK * config.unroll);
    Value laneK = b.create<arith::MulIOp>(c, b.index(8));
    auto wideSteps = [&](KernelBuilder &lb, Value k0, int64_t steps,
                         ValueRange acc) {
      SmallVector<SmallVector<Value>> aFrags, bFrags;
      for (int64_t s = 0; s < steps; ++s) {
        Value k = lb.create<arith::AddIOp>(
            k0, lb.create<arith::AddIOp>(laneK, lb.index(s * kStepK)));
        SmallVector<Value> aStep, bStep;
        for (const Operand &row : aRows)
          aStep.push_back(wideLoad(lb, mm.lhs, {}, row, k, mm.lhsType));
        for (const Operand &row : bRows)
          bStep.push_back(
              wideLoad(lb, mm.rhs, {expert}, row, k, mm.rhsElement));
        aFrags.push_back(aStep);
        bFrags.push_back(bStep);
      }
      SmallVector<Value> next(acc);
      for (int64_t s = 0; s < steps; ++s)
        for (int64_t half = 0; half < 2; ++half)
          for (int64_t i = 0; i < config.mTiles; ++i) {
            Value lo = aFrags[s][2 * i], hi = aFrags[s][2 * i + 1];
            SmallVector<Value> a = {element(lb, lo, 2 * half),
                                    element(lb, hi, 2 * half),
                                    element(lb, lo, 2 * half + 1),
                                    element(lb, hi, 2 * half + 1)};
            for (int64_t u = 0; u < bTiles; ++u) {
              Value bw = bFrags[s][u];
              SmallVector<Value> bFrag = {element(lb, bw, 2 * half),
                                          element(lb, bw, 2 * half + 1)};
              MutableArrayRef<Value> slot(next.data() + accIndex(i, u), 4);
              mma(lb, a, bFrag, slot);
            }
          }
      return next;
    };
    // Part p takes unrolled steps [p * U / splitK, (p + 1) * U / splitK);
    // the last part also takes the single steps and the tail.
    int64_t unrolledStep = kStepK * config.unroll;
    int64_t steps = unrolledK / unrolledStep;
    auto partStart = [&](Value p) {
      Value step = b.create<arith::DivUIOp>(
          b.create<arith::MulIOp>(p, b.index(steps)), b.index(config.splitK));
      return b.create<arith::MulIOp>(step, b.index(unrolledStep));
    };
    Value kBegin = partStart(part);
    Value kEnd = partStart(b.create<arith::AddIOp>(part, b.index(1)));
    SmallVector<Value> acc = b.forLoop(
        kBegin, kEnd, b.index(unrolledStep), init,
        [&](KernelBuilder &lb, Value k0, ValueRange iter) {
          return wideSteps(lb, k0, config.unroll, iter);
        });
    if (unrolledK < fullK) {
      Value from = b.create<arith::SelectOp>(lastPart, b.index(unrolledK),
                                             b.index(fullK));
      acc = b.forLoop(from, b.index(fullK), b.index(kStepK), acc,
                      [&](KernelBuilder &lb, Value k0, ValueRange iter) {
                        return wideSteps(lb, k0, 1, iter);
                      });
    }
    // Other parts read the tail as zeros.
    auto inLastPart = [&](Operand row) {
      return Operand{row.row, b.create<arith::AndIOp>(row.valid, lastPart)};
    };
    // The tail of K in plain k16 steps with masked element loads.
    Value pairK = b.create<arith::MulIOp>(c, b.index(2));
    for (int64_t k0 = fullK; k0 < mm.reduction; k0 += 16) {
      Value k = b.create<arith::AddIOp>(pairK, b.index(k0));
      Value k8 = b.create<arith::AddIOp>(k, b.index(8));
      for (int64_t i = 0; i < config.mTiles; ++i) {
        Operand lo = inLastPart(aRows[2 * i]);
        Operand hi = inLastPart(aRows[2 * i + 1]);
        SmallVector<Value> a = {tailPair(b, mm.lhs, {}, lo, k),
                                tailPair(b, mm.lhs, {}, hi, k),
                                tailPair(b, mm.lhs, {}, lo, k8),
                                tailPair(b, mm.lhs, {}, hi, k8)};
        for (int64_t u = 0; u < bTiles; ++u) {
          SmallVector<Value> bFrag = {
              tailPair(b, mm.rhs, {expert}, bRows[u], k),
              tailPair(b, mm.rhs, {expert}, bRows[u], k8)};
          MutableArrayRef<Value> slot(acc.data() + accIndex(i, u), 4);
          mma(b, a, bFrag, slot);
        }
      }
    }
    if (config.splitK == 1) {
      storeTile(b, acc, accIndex, outRows, outValid, warpColumn, c);
      return;
    }
    auto slot = [&](KernelBuilder &sb, Value p, int64_t j) -> Value {
      // (p - 1, j, lane): consecutive lanes, consecutive words.
      Value base = sb.create<arith::MulIOp>(
          sb.create<arith::SubIOp>(p, sb.index(1)),
          sb.index(numAcc() * kWarpSize));
      return sb.create<arith::AddIOp>(
          base, sb.create<arith::AddIOp>(lane, sb.index(j * kWarpSize)));
    };
    Value first = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, part,
                                          b.index(0));
    Value later = b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, part,
                                          b.index(0));
    b.ifThen(later,
             [&](KernelBuilder &sb) {
               for (int64_t j = 0; j < numAcc(); ++j)
                 sb.store(acc[j], partials, slot(sb, part, j));
             });
    b.create<gpu::BarrierOp>();
    b.ifThen(first, [&](KernelBuilder &sb) {
      SmallVector<Value> sum(acc);
      for (int64_t p = 1; p < config.splitK; ++p)
        for (int64_t j = 0; j < numAcc(); ++j)
          sum[j] = sb.create<arith::AddFOp>(
              sum[j], sb.load(partials, slot(sb, sb.index(p), j)));
      storeTile(sb, sum, accIndex, outRows, outValid, warpColumn, c);
    });
  }

  /// Accumulator q of a tile holds row g + 8 * (q / 2), column 2c + q % 2.
  void storeTile(KernelBuilder &b, ArrayRef<Value> acc,
                 function_ref<int64_t(int64_t, int64_t)> accIndex,
                 ArrayRef<Value> outRows, ArrayRef<Value> outValid,
                 Value warpColumn, Value c, ArrayRef<Value> factors = {}) {
    Value pairColumn = b.create<arith::MulIOp>(c, b.index(2));
    bool pairs = mm.storesPairs();
    Value pairAligned = pairs ? mm.outputPairAligned(b) : Value();
    auto guarded = [&](Value valid, Value column,
                       function_ref<void(KernelBuilder &)> fn) {
      Value inside = b.create<arith::AndIOp>(
          valid, b.lessThan(column, b.index(mm.width)));
      b.ifThen(inside, fn);
    };
    for (int64_t i = 0; i < config.mTiles; ++i)
      for (int64_t half = 0; half < 2; ++half) {
        Value row = outRows[2 * i + half];
        Value valid = outValid[2 * i + half];
        if (pairs) {
          // The lane's two columns of each tile are adjacent: one routing
          // weight per row and one store per pair.
          b.ifThen(valid, [&](KernelBuilder &rb) {
            Value factor =
                factors.empty() ? mm.rowScale(rb, row) : factors[2 * i + half];
            for (int64_t t = 0; t < outputTiles; ++t) {
              Value column = rb.create<arith::AddIOp>(
                  warpColumn,
                  rb.create<arith::AddIOp>(pairColumn, rb.index(8 * t)));
              SmallVector<Value> values;
              for (int64_t q = 0; q < 2; ++q) {
                int64_t at = accIndex(i, t) + 2 * half + q;
                Value up =
                    mm.glu ? acc[accIndex(i, t + outputTiles) + 2 * half + q]
                           : Value();
                values.push_back(mm.epilogue(rb, acc[at], up, factor));
              }
              rb.ifThen(rb.lessThan(column, rb.index(mm.width)),
                        [&](KernelBuilder &sb) {
                          mm.storePair(sb, pairAligned, row, column,
                                       values[0], values[1]);
                        });
            }
          });
          continue;
        }
        if (mm.interleaved) {
          // The lane's pair is (gate, up) of output column warpColumn +
          // 4u + c.
          for (int64_t u = 0; u < bTiles; ++u) {
            Value column = b.create<arith::AddIOp>(
                warpColumn, b.create<arith::AddIOp>(c, b.index(4 * u)));
            int64_t at = accIndex(i, u) + 2 * half;
            guarded(valid, column, [&](KernelBuilder &sb) {
              mm.storeOutput(sb, row, column, acc[at], acc[at + 1]);
            });
          }
          continue;
        }
        for (int64_t t = 0; t < outputTiles; ++t)
          for (int64_t q = 0; q < 2; ++q) {
            Value column = b.create<arith::AddIOp>(
                warpColumn,
                b.create<arith::AddIOp>(pairColumn, b.index(8 * t + q)));
            int64_t at = accIndex(i, t) + 2 * half + q;
            Value up =
                mm.glu ? acc[accIndex(i, t + outputTiles) + 2 * half + q]
                       : Value();
            guarded(valid, column, [&](KernelBuilder &sb) {
              mm.storeOutput(sb, row, column, acc[at], up);
            });
          }
      }
  }

  /// The weight row that row r of the block's B tile holds, and whether it
  /// exists: gate rows then up rows (concatenated GLU), or consecutive rows.
  Operand stagedWeightRow(KernelBuilder &b, Value blockColumn, Value r) {
    Value row, column;
    if (mm.glu && !mm.interleaved) {
      Value half = b.index(weightRows / 2);
      Value isUp = b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, r, half);
      Value within = b.create<arith::RemUIOp>(r, half);
      column = b.create<arith::AddIOp>(blockColumn, within);
      row = b.create<arith::AddIOp>(
          column, b.create<arith::SelectOp>(isUp, b.index(mm.width),
                                            b.index(0)));
      Value valid = b.lessThan(column, b.index(mm.width));
      return {b.create<arith::SelectOp>(valid, row, b.index(0)), valid};
    }
    Value first = mm.interleaved
                      ? b.create<arith::MulIOp>(blockColumn, b.index(2))
                      : blockColumn;
    row = b.create<arith::AddIOp>(first, r);
    Value valid = b.lessThan(row, b.index(mm.n));
    return {b.create<arith::SelectOp>(valid, row, b.index(0)), valid};
  }

  /// The B tile u of warp column group wn, as a row of the block's B tile;
  /// tiles 2p and 2p + 1 are always 8 rows apart.
  Value stagedTileRow(KernelBuilder &b, Value wn, int64_t u) {
    if (mm.glu && !mm.interleaved) {
      int64_t base = u < outputTiles ? 0 : weightRows / 2;
      return b.create<arith::AddIOp>(
          b.create<arith::MulIOp>(wn, b.index(8 * outputTiles)),
          b.index(base + 8 * (u % outputTiles)));
    }
    return b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(wn, b.index(8 * bTiles)), b.index(8 * u));
  }

  /// 16-byte cp.async of one row chunk of `count` elements, zero-filled
  /// when `valid` is false.
  void copyChunk(KernelBuilder &b, Value dst, ValueRange dstIndices,
                 Value src, ValueRange srcIndices, int64_t count,
                 Value valid) {
    Value elements =
        b.create<arith::SelectOp>(valid, b.index(count), b.index(0));
    b.create<nvgpu::DeviceAsyncCopyOp>(
        nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst, dstIndices,
        src, srcIndices, b.getIndexAttr(count), elements,
        /*bypassL1=*/b.getUnitAttr());
  }

  /// The A fragment of m tile rows [row, row + 16) and K [k, k + 16) from
  /// f32 activations: pairs read as 8-byte words and rounded to the MMA
  /// type, in mma.sync's order (g, 2c), (g + 8, 2c), (g, 2c + 8), ...
  SmallVector<Value> loadF32Fragment(KernelBuilder &b, Value stage,
                                     Value row, Value k, Value g, Value c) {
    SmallVector<Value> packed;
    for (int64_t kHalf = 0; kHalf < 2; ++kHalf)
      for (int64_t rowHalf = 0; rowHalf < 2; ++rowHalf) {
        Value r = b.create<arith::AddIOp>(
            row, b.create<arith::AddIOp>(g, b.index(8 * rowHalf)));
        Value column = b.create<arith::AddIOp>(
            k, b.create<arith::AddIOp>(
                   b.create<arith::MulIOp>(c, b.index(2)),
                   b.index(8 * kHalf)));
        Value pair = b.create<vector::LoadOp>(
            VectorType::get({2}, b.getF32Type()), stagedLhs,
            ValueRange{stage, r, column});
        pair = b.create<arith::TruncFOp>(
            VectorType::get({2}, mm.rhsElement), pair);
        Value word = b.create<vector::BitCastOp>(
            VectorType::get({1}, b.getI32Type()), pair);
        packed.push_back(
            b.create<vector::ExtractOp>(word, ArrayRef<int64_t>{0}));
      }
    return packed;
  }

  /// One ldmatrix.x4 as 4 packed i32 pairs of the MMA type.
  SmallVector<Value> loadMatrix(KernelBuilder &b, Value smem,
                                ValueRange indices) {
    Type element = mm.rhsElement;
    Value tiles = b.create<nvgpu::LdMatrixOp>(
        VectorType::get({4, 2}, element), smem, indices,
        /*transpose=*/false, /*numTiles=*/4);
    SmallVector<Value> packed;
    for (int64_t q = 0; q < 4; ++q) {
      Value pair = b.create<vector::ExtractOp>(tiles, ArrayRef<int64_t>{q});
      Value word = b.create<vector::BitCastOp>(
          VectorType::get({1}, b.getI32Type()), pair);
      packed.push_back(
          b.create<vector::ExtractOp>(word, ArrayRef<int64_t>{0}));
    }
    return packed;
  }

  /// Issues the cp.async copies of K tile `tile` of the block's
  /// `stagedRows` gathered rows and 128 weight rows into `stage`, in 16-byte
  /// chunks spread over the block's threads; zero-filled past the rows and
  /// K.
  using IssueFn = std::function<void(KernelBuilder &, Value, Value)>;
  IssueFn stagedCopies(KernelBuilder &b, const TileWork &work,
                       Value blockColumn) {
    return stagedCopies(b, work, blockColumn, b.threadId(), threads());
  }
  /// The same, issued by the `copyThreads` threads numbered `tid` from 0.
  IssueFn stagedCopies(KernelBuilder &b, const TileWork &work,
                       Value blockColumn, Value tid, int64_t copyThreads) {
    Value expert = work.expert;
    struct Copy {
      Value row;    // in the shared tile
      Operand from; // the row to read
      Value k;      // first element within the K tile
      int64_t count;
    };
    SmallVector<Copy> aCopies, bCopies;
    auto chunks = [&](Type element, int64_t rows,
                      function_ref<Operand(Value)> source,
                      SmallVector<Copy> &copies) {
      int64_t count = 16 * 8 / element.getIntOrFloatBitWidth();
      int64_t perRow = tileK / count;
      if (config.wgmma && !config.wgmmaSwizzledA) {
        // K-chunk-major tiles put a row's chunks `rows * 16` bytes apart,
        // in the same banks: each quarter-warp copies one chunk of 8
        // consecutive rows instead (conflict-free stores), and a warp the
        // two chunks of each 32-byte sector of 16 rows (whole sectors read).
        // Pass p covers chunk pair p of 16 rows per warp, for each group of
        // `warps * 16` of the block's rows.
        int64_t warps = copyThreads / kWarpSize;
        Value warp = b.create<arith::DivUIOp>(tid, b.index(kWarpSize));
        Value lane = b.create<arith::RemUIOp>(tid, b.index(kWarpSize));
        Value rowInWarp = b.create<arith::AddIOp>(
            b.create<arith::MulIOp>(b.create<arith::DivUIOp>(lane, b.index(16)),
                                    b.index(8)),
            b.create<arith::RemUIOp>(lane, b.index(8)));
        Value odd = b.create<arith::RemUIOp>(
            b.create<arith::DivUIOp>(lane, b.index(8)), b.index(2));
        for (int64_t group = 0; group < rows / (16 * warps); ++group) {
          Value r = b.create<arith::AddIOp>(
              b.create<arith::MulIOp>(
                  b.create<arith::AddIOp>(warp, b.index(group * warps)),
                  b.index(16)),
              rowInWarp);
          Operand from = source(r);
          for (int64_t pass = 0; pass < perRow / 2; ++pass) {
            Value k = b.create<arith::MulIOp>(
                b.create<arith::AddIOp>(odd, b.index(2 * pass)),
                b.index(count));
            copies.push_back({r, from, k, count});
          }
        }
        return;
      }
      int64_t rowsPerPass = copyThreads / perRow;
      Value first = b.create<arith::DivUIOp>(tid, b.index(perRow));
      Value k = b.create<arith::MulIOp>(
          b.create<arith::RemUIOp>(tid, b.index(perRow)), b.index(count));
      for (int64_t pass = 0; pass < rows / rowsPerPass; ++pass) {
        Value r = b.create<arith::AddIOp>(first, b.index(pass * rowsPerPass));
        copies.push_back({r, source(r), k, count});
      }
    };
    chunks(mm.lhsType, stagedRows, [&](Value r) {
      Value aRow = b.create<arith::AddIOp>(work.start, r);
      Value inside = b.lessThan(aRow, work.end);
      auto [source, exists] = mm.sourceRow(
          b, b.create<arith::SelectOp>(inside, aRow, work.start));
      Value valid = b.create<arith::AndIOp>(inside, exists);
      return Operand{b.create<arith::SelectOp>(valid, source, b.index(0)),
                     valid};
    }, aCopies);
    if (!config.wgmma)
      chunks(
          mm.rhsElement, weightRows,
          [&](Value r) { return stagedWeightRow(b, blockColumn, r); }, bCopies);
    SmallVector<Value> boxRows;
    Value issuer;
    if (config.wgmma) {
      for (int64_t box = 0; box < weightRows / kTmaBoxRows; ++box)
        boxRows.push_back(weightBoxRow(b, blockColumn, box));
      issuer =
          b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, tid, b.index(0));
    }
    return [=](KernelBuilder &ib, Value tile, Value stage) {
      if (config.wgmma)
        loadWeightTile(ib, tile, stage, expert, boxRows, issuer);
      Value k0 = ib.create<arith::MulIOp>(tile, ib.index(tileK));
      auto copy = [&](const Copy &chunk, Value dst, Value src,
                      ValueRange prefix) {
        Value k = ib.create<arith::AddIOp>(k0, chunk.k);
        Value kInside = ib.lessThan(k, ib.index(mm.reduction));
        SmallVector<Value> indices(prefix);
        indices.append({chunk.from.row,
                        ib.create<arith::SelectOp>(kInside, k, ib.index(0))});
        SmallVector<Value> at = {stage, chunk.row, chunk.k};
        if (config.wgmma && config.wgmmaSwizzledA) {
          // The 128-byte swizzle: chunk c of row r at chunk c ^ (r mod 8).
          Value swizzled = ib.create<arith::XOrIOp>(
              ib.create<arith::DivUIOp>(chunk.k, ib.index(chunk.count)),
              ib.create<arith::RemUIOp>(chunk.row, ib.index(8)));
          at = {stage, chunk.row,
                ib.create<arith::MulIOp>(swizzled, ib.index(chunk.count))};
        } else if (config.wgmma) {
          at = {stage,
                ib.create<arith::DivUIOp>(chunk.k, ib.index(chunk.count)),
                chunk.row, ib.index(0)};
        }
        copyChunk(ib, dst, at, src, indices, chunk.count,
                  ib.create<arith::AndIOp>(chunk.from.valid, kInside));
      };
      for (const Copy &chunk : aCopies)
        copy(chunk, stagedLhs, mm.lhs, {});
      for (const Copy &chunk : bCopies)
        copy(chunk, stagedRhs, mm.rhs, {expert});
    };
  }

  /// The first weight row of TMA box `box` of the block's B tile (rows past
  /// N read as zeros; gate rows past the GLU width read up rows, whose
  /// columns are never stored).
  Value weightBoxRow(KernelBuilder &b, Value blockColumn, int64_t box) {
    if (mm.glu && !mm.interleaved)
      return box == 0 ? blockColumn
                      : b.create<arith::AddIOp>(blockColumn, b.index(mm.width));
    Value first = mm.interleaved
                      ? b.create<arith::MulIOp>(blockColumn, b.index(2))
                      : blockColumn;
    return b.create<arith::AddIOp>(first, b.index(box * kTmaBoxRows));
  }

  /// The host's TMA descriptor of the weights [E, N, K]: boxes of one
  /// expert's 128 rows x 64 K, 128-byte swizzled, zeros past the edges.
  Value createWeightMap(KernelBuilder &b) {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    boxType = MemRefType::get({1, kTmaBoxRows, tileK}, mm.rhsElement,
                              MemRefLayoutAttrInterface(), space);
    auto mapType = nvgpu::TensorMapDescriptorType::get(
        b.getContext(), boxType, nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
        nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
        nvgpu::TensorMapOOBKind::OOB_ZERO,
        nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
    Value unranked = b.create<memref::CastOp>(
        UnrankedMemRefType::get(mm.rhsElement, Attribute()), mm.rhs);
    return b.create<nvgpu::TmaCreateDescriptorOp>(
        mapType, unranked,
        ValueRange{b.index(1), b.index(kTmaBoxRows), b.index(tileK)});
  }

  /// One mbarrier per stage, which the stage's TMA boxes complete (after
  /// `fullArrivals` arrivals), and with a producer warpgroup one per stage
  /// that the consumer warps release it on (`emptyArrivals`); thread 0
  /// initializes them before any copy is issued.
  void createStageBarriers(KernelBuilder &b, int64_t fullArrivals,
                           int64_t emptyArrivals) {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    auto groupType =
        nvgpu::MBarrierGroupType::get(b.getContext(), space, stages);
    stageBarriers = b.create<nvgpu::MBarrierCreateOp>(groupType);
    if (emptyArrivals)
      emptyBarriers = b.create<nvgpu::MBarrierCreateOp>(groupType);
    Value first = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                          b.threadId(), b.index(0));
    for (int64_t s = 0; s < stages; ++s) {
      b.create<nvgpu::MBarrierInitOp>(stageBarriers, b.index(fullArrivals),
                                      b.index(s), first);
      if (emptyArrivals)
        b.create<nvgpu::MBarrierInitOp>(emptyBarriers, b.index(emptyArrivals),
                                        b.index(s), first);
    }
    // The copy engine completes them through the async proxy.
    fenceIntoAsyncProxy(b);
    b.create<gpu::BarrierOp>();
  }

  /// Orders this thread's shared-memory accesses so far (ordinary ones, and
  /// cp.async copies it waited for) before later async-proxy ones: TMA,
  /// wgmma reads.
  void fenceIntoAsyncProxy(KernelBuilder &b) {
    b.create<NVVM::FenceProxyOp>(
        NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(b.getContext(),
                                   NVVM::SharedSpace::shared_cta));
  }

  /// Thread 0 issues the TMA boxes of K tile `tile` of `expert`'s weights
  /// into `stage`, announcing their bytes on the stage's mbarrier.
  void loadWeightTile(KernelBuilder &b, Value tile, Value stage, Value expert,
                      ArrayRef<Value> boxRows, Value issuer) {
    int64_t boxBytes = bytes(boxType);
    b.create<nvgpu::MBarrierArriveExpectTxOp>(
        stageBarriers, b.index(boxBytes * boxRows.size()), stage, issuer);
    Value k0 = b.create<arith::MulIOp>(tile, b.index(tileK));
    int64_t stageBytes = weightRows * tileK * 2;
    for (auto [box, row] : llvm::enumerate(boxRows)) {
      Value offset = b.create<arith::AddIOp>(
          rhsShift, b.create<arith::AddIOp>(
                        b.create<arith::MulIOp>(stage, b.index(stageBytes)),
                        b.index(box * boxBytes)));
      Value dst = b.create<memref::ViewOp>(boxType, dynamicShared, offset,
                                           ValueRange{});
      b.create<nvgpu::TmaAsyncLoadOp>(dst, stageBarriers, weightMap,
                                      ValueRange{k0, row, expert}, stage,
                                      Value(), issuer);
    }
  }

  /// Waits until the weight boxes of K tile `tile` have landed in `stage`:
  /// its mbarrier completes its (tile / stages)-th phase.
  void waitForWeightTile(KernelBuilder &b, Value tile, Value stage) {
    waitForPhase(b, stageBarriers, tile, stage, /*previousRound=*/false);
  }

  /// Waits on barrier `stage` of `barriers` for the phase that K tile
  /// `tile`'s round (tile / stages) completes, or with `previousRound` the
  /// round before (which, in the first round, a fresh barrier counts as
  /// complete).
  void waitForPhase(KernelBuilder &b, Value barriers, Value tile, Value stage,
                    bool previousRound) {
    Value round = b.create<arith::DivUIOp>(tile, b.index(stages));
    Value parity = b.create<arith::CmpIOp>(
        previousRound ? arith::CmpIPredicate::eq : arith::CmpIPredicate::ne,
        b.create<arith::RemUIOp>(round, b.index(2)), b.index(0));
    // A bound on the spin of one try_wait; the wait itself has no bound.
    constexpr int64_t kWaitTicks = 10000000;
    b.create<nvgpu::MBarrierTryWaitParityOp>(barriers, parity,
                                             b.index(kWaitTicks), stage);
  }

  /// Runs `step` on every K tile once it is in shared memory, carrying
  /// `init`: `issue` copies tiles `stages - 1` ahead with cp.async. Before a
  /// tile is read the block waits for its copies (the newest group may still
  /// be in flight) and passes a barrier, after which no warp still reads the
  /// stage reloaded next. For wgmma, which reads shared memory through the
  /// async proxy, the copies are fenced into it first, and `step` leaves its
  /// tile's multiplications in flight: the stage that the previous tile's
  /// multiplications read is reloaded only after `step` (which waits for
  /// them) and a second barrier.
  SmallVector<Value> forEachStagedTile(
      KernelBuilder &b, const IssueFn &issue, ValueRange init,
      bool asyncProxyReads,
      function_ref<SmallVector<Value>(KernelBuilder &, Value, ValueRange)>
          step) {
    int64_t numTiles = kTiles();
    for (int64_t s = 0; s + 1 < stages; ++s) {
      if (s < numTiles)
        issue(b, b.index(s), b.index(s));
      b.create<NVVM::CpAsyncCommitGroupOp>();
    }
    SmallVector<Value> results = b.forLoop(
        b.index(0), b.index(numTiles), b.index(1), init,
        [&](KernelBuilder &lb, Value tile, ValueRange iter) {
          Value stage = lb.create<arith::RemUIOp>(tile, lb.index(stages));
          lb.create<NVVM::CpAsyncWaitGroupOp>(stages - 2);
          if (stageBarriers)
            waitForWeightTile(lb, tile, stage);
          if (asyncProxyReads)
            fenceIntoAsyncProxy(lb);
          lb.create<gpu::BarrierOp>();
          auto issueNext = [&]() {
            Value next = lb.create<arith::AddIOp>(tile, lb.index(stages - 1));
            lb.ifThen(
                lb.lessThan(next, lb.index(numTiles)), [&](KernelBuilder &ib) {
                  issue(ib, next,
                        ib.create<arith::RemUIOp>(next, ib.index(stages)));
                });
            lb.create<NVVM::CpAsyncCommitGroupOp>();
          };
          if (!asyncProxyReads)
            issueNext();
          SmallVector<Value> carried = step(lb, stage, iter);
          if (asyncProxyReads) {
            lb.create<gpu::BarrierOp>();
            issueNext();
          }
          return carried;
        });
    b.create<NVVM::CpAsyncWaitGroupOp>(0);
    return results;
  }

  /// The prefill kernel: each K tile of the block's 128 gathered rows and
  /// 128 weight rows is copied to shared memory with cp.async, `stages`
  /// tiles in flight; warps read their MMA fragments with ldmatrix (or as
  /// f32 pairs).
  void computeStaged(KernelBuilder &b, const TileWork &work,
                     Value blockColumn) {
    ThreadPosition at = threadPosition(b);
    Value warp = at.warp, lane = at.lane, g = at.g, c = at.c;
    Value wm = b.create<arith::DivUIOp>(warp, b.index(kStagedWarpsN));
    Value wn = b.create<arith::RemUIOp>(warp, b.index(kStagedWarpsN));
    IssueFn issue = stagedCopies(b, work, blockColumn);
    SmallVector<Value> init(numAcc(), b.f32(0.0));
    auto accIndex = [&](int64_t i, int64_t u) { return (i * bTiles + u) * 4; };
    // ldmatrix.x4 addresses: lanes 16-31 point at the second half of K (A)
    // or at the second 8-row tile of a pair (B).
    Value rowInTile = b.create<arith::RemUIOp>(lane, b.index(16));
    Value upperLanes = b.create<arith::MulIOp>(
        b.create<arith::DivUIOp>(lane, b.index(16)), b.index(8));
    Value bRowInTile = b.create<arith::RemUIOp>(lane, b.index(8));
    Value bKHalf = b.create<arith::MulIOp>(
        b.create<arith::RemUIOp>(
            b.create<arith::DivUIOp>(lane, b.index(8)), b.index(2)),
        b.index(8));
    SmallVector<Value> acc = forEachStagedTile(
        b, issue, init, /*asyncProxyReads=*/false,
        [&](KernelBuilder &lb, Value stage, ValueRange iter) {
          SmallVector<Value> sums(iter);
          for (int64_t ks = 0; ks < kTileK / 16; ++ks) {
            SmallVector<SmallVector<Value>> aFrags, bFrags(bTiles);
            for (int64_t i = 0; i < config.mTiles; ++i) {
              Value tileRow = lb.create<arith::AddIOp>(
                  lb.create<arith::MulIOp>(wm, lb.index(16 * config.mTiles)),
                  lb.index(16 * i));
              if (mm.lhsType.isF32()) {
                aFrags.push_back(loadF32Fragment(lb, stage, tileRow,
                                                 lb.index(16 * ks), g, c));
                continue;
              }
              Value row = lb.create<arith::AddIOp>(tileRow, rowInTile);
              Value k = lb.create<arith::AddIOp>(upperLanes,
                                                 lb.index(16 * ks));
              aFrags.push_back(loadMatrix(lb, stagedLhs, {stage, row, k}));
            }
            for (int64_t u = 0; u < bTiles; u += 2) {
              Value row = lb.create<arith::AddIOp>(
                  stagedTileRow(lb, wn, u),
                  lb.create<arith::AddIOp>(upperLanes, bRowInTile));
              Value k = lb.create<arith::AddIOp>(bKHalf, lb.index(16 * ks));
              SmallVector<Value> m = loadMatrix(lb, stagedRhs, {stage, row, k});
              bFrags[u] = {m[0], m[1]};
              bFrags[u + 1] = {m[2], m[3]};
            }
            for (int64_t i = 0; i < config.mTiles; ++i)
              for (int64_t u = 0; u < bTiles; ++u) {
                MutableArrayRef<Value> slot(sums.data() + accIndex(i, u), 4);
                mma(lb, aFrags[i], bFrags[u], slot);
              }
          }
          return sums;
        });

    SmallVector<Value> outRows, outValid;
    for (int64_t i = 0; i < config.mTiles; ++i)
      for (int64_t half = 0; half < 2; ++half) {
        Value r = b.create<arith::AddIOp>(
            work.start,
            b.create<arith::AddIOp>(
                b.create<arith::MulIOp>(wm, b.index(16 * config.mTiles)),
                b.create<arith::AddIOp>(g, b.index(16 * i + 8 * half))));
        outRows.push_back(r);
        outValid.push_back(b.lessThan(r, work.end));
      }
    Value warpColumn = b.create<arith::AddIOp>(
        blockColumn, b.create<arith::MulIOp>(wn, b.index(config.warpColumns)));
    storeTile(b, acc, accIndex, outRows, outValid, warpColumn, c);
  }

  /// A wgmma shared-memory matrix descriptor of the matrix `offset` bytes
  /// into `smem`. Bits 0-13: its address >> 4; 16-29: the leading byte
  /// offset >> 4; 32-45: the stride byte offset >> 4; 62-63: the swizzle
  /// mode (0: none, 1: 128 bytes).
  Value descriptor(KernelBuilder &b, Value smem, Value offset,
                   int64_t leadingBytes, int64_t strideBytes,
                   int64_t swizzleMode) {
    Type i64 = b.getI64Type();
    Value base = b.create<arith::IndexCastOp>(
        i64, b.create<memref::ExtractAlignedPointerAsIndexOp>(smem));
    Value address = b.create<arith::AddIOp>(
        base, b.create<arith::IndexCastOp>(i64, offset));
    auto constant = [&](int64_t v) {
      return b.create<arith::ConstantIntOp>(i64, v);
    };
    Value start = b.create<arith::ShRUIOp>(
        b.create<arith::AndIOp>(address, constant(0x3FFFF)), constant(4));
    int64_t fields = ((leadingBytes >> 4) << 16) |
                     ((strideBytes >> 4) << 32) | (swizzleMode << 62);
    return b.create<arith::OrIOp>(start, constant(fields));
  }

  /// The descriptor of the 16-wide K step `step` of `stage` of the A tile
  /// of `rows` rows, from row `firstRow` (a multiple of 8): K-major, in the
  /// weights' 128-byte swizzle, or K-chunk-major without swizzle (K chunks
  /// `rows * 16` bytes apart, 8-row groups 128).
  Value matrixDescriptor(KernelBuilder &b, Value smem, Value stage,
                         int64_t step, int64_t rows, Value firstRow) {
    if (config.wgmmaSwizzledA)
      return swizzledDescriptor(b, smem, stage, step, rows, firstRow);
    int64_t chunkBytes = rows * 16; // one chunk of 8 K over all rows
    Value offset = b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(stage, b.index(chunkBytes * (tileK / 8))),
        b.create<arith::AddIOp>(
            b.index(chunkBytes * 2 * step),
            b.create<arith::MulIOp>(firstRow, b.index(16))));
    return descriptor(b, smem, offset, chunkBytes, 128, /*swizzleMode=*/0);
  }

  /// The descriptor of the 16-wide K step `step` of `stage` of a tile of
  /// `rows` 128-byte rows in `smem` (K-major, 128-byte swizzle, as TMA
  /// writes the weight boxes), from row `firstRow` (a multiple of 8): 8-row
  /// atoms 1024 bytes apart, a K step 32 bytes into each row; swizzled
  /// K-major layouts ignore the leading offset (set to 1).
  Value swizzledDescriptor(KernelBuilder &b, Value smem, Value stage,
                           int64_t step, int64_t rows, Value firstRow) {
    int64_t rowBytes = tileK * 2;
    Value offset = b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(stage, b.index(rows * rowBytes)),
        b.create<arith::AddIOp>(
            b.index(32 * step),
            b.create<arith::MulIOp>(firstRow, b.index(rowBytes))));
    return descriptor(b, smem, offset, 16, kSwizzleAtomBytes,
                      /*swizzleMode=*/1);
  }

  /// The prefill kernel on sm_90a: two warpgroups per block tile, K tiles
  /// brought in `stages` stages (A by cp.async, the weights by TMA), then
  /// each 16-wide K step of a warpgroup is one wgmma.mma_async.m64n256k16
  /// reading both operands from shared memory. A K tile's multiplications
  /// stay in flight while the copies of a later tile start.
  ///
  /// With a producer warpgroup, it alone issues the copies: it waits for a
  /// stage's empty barrier (the consumer warps' release of the tile before),
  /// then the stage's full barrier completes on the TMA bytes and on each
  /// producer thread's cp.async arrival. The consumers wait only on full
  /// barriers, so neither side stops at a block barrier and the producer
  /// runs up to `stages` tiles ahead of the slower consumer warpgroup.
  void computeWgmma(KernelBuilder &b, const TileWork &work,
                    Value blockColumn) {
    ThreadPosition at = threadPosition(b);
    Value warpgroup = b.create<arith::DivUIOp>(
        at.warp, b.index(kWarpgroupThreads / kWarpSize));
    Value firstRow = b.create<arith::MulIOp>(warpgroup, b.index(kWgmmaRows));
    MLIRContext *ctx = b.getContext();
    auto accType = LLVM::LLVMStructType::getLiteral(
        ctx, SmallVector<Type>(weightRows / 2, b.getF32Type()));
    Value zero = b.create<LLVM::ZeroOp>(accType);
    if (!config.wgmmaProducer) {
      createStageBarriers(b, /*fullArrivals=*/1, /*emptyArrivals=*/0);
      IssueFn issue = stagedCopies(b, work, blockColumn);
      Value acc = forEachStagedTile(
                      b, issue, ValueRange{zero}, /*asyncProxyReads=*/true,
                      [&](KernelBuilder &lb, Value stage, ValueRange iter) {
                        // This tile's group stays in flight; the previous
                        // tile's is done, and its stage is reloaded after the
                        // next barrier.
                        return SmallVector<Value>{
                            multiplyTile(lb, stage, iter[0], firstRow)};
                      })
                      .front();
      b.create<NVVM::WgmmaWaitGroupSyncOp>(0);
      storeWgmmaTile(b, work, blockColumn, acc, at, firstRow);
      return;
    }
    int64_t consumerThreads = kWgmmaWarpgroups * kWarpgroupThreads;
    // Every consumer thread releases a stage, so that no branch on the lane
    // sits between the wgmmas (ptxas serializes them on divergent paths).
    createStageBarriers(b, /*fullArrivals=*/1 + kWarpgroupThreads,
                        /*emptyArrivals=*/consumerThreads);
    // The two roles branch on the warpgroup index read from lane 0.
    Type i32 = b.getI32Type();
    Value isProducer = b.create<arith::CmpIOp>(
        arith::CmpIPredicate::uge,
        fromLane0(b, b.create<arith::IndexCastOp>(i32, warpgroup)),
        b.create<arith::ConstantIntOp>(i32, kWgmmaWarpgroups));
    int64_t numTiles = kTiles();
    b.ifThenElse(
        isProducer,
        [&](KernelBuilder &pb) {
          Value tid = pb.create<arith::SubIOp>(pb.threadId(),
                                               pb.index(consumerThreads));
          IssueFn issue =
              stagedCopies(pb, work, blockColumn, tid, kWarpgroupThreads);
          pb.forEach(
              pb.index(0), pb.index(numTiles), pb.index(1),
              [&](KernelBuilder &lb, Value tile) {
                Value stage = lb.create<arith::RemUIOp>(tile, lb.index(stages));
                waitForPhase(lb, emptyBarriers, tile, stage,
                             /*previousRound=*/true);
                issue(lb, tile, stage);
                // The barrier counts this thread's arrival once its
                // copies so far have landed.
                Value address = lb.create<nvgpu::MBarrierGetOp>(
                    lb.getI32Type(), stageBarriers, stage);
                Value pointer = lb.create<LLVM::IntToPtrOp>(
                    LLVM::LLVMPointerType::get(
                        ctx,
                        static_cast<unsigned>(NVVM::NVVMMemorySpace::Shared)),
                    address);
                lb.create<NVVM::CpAsyncMBarrierArriveOp>(pointer,
                                                         /*noinc=*/true);
              });
        },
        [&](KernelBuilder &cb) {
          // A warpgroup whose 64 rows are all past the tile's rows (the last
          // tile of an expert) multiplies nothing (on an H200, Qwen3 T = 4096
          // 0.87 -> 0.81 ms, Mixtral T = 512 1.13 -> 0.95 ms). It still waits
          // for each stage before releasing it, so that its arrivals count
          // towards that stage's round and no later one.
          Value rowsInTile = cb.create<arith::SubIOp>(work.end, work.start);
          Value idle = cb.create<arith::CmpIOp>(arith::CmpIPredicate::uge,
                                                firstRow, rowsInTile);
          // Read from lane 0, like the role.
          cb.ifThenElse(
              cb.create<arith::CmpIOp>(
                  arith::CmpIPredicate::ne,
                  fromLane0(cb, cb.create<arith::ExtUIOp>(i32, idle)),
                  cb.create<arith::ConstantIntOp>(i32, 0)),
              [&](KernelBuilder &ib) {
                ib.forEach(ib.index(0), ib.index(numTiles), ib.index(1),
                           [&](KernelBuilder &lb, Value tile) {
                             Value stage = lb.create<arith::RemUIOp>(
                                 tile, lb.index(stages));
                             waitForWeightTile(lb, tile, stage);
                             lb.create<nvgpu::MBarrierArriveOp>(
                                 nvgpu::MBarrierTokenType::get(ctx),
                                 emptyBarriers, stage);
                           });
              },
              [&](KernelBuilder &mb) {
                multiplyAndStore(mb, work, blockColumn, zero, at, firstRow);
              });
        });
  }

  /// A consumer warpgroup's K loop over the stages the producer fills, each
  /// released once the multiplications reading it are done, then its store.
  void multiplyAndStore(KernelBuilder &cb, const TileWork &work,
                        Value blockColumn, Value zero, const ThreadPosition &at,
                        Value firstRow) {
    MLIRContext *ctx = cb.getContext();
    int64_t numTiles = kTiles();
    WgmmaRows rows = wgmmaRows(cb, work, at, firstRow, /*prefetch=*/true);
    auto step = [&](KernelBuilder &lb, Value tile, ValueRange iter) {
      Value stage = lb.create<arith::RemUIOp>(tile, lb.index(stages));
      waitForWeightTile(lb, tile, stage);
      // The A rows came by cp.async (the generic proxy); wgmma reads them
      // through the async one.
      fenceIntoAsyncProxy(lb);
      Value d = multiplyTile(lb, stage, iter[0], firstRow);
      // The previous tile's multiplications are done: its stage can be
      // reloaded.
      Value release = lb.create<arith::CmpIOp>(arith::CmpIPredicate::ugt, tile,
                                               lb.index(0));
      lb.ifThen(release, [&](KernelBuilder &rb) {
        Value previous = rb.create<arith::RemUIOp>(
            rb.create<arith::SubIOp>(tile, rb.index(1)), rb.index(stages));
        rb.create<nvgpu::MBarrierArriveOp>(nvgpu::MBarrierTokenType::get(ctx),
                                           emptyBarriers, previous);
      });
      return SmallVector<Value>{d};
    };
    Value acc = cb.forLoop(cb.index(0), cb.index(numTiles), cb.index(1),
                           ValueRange{zero}, step)
                    .front();
    cb.create<NVVM::WgmmaWaitGroupSyncOp>(0);
    storeWgmmaTile(cb, work, blockColumn, acc, at, firstRow, &rows);
  }

  /// `value` (i32) as lane 0 of the warp holds it, which ptxas knows is the
  /// same in all of the warp's lanes: a branch on it around wgmmas is then
  /// not a divergent path, on which ptxas would serialize them.
  static Value fromLane0(KernelBuilder &b, Value value) {
    Type i32 = b.getI32Type();
    return b
        .create<gpu::ShuffleOp>(value, b.create<arith::ConstantIntOp>(i32, 0),
                                b.create<arith::ConstantIntOp>(i32, kWarpSize),
                                gpu::ShuffleMode::IDX)
        .getShuffleResult();
  }

  /// Issues the warpgroup's multiplications of the K tile in `stage` onto
  /// the accumulators `d`, then waits until at most this group is in
  /// flight.
  Value multiplyTile(KernelBuilder &b, Value stage, Value d, Value firstRow) {
    MLIRContext *ctx = b.getContext();
    auto wgmmaType = mm.rhsElement.isBF16() ? NVVM::WGMMATypes::bf16
                                            : NVVM::WGMMATypes::f16;
    b.create<NVVM::WgmmaFenceAlignedOp>();
    for (int64_t step = 0; step < tileK / 16; ++step)
      d = b.create<NVVM::WgmmaMmaAsyncOp>(
          d.getType(), d,
          matrixDescriptor(b, stagedLhs, stage, step, stagedRows, firstRow),
          swizzledDescriptor(b, stagedRhs, stage, step, weightRows, b.index(0)),
          NVVM::MMAShapeAttr::get(ctx, 64, weightRows, 16), wgmmaType,
          wgmmaType, NVVM::WGMMATypes::f32, NVVM::WGMMAScaleOut::one,
          NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
          NVVM::MMALayout::row, NVVM::MMALayout::col,
          NVVM::MMAIntOverflowAttr());
    b.create<NVVM::WgmmaGroupSyncAlignedOp>();
    b.create<NVVM::WgmmaWaitGroupSyncOp>(1);
    return d;
  }

  /// The output rows of a consumer thread's accumulators: warp w of its
  /// warpgroup holds rows 16w + g (+ 8) of every 8-column tile, as mma.sync.
  /// With `prefetch`, their routing weights too, loaded before the K loop
  /// so that the store does not wait on them (where the store takes them
  /// per row: the paired stores of a row-scaled output).
  struct WgmmaRows {
    SmallVector<Value> rows, valid, factors;
  };
  WgmmaRows wgmmaRows(KernelBuilder &b, const TileWork &work,
                      const ThreadPosition &at, Value firstRow, bool prefetch) {
    Value warpInGroup = b.create<arith::RemUIOp>(
        at.warp, b.index(kWarpgroupThreads / kWarpSize));
    WgmmaRows out;
    bool perRow = mm.scale && mm.storesPairs();
    for (int64_t half = 0; half < 2; ++half) {
      Value r = b.create<arith::AddIOp>(
          work.start,
          b.create<arith::AddIOp>(
              b.create<arith::AddIOp>(
                  firstRow, b.create<arith::MulIOp>(warpInGroup, b.index(16))),
              b.create<arith::AddIOp>(at.g, b.index(8 * half))));
      Value valid = b.lessThan(r, work.end);
      out.rows.push_back(r);
      out.valid.push_back(valid);
      if (prefetch && perRow)
        out.factors.push_back(
            mm.rowScale(b, b.create<arith::SelectOp>(valid, r, work.start)));
    }
    return out;
  }

  /// The epilogue of a consumer warpgroup's 64 rows.
  void storeWgmmaTile(KernelBuilder &b, const TileWork &work, Value blockColumn,
                      Value acc, const ThreadPosition &at, Value firstRow,
                      const WgmmaRows *known = nullptr) {
    SmallVector<Value> values;
    for (int64_t q = 0; q < weightRows / 2; ++q)
      values.push_back(
          b.create<LLVM::ExtractValueOp>(acc, ArrayRef<int64_t>{q}));
    auto accIndex = [&](int64_t, int64_t u) { return u * 4; };
    WgmmaRows rows =
        known ? *known : wgmmaRows(b, work, at, firstRow, /*prefetch=*/false);
    storeTile(b, values, accIndex, rows.rows, rows.valid, blockColumn, at.c,
              rows.factors);
  }

  const GroupedMatmul &mm;
  TensorCoreConfig config;
  NVVM::MMATypes mmaType;
  int64_t outputTiles, bTiles;
  Value partials; // workgroup memory of the K parts' sums (splitK > 1)
  Value stagedLhs, stagedRhs; // the staged kernel's shared-memory tiles
  // wgmma: the weights' TMA descriptor (host), the box type, the block's
  // dynamic shared memory and the weight stages' byte shift in it, and the
  // stages' full and (with a producer warpgroup) empty mbarriers.
  Value weightMap, dynamicShared, rhsShift, stageBarriers, emptyBarriers;
  MemRefType boxType;
  int64_t stages = 0;         // K tiles the staged kernel keeps in flight
  int64_t stagedRows = 0;     // rows of the staged kernel's block tile
  int64_t weightRows = 128;   // weight rows of the staged kernel's tile
  int64_t tileK = kTileK;     // K of a staged tile
};

//===----------------------------------------------------------------------===//
// Plain kernel: one thread per output element
//===----------------------------------------------------------------------===//

void launchPlainKernel(KernelBuilder &b, const GroupedMatmul &mm) {
  Value gridX = b.index(llvm::divideCeil(mm.width, kBlockThreads));
  b.launch(
      "moe_grouped_matmul_plain", gridX, mm.numRows, kBlockThreads,
      [&](KernelBuilder &kb) {
        Value column = kb.globalThreadId(kBlockThreads);
        Value r = kb.blockId(gpu::Dimension::y);
        kb.ifThen(kb.lessThan(column, kb.index(mm.width)), [&](KernelBuilder
                                                                   &tb) {
          // The expert whose range holds r, if any.
          Value falseValue =
              tb.create<arith::ConstantIntOp>(tb.getI1Type(), 0);
          auto found = tb.forLoop(
              tb.index(0), tb.index(mm.numExperts), tb.index(1),
              ValueRange{falseValue, tb.index(0)},
              [&](KernelBuilder &lb, Value e, ValueRange acc) {
                auto [lo, hi] = mm.expertRange(lb, e);
                Value inside = lb.create<arith::AndIOp>(
                    lb.create<arith::CmpIOp>(arith::CmpIPredicate::uge, r, lo),
                    lb.lessThan(r, hi));
                Value here = lb.create<arith::AndIOp>(
                    inside, lb.create<arith::XOrIOp>(
                                acc[0], lb.create<arith::ConstantIntOp>(
                                            lb.getI1Type(), 1)));
                return SmallVector<Value>{
                    lb.create<arith::OrIOp>(acc[0], here),
                    lb.create<arith::SelectOp>(here, e, acc[1])};
              });
          Value expert = found[1];
          auto sourceAndExists = mm.sourceRow(tb, r);
          Value source = sourceAndExists.first;
          Value exists = sourceAndExists.second;
          Value gateColumn =
              mm.interleaved ? tb.create<arith::MulIOp>(column, tb.index(2))
                             : column;
          Value upColumn = tb.create<arith::AddIOp>(
              gateColumn, tb.index(mm.interleaved ? 1 : mm.width));
          auto weight = [&](KernelBuilder &lb, Value n, Value k) {
            SmallVector<Value> indices =
                mm.kn ? SmallVector<Value>{expert, k, n}
                      : SmallVector<Value>{expert, n, k};
            return lb.castFloat(lb.load(mm.rhs, indices), lb.getF32Type());
          };
          Value zero = tb.f32(0.0);
          SmallVector<Value> init = {zero};
          if (mm.glu)
            init.push_back(zero);
          auto sums = tb.forLoop(
              tb.index(0), tb.index(mm.reduction), tb.index(1), init,
              [&](KernelBuilder &lb, Value k, ValueRange acc) {
                Value a = lb.castFloat(lb.load(mm.lhs, {source, k}),
                                       lb.getF32Type());
                SmallVector<Value> next = {lb.create<arith::AddFOp>(
                    acc[0],
                    lb.create<arith::MulFOp>(a, weight(lb, gateColumn, k)))};
                if (mm.glu)
                  next.push_back(lb.create<arith::AddFOp>(
                      acc[1],
                      lb.create<arith::MulFOp>(a, weight(lb, upColumn, k))));
                return next;
              });
          Value routed = tb.create<arith::AndIOp>(found[0], exists);
          tb.ifThenElse(
              routed,
              [&](KernelBuilder &sb) {
                mm.storeOutput(sb, r, column, sums[0],
                               mm.glu ? sums[1] : Value());
              },
              [&](KernelBuilder &sb) {
                // Rows of no expert (and gathered rows of no token) are 0.
                sb.store(sb.create<arith::ConstantOp>(
                             sb.getZeroAttr(mm.outType)),
                         mm.out.buffer, {r, column});
              });
        });
      });
}

} // namespace

LogicalResult
gpu_lowering::lowerGroupedMatmul(GroupedMatmulOp op, KernelBuilder &b,
                                 TileScheduleCache &schedules) {
  auto kernels = op->getAttrOfType<GroupedMatmulKernelsAttr>(
      MoEDialect::getGpuKernelsAttrName());
  if (!kernels)
    return op.emitOpError()
           << "has no " << MoEDialect::getGpuKernelsAttrName()
           << " attribute: run moe-gpu-select-kernel-config first";
  GroupedMatmul mm(op, b);
  if (kernels.getSmall().getKernel() == MatmulKernel::simt) {
    launchPlainKernel(b, mm);
  } else {
    // Decode-sized problems want many narrow warps with deep load queues;
    // prefill-sized ones want wider tiles that reuse what they load.
    Value average = b.create<arith::DivUIOp>(mm.numRows,
                                             b.index(mm.numExperts));
    TensorCoreKernel large(mm, kernels.getLarge()),
        small(mm, kernels.getSmall());
    int64_t minTileRows = std::min(small.tileRows(), large.tileRows());
    // Matmuls over the same rows and offsets have the same row count, so
    // they take the same tile shape, whose schedule the first one wrote.
    std::optional<std::pair<Value, Value>> key;
    if (op.getRows())
      key = std::make_pair(op.getOffsets(), op.getRows());
    ScheduledTiles *cached = nullptr;
    if (key) {
      auto found = schedules.find(*key);
      if (found != schedules.end())
        cached = &found->second;
    }
    TileSchedule schedule =
        cached ? TileSchedule{cached->expert, cached->start, cached->count}
               : allocateSchedule(b, mm, minTileRows);
    bool largeScheduled = cached && cached->largeTileRows == large.tileRows();
    bool smallScheduled = cached && cached->smallTileRows == small.tileRows();
    Value isLarge =
        b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, average,
                                b.index(kernels.getLargeRowsPerExpert()));
    b.ifThenElse(
        isLarge,
        [&](KernelBuilder &tb) {
          large.launch(tb, "moe_grouped_matmul_large", schedule,
                       largeScheduled, kernels.getLarge());
        },
        [&](KernelBuilder &eb) {
          small.launch(eb, "moe_grouped_matmul_small", schedule,
                       smallScheduled, kernels.getSmall());
        });
    if (key)
      schedules[*key] = {schedule.expert, schedule.start, schedule.count,
                         small.tileRows(), large.tileRows()};
  }
  op.getResult().replaceAllUsesWith(mm.out.tensor);
  return success();
}
