//===- Fp8ActivationQuant.cpp - Activations to e4m3 for the FP8 kernel ----===//
//
// The activation quantization of an FP8 grouped matmul (docs/quantization.md,
// DeepSeek's act_quant) as a kernel of its own, run before the matmul: one
// warp per row and K block of bk columns, lane l taking the block's columns
// l, l + 32, ..., so that each step of the warp reads and writes
// consecutive columns. `dynamic`: scale = amax(|a|) / 448 over the block (1
// for an all-zero block), the lanes' maxima combined by a butterfly of
// shuffles; `static`: the one scale of `lhs_scales`. Each a / scale (an f32
// division, as the oracle's) is rounded to the nearest e4m3 value, ties to
// even, after clamping to [-448, 448] (roundToE4M3, the reference lowering's
// and CPU kernels' own rounding) and stored as its e4m3 byte; the scale goes to
// [rows, K blocks]. Rows are padded with zeros to whole 32-wide K steps of the
// matmul.
//
//===----------------------------------------------------------------------===//

#include "GroupedMatmul.h"

#include "moe/Dialect/MoE/Utils/Quantization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

Fp8Layout::Fp8Layout(WeightQuantAttr quant, int64_t n, int64_t reduction) {
  ArrayRef<int64_t> block = quant.getBlock();
  blockN = std::min(block[0], n);
  blockK = std::min(block[1], reduction);
  kBlocks = llvm::divideCeil(reduction, blockK);
  stepsPerBlock = llvm::divideCeil(blockK, kFp8StepK);
  stride = kBlocks == 1 ? stepsPerBlock * kFp8StepK : kBlocks * blockK;
}

/// The e4m3 byte of `value`, an f32 that is exactly an e4m3 value (as
/// roundToE4M3 returns): sign, then for a normal value (|v| >= 2^-6) the
/// f32 exponent rebiased from 127 to 7 and the top 3 mantissa bits, for a
/// subnormal one |v| / 2^-9.
static Value encodeE4M3(KernelBuilder &b, Value value) {
  Type i32 = b.getI32Type();
  auto constant = [&](int64_t v) -> Value {
    return b.create<arith::ConstantIntOp>(i32, v);
  };
  Value word = b.create<arith::BitcastOp>(i32, value);
  Value sign = b.create<arith::AndIOp>(
      b.create<arith::ShRUIOp>(word, constant(24)), constant(0x80));
  Value magnitude = b.create<arith::AndIOp>(word, constant(0x7FFFFFFF));
  Value exponent = b.create<arith::ShRUIOp>(magnitude, constant(23));
  Value normal = b.create<arith::OrIOp>(
      b.create<arith::ShLIOp>(b.create<arith::SubIOp>(exponent, constant(120)),
                              constant(3)),
      b.create<arith::AndIOp>(b.create<arith::ShRUIOp>(magnitude, constant(20)),
                              constant(7)));
  Value absolute = b.create<math::AbsFOp>(value);
  Value subnormal = b.create<arith::FPToSIOp>(
      i32, b.create<arith::MulFOp>(absolute, b.f32(512.0)));
  Value isNormal = b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, exponent,
                                           constant(121));
  Value bits = b.create<arith::OrIOp>(
      sign, b.create<arith::SelectOp>(isNormal, normal, subnormal));
  return b.create<arith::TruncIOp>(b.getI8Type(), bits);
}

