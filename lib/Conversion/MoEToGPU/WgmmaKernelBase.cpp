//===- WgmmaKernelBase.cpp - What the wgmma main loops share --------------===//

#include "WgmmaKernelBase.h"

#include "SharedTileLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

// NVGPUDialect.h has a kWarpSize of its own: this file names
// gpu_lowering::kWarpSize.

void WgmmaKernelBase::prepareLaunch(KernelBuilder &b, SmallVector<Type> &,
                                    int64_t &dynamicBytes) {
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  // The swizzled A stages follow the weight stages, so they start at a
  // multiple of the atom size too.
  lhsTile =
      aLayout == SharedLayout::k_chunk_major
          ? MemRefType::get({stages, tileK / 8, stagedRows, 8}, stageElement,
                            MemRefLayoutAttrInterface(), space)
          : MemRefType::get({stages, stagedRows, tileK}, stageElement,
                            MemRefLayoutAttrInterface(), space);
  rhsTile = MemRefType::get({stages, weightRows, tileK}, stageElement,
                            MemRefLayoutAttrInterface(), space);
  // The swizzled weight stages start at a multiple of the atom size, found
  // in the kernel: room for the shift that takes.
  dynamicBytes = kSwizzleAtomBytes + bytes(lhsTile) + bytes(rhsTile);
  weightMap = createWeightMap(b, mm.rhs, mm.rhsElement);
}

void WgmmaKernelBase::bindSharedMemory(KernelBuilder &kb, ValueRange) {
  auto space =
      gpu::AddressSpaceAttr::get(kb.getContext(), gpu::AddressSpace::Workgroup);
  dynamicShared = kb.create<gpu::DynamicSharedMemoryOp>(
      MemRefType::get({ShapedType::kDynamic}, kb.getIntegerType(8),
                      MemRefLayoutAttrInterface(), space));
  Value address =
      kb.create<memref::ExtractAlignedPointerAsIndexOp>(dynamicShared);
  Value atom = kb.index(kSwizzleAtomBytes);
  rhsShift = kb.create<arith::RemUIOp>(
      kb.create<arith::SubIOp>(atom, kb.create<arith::RemUIOp>(address, atom)),
      atom);
  stagedRhs =
      kb.create<memref::ViewOp>(rhsTile, dynamicShared, rhsShift, ValueRange{});
  stagedLhs = kb.create<memref::ViewOp>(
      lhsTile, dynamicShared,
      kb.create<arith::AddIOp>(rhsShift, kb.index(bytes(rhsTile))),
      ValueRange{});
}

Value WgmmaKernelBase::createWeightMap(KernelBuilder &b, Value weights,
                                       Type element) {
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  // CUDA's tensor maps have no FP8 data type, nor does the nvgpu lowering
  // of the descriptor (it takes unsigned bytes): FP8 weights are described
  // as their bytes. Both memref types lower to the same LLVM descriptor, so
  // the cast folds away.
  if (isa<FloatType>(element) && element.getIntOrFloatBitWidth() == 8) {
    element = IntegerType::get(b.getContext(), 8, IntegerType::Unsigned);
    auto type = cast<MemRefType>(weights.getType());
    weights = b.create<UnrealizedConversionCastOp>(
                   MemRefType::get(type.getShape(), element, type.getLayout(),
                                   type.getMemorySpace()),
                   weights)
                  .getResult(0);
  }
  boxType = MemRefType::get({1, boxRows, tileK}, element,
                            MemRefLayoutAttrInterface(), space);
  auto mapType = nvgpu::TensorMapDescriptorType::get(
      b.getContext(), boxType, nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
      nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
      nvgpu::TensorMapOOBKind::OOB_ZERO,
      nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
  Value unranked = b.create<memref::CastOp>(
      UnrankedMemRefType::get(element, Attribute()), weights);
  return b.create<nvgpu::TmaCreateDescriptorOp>(
      mapType, unranked,
      ValueRange{b.index(1), b.index(boxRows), b.index(tileK)});
}

Value WgmmaKernelBase::weightBoxRow(KernelBuilder &b, Value blockColumn,
                                    int64_t box) const {
  int64_t boxes = weightRows / boxRows;
  if (mm.glu && !mm.interleaved) {
    // Gate rows in the first half of the boxes, up rows in the second.
    int64_t half = boxes / 2;
    Value first = box < half
                      ? blockColumn
                      : b.create<arith::AddIOp>(blockColumn, b.index(mm.width));
    return b.create<arith::AddIOp>(first, b.index((box % half) * boxRows));
  }
  Value first = mm.interleaved
                    ? b.create<arith::MulIOp>(blockColumn, b.index(2))
                    : blockColumn;
  return b.create<arith::AddIOp>(first, b.index(box * boxRows));
}

void WgmmaKernelBase::planWeightBoxes(KernelBuilder &b, Value blockColumn,
                                      Value tid) {
  boxFirstRows.clear();
  for (int64_t box = 0; box < weightRows / boxRows; ++box)
    boxFirstRows.push_back(weightBoxRow(b, blockColumn, box));
  issuer = b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, tid, b.index(0));
}

