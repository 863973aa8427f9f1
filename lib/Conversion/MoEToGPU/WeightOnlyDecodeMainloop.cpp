//===- WeightOnlyDecodeMainloop.cpp - bf16 mma.sync on dequantized weights ===//
//
// The mma_sync_wonly kernel: weight-only weights (#moe.weight_quant format
// mxfp4, int4 or int8, docs/quantization.md) against bf16 or f32
// activations, with bf16 mma.sync.m16n8k16 and f32 accumulators (f16
// activations, AWQ's and GPTQ's, with int4 and int8 weights: the same in
// f16, the int4 codes ORed into f16 1024.0 = 0x6400). Blocks of
// 4 warps, each of `16 * mTiles` rows and `warpColumns` output columns, as
// the mma_sync kernel has. The weights stay packed in global memory: for
// each step of K (128 for the 4-bit formats, 64 for int8) every lane loads
// 16 bytes of each of its weight rows, the K range [c * laneK, (c + 1) *
// laneK) of the step (laneK = 32 or 16), and the activations of the same K.
// `unroll` steps' loads are issued before their MMAs, and with stages = 2
// the next group's loads go out before this group's MMAs, so the packed
// bytes stay in flight while the previous group is dequantized and
// multiplied.
//
// Dequantization, in registers, 8 K (a chunk) at a time into 4 bf16 pairs:
//   - mxfp4: each i32 word holds 8 codes; shifting it by 4i and masking
//     with 0x000F000F-style masks puts codes i and i + 4 into the two
//     halves of a word, the e2m1 bits placed into bf16 fields (sign to bit
//     15, exponent and mantissa to bits 6..8) give e2m1 * 2^-126 exactly
//     (subnormal for 0.5); two bf16 multiplications, by 2^126 and by the
//     e8m0 scale 2^(s - 127) (a bf16 too, subnormal for s = 0), give the
//     weight exactly wherever it is in bf16's range, which is f32's.
//   - int4: the codes of words i and i + 4 ORed into 0x4300 (bf16 128.0,
//     whose ulp is 1) are 128 + q exactly; minus 128 + z (exact) is q - z,
//     times the group's scale rounded to bf16 is the weight, rounded to
//     bf16 (the MMA's precision).
//   - int8: q is exact in bf16 (|q| <= 128): each byte xor 0x80 in the
//     mantissa of 2^23 is 2^23 + 128 + q, minus 2^23 + 128 in f32 is q, then
//     packed to bf16; the row's scale multiplies the accumulators after the
//     loop (one scale per output column), not the weights.
// The 4-bit pairs hold K (k, k + 4) of their chunk, so the activations'
// 8 elements of the chunk are permuted the same way (0 4 1 5 2 6 3 7); a
// dot product does not depend on the order of its K. The tail of K (K not
// a multiple of the step) takes one more step whose loads are element by
// element, zero past K.
//
//===----------------------------------------------------------------------===//

#include "TensorCoreKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// Bytes of weights per lane and weight row in one step.
constexpr int64_t kLaneBytes = 16;
/// K per chunk: 8 weights, 4 bf16 pairs, two m16n8k16 MMAs.
constexpr int64_t kChunkK = 8;

/// The largest power of two up to `bytes` that divides `rowBytes`: the
/// alignment of a load of `bytes` at a multiple of `bytes` in a row.
int64_t rowAlignment(int64_t rowBytes, int64_t bytes) {
  int64_t align = bytes;
  while (align > 1 && rowBytes % align)
    align /= 2;
  return align;
}

Value constantVector(KernelBuilder &b, VectorType type, ArrayRef<int32_t> v) {
  return b.create<arith::ConstantOp>(DenseElementsAttr::get(type, v));
}

Value splatI32(KernelBuilder &b, int64_t n, int32_t value) {
  return b.create<arith::ConstantOp>(DenseElementsAttr::get(
      VectorType::get({n}, b.getI32Type()), b.getI32IntegerAttr(value)));
}

class WeightOnlyDecodeKernel final : public TensorCoreKernel {
public:
  WeightOnlyDecodeKernel(const GroupedMatmul &mm,
                         const TensorCoreConfig &config)
      : TensorCoreKernel(mm, config), format(mm.quant.getFormat()) {
    weightsPerByte = mm.quant.getWeightsPerElement();
    laneK = kLaneBytes * weightsPerByte;
    stepK = 4 * laneK;
    chunks = laneK / kChunkK;
    groupK = mm.quant.getBlockK();
    groups = llvm::divideCeil(mm.reduction, std::min(groupK, mm.reduction));
  }

private:
  void computeTile(KernelBuilder &b, const TileWork &work,
                   Value blockColumn) override {
    ThreadPosition at = threadPosition(b);
    Value warpColumn = b.create<arith::AddIOp>(
        blockColumn,
        b.create<arith::MulIOp>(at.warp, b.index(config.warpColumns)));
    b.ifThen(b.lessThan(warpColumn, b.index(mm.width)), [&](KernelBuilder &wb) {
      computeWarp(wb, work, warpColumn, at.g, at.c);
    });
  }

