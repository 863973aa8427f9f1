//===- DispatchToLinalg.cpp - moving tokens to experts and back
//-------------===//
//
// The reference lowerings of the ops that move tokens: moe.expert_choice,
// moe.dispatch, moe.permute and moe.combine. Selections are computed by
// ranking, as everywhere in the reference lowering.
//
//===----------------------------------------------------------------------===//

#include "TensorHelpers.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::linalg_lowering;

namespace {

//===----------------------------------------------------------------------===//
// moe.expert_choice
//===----------------------------------------------------------------------===//

struct LowerExpertChoice : OpRewritePattern<ExpertChoiceOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ExpertChoiceOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value logits = op.getLogits();
    int64_t numExperts = cast<RankedTensorType>(logits.getType()).getDimSize(1);
    OpFoldResult tokens = b.dimSize(logits, 0);
    Value numTokens = b.dimValue(logits, 0);
    OpFoldResult experts = b.getIndexAttr(numExperts);
    Value probs = softmaxRows(b, logits);

    // Each expert ranks the tokens by its column of probabilities.
    Value byExpert =
        b.generic({probs}, {b.empty({experts, tokens}, b.getF32Type())}, 2,
                  {{1, 0}, {0, 1}}, {},
                  [](StructuredBuilder &nb, ValueRange args) {
                    return Body{args[0]};
                  })
            .front();
    Value rank = b.rankRows(byExpert);
    Value perExpert =
        b.create<arith::MinSIOp>(b.index(op.getCapacity()), numTokens);
    Value perExpertI32 = b.fromIndex(perExpert, b.getI32Type());
    Value chosen =
        b.generic({rank}, {b.empty({experts, tokens}, b.getI1Type())}, 2,
                  {{0, 1}, {0, 1}}, {},
                  [&](StructuredBuilder &nb, ValueRange args) {
                    return Body{nb.create<arith::CmpIOp>(
                        arith::CmpIPredicate::slt, args[0], perExpertI32)};
                  })
            .front();

    Value weights =
        b.generic({probs, chosen}, {b.empty({tokens, experts}, b.getF32Type())},
                  2, {{0, 1}, {1, 0}, {0, 1}}, {},
                  [](StructuredBuilder &nb, ValueRange args) {
                    return Body{nb.create<arith::SelectOp>(args[1], args[0],
                                                           nb.f32(0.0))};
                  })
            .front();

    // position[e, t]: how many chosen tokens of e come before t.
    Value position =
        b.generic({chosen}, {b.filled({experts, tokens}, b.i32(0))}, 3,
                  {{0, 2}, {0, 1}}, {2},
                  [](StructuredBuilder &nb, ValueRange args) {
                    Value earlier = nb.create<arith::CmpIOp>(
                        arith::CmpIPredicate::ult, nb.loopIndex(2),
                        nb.loopIndex(1));
                    Value counts = nb.create<arith::AndIOp>(earlier, args[0]);
                    return Body{nb.create<arith::AddIOp>(args[1],
                                                         nb.boolToI32(counts))};
                  })
            .front();

    // rows[e, q] = t * E + e for the chosen t at position q; then [E * C].
    Value rowsInit = b.filled({experts, OpFoldResult(perExpert)}, b.i32(-1));
    Value rows2d =
        b.generic({chosen, position}, {rowsInit}, 3, {{0, 2}, {0, 2}, {0, 1}},
                  {2},
                  [&](StructuredBuilder &nb, ValueRange args) {
                    Value slot = nb.fromIndex(nb.loopIndex(1), nb.getI32Type());
                    Value atSlot = nb.create<arith::CmpIOp>(
                        arith::CmpIPredicate::eq, args[1], slot);
                    Value match = nb.create<arith::AndIOp>(args[0], atSlot);
                    Value flat = nb.create<arith::AddIOp>(
                        nb.create<arith::MulIOp>(nb.loopIndex(2),
                                                 nb.index(numExperts)),
                        nb.loopIndex(0));
                    return Body{nb.create<arith::SelectOp>(
                        match, nb.fromIndex(flat, nb.getI32Type()), args[2])};
                  })
            .front();
    Value rows = b.create<tensor::CollapseShapeOp>(
        rows2d, SmallVector<ReassociationIndices>{{0, 1}});
    if (rows.getType() != op.getRows().getType())
      rows = b.create<tensor::CastOp>(op.getRows().getType(), rows);

