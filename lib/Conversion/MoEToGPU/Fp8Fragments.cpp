//===- Fp8Fragments.cpp - e4m3 mma.sync fragments from global memory ------===//
//
// What the mma_sync_fp8 main loops share: the fragment loads (8 or 16 bytes
// of a row as i32 words, each word four e4m3 values along K) and the
// m16n8k32 e4m3 MMA.
//
// nvvm.mma.sync has no e4m3 form (upstream's NVVM lists FP8 only for the
// sparse MMA), so the MMA is inline PTX; it needs sm_89 and PTX ISA 8.4.
// mma_sync_fp8_f16 (sm_80) computes the same sums with two f16 m16n8k16
// MMAs, each e4m3 word widened to two f16 pairs in registers.
//
//===----------------------------------------------------------------------===//

#include "Fp8Matmul.h"
#include "MmaFragments.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

Value gpu_lowering::loadFp8WordsUnmasked(KernelBuilder &b, Value memref,
                                         ValueRange indices, Type element,
                                         int64_t bytes) {
  Value loaded =
      b.create<vector::LoadOp>(VectorType::get({bytes}, element), memref,
                               indices, false, llvm::MaybeAlign(bytes));
  return b.create<vector::BitCastOp>(
      VectorType::get({bytes / 4}, b.getI32Type()), loaded);
}

Value gpu_lowering::maskFp8Words(KernelBuilder &b, Value words, Value valid) {
  Value zero = b.create<arith::ConstantOp>(DenseElementsAttr::get(
      cast<VectorType>(words.getType()), b.getI32IntegerAttr(0)));
  return b.create<arith::SelectOp>(valid, words, zero);
}

Value gpu_lowering::loadFp8Words(KernelBuilder &b, Value memref,
                                 ValueRange indices, Type element,
                                 int64_t bytes, Value valid) {
  return maskFp8Words(
      b, loadFp8WordsUnmasked(b, memref, indices, element, bytes), valid);
}

Value gpu_lowering::fp8Word(KernelBuilder &b, Value words, int64_t q) {
  return b.create<vector::ExtractOp>(words, ArrayRef<int64_t>{q});
}

/// acc += a * b with e4m3 fragments as mma.sync.m16n8k32 takes them (inline
/// PTX: sm_89, PTX ISA 8.4).
static void e4m3MmaSync(KernelBuilder &b, ArrayRef<Value> a,
                        ArrayRef<Value> bFrag, MutableArrayRef<Value> acc) {
  Type f32 = b.getF32Type();
  auto resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  SmallVector<Value> operands(a);
  operands.append(bFrag.begin(), bFrag.end());
  operands.append(acc.begin(), acc.end());
  Value d =
      b.create<LLVM::InlineAsmOp>(
           resultType, operands,
           "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
           "{$0, $1, $2, $3}, {$4, $5, $6, $7}, {$8, $9}, {$10, $11, $12, "
           "$13};",
           "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f", /*has_side_effects=*/false,
           /*is_align_stack=*/false, LLVM::TailCallKind::None,
           LLVM::AsmDialectAttr::get(b.getContext(), LLVM::AsmDialect::AD_ATT),
           /*operand_attrs=*/ArrayAttr())
          .getRes();
  for (int64_t q = 0; q < 4; ++q)
    acc[q] = b.create<LLVM::ExtractValueOp>(d, ArrayRef<int64_t>{q});
}

/// The f16 pair (an i32) of e4m3 bytes 2h and 2h + 1 of `word` (h = 0 or 1),
/// each exactly its e4m3 value times 2^-8 (kFp8ViaF16Scale undoes it): the
/// byte's sign goes to bit 15 and its exponent and mantissa to bits 13..7, so
/// the f16 exponent field is the e4m3 one (bias 7 read with f16's 15) and the
/// top mantissa bits the e4m3 ones; e4m3 subnormals become f16 subnormals.
/// The NaN byte (0x7f, 0xff) reads as +-480 * 2^-8: no checkpoint has one.
static Value f16PairOfE4M3(KernelBuilder &b, Value word, int64_t h) {
  auto constant = [&](uint32_t bits) -> Value {
    return b.create<arith::ConstantOp>(
        b.getI32IntegerAttr(static_cast<int32_t>(bits)));
  };
  auto andBits = [&](Value v, uint32_t mask) -> Value {
    return b.create<arith::AndIOp>(v, constant(mask));
  };
  // The two bytes to bits 15..8 and 31..24.
  Value low, high;
  if (h == 0) {
    low = b.create<arith::ShLIOp>(word, constant(8));
    high = b.create<arith::ShLIOp>(word, constant(16));
  } else {
    low = b.create<arith::ShRUIOp>(word, constant(8));
    high = word;
  }
  Value spread = b.create<arith::OrIOp>(andBits(low, 0x0000ff00u),
                                        andBits(high, 0xff000000u));
  Value sign = andBits(spread, 0x80008000u);
  Value magnitude =
      andBits(b.create<arith::ShRUIOp>(spread, constant(1)), 0x3f803f80u);
  return b.create<arith::OrIOp>(sign, magnitude);
}

/// acc += a * b for the m16n8k32 e4m3 fragments, as two f16 m16n8k16 MMAs
/// (sm_80): A words 0 and 1 (rows g and g + 8, K quad 4c..4c+3) and B word
/// 0 feed the first, A words 2 and 3 and B word 1 the second. In each, a
/// word's bytes 0 and 1 are the MMA's K 2c, 2c + 1 and bytes 2 and 3 its K
/// 2c + 8, 2c + 9, for A and B alike, so every A byte still meets the B
/// byte it meets in the e4m3 MMA and the dot products are the same sums.
static void f16MmaSync(KernelBuilder &b, ArrayRef<Value> a,
                       ArrayRef<Value> bFrag, MutableArrayRef<Value> acc) {
  for (int64_t half = 0; half < 2; ++half) {
    Value rowG = a[2 * half], rowG8 = a[2 * half + 1], column = bFrag[half];
    SmallVector<Value> aPairs = {
        f16PairOfE4M3(b, rowG, 0), f16PairOfE4M3(b, rowG8, 0),
        f16PairOfE4M3(b, rowG, 1), f16PairOfE4M3(b, rowG8, 1)};
    SmallVector<Value> bPairs = {f16PairOfE4M3(b, column, 0),
                                 f16PairOfE4M3(b, column, 1)};
    mmaSyncM16N8K16(b, NVVM::MMATypes::f16, aPairs, bPairs, acc);
  }
}

void gpu_lowering::fp8MmaSync(KernelBuilder &b, ArrayRef<Value> a,
                              ArrayRef<Value> bFrag, MutableArrayRef<Value> acc,
                              bool viaF16) {
  if (viaF16)
    f16MmaSync(b, a, bFrag, acc);
  else
    e4m3MmaSync(b, a, bFrag, acc);
}

Value gpu_lowering::promotionWeightScale(KernelBuilder &b, Value scale,
                                         bool viaF16) {
  if (!viaF16)
    return scale;
  return b.create<arith::MulFOp>(scale, b.f32(kFp8ViaF16Scale));
}
