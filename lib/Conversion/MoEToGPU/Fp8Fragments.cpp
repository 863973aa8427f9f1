//===- Fp8Fragments.cpp - e4m3 mma.sync fragments from global memory ------===//
//
// What the mma_sync_fp8 main loops share: the fragment loads (8 or 16 bytes
// of a row as i32 words, each word four e4m3 values along K) and the
// m16n8k32 e4m3 MMA.
//
// nvvm.mma.sync has no e4m3 form (upstream's NVVM lists FP8 only for the
// sparse MMA), so the MMA is inline PTX; it needs sm_89 and PTX ISA 8.4.
//
//===----------------------------------------------------------------------===//

#include "Fp8Matmul.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

Value gpu_lowering::loadFp8Words(KernelBuilder &b, Value memref,
                                 ValueRange indices, Type element,
                                 int64_t bytes, Value valid) {
  Value loaded =
      b.create<vector::LoadOp>(VectorType::get({bytes}, element), memref,
                               indices, false, llvm::MaybeAlign(bytes));
  auto wordsType = VectorType::get({bytes / 4}, b.getI32Type());
  Value words = b.create<vector::BitCastOp>(wordsType, loaded);
  Value zero = b.create<arith::ConstantOp>(
      DenseElementsAttr::get(wordsType, b.getI32IntegerAttr(0)));
  return b.create<arith::SelectOp>(valid, words, zero);
}

Value gpu_lowering::fp8Word(KernelBuilder &b, Value words, int64_t q) {
  return b.create<vector::ExtractOp>(words, ArrayRef<int64_t>{q});
}

void gpu_lowering::fp8MmaSync(KernelBuilder &b, ArrayRef<Value> a,
                              ArrayRef<Value> bFrag,
                              MutableArrayRef<Value> acc) {
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
