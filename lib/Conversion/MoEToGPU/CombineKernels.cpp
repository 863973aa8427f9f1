//===- CombineKernels.cpp - moe.combine and moe.permute on the GPU --------===//
//
// The two moves between the token layout and the routed-row layout: the
// combine sums each token's rows in ascending slot order in f32 (no
// atomics, so the same run to run), 16 bytes of a row per thread where the
// rows allow it; the permute gathers token rows into routed rows.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// Bytes of ys each combine thread loads at once where the rows allow it.
constexpr int64_t kWideBytes = 16;
/// Per-slot code is unrolled up to this k (every model's k) and loops past
/// it, so the kernels' size and compile time stay bounded in k (k = E is
/// legal).
constexpr int64_t kMaxUnrolledSlots = 8;

Value selectF(KernelBuilder &b, Value condition, Value a, Value c) {
  return b.create<arith::SelectOp>(condition, a, c);
}

} // namespace

Replacements gpu_lowering::lowerCombine(CombineOp op,
                                        CombineOp::Adaptor operands,
                                        KernelBuilder &b) {
  Value ys = readBuffer(b, operands.getYs());
  Value weights = readBuffer(b, operands.getWeights());
  int64_t k = cast<RankedTensorType>(op.getWeights().getType()).getDimSize(1);
  OutputBuffer out = allocateLike(b, operands.getInit());
  Value tokens = b.create<memref::DimOp>(weights, 0);
  Value selections = b.create<arith::MulIOp>(tokens, b.index(k));
  int64_t hidden = cast<RankedTensorType>(op.getYs().getType()).getDimSize(1);

  Value rowOf;
  if (operands.getRowOf()) {
    rowOf = readBuffer(b, operands.getRowOf());
  } else {
    // Without the dispatch's inverse rows: invert the rows here (-1 first,
    // then each row).
    Value rows = readBuffer(b, operands.getRows());
    Value numRows = b.create<memref::DimOp>(rows, 0);
    rowOf = b.create<memref::AllocOp>(
        MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
        ValueRange{selections});
    b.launch("moe_combine_clear", b.ceilDiv(selections, kBlockThreads),
             b.index(1), kBlockThreads, [&](KernelBuilder &kb) {
               Value f = kb.globalThreadId(kBlockThreads);
               kb.ifThen(kb.lessThan(f, selections), [&](KernelBuilder &tb) {
                 tb.store(tb.i32(-1), rowOf, f);
               });
             });
    b.launch("moe_combine_invert", b.ceilDiv(numRows, kBlockThreads),
             b.index(1), kBlockThreads, [&](KernelBuilder &kb) {
               Value r = kb.globalThreadId(kBlockThreads);
               kb.ifThen(kb.lessThan(r, numRows), [&](KernelBuilder &tb) {
                 auto selection =
                     tb.decodeSelection(tb.load(rows, r), tokens, k);
                 tb.ifThen(selection.valid, [&](KernelBuilder &sb) {
                   Value flat = sb.create<arith::AddIOp>(
                       sb.create<arith::MulIOp>(selection.token, sb.index(k)),
                       selection.slot);
                   sb.store(sb.fromIndex(r, sb.getI32Type()), rowOf, flat);
                 });
               });
             });
  }

  bool prescaled = op.getPrescaled();
  Type outType =
      cast<RankedTensorType>(op.getInit().getType()).getElementType();
  Type ysType = cast<RankedTensorType>(op.getYs().getType()).getElementType();
  Value ysRows = b.create<memref::DimOp>(ys, 0);
  // One thread per `width` adjacent columns of a token: 16-byte loads of ys
  // for width > 1, in the same f32 arithmetic per column as width 1.
  auto launchCombine = [&](KernelBuilder &hb, StringRef name, int64_t width) {
    int64_t groups = hidden / width;
    Type f32 = hb.getF32Type();
    auto shaped = [&](Type element) -> Type {
      return width == 1 ? element : VectorType::get({width}, element);
    };
    // f32 <-> the element types, for scalars and vectors alike.
    auto convert = [&](KernelBuilder &cb, Value value, Type from, Type to) {
      if (from == to)
        return value;
      if (from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth())
        return cb.create<arith::ExtFOp>(shaped(to), value).getResult();
      return cb.create<arith::TruncFOp>(shaped(to), value).getResult();
    };
    hb.launch(
        name, hb.ceilDiv(hb.index(groups), kBlockThreads), tokens,
        kBlockThreads, [&](KernelBuilder &kb) {
          Value group = kb.globalThreadId(kBlockThreads);
          Value token = kb.blockId(gpu::Dimension::y);
          kb.ifThen(
              kb.lessThan(group, kb.index(groups)), [&](KernelBuilder &tb) {
                Value column = tb.create<arith::MulIOp>(group, tb.index(width));
                auto splat = [&](KernelBuilder &sb, Value scalar) {
                  return width == 1 ? scalar
                                    : sb.create<vector::BroadcastOp>(
                                            shaped(f32), scalar)
                                          .getResult();
                };
                // acc + w[token, j] * ys[row of (token, j)], j an index.
                auto addSlot = [&](KernelBuilder &sb, Value j, Value acc) {
                  Value flat = sb.create<arith::AddIOp>(
                      sb.create<arith::MulIOp>(token, sb.index(k)), j);
                  Value row = sb.load(rowOf, flat);
                  // In [0, rows of ys): not -1 (no row), and never past the end
                  // whatever the inverse holds.
                  Value valid = sb.inRange(row, ysRows);
                  Value safe = sb.create<arith::SelectOp>(
                      valid, sb.toIndex(row), sb.index(0));
                  Value loaded = width == 1
                                     ? sb.load(ys, {safe, column})
                                     : sb.create<vector::LoadOp>(
                                             cast<VectorType>(shaped(ysType)),
                                             ys, ValueRange{safe, column},
                                             /*nontemporal=*/false,
                                             llvm::MaybeAlign(kWideBytes))
                                           .getResult();
                  Value y = convert(sb, loaded, ysType, f32);
                  Value w = splat(sb, prescaled ? sb.f32(1.0)
                                                : sb.load(weights, {token, j}));
                  Value sum = sb.create<arith::AddFOp>(acc, weighted(sb, w, y));
                  return selectF(sb, valid, sum, acc);
                };
                Value acc = splat(tb, tb.f32(0.0));
                if (k <= kMaxUnrolledSlots) {
                  for (int64_t j = 0; j < k; ++j)
                    acc = addSlot(tb, tb.index(j), acc);
                } else {
                  acc = tb.forLoop(tb.index(0), tb.index(k), tb.index(1),
                                   ValueRange{acc},
                                   [&](KernelBuilder &lb, Value j,
                                       ValueRange carried) {
                                     return SmallVector<Value>{
                                         addSlot(lb, j, carried[0])};
                                   })
                            .front();
                }
                Value result = convert(tb, acc, f32, outType);
                if (width == 1)
                  tb.store(result, out.buffer, {token, column});
                else
                  tb.create<vector::StoreOp>(
                      result, out.buffer, ValueRange{token, column},
                      /*nontemporal=*/false,
                      llvm::MaybeAlign(std::min<int64_t>(
                          kWideBytes,
                          width * outType.getIntOrFloatBitWidth() / 8)));
              });
        });
  };
  int64_t wide = kWideBytes * 8 / ysType.getIntOrFloatBitWidth();
  if (hidden % wide != 0) {
    launchCombine(b, "moe_combine", 1);
  } else {
    // The wide loads and stores need ys and the output 16-byte aligned, which
    // a caller's buffers, aligned to their element only, may not be.
    b.ifThenElse(
        b.create<arith::AndIOp>(b.alignedTo(ys, kWideBytes),
                                b.alignedTo(out.buffer, kWideBytes)),
        [&](KernelBuilder &wb) { launchCombine(wb, "moe_combine_wide", wide); },
        [&](KernelBuilder &nb) { launchCombine(nb, "moe_combine", 1); });
  }
  return SmallVector<Value>{out.tensor};
}