    Value offsets =
        b.generic({},
                  {b.empty({b.getIndexAttr(numExperts + 1)}, b.getI32Type())},
                  1, {{0}}, {},
                  [&](StructuredBuilder &nb, ValueRange) {
                    Value offset =
                        nb.create<arith::MulIOp>(nb.loopIndex(0), perExpert);
                    return Body{nb.fromIndex(offset, nb.getI32Type())};
                  })
            .front();
    rewriter.replaceOp(op, {weights, rows, offsets});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

struct LowerDispatch : OpRewritePattern<DispatchOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DispatchOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value ids = op.getIds();
    int64_t k = cast<RankedTensorType>(ids.getType()).getDimSize(1);
    int64_t numExperts = op.getNumExperts();
    int64_t numLocal =
        cast<RankedTensorType>(op.getOffsets().getType()).getDimSize(0) - 1;
    OpFoldResult tokens = b.dimSize(ids, 0);
    OpFoldResult slots = b.getIndexAttr(k);
    Value expertMap = op.getExpertMap();

    // local[t, j]: the local expert of a selection, or -1 for no row.
    Value local =
        b.generic({ids}, {b.empty({tokens, slots}, b.getI32Type())}, 2,
                  {{0, 1}, {0, 1}}, {},
                  [&](StructuredBuilder &nb, ValueRange args) {
                    Value valid = nb.inRange(args[0], nb.index(numExperts));
                    Value expert = args[0];
                    if (expertMap) {
                      Value safe =
                          nb.create<arith::SelectOp>(valid, args[0], nb.i32(0));
                      expert = nb.create<tensor::ExtractOp>(
                          expertMap, ValueRange{nb.toIndex(safe)});
                      valid = nb.create<arith::AndIOp>(
                          valid, nb.inRange(expert, nb.index(numLocal)));
                    }
                    return Body{
                        nb.create<arith::SelectOp>(valid, expert, nb.i32(-1))};
                  })
            .front();

    Value kept = keptSelections(b, op, local, k);

    // offsets[e] = number of kept selections of experts below e.
    Value offsets =
        b.generic({local, kept},
                  {b.filled({b.getIndexAttr(numLocal + 1)}, b.i32(0))}, 3,
                  {{1, 2}, {1, 2}, {0}}, {1, 2},
                  [](StructuredBuilder &nb, ValueRange args) {
                    Value expert =
                        nb.fromIndex(nb.loopIndex(0), nb.getI32Type());
                    Value below = nb.create<arith::CmpIOp>(
                        arith::CmpIPredicate::slt, args[0], expert);
                    Value counts = nb.create<arith::AndIOp>(below, args[1]);
                    return Body{nb.create<arith::AddIOp>(args[2],
                                                         nb.boolToI32(counts))};
                  })
            .front();

