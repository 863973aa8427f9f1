//===- SharedTileLayout.h - Operand tiles in shared memory ------*- C++ -*-===//
//
// Where the staged kernels put an operand's K tile in shared memory, driven
// by the #moe.matmul_tile's a_layout / b_layout, and how wgmma reads it
// back: the one place below the nvgpu ops for these tiles (the gathered A
// rows are copied with cp.async, which nvgpu's TMA tiles do not cover).
//
//   padded         [stage][row][K tile + 8]: rows 16 bytes longer, so a
//                  warp's ldmatrix reads hit different banks.
//   swizzle_128b   [stage][row][64]: each row's 128 bytes with its 16-byte
//                  chunks permuted by the row's index mod 8 (chunk c at
//                  c ^ (r mod 8)), 8-row atoms 1024 bytes apart, as TMA
//                  writes with SWIZZLE_128B.
//   k_chunk_major  [stage][chunk of 8 K][row][8]: wgmma's K-major layout
//                  without swizzling.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_SHAREDTILELAYOUT_H
#define MOE_LIB_CONVERSION_MOETOGPU_SHAREDTILELAYOUT_H

#include "KernelBuilder.h"

namespace mlir::moe::gpu_lowering {

/// Bytes between 8-row atoms of a 128-byte-swizzled tile, and the alignment
/// its stages need.
constexpr int64_t kSwizzleAtomBytes = 1024;

/// The shared-memory indices of the 16-byte chunk that holds elements
/// [k, k + count) of row `row` of `stage`'s tile, in `layout`.
SmallVector<Value> chunkIndices(KernelBuilder &b, SharedLayout layout,
                                Value stage, Value row, Value k, int64_t count);

/// The wgmma matrix descriptor of the 32-byte K step `step` (16 elements of
/// 2 bytes, or 32 of 1) of `stage` of a tile of `rows` rows and `tileK` K of
/// `elementBytes` in `smem`, in `layout` (swizzle_128b, or k_chunk_major
/// for 2-byte elements), from row `firstRow` (a multiple of 8).
Value wgmmaDescriptor(KernelBuilder &b, SharedLayout layout, Value smem,
                      Value stage, int64_t step, int64_t rows, Value firstRow,
                      int64_t tileK, int64_t elementBytes = 2);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_SHAREDTILELAYOUT_H
