//===- Fp8Matmul.h - What the FP8 grouped matmul kernels share --*- C++ -*-===//
//
// An FP8 grouped matmul (`weight_quant`, f8E4M3FN weights with f32 block
// scales) runs two kernels: the activation quantization
// (Fp8ActivationQuant.cpp), which writes the A rows as e4m3 bytes and their
// per-block scales, and the mma_sync_fp8 main loop (Fp8DecodeMainloop.cpp),
// which multiplies them with the weights block by block of K; with wider
// steps, register stages or split-K, the mma_sync_fp8 main loop of
// Fp8StagedDecodeMainloop.cpp. Both load fragments and multiply as
// Fp8Fragments.cpp does.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_FP8MATMUL_H
#define MOE_LIB_CONVERSION_MOETOGPU_FP8MATMUL_H

#include "KernelBuilder.h"

namespace mlir::moe::gpu_lowering {

class GroupedMatmul;

/// K per mma.sync.m16n8k32 step of the FP8 kernel.
constexpr int64_t kFp8StepK = 32;

/// The K blocks of an FP8 matmul and the quantized activations' layout.
struct Fp8Layout {
  Fp8Layout(WeightQuantAttr quant, int64_t n, int64_t reduction);

  int64_t blockN, blockK; // the scale blocks, clamped to N and K
  int64_t kBlocks;        // ceil(K / blockK): scales per row
  int64_t stepsPerBlock;  // 32-wide K steps of one block
  // Bytes per quantized row: every block's steps, the padding zeroed. A
  // block starts at kb * blockK, so blockK must be a multiple of 32 where
  // there are several blocks (the kernel's verifier checks it).
  int64_t stride;
};

/// `bytes` (8 or 16) e4m3 bytes of `memref` at `indices` (`element`: i8
/// or f8E4M3FN) as i32 words, zero where `valid` is false.
Value loadFp8Words(KernelBuilder &b, Value memref, ValueRange indices,
                   Type element, int64_t bytes, Value valid);
/// loadFp8Words' words as they are in memory, unmasked: a loop that keeps
/// loads in flight across its iterations masks them (maskFp8Words) where
/// it uses them, so that nothing in the loading iteration waits for them.
Value loadFp8WordsUnmasked(KernelBuilder &b, Value memref, ValueRange indices,
                           Type element, int64_t bytes);
/// `words`, or zeros where `valid` is false.
Value maskFp8Words(KernelBuilder &b, Value words, Value valid);
/// Word `q` of loadFp8Words' result.
Value fp8Word(KernelBuilder &b, Value words, int64_t q);
/// acc (4 f32) += A (4 words of e4m3 quads) * B (2 words), with
/// mma.sync.m16n8k32 e4m3 (inline PTX: sm_89, PTX ISA 8.4); with `viaF16`,
/// with two f16 mma.sync.m16n8k16 on the values widened in registers (sm_80),
/// whose sums come out times 2^-16: multiply them by kFp8ViaF16Scale.
void fp8MmaSync(KernelBuilder &b, ArrayRef<Value> a, ArrayRef<Value> bFrag,
                MutableArrayRef<Value> acc, bool viaF16);
/// What fp8MmaSync's f16 sums are multiplied by: each widened operand is its
/// e4m3 value times 2^-8 (f16's exponent bias is 8 more than e4m3's).
constexpr double kFp8ViaF16Scale = 65536.0;
/// A weight block's scale as the promotion multiplies a K block's partial
/// sums by it: times kFp8ViaF16Scale (exact, a power of two) with `viaF16`.
Value promotionWeightScale(KernelBuilder &b, Value scale, bool viaF16);

/// Launches the activation quantization of `mm`'s A operand (its lhs rows
/// as they are, before any gather) and sets mm.quantLhs ([rows, stride]
/// e4m3 bytes) and mm.quantScales ([rows, kBlocks] f32).
void quantizeActivations(KernelBuilder &b, GroupedMatmul &mm);

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_FP8MATMUL_H