void WgmmaKernelBase::loadWeightTile(KernelBuilder &b, Value tile, Value stage,
                                     Value expert) {
  int64_t boxBytes = bytes(boxType);
  barriers.expectBytes(b, boxBytes * boxFirstRows.size(), stage, issuer);
  Value k0 = b.create<arith::MulIOp>(tile, b.index(tileK));
  int64_t stageBytes = bytes(rhsTile) / stages;
  for (auto [box, row] : llvm::enumerate(boxFirstRows)) {
    Value offset = b.create<arith::AddIOp>(
        rhsShift, b.create<arith::AddIOp>(
                      b.create<arith::MulIOp>(stage, b.index(stageBytes)),
                      b.index(static_cast<int64_t>(box) * boxBytes)));
    Value dst =
        b.create<memref::ViewOp>(boxType, dynamicShared, offset, ValueRange{});
    b.create<nvgpu::TmaAsyncLoadOp>(dst, barriers.full, weightMap,
                                    ValueRange{k0, row, expert}, stage, Value(),
                                    issuer);
  }
}

Value WgmmaKernelBase::fromLane0(KernelBuilder &b, Value value) {
  Type i32 = b.getI32Type();
  return b
      .create<gpu::ShuffleOp>(
          value, b.create<arith::ConstantIntOp>(i32, 0),
          b.create<arith::ConstantIntOp>(i32, gpu_lowering::kWarpSize),
          gpu::ShuffleMode::IDX)
      .getShuffleResult();
}

void WgmmaKernelBase::warpSpecialized(
    KernelBuilder &b, const TileWork &work, Value warpgroup, Value firstRow,
    function_ref<void(KernelBuilder &, Value)> produce,
    function_ref<void(KernelBuilder &)> consume) {
  int64_t consumerThreads = kWgmmaWarpgroups * kWarpgroupThreads;
  barriers = StageBarriers::create(b, stages,
                                   /*fullArrivals=*/1 + kWarpgroupThreads,
                                   /*emptyArrivals=*/consumerThreads);
  Type i32 = b.getI32Type();
  Value isProducer = b.create<arith::CmpIOp>(
      arith::CmpIPredicate::uge,
      fromLane0(b, b.create<arith::IndexCastOp>(i32, warpgroup)),
      b.create<arith::ConstantIntOp>(i32, kWgmmaWarpgroups));
  b.ifThenElse(
      isProducer,
      [&](KernelBuilder &pb) {
        produce(pb, pb.create<arith::SubIOp>(pb.threadId(),
                                             pb.index(consumerThreads)));
      },
      [&](KernelBuilder &cb) {
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
              ib.forEach(ib.index(0), ib.index(kTiles()), ib.index(1),
                         [&](KernelBuilder &lb, Value tile) {
                           Value stage = lb.create<arith::RemUIOp>(
                               tile, lb.index(stages));
                           barriers.waitFull(lb, tile, stage);
                           barriers.release(lb, stage);
                         });
            },
            consume);
      });
}

WgmmaKernelBase::WgmmaRows WgmmaKernelBase::wgmmaRows(KernelBuilder &b,
                                                      const TileWork &work,
                                                      const ThreadPosition &at,
                                                      Value firstRow,
                                                      bool prefetch) {
  Value warpInGroup = b.create<arith::RemUIOp>(
      at.warp, b.index(kWarpgroupThreads / gpu_lowering::kWarpSize));
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

void WgmmaKernelBase::storeWgmmaTile(KernelBuilder &b, const TileWork &work,
                                     Value blockColumn, Value acc,
                                     const ThreadPosition &at, Value firstRow,
                                     const WgmmaRows *known) {
  SmallVector<Value> values;
  for (int64_t q = 0; q < weightRows / 2; ++q)
    values.push_back(b.create<LLVM::ExtractValueOp>(acc, ArrayRef<int64_t>{q}));
  auto accIndex = [&](int64_t, int64_t u) { return u * 4; };
  WgmmaRows rows =
      known ? *known : wgmmaRows(b, work, at, firstRow, /*prefetch=*/false);
  storeTile(b, values, accIndex, rows.rows, rows.valid, blockColumn, at.c,
            work.expert, rows.factors);
}
