//===- MmaFragments.h - mma.sync fragments and the MMA itself ---*- C++ -*-===//
//
// The register side of the mma.sync kernels: a thread's fragment
// coordinates, the loads that fill its A and B fragments (from global
// memory, from shared memory with ldmatrix, or f32 pairs rounded to the MMA
// type), the cp.async chunk copy that stages them, and the m16n8k16 MMA.
// Fragments are kept as i32 words, each a pair of the MMA type.
//
// The MMA is nvvm.mma.sync rather than nvgpu.mma.sync: upstream's
// convert-nvgpu-to-nvvm cannot lower a bf16 nvgpu.mma.sync ("failed to
// deduce operand PTX types"), and bf16 is the main case here.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_MMAFRAGMENTS_H
#define MOE_LIB_CONVERSION_MOETOGPU_MMAFRAGMENTS_H

#include "KernelBuilder.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::moe::gpu_lowering {

/// A row to read: clamped, so safe to read, and whether it exists.
struct Operand {
  Value row;   // clamped, safe to read
  Value valid; // i1
};

/// The thread's warp and lane, and the lane's MMA fragment coordinates:
/// group g = lane / 4 and c = lane % 4.
struct ThreadPosition {
  Value warp, lane, g, c;
};
ThreadPosition threadPosition(KernelBuilder &b);

/// 16-byte cp.async of one row chunk of `count` elements, zero-filled
/// when `valid` is false.
void copyChunk(KernelBuilder &b, Value dst, ValueRange dstIndices, Value src,
               ValueRange srcIndices, int64_t count, Value valid);

/// acc (4 f32) += A (4 i32) * B (2 i32) with mma.sync.m16n8k16, each i32 a
/// pair of `type` (bf16 or f16).
void mmaSyncM16N8K16(KernelBuilder &b, NVVM::MMATypes type, ArrayRef<Value> a,
                     ArrayRef<Value> bFrag, MutableArrayRef<Value> acc);

/// Fragments of the MMA type `element` (bf16 or f16) over K = `reduction`.
class MmaFragments {
public:
  MmaFragments(Type element, int64_t reduction);

  /// 8 consecutive elements of row `row` from column k as 4 packed i32
  /// pairs of the MMA type, zero when the row is not valid.
  Value wideLoad(KernelBuilder &b, Value memref, ValueRange prefix, Operand row,
                 Value k, Type element) const;

  /// Element pair (k, k + 1) of a row as one packed i32 of the MMA type,
  /// with columns at or past K reading zero (the tail of K).
  Value tailPair(KernelBuilder &b, Value memref, ValueRange prefix, Operand row,
                 Value k) const;

  /// Word q of 4 packed words.
  static Value element(KernelBuilder &b, Value packed, int64_t q);

  /// One ldmatrix.x4 as 4 packed i32 pairs of the MMA type.
  SmallVector<Value> loadMatrix(KernelBuilder &b, Value smem,
                                ValueRange indices) const;

  /// The A fragment of m tile rows [row, row + 16) and K [k, k + 16) of
  /// `stage` of `smem`, a tile of f32 activations: pairs read as 8-byte
  /// words and rounded to the MMA type, in mma.sync's order (g, 2c),
  /// (g + 8, 2c), (g, 2c + 8), ...
  SmallVector<Value> loadF32Fragment(KernelBuilder &b, Value smem, Value stage,
                                     Value row, Value k, Value g,
                                     Value c) const;

  /// acc (4 f32) += A (4 i32) * B (2 i32), each i32 a pair of the MMA
  /// type.
  void mma(KernelBuilder &b, ArrayRef<Value> a, ArrayRef<Value> bFrag,
           MutableArrayRef<Value> acc) const;

  Type mmaElement;
  NVVM::MMATypes mmaType;
  int64_t reduction;
};

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_MMAFRAGMENTS_H