    // rows: the kept selections in flat order, each at its expert's cursor;
    // row_of, their inverse, alongside.
    Value numRows = b.create<arith::MulIOp>(b.dimValue(ids, 0), b.index(k));
    Value cursor = b.create<tensor::ExtractSliceOp>(
        offsets, ArrayRef<OpFoldResult>{b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(numLocal)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    Value rowsInit = b.filled({OpFoldResult(numRows)}, b.i32(-1));
    SmallVector<Value> inits = {cursor, rowsInit};
    bool withRowOf = static_cast<bool>(op.getRowOf());
    if (withRowOf)
      inits.push_back(b.filled({OpFoldResult(numRows)}, b.i32(-1)));
    auto scatter = b.create<scf::ForOp>(
        b.index(0), numRows, b.index(1), inits,
        [&](OpBuilder &nested, Location loc, Value flat, ValueRange iter) {
          StructuredBuilder nb(loc, nested);
          Value token = nb.create<arith::DivUIOp>(flat, nb.index(k));
          Value slot = nb.create<arith::RemUIOp>(flat, nb.index(k));
          Value keep =
              nb.create<tensor::ExtractOp>(kept, ValueRange{token, slot});
          Value expert =
              nb.create<tensor::ExtractOp>(local, ValueRange{token, slot});
          Value safe = nb.toIndex(nb.create<arith::MaxSIOp>(expert, nb.i32(0)));
          auto store = nb.create<scf::IfOp>(
              keep,
              [&](OpBuilder &thenBuilder, Location thenLoc) {
                StructuredBuilder tb(thenLoc, thenBuilder);
                Value at =
                    tb.create<tensor::ExtractOp>(iter[0], ValueRange{safe});
                Value rows = tb.create<tensor::InsertOp>(
                    tb.fromIndex(flat, tb.getI32Type()), iter[1],
                    ValueRange{tb.toIndex(at)});
                Value next = tb.create<arith::AddIOp>(at, tb.i32(1));
                Value advanced = tb.create<tensor::InsertOp>(next, iter[0],
                                                             ValueRange{safe});
                SmallVector<Value> yielded = {advanced, rows};
                if (withRowOf)
                  yielded.push_back(tb.create<tensor::InsertOp>(
                      at, iter[2], ValueRange{flat}));
                tb.create<scf::YieldOp>(yielded);
              },
              [&](OpBuilder &elseBuilder, Location elseLoc) {
                scf::YieldOp::create(elseBuilder, elseLoc, iter);
              });
          nb.create<scf::YieldOp>(store.getResults());
        });
    Value rows = scatter.getResult(1);
    if (rows.getType() != op.getRows().getType())
      rows = b.create<tensor::CastOp>(op.getRows().getType(), rows);
    if (!withRowOf) {
      rewriter.replaceOp(op, {rows, offsets});
      return success();
    }
    Value rowOf = scatter.getResult(2);
    if (rowOf.getType() != op.getRowOf().getType())
      rowOf = b.create<tensor::CastOp>(op.getRowOf().getType(), rowOf);
    rewriter.replaceOp(op, {rows, offsets, rowOf});
    return success();
  }

  /// kept[t, j] (i1): the selection has a local expert and, under a
  /// capacity C, fewer than C selections of that expert come before it.
  static Value keptSelections(StructuredBuilder &b, DispatchOp op, Value local,
                              int64_t k) {
    OpFoldResult tokens = b.dimSize(local, 0);
    OpFoldResult slots = b.getIndexAttr(k);
    Value capacity;
    if (auto fixed = op.getCapacity()) {
      // No expert can hold more than all T * k selections (< 2^31): a larger
      // capacity is that, not its i32 truncation.
      capacity = b.i32(static_cast<int64_t>(
          std::min<uint64_t>(*fixed, std::numeric_limits<int32_t>::max())));
    } else if (auto factor = op.getCapacityFactor()) {
      // ceil(f * T * k / E), evaluated in f64 in that order.
      Value numTokens =
          b.create<arith::IndexCastOp>(b.getI64Type(), b.dimValue(local, 0));
      Value product = b.create<arith::MulFOp>(
          b.create<arith::MulFOp>(
              b.f64(factor->convertToDouble()),
              b.create<arith::SIToFPOp>(b.getF64Type(), numTokens)),
          b.f64(static_cast<double>(k)));
      Value quotient = b.create<arith::DivFOp>(
          product, b.f64(static_cast<double>(op.getNumExperts())));
      // Clamped in f64 to what an i32 holds (at least all T * k
      // selections), as the GPU lowering clamps it: the conversion of a
      // larger value would be poison.
      Value clamped = b.create<arith::MinimumFOp>(
          b.create<math::CeilOp>(quotient),
          b.f64(static_cast<double>(std::numeric_limits<int32_t>::max())));
      capacity = b.create<arith::FPToSIOp>(b.getI32Type(), clamped);
    }
    if (!capacity)
      return b
          .generic({local}, {b.empty({tokens, slots}, b.getI1Type())}, 2,
                   {{0, 1}, {0, 1}}, {},
                   [](StructuredBuilder &nb, ValueRange args) {
                     return Body{nb.create<arith::CmpIOp>(
                         arith::CmpIPredicate::sge, args[0], nb.i32(0))};
                   })
          .front();

    if (op.getDropPolicy() == DropPolicy::position)
      return keptInSlotOrder(b, local, capacity, op, k);

    // Score policy: ahead[t, j] counts the selections of the same expert
    // with a larger weight (ties: lower token, then lower slot).
    Value weights = op.getWeights();
    Value ahead =
        b.generic({local, weights, local, weights},
                  {b.filled({tokens, slots}, b.i32(0))}, 4,
                  {{0, 1}, {0, 1}, {2, 3}, {2, 3}, {0, 1}}, {2, 3},
                  [&](StructuredBuilder &nb, ValueRange args) {
                    Value t = nb.loopIndex(0), j = nb.loopIndex(1);
                    Value t2 = nb.loopIndex(2), j2 = nb.loopIndex(3);
                    // Larger weight first, then lower token, then lower j.
                    Value self = flat(nb, t, j, k), other = flat(nb, t2, j2, k);
                    Value first = nb.ranksBefore(args[3], other, args[1], self);
                    Value same = nb.create<arith::CmpIOp>(
                        arith::CmpIPredicate::eq, args[0], args[2]);
                    Value counts = nb.create<arith::AndIOp>(first, same);
                    return Body{nb.create<arith::AddIOp>(args[4],
                                                         nb.boolToI32(counts))};
                  })
            .front();
    return b
        .generic({local, ahead}, {b.empty({tokens, slots}, b.getI1Type())}, 2,
                 {{0, 1}, {0, 1}, {0, 1}}, {},
                 [&](StructuredBuilder &nb, ValueRange args) {
                   Value hasExpert = nb.create<arith::CmpIOp>(
                       arith::CmpIPredicate::sge, args[0], nb.i32(0));
                   Value fits = nb.create<arith::CmpIOp>(
                       arith::CmpIPredicate::slt, args[1], capacity);
                   return Body{nb.create<arith::AndIOp>(hasExpert, fits)};
                 })
        .front();
  }

  /// Capacity with the position policy: visit the selections slot-major
  /// (every token's first choice, then every second choice, ...) and keep
  /// each while its expert has room. Linear in T * k.
  static Value keptInSlotOrder(StructuredBuilder &b, Value local,
                               Value capacity, DispatchOp op, int64_t k) {
    int64_t numLocal =
        cast<RankedTensorType>(op.getOffsets().getType()).getDimSize(0) - 1;
    OpFoldResult tokens = b.dimSize(local, 0);
    Value counts = b.filled({b.getIndexAttr(numLocal)}, b.i32(0));
    Value kept = b.filled({tokens, b.getIndexAttr(k)},
                          b.create<arith::ConstantIntOp>(b.getI1Type(), 0));
    auto slots = b.create<scf::ForOp>(
        b.index(0), b.index(k), b.index(1), ValueRange{counts, kept},
        [&](OpBuilder &outer, Location loc, Value slot, ValueRange slotIter) {
          StructuredBuilder ob(loc, outer);
          auto visit = ob.create<scf::ForOp>(
              ob.index(0), ob.dimValue(local, 0), ob.index(1), slotIter,
              [&](OpBuilder &inner, Location innerLoc, Value token,
                  ValueRange iter) {
                StructuredBuilder nb(innerLoc, inner);
                Value expert = nb.create<tensor::ExtractOp>(
                    local, ValueRange{token, slot});
                Value hasExpert = nb.create<arith::CmpIOp>(
                    arith::CmpIPredicate::sge, expert, nb.i32(0));
                Value safe =
                    nb.toIndex(nb.create<arith::MaxSIOp>(expert, nb.i32(0)));
                Value used =
                    nb.create<tensor::ExtractOp>(iter[0], ValueRange{safe});
                Value room = nb.create<arith::CmpIOp>(arith::CmpIPredicate::slt,
                                                      used, capacity);
                Value keep = nb.create<arith::AndIOp>(hasExpert, room);
                Value newCounts = nb.create<tensor::InsertOp>(
                    nb.create<arith::AddIOp>(used, nb.boolToI32(keep)), iter[0],
                    ValueRange{safe});
                Value newKept = nb.create<tensor::InsertOp>(
                    keep, iter[1], ValueRange{token, slot});
                nb.create<scf::YieldOp>(ValueRange{newCounts, newKept});
              });
          ob.create<scf::YieldOp>(visit.getResults());
        });
    return slots.getResult(1);
  }

  /// major * stride + minor as an index.
  static Value flat(StructuredBuilder &b, Value major, Value minor,
                    int64_t stride) {
    return b.create<arith::AddIOp>(
        b.create<arith::MulIOp>(major, b.index(stride)), minor);
  }
};

struct LowerPermute : OpRewritePattern<PermuteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(PermuteOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    int64_t k = op.getK();
    Value x = op.getX();
    Value result =
        b.generic({op.getRows()}, {op.getInit()}, 2, {{0}, {0, 1}}, {},
                  [&](StructuredBuilder &nb, ValueRange args) {
                    Value v = gatherElement(nb, x, args[0], k, nb.loopIndex(1));
                    return Body{nb.castFloat(v, args[1].getType())};
                  })
            .front();
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

struct LowerCombine : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp op,
                                PatternRewriter &rewriter) const override {
    StructuredBuilder b(op.getLoc(), rewriter);
    Value ys = op.getYs(), rows = op.getRows(), weights = op.getWeights();
    int64_t k = cast<RankedTensorType>(weights.getType()).getDimSize(1);
    OpFoldResult tokens = b.dimSize(weights, 0);
    OpFoldResult slots = b.getIndexAttr(k);

    // rowOf[t, j]: the row holding selection t * k + j, or -1.
    Value numTokens = b.dimValue(weights, 0);
    Value rowOfInit = b.filled({tokens, slots}, b.i32(-1));
    auto invert = b.create<scf::ForOp>(
        b.index(0), b.dimValue(rows, 0), b.index(1), ValueRange{rowOfInit},
        [&](OpBuilder &nested, Location loc, Value row, ValueRange iter) {
          StructuredBuilder nb(loc, nested);
          auto selection = nb.decodeSelection(
              nb.create<tensor::ExtractOp>(rows, ValueRange{row}), numTokens,
              k);
          auto store = nb.create<scf::IfOp>(
              selection.valid,
              [&](OpBuilder &thenBuilder, Location thenLoc) {
                StructuredBuilder tb(thenLoc, thenBuilder);
                Value updated = tb.create<tensor::InsertOp>(
                    tb.fromIndex(row, tb.getI32Type()), iter[0],
                    ValueRange{selection.token, selection.slot});
                tb.create<scf::YieldOp>(updated);
              },
              [&](OpBuilder &elseBuilder, Location elseLoc) {
                scf::YieldOp::create(elseBuilder, elseLoc, iter[0]);
              });
          nb.create<scf::YieldOp>(store.getResult(0));
        });
    Value rowOf = invert.getResult(0);

    // out[t, h] = sum over ascending j of w[t, j] * ys[rowOf[t, j], h].
    SmallVector<OpFoldResult> outSizes = {tokens, b.dimSize(ys, 1)};
    Value acc = b.filled(outSizes, b.f32(0.0));
    bool prescaled = op.getPrescaled();
    acc = b.generic(
               {weights, rowOf}, {acc}, 3, {{0, 2}, {0, 2}, {0, 1}}, {2},
               [&](StructuredBuilder &nb, ValueRange args) {
                 Value weight = prescaled ? nb.f32(1.0) : args[0];
                 Value valid = nb.create<arith::CmpIOp>(
                     arith::CmpIPredicate::sge, args[1], nb.i32(0));
                 Value safe =
                     nb.toIndex(nb.create<arith::MaxSIOp>(args[1], nb.i32(0)));
                 Value y =
                     nb.castFloat(nb.create<tensor::ExtractOp>(
                                      ys, ValueRange{safe, nb.loopIndex(1)}),
                                  nb.getF32Type());
                 Value sum =
                     nb.create<arith::AddFOp>(args[2], weighted(nb, weight, y));
                 return Body{nb.create<arith::SelectOp>(valid, sum, args[2])};
               })
              .front();
    rewriter.replaceOp(op, castInto(b, acc, op.getInit()));
    return success();
  }
};

} // namespace

void mlir::moe::linalg_lowering::populateDispatchToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LowerExpertChoice, LowerDispatch, LowerPermute, LowerCombine>(
      patterns.getContext());
}
