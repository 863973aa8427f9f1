//===- MmaFragments.cpp - mma.sync fragments and the MMA itself -----------===//

#include "MmaFragments.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

ThreadPosition gpu_lowering::threadPosition(KernelBuilder &b) {
  Value tid = b.threadId();
  Value warp = b.create<arith::DivUIOp>(tid, b.index(kWarpSize));
  Value lane = b.create<arith::RemUIOp>(tid, b.index(kWarpSize));
  return {warp, lane, b.create<arith::DivUIOp>(lane, b.index(4)),
          b.create<arith::RemUIOp>(lane, b.index(4))};
}

void gpu_lowering::copyChunk(KernelBuilder &b, Value dst, ValueRange dstIndices,
                             Value src, ValueRange srcIndices, int64_t count,
                             Value valid) {
  Value elements = b.create<arith::SelectOp>(valid, b.index(count), b.index(0));
  b.create<nvgpu::DeviceAsyncCopyOp>(
      nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst, dstIndices, src,
      srcIndices, b.getIndexAttr(count), elements,
      /*bypassL1=*/b.getUnitAttr());
}

MmaFragments::MmaFragments(Type element, int64_t reduction)
    : mmaElement(element),
      mmaType(element.isBF16() ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16),
      reduction(reduction) {}

Value MmaFragments::wideLoad(KernelBuilder &b, Value memref, ValueRange prefix,
                             Operand row, Value k, Type element) const {
  SmallVector<Value> indices(prefix);
  indices.append({row.row, k});
  int64_t bytes = 8 * element.getIntOrFloatBitWidth() / 8;
  Value v = b.create<vector::LoadOp>(
      VectorType::get({8}, element), memref, indices, false,
      llvm::MaybeAlign(std::min<int64_t>(bytes, 16)));
  if (element != mmaElement) {
    if (!element.isF32())
      v = b.create<arith::ExtFOp>(VectorType::get({8}, b.getF32Type()), v);
    v = b.create<arith::TruncFOp>(VectorType::get({8}, mmaElement), v);
  }
  Value packed =
      b.create<vector::BitCastOp>(VectorType::get({4}, b.getI32Type()), v);
  Value zero = b.create<arith::ConstantOp>(DenseElementsAttr::get(
      VectorType::get({4}, b.getI32Type()), b.getI32IntegerAttr(0)));
  return b.create<arith::SelectOp>(row.valid, packed, zero);
}

Value MmaFragments::tailPair(KernelBuilder &b, Value memref, ValueRange prefix,
                             Operand row, Value k) const {
  SmallVector<Value> elements;
  for (int64_t q = 0; q < 2; ++q) {
    Value column = b.create<arith::AddIOp>(k, b.index(q));
    Value inside = b.lessThan(column, b.index(reduction));
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
  Value packed =
      b.create<vector::BitCastOp>(VectorType::get({1}, b.getI32Type()), pair);
  return b.create<vector::ExtractOp>(packed, ArrayRef<int64_t>{0});
}

Value MmaFragments::element(KernelBuilder &b, Value packed, int64_t q) {
  return b.create<vector::ExtractOp>(packed, ArrayRef<int64_t>{q});
}

SmallVector<Value> MmaFragments::loadMatrix(KernelBuilder &b, Value smem,
                                            ValueRange indices) const {
  Type element = mmaElement;
  Value tiles = b.create<nvgpu::LdMatrixOp>(
      VectorType::get({4, 2}, element), smem, indices,
      /*transpose=*/false, /*numTiles=*/4);
  SmallVector<Value> packed;
  for (int64_t q = 0; q < 4; ++q) {
    Value pair = b.create<vector::ExtractOp>(tiles, ArrayRef<int64_t>{q});
    Value word =
        b.create<vector::BitCastOp>(VectorType::get({1}, b.getI32Type()), pair);
    packed.push_back(b.create<vector::ExtractOp>(word, ArrayRef<int64_t>{0}));
  }
  return packed;
}

SmallVector<Value> MmaFragments::loadF32Fragment(KernelBuilder &b, Value smem,
                                                 Value stage, Value row,
                                                 Value k, Value g,
                                                 Value c) const {
  SmallVector<Value> packed;
  for (int64_t kHalf = 0; kHalf < 2; ++kHalf)
    for (int64_t rowHalf = 0; rowHalf < 2; ++rowHalf) {
      Value r = b.create<arith::AddIOp>(
          row, b.create<arith::AddIOp>(g, b.index(8 * rowHalf)));
      Value column = b.create<arith::AddIOp>(
          k, b.create<arith::AddIOp>(b.create<arith::MulIOp>(c, b.index(2)),
                                     b.index(8 * kHalf)));
      Value pair =
          b.create<vector::LoadOp>(VectorType::get({2}, b.getF32Type()), smem,
                                   ValueRange{stage, r, column});
      pair = b.create<arith::TruncFOp>(VectorType::get({2}, mmaElement), pair);
      Value word = b.create<vector::BitCastOp>(
          VectorType::get({1}, b.getI32Type()), pair);
      packed.push_back(b.create<vector::ExtractOp>(word, ArrayRef<int64_t>{0}));
    }
  return packed;
}

void MmaFragments::mma(KernelBuilder &b, ArrayRef<Value> a,
                       ArrayRef<Value> bFrag,
                       MutableArrayRef<Value> acc) const {
  mmaSyncM16N8K16(b, mmaType, a, bFrag, acc);
}

void gpu_lowering::mmaSyncM16N8K16(KernelBuilder &b, NVVM::MMATypes mmaType,
                                   ArrayRef<Value> a, ArrayRef<Value> bFrag,
                                   MutableArrayRef<Value> acc) {
  Type f32 = b.getF32Type();
  auto resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
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
      ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
      std::array<NVVM::MMATypes, 2>{mmaType, mmaType},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  for (int64_t q = 0; q < 4; ++q)
    acc[q] = b.create<LLVM::ExtractValueOp>(d, ArrayRef<int64_t>{q});
}
