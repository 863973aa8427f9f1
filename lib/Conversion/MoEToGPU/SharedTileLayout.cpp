//===- SharedTileLayout.cpp - Operand tiles in shared memory --------------===//

#include "SharedTileLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

SmallVector<Value> gpu_lowering::chunkIndices(KernelBuilder &b,
                                              SharedLayout layout, Value stage,
                                              Value row, Value k,
                                              int64_t count) {
  switch (layout) {
  case SharedLayout::swizzle_128b: {
    // Chunk c of row r at chunk c ^ (r mod 8).
    Value swizzled =
        b.create<arith::XOrIOp>(b.create<arith::DivUIOp>(k, b.index(count)),
                                b.create<arith::RemUIOp>(row, b.index(8)));
    return {stage, row, b.create<arith::MulIOp>(swizzled, b.index(count))};
  }
  case SharedLayout::k_chunk_major:
    return {stage, b.create<arith::DivUIOp>(k, b.index(count)), row,
            b.index(0)};
  case SharedLayout::padded:
  case SharedLayout::none:
    return {stage, row, k};
  }
  llvm_unreachable("unknown shared layout");
}

/// A wgmma shared-memory matrix descriptor of the matrix `offset` bytes
/// into `smem`. Bits 0-13: its address >> 4; 16-29: the leading byte
/// offset >> 4; 32-45: the stride byte offset >> 4; 62-63: the swizzle
/// mode (0: none, 1: 128 bytes).
static Value descriptor(KernelBuilder &b, Value smem, Value offset,
                        int64_t leadingBytes, int64_t strideBytes,
                        int64_t swizzleMode) {
  Type i64 = b.getI64Type();
  Value base = b.create<arith::IndexCastOp>(
      i64, b.create<memref::ExtractAlignedPointerAsIndexOp>(smem));
  Value address =
      b.create<arith::AddIOp>(base, b.create<arith::IndexCastOp>(i64, offset));
  auto constant = [&](int64_t v) {
    return b.create<arith::ConstantIntOp>(i64, v);
  };
  Value start = b.create<arith::ShRUIOp>(
      b.create<arith::AndIOp>(address, constant(0x3FFFF)), constant(4));
  int64_t fields = ((leadingBytes >> 4) << 16) | ((strideBytes >> 4) << 32) |
                   (swizzleMode << 62);
  return b.create<arith::OrIOp>(start, constant(fields));
}

Value gpu_lowering::wgmmaDescriptor(KernelBuilder &b, SharedLayout layout,
                                    Value smem, Value stage, int64_t step,
                                    int64_t rows, Value firstRow, int64_t tileK,
                                    int64_t elementBytes) {
  if (layout == SharedLayout::swizzle_128b) {
    // 128-byte rows in 8-row atoms 1024 bytes apart, a K step 32 bytes into
    // each row; swizzled K-major layouts ignore the leading offset (set to
    // 1).
    int64_t rowBytes = tileK * elementBytes;
    Value offset = b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(stage, b.index(rows * rowBytes)),
        b.create<arith::AddIOp>(
            b.index(32 * step),
            b.create<arith::MulIOp>(firstRow, b.index(rowBytes))));
    return descriptor(b, smem, offset, 16, kSwizzleAtomBytes,
                      /*swizzleMode=*/1);
  }
  assert(layout == SharedLayout::k_chunk_major && elementBytes == 2 &&
         "no wgmma layout");
  // K chunks `rows * 16` bytes apart, 8-row groups 128.
  int64_t chunkBytes = rows * 16; // one chunk of 8 K over all rows
  Value offset = b.create<arith::AddIOp>(
      b.create<arith::MulIOp>(stage, b.index(chunkBytes * (tileK / 8))),
      b.create<arith::AddIOp>(b.index(chunkBytes * 2 * step),
                              b.create<arith::MulIOp>(firstRow, b.index(16))));
  return descriptor(b, smem, offset, chunkBytes, 128, /*swizzleMode=*/0);
}