Replacements gpu_lowering::lowerPermute(PermuteOp op,
                                        PermuteOp::Adaptor operands,
                                        KernelBuilder &b) {
  Value x = readBuffer(b, operands.getX());
  Value rows = readBuffer(b, operands.getRows());
  OutputBuffer out = allocateLike(b, operands.getInit());
  int64_t k = op.getK();
  int64_t hidden = cast<RankedTensorType>(op.getX().getType()).getDimSize(1);
  Type outType =
      cast<RankedTensorType>(op.getInit().getType()).getElementType();
  Value tokens = b.create<memref::DimOp>(x, 0);
  Value numRows = b.create<memref::DimOp>(rows, 0);
  b.launch("moe_permute", b.ceilDiv(b.index(hidden), kBlockThreads), numRows,
           kBlockThreads, [&](KernelBuilder &kb) {
             Value column = kb.globalThreadId(kBlockThreads);
             Value row = kb.blockId(gpu::Dimension::y);
             kb.ifThen(
                 kb.lessThan(column, kb.index(hidden)), [&](KernelBuilder &tb) {
                   auto selection =
                       tb.decodeSelection(tb.load(rows, row), tokens, k);
                   Value v = tb.castFloat(tb.load(x, {selection.token, column}),
                                          outType);
                   Value zero =
                       tb.create<arith::ConstantOp>(tb.getZeroAttr(outType));
                   tb.store(selectF(tb, selection.valid, v, zero), out.buffer,
                            {row, column});
                 });
           });
  return SmallVector<Value>{out.tensor};
}
