//===- SimtMatmulKernel.cpp - Grouped matmul, one thread per element ------===//
//
// The simt kernel: what tensor cores cannot take (f32 weights, the kn
// layout, K not a multiple of 8). One thread per output element finds its
// row's expert, sums over K in f32 and applies the epilogue (bias, GLU, row
// scale); rows of no
// expert, and gathered rows of no token, are zero.
//
//===----------------------------------------------------------------------===//

#include "GroupedMatmul.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

void gpu_lowering::launchSimtMatmul(KernelBuilder &b, const GroupedMatmul &mm) {
  Value gridX = b.index(llvm::divideCeil(mm.width, kBlockThreads));
  b.launch(
      "moe_grouped_matmul_plain", gridX, mm.numRows, kBlockThreads,
      [&](KernelBuilder &kb) {
        Value column = kb.globalThreadId(kBlockThreads);
        Value r = kb.blockId(gpu::Dimension::y);
        kb.ifThen(kb.lessThan(column, kb.index(mm.width)), [&](KernelBuilder
                                                                   &tb) {
          // The expert whose range holds r, if any.
          Value falseValue = tb.create<arith::ConstantIntOp>(tb.getI1Type(), 0);
          auto found = tb.forLoop(
              tb.index(0), tb.index(mm.numExperts), tb.index(1),
              ValueRange{falseValue, tb.index(0)},
              [&](KernelBuilder &lb, Value e, ValueRange acc) {
                auto [lo, hi] = mm.expertRange(lb, e);
                Value inside = lb.create<arith::AndIOp>(
                    lb.create<arith::CmpIOp>(arith::CmpIPredicate::uge, r, lo),
                    lb.lessThan(r, hi));
                Value here = lb.create<arith::AndIOp>(
                    inside, lb.create<arith::XOrIOp>(
                                acc[0], lb.create<arith::ConstantIntOp>(
                                            lb.getI1Type(), 1)));
                return SmallVector<Value>{
                    lb.create<arith::OrIOp>(acc[0], here),
                    lb.create<arith::SelectOp>(here, e, acc[1])};
              });
          Value expert = found[1];
          auto sourceAndExists = mm.sourceRow(tb, r);
          Value source = sourceAndExists.first;
          Value exists = sourceAndExists.second;
          Value gateColumn = mm.interleaved
                                 ? tb.create<arith::MulIOp>(column, tb.index(2))
                                 : column;
          Value upColumn = tb.create<arith::AddIOp>(
              gateColumn, tb.index(mm.interleaved ? 1 : mm.width));
          auto weight = [&](KernelBuilder &lb, Value n, Value k) {
            SmallVector<Value> indices = mm.kn
                                             ? SmallVector<Value>{expert, k, n}
                                             : SmallVector<Value>{expert, n, k};
            return lb.castFloat(lb.load(mm.rhs, indices), lb.getF32Type());
          };
          Value zero = tb.f32(0.0);
          SmallVector<Value> init = {zero};
          if (mm.glu)
            init.push_back(zero);
          auto sums = tb.forLoop(
              tb.index(0), tb.index(mm.reduction), tb.index(1), init,
              [&](KernelBuilder &lb, Value k, ValueRange acc) {
                Value a =
                    lb.castFloat(lb.load(mm.lhs, {source, k}), lb.getF32Type());
                SmallVector<Value> next = {lb.create<arith::AddFOp>(
                    acc[0],
                    lb.create<arith::MulFOp>(a, weight(lb, gateColumn, k)))};
                if (mm.glu)
                  next.push_back(lb.create<arith::AddFOp>(
                      acc[1],
                      lb.create<arith::MulFOp>(a, weight(lb, upColumn, k))));
                return next;
              });
          Value routed = tb.create<arith::AndIOp>(found[0], exists);
          tb.ifThenElse(
              routed,
              [&](KernelBuilder &sb) {
                mm.storeOutput(sb, expert, r, column, sums[0],
                               mm.glu ? sums[1] : Value());
              },
              [&](KernelBuilder &sb) {
                // Rows of no expert (and gathered rows of no token) are 0.
                sb.store(
                    sb.create<arith::ConstantOp>(sb.getZeroAttr(mm.outType)),
                    mm.out.buffer, {r, column});
              });
        });
      });
}