  bool fourBit() const { return format != WeightFormat::int8; }
  /// Values per step that the loads produce: each A row's chunks, each
  /// weight row's 16 bytes, and for the 4-bit formats each weight row's
  /// scale (and zero point).
  int64_t perStep() const {
    int64_t perRow = 1 + (fourBit() ? 1 : 0) + (mm.rhsZeroPoints ? 1 : 0);
    return 2 * config.mTiles * chunks + bTiles * perRow;
  }

  /// 8 activations of `row` from column k, as they are stored, zero where
  /// the row is not valid; `masked`: element by element, zero at or past K.
  Value loadActivations(KernelBuilder &b, Operand row, Value k,
                        bool masked) const {
    auto type = VectorType::get({kChunkK}, mm.lhsType);
    Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(type));
    if (!masked) {
      int64_t bytes = kChunkK * mm.lhsType.getIntOrFloatBitWidth() / 8;
      int64_t rowBytes = mm.reduction * mm.lhsType.getIntOrFloatBitWidth() / 8;
      Value v = b.create<vector::LoadOp>(
          type, mm.lhs, ValueRange{row.row, k}, false,
          llvm::MaybeAlign(
              rowAlignment(rowBytes, std::min<int64_t>(bytes, 16))));
      return b.create<arith::SelectOp>(row.valid, v, zero);
    }
    SmallVector<Value> elements;
    for (int64_t e = 0; e < kChunkK; ++e)
      elements.push_back(maskedElement(b, mm.lhs, {}, row, k, e));
    return b.create<vector::FromElementsOp>(type, elements);
  }

  /// Element `k + e` of `row` of `memref` (after `prefix`), zero at or past
  /// the row's `limit` elements or where the row is not valid.
  Value maskedElement(KernelBuilder &b, Value memref, ValueRange prefix,
                      Operand row, Value k, int64_t e,
                      int64_t limit = 0) const {
    if (!limit)
      limit = mm.reduction;
    Value column = b.create<arith::AddIOp>(k, b.index(e));
    Value inside =
        b.create<arith::AndIOp>(row.valid, b.lessThan(column, b.index(limit)));
    SmallVector<Value> indices(prefix);
    indices.append(
        {row.row, b.create<arith::SelectOp>(inside, column, b.index(0))});
    Value x = b.load(memref, indices);
    Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(x.getType()));
    return b.create<arith::SelectOp>(inside, x, zero);
  }

  /// The 16 bytes of weight row `row` from byte `byte` as vector<16xi8>.
  Value loadWeights(KernelBuilder &b, Value expert, Operand row, Value byte,
                    bool masked) const {
    auto type = VectorType::get({kLaneBytes}, b.getI8Type());
    if (!masked) {
      int64_t rowBytes = mm.reduction / weightsPerByte;
      Value v = b.create<vector::LoadOp>(
          type, mm.rhs, ValueRange{expert, row.row, byte}, false,
          llvm::MaybeAlign(rowAlignment(rowBytes, kLaneBytes)));
      Value zero = b.create<arith::ConstantOp>(b.getZeroAttr(type));
      return b.create<arith::SelectOp>(row.valid, v, zero);
    }
    SmallVector<Value> elements;
    for (int64_t e = 0; e < kLaneBytes; ++e)
      elements.push_back(maskedElement(b, mm.rhs, {expert}, row, byte, e,
                                       mm.reduction / weightsPerByte));
    return b.create<vector::FromElementsOp>(type, elements);
  }

  /// The loads of the step at k0 (see perStep).
  SmallVector<Value> loadStep(KernelBuilder &b, Value expert, Value k0,
                              Value laneStart, ArrayRef<Operand> aRows,
                              ArrayRef<Operand> bRows, bool masked) const {
    Value k = b.create<arith::AddIOp>(k0, laneStart);
    SmallVector<Value> values;
    for (const Operand &row : aRows)
      for (int64_t j = 0; j < chunks; ++j)
        values.push_back(loadActivations(
            b, row, b.create<arith::AddIOp>(k, b.index(j * kChunkK)), masked));
    Value byte = b.create<arith::DivUIOp>(k, b.index(weightsPerByte));
    for (const Operand &row : bRows)
      values.push_back(loadWeights(b, expert, row, byte, masked));
    if (!fourBit())
      return values;
    // The lane's laneK (32) weights lie in one group: groups are multiples
    // of 32 of K and so are the lanes' starts. Past K (the tail) the last
    // group is read and multiplies zeros.
    Value group = b.minIndex(b.create<arith::DivUIOp>(k, b.index(groupK)),
                             b.index(groups - 1));
    for (const Operand &row : bRows) {
      Value scale = b.load(mm.rhsScales, {expert, row.row, group});
      if (format == WeightFormat::mxfp4)
        scale = b.create<arith::BitcastOp>(b.getI8Type(), scale);
      values.push_back(scale);
    }
    if (mm.rhsZeroPoints)
      for (const Operand &row : bRows)
        values.push_back(b.load(mm.rhsZeroPoints, {expert, row.row, group}));
    return values;
  }

  /// The MMA's element type (bf16, or f16 with f16 activations) and a
  /// chunk's 8 of them.
  Type mmaType() const { return fragments.mmaElement; }
  VectorType chunkType() const { return VectorType::get({kChunkK}, mmaType()); }

  /// A scalar of the MMA type from its bits (an i32 holding 16 of them).
  Value fromBits(KernelBuilder &b, Value bits) const {
    Value half = b.create<arith::TruncIOp>(b.getI16Type(), bits);
    return b.create<arith::BitcastOp>(mmaType(), half);
  }

  Value splat(KernelBuilder &b, Value scalar) const {
    return b.create<vector::BroadcastOp>(chunkType(), scalar);
  }

  /// The bits of the float whose ulp is 1 and whose low mantissa bits take
  /// an int4 code: bf16 128.0, f16 1024.0.
  int32_t int4Base() const { return mmaType().isF16() ? 0x6400 : 0x4300; }

  /// What multiplies (and, for int4, is subtracted from) one weight row's
  /// codes in this step, as splat vectors of the MMA type: {scale, offset}.
  std::pair<Value, Value> groupFactors(KernelBuilder &b, Value scale,
                                       Value zeroPoint) const {
    Type i32 = b.getI32Type();
    if (format == WeightFormat::mxfp4) {
      // 2^(s - 127) in bf16: the exponent field s, subnormal 2^-127 for
      // s = 0, NaN for 255.
      Value s = b.create<arith::ExtUIOp>(i32, scale);
      Value bits = b.create<arith::ShLIOp>(s, b.i32(7));
      auto is = [&](int64_t value) {
        return b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, s,
                                       b.i32(value));
      };
      bits = b.create<arith::SelectOp>(is(0), b.i32(0x0040), bits);
      bits = b.create<arith::SelectOp>(is(255), b.i32(0x7FC0), bits);
      return {splat(b, fromBits(b, bits)), Value()};
    }
    Value s = b.create<arith::TruncFOp>(mmaType(), scale);
    // 128 + z in bf16 (1024 + z in f16; z = 8 without zero points): the
    // offset of the codes ORed into 128.0 (1024.0).
    Value offset =
        zeroPoint
            ? b.create<arith::OrIOp>(b.create<arith::ExtUIOp>(i32, zeroPoint),
                                     b.i32(int4Base()))
            : b.i32(int4Base() | 8);
    return {splat(b, s), splat(b, fromBits(b, offset))};
  }

  /// Chunk j of one weight row's 16 bytes as 4 bf16 pairs (i32 words), in
  /// the order the activations of the chunk are permuted to.
  Value dequantizeChunk(KernelBuilder &b, Value bytes, int64_t j, Value scale,
                        Value offset) const {
    Type i32 = b.getI32Type();
    auto words4 = VectorType::get({4}, i32);
    VectorType pairs = chunkType();
    if (!fourBit()) {
      SmallVector<int64_t> positions;
      for (int64_t e = 0; e < kChunkK; ++e)
        positions.push_back(j * kChunkK + e);
      Value chunk = b.create<vector::ShuffleOp>(bytes, bytes, positions);
      auto words8 = VectorType::get({kChunkK}, i32);
      Value u = b.create<arith::ExtUIOp>(words8, chunk);
      Value bits = b.create<arith::OrIOp>(
          b.create<arith::XOrIOp>(u, splatI32(b, kChunkK, 0x80)),
          splatI32(b, kChunkK, 0x4B000000));
      auto f32s = VectorType::get({kChunkK}, b.getF32Type());
      Value magic = b.create<arith::BitcastOp>(f32s, bits);
      Value bias = b.create<arith::ConstantOp>(
          DenseElementsAttr::get(f32s, b.getF32FloatAttr(8388736.0f)));
      Value q = b.create<arith::SubFOp>(magic, bias);
      Value packed = b.create<arith::TruncFOp>(pairs, q);
      return b.create<vector::BitCastOp>(words4, packed);
    }
    Value words = b.create<vector::BitCastOp>(words4, bytes);
    Value word = b.create<vector::ExtractOp>(words, ArrayRef<int64_t>{j});
    // Word i of x: codes i and i + 4 of the chunk at bits 0..3 and 16..19.
    Value x =
        b.create<arith::ShRUIOp>(b.create<vector::BroadcastOp>(words4, word),
                                 constantVector(b, words4, {0, 4, 8, 12}));
    Value weights;
    if (format == WeightFormat::mxfp4) {
      Value magnitude = b.create<arith::ShLIOp>(
          b.create<arith::AndIOp>(x, splatI32(b, 4, 0x00070007)),
          splatI32(b, 4, 6));
      Value sign = b.create<arith::ShLIOp>(
          b.create<arith::AndIOp>(x, splatI32(b, 4, 0x00080008)),
          splatI32(b, 4, 12));
      Value scaled = b.create<vector::BitCastOp>(
          pairs, b.create<arith::OrIOp>(magnitude, sign));
      Value up = b.create<arith::ConstantOp>(DenseElementsAttr::get(
          pairs, b.getFloatAttr(b.getBF16Type(), std::ldexp(1.0, 126))));
      weights =
          b.create<arith::MulFOp>(b.create<arith::MulFOp>(scaled, up), scale);
    } else {
      Value biased = b.create<arith::OrIOp>(
          b.create<arith::AndIOp>(x, splatI32(b, 4, 0x000F000F)),
          splatI32(b, 4, int4Base() * 0x10001));
      Value q = b.create<vector::BitCastOp>(pairs, biased);
      weights =
          b.create<arith::MulFOp>(b.create<arith::SubFOp>(q, offset), scale);
    }
    return b.create<vector::BitCastOp>(words4, weights);
  }

  /// Chunk activations as 4 bf16 pairs in the weights' order.
  Value activationWords(KernelBuilder &b, Value chunk) const {
    VectorType pairs = chunkType();
    if (mm.lhsType != mmaType())
      chunk = b.create<arith::TruncFOp>(pairs, chunk);
    if (fourBit())
      chunk = b.create<vector::ShuffleOp>(
          chunk, chunk, ArrayRef<int64_t>{0, 4, 1, 5, 2, 6, 3, 7});
    return b.create<vector::BitCastOp>(VectorType::get({4}, b.getI32Type()),
                                       chunk);
  }

  /// The MMAs of `steps` loaded steps into `acc`.
  SmallVector<Value> mmaSteps(KernelBuilder &b, ArrayRef<Value> loaded,
                              int64_t steps, ValueRange acc) const {
    SmallVector<Value> next(acc);
    int64_t aValues = 2 * config.mTiles * chunks;
    for (int64_t s = 0; s < steps; ++s) {
      ArrayRef<Value> step = loaded.slice(s * perStep(), perStep());
      ArrayRef<Value> bytes = step.slice(aValues, bTiles);
      SmallVector<std::pair<Value, Value>> factors;
      for (int64_t u = 0; u < bTiles && fourBit(); ++u)
        factors.push_back(groupFactors(
            b, step[aValues + bTiles + u],
            mm.rhsZeroPoints ? step[aValues + 2 * bTiles + u] : Value()));
      for (int64_t j = 0; j < chunks; ++j) {
        SmallVector<Value> a, w;
        for (int64_t r = 0; r < 2 * config.mTiles; ++r)
          a.push_back(activationWords(b, step[r * chunks + j]));
        for (int64_t u = 0; u < bTiles; ++u)
          w.push_back(dequantizeChunk(b, bytes[u], j,
                                      fourBit() ? factors[u].first : Value(),
                                      fourBit() ? factors[u].second : Value()));
        for (int64_t half = 0; half < 2; ++half)
          for (int64_t i = 0; i < config.mTiles; ++i) {
            Value lo = a[2 * i], hi = a[2 * i + 1];
            SmallVector<Value> aFrag = {fragments.element(b, lo, 2 * half),
                                        fragments.element(b, hi, 2 * half),
                                        fragments.element(b, lo, 2 * half + 1),
                                        fragments.element(b, hi, 2 * half + 1)};
            for (int64_t u = 0; u < bTiles; ++u) {
              SmallVector<Value> bFrag = {
                  fragments.element(b, w[u], 2 * half),
                  fragments.element(b, w[u], 2 * half + 1)};
              MutableArrayRef<Value> slot(next.data() + accIndex(i, u), 4);
              fragments.mma(b, aFrag, bFrag, slot);
            }
          }
      }
    }
    return next;
  }

  int64_t accIndex(int64_t i, int64_t u) const { return (i * bTiles + u) * 4; }

  void computeWarp(KernelBuilder &b, const TileWork &work, Value warpColumn,
                   Value g, Value c) {
    // A rows: for m tile i, rows g and g + 8.
    WarpRows rows = warpRows(b, work, g);
    ArrayRef<Operand> aRows = rows.a;
    ArrayRef<Value> outRows = rows.out, outValid = rows.outValid;
    SmallVector<Operand> bRows = warpWeightRows(b, warpColumn, g);
    Value expert = work.expert;
    Value laneStart = b.create<arith::MulIOp>(c, b.index(laneK));
    auto load = [&](KernelBuilder &lb, Value k0, int64_t steps, bool masked) {
      SmallVector<Value> values;
      for (int64_t s = 0; s < steps; ++s)
        llvm::append_range(
            values, loadStep(lb, expert,
                             lb.create<arith::AddIOp>(k0, lb.index(s * stepK)),
                             laneStart, aRows, bRows, masked));
      return values;
    };

    SmallVector<Value> acc(numAcc(), b.f32(0.0));
    int64_t fullK = mm.reduction - mm.reduction % stepK;
    int64_t groupStep = stepK * config.unroll;
    int64_t unrolledK = fullK - fullK % groupStep;
    if (unrolledK > 0 && config.registerStages == 2) {
      // Two groups in registers: each iteration issues the next group's
      // loads, then dequantizes and multiplies the group loaded one
      // iteration before.
      acc = stagedLoop(
          b, /*registerStages=*/2, b.index(0), b.index(unrolledK), groupStep,
          b.index(unrolledK - groupStep), acc,
          [&](KernelBuilder &lb, Value k0) {
            return load(lb, k0, config.unroll, false);
          },
          [&](KernelBuilder &lb, ArrayRef<Value> current, ValueRange iter) {
            return mmaSteps(lb, current, config.unroll, iter);
          });
    } else if (unrolledK > 0) {
      acc = b.forLoop(b.index(0), b.index(unrolledK), b.index(groupStep), acc,
                      [&](KernelBuilder &lb, Value k0, ValueRange iter) {
                        return mmaSteps(lb, load(lb, k0, config.unroll, false),
                                        config.unroll, iter);
                      });
    }
    if (unrolledK < fullK)
      acc = b.forLoop(b.index(unrolledK), b.index(fullK), b.index(stepK), acc,
                      [&](KernelBuilder &lb, Value k0, ValueRange iter) {
                        return mmaSteps(lb, load(lb, k0, 1, false), 1, iter);
                      });
    if (fullK < mm.reduction)
      acc = mmaSteps(b, load(b, b.index(fullK), 1, true), 1, acc);

    if (format == WeightFormat::int8) {
      // One scale per weight row: it multiplies the sums of the
      // accumulator columns 2c and 2c + 1 of each tile.
      Value pairColumn = b.create<arith::MulIOp>(c, b.index(2));
      for (int64_t u = 0; u < bTiles; ++u)
        for (int64_t q = 0; q < 2; ++q) {
          Value n = weightRow(b, warpColumn, u,
                              b.create<arith::AddIOp>(pairColumn, b.index(q)));
          Value scale =
              b.load(mm.rhsScales,
                     {expert, b.minIndex(n, b.index(mm.n - 1)), b.index(0)});
          for (int64_t i = 0; i < config.mTiles; ++i)
            for (int64_t half = 0; half < 2; ++half) {
              Value &slot = acc[accIndex(i, u) + 2 * half + q];
              slot = b.create<arith::MulFOp>(slot, scale);
            }
        }
    }
    storeTile(
        b, acc, [&](int64_t i, int64_t u) { return accIndex(i, u); }, outRows,
        outValid, warpColumn, c, expert);
  }

  WeightFormat format;
  int64_t weightsPerByte, laneK, stepK, chunks, groupK, groups;
};

} // namespace

std::unique_ptr<TensorCoreKernel>
gpu_lowering::createWeightOnlyDecodeKernel(const GroupedMatmul &mm,
                                           const TensorCoreConfig &config) {
  return std::make_unique<WeightOnlyDecodeKernel>(mm, config);
}