void gpu_lowering::quantizeActivations(KernelBuilder &b, GroupedMatmul &mm) {
  const Fp8Layout &layout = *mm.fp8;
  Value rows = b.create<memref::DimOp>(mm.lhs, 0);
  mm.quantLhs =
      allocate(b,
               RankedTensorType::get({ShapedType::kDynamic, layout.stride},
                                     b.getI8Type()),
               rows)
          .buffer;
  mm.quantScales =
      allocate(b,
               RankedTensorType::get({ShapedType::kDynamic, layout.kBlocks},
                                     b.getF32Type()),
               rows)
          .buffer;
  bool dynamic = mm.quant.getActivation() == ActivationQuant::dynamic;
  Value work = b.create<arith::MulIOp>(rows, b.index(layout.kBlocks));
  int64_t warpsPerBlock = kBlockThreads / kWarpSize;
  b.launch(
      "moe_fp8_quantize_activations", b.ceilDiv(work, warpsPerBlock),
      b.index(1), kBlockThreads, [&](KernelBuilder &kb) {
        Value t = kb.globalThreadId(kBlockThreads);
        // One (row, K block) per warp: the branch is the whole warp's, so
        // every lane takes part in the shuffles.
        Value item = kb.create<arith::DivUIOp>(t, kb.index(kWarpSize));
        Value lane = kb.create<arith::RemUIOp>(t, kb.index(kWarpSize));
        kb.ifThen(kb.lessThan(item, work), [&](KernelBuilder &tb) {
          Value row = tb.create<arith::DivUIOp>(item, tb.index(layout.kBlocks));
          Value block =
              tb.create<arith::RemUIOp>(item, tb.index(layout.kBlocks));
          Value begin =
              tb.create<arith::MulIOp>(block, tb.index(layout.blockK));
          Value end = tb.minIndex(
              tb.create<arith::AddIOp>(begin, tb.index(layout.blockK)),
              tb.index(mm.reduction));
          Value first = tb.create<arith::AddIOp>(begin, lane);
          Value step = tb.index(kWarpSize);
          auto element = [&](KernelBuilder &eb, Value k) {
            return eb.castFloat(eb.load(mm.lhs, {row, k}), eb.getF32Type());
          };
          Value scale;
          if (dynamic) {
            Value amax =
                tb.forLoop(first, end, step, {tb.f32(0.0)},
                           [&](KernelBuilder &lb, Value k,
                               ValueRange iter) -> SmallVector<Value> {
                             Value magnitude =
                                 lb.create<math::AbsFOp>(element(lb, k));
                             return {lb.create<arith::MaximumFOp>(iter[0],
                                                                  magnitude)};
                           })
                    .front();
            Type i32 = tb.getI32Type();
            for (int64_t offset = kWarpSize / 2; offset >= 1; offset /= 2) {
              Value other =
                  tb.create<gpu::ShuffleOp>(
                        amax, tb.create<arith::ConstantIntOp>(i32, offset),
                        tb.create<arith::ConstantIntOp>(i32, kWarpSize),
                        gpu::ShuffleMode::XOR)
                      .getShuffleResult();
              amax = tb.create<arith::MaximumFOp>(amax, other);
            }
            Value zero = tb.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ,
                                                  amax, tb.f32(0.0));
            scale = tb.create<arith::SelectOp>(
                zero, tb.f32(1.0),
                tb.create<arith::DivFOp>(amax, tb.f32(kE4M3Max)));
          } else {
            scale = tb.load(mm.lhsScales, {tb.index(0)});
          }
          tb.ifThen(tb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, lane,
                                             tb.index(0)),
                    [&](KernelBuilder &sb) {
                      sb.store(scale, mm.quantScales, {row, block});
                    });
          // The last block also zeroes the padding up to the stride.
          Value last = tb.create<arith::CmpIOp>(arith::CmpIPredicate::eq, block,
                                                tb.index(layout.kBlocks - 1));
          Value storeEnd =
              tb.create<arith::SelectOp>(last, tb.index(layout.stride), end);
          tb.forEach(first, storeEnd, step, [&](KernelBuilder &sb, Value k) {
            Value inside = sb.lessThan(k, sb.index(mm.reduction));
            Value safe = sb.create<arith::SelectOp>(inside, k, sb.index(0));
            Value q = roundToE4M3(
                sb, sb.create<arith::DivFOp>(element(sb, safe), scale));
            Value byte = sb.create<arith::SelectOp>(
                inside, encodeE4M3(sb, q),
                sb.create<arith::ConstantIntOp>(sb.getI8Type(), 0));
            sb.store(byte, mm.quantLhs, {row, k});
          });
        });
      });
}
