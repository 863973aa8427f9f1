//===- TileEpilogue.cpp - Storing a tensor-core tile ----------------------===//
//
// The epilogue every tensor-core main loop ends with: a warp's f32
// accumulators through the bias of the tile's expert, the GLU (gate and up
// columns held by the same lane)
// and the routing weight, cast and stored; a lane's two adjacent columns in
// one store where the output allows it, with one routing weight per row.
//
//===----------------------------------------------------------------------===//

#include "TensorCoreKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

void TensorCoreKernel::storeTile(
    KernelBuilder &b, ArrayRef<Value> acc,
    function_ref<int64_t(int64_t, int64_t)> accIndex, ArrayRef<Value> outRows,
    ArrayRef<Value> outValid, Value warpColumn, Value c, Value expert,
    ArrayRef<Value> factors) {
  Value pairColumn = b.create<arith::MulIOp>(c, b.index(2));
  bool pairs = mm.storesPairs();
  Value pairAligned = pairs ? mm.outputPairAligned(b) : Value();
  auto guarded = [&](Value valid, Value column,
                     function_ref<void(KernelBuilder &)> fn) {
    Value inside =
        b.create<arith::AndIOp>(valid, b.lessThan(column, b.index(mm.width)));
    b.ifThen(inside, fn);
  };
  for (int64_t i = 0; i < config.mTiles; ++i)
    for (int64_t half = 0; half < 2; ++half) {
      Value row = outRows[2 * i + half];
      Value valid = outValid[2 * i + half];
      if (pairs) {
        // The lane's two columns of each tile are adjacent: one routing
        // weight per row and one store per pair.
        b.ifThen(valid, [&](KernelBuilder &rb) {
          Value factor =
              factors.empty() ? mm.rowScale(rb, row) : factors[2 * i + half];
          for (int64_t t = 0; t < outputTiles; ++t) {
            Value column = rb.create<arith::AddIOp>(
                warpColumn,
                rb.create<arith::AddIOp>(pairColumn, rb.index(8 * t)));
            SmallVector<Value> values;
            for (int64_t q = 0; q < 2; ++q) {
              int64_t at = accIndex(i, t) + 2 * half + q;
              Value up = mm.glu
                             ? acc[accIndex(i, t + outputTiles) + 2 * half + q]
                             : Value();
              // Past the width (the store below is skipped) the bias index
              // is clamped, so its load stays inside the bias.
              Value biasColumn =
                  mm.bias ? rb.create<arith::MinUIOp>(
                                rb.create<arith::AddIOp>(column, rb.index(q)),
                                rb.index(mm.width - 1))
                          : Value();
              values.push_back(
                  mm.epilogue(rb, expert, biasColumn, acc[at], up, factor));
            }
            rb.ifThen(rb.lessThan(column, rb.index(mm.width)),
                      [&](KernelBuilder &sb) {
                        mm.storePair(sb, pairAligned, row, column, values[0],
                                     values[1]);
                      });
          }
        });
        continue;
      }
      if (mm.interleaved) {
        // The lane's pair is (gate, up) of output column warpColumn +
        // 4u + c.
        for (int64_t u = 0; u < bTiles; ++u) {
          Value column = b.create<arith::AddIOp>(
              warpColumn, b.create<arith::AddIOp>(c, b.index(4 * u)));
          int64_t at = accIndex(i, u) + 2 * half;
          guarded(valid, column, [&](KernelBuilder &sb) {
            mm.storeOutput(sb, expert, row, column, acc[at], acc[at + 1]);
          });
        }
        continue;
      }
      for (int64_t t = 0; t < outputTiles; ++t)
        for (int64_t q = 0; q < 2; ++q) {
          Value column = b.create<arith::AddIOp>(
              warpColumn,
              b.create<arith::AddIOp>(pairColumn, b.index(8 * t + q)));
          int64_t at = accIndex(i, t) + 2 * half + q;
          Value up = mm.glu ? acc[accIndex(i, t + outputTiles) + 2 * half + q]
                            : Value();
          guarded(valid, column, [&](KernelBuilder &sb) {
            mm.storeOutput(sb, expert, row, column, acc[at], up);
          });
        }
    }
}
