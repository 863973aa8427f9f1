//===- DotProductKernel.cpp - CPU grouped matmul over nk weights ----------===//
//
// The kernel for weights in the nk layout (`[E, N, K]`, each output column's
// weights contiguous along K), per work item (column tile c, expert e):
//
//   for each block of R routed rows of e:          (A rows stay in L1)
//     for each output column n of tile c:
//       acc[i] = sum_k A[row_i, k] * W[e, n, k]     (f32 FMAs along K)
//       (and the up projection beside it for a GLU epilogue)
//       out[row_i, n] = cast(scale_i * glu(acc... + bias[e, n...]))
//
//===----------------------------------------------------------------------===//

#include "GroupedMatmulKernel.h"
#include "LowBitPanelKernel.h"
#include "WeightOnlySteps.h"

#include "moe/Dialect/MoE/Utils/Activation.h"
#include "moe/Dialect/MoE/Utils/Routing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Blocks of `block` then single steps.
SmallVector<int64_t> blocks(int64_t block) {
  if (block == 1)
    return {1};
  return {block, 1};
}

class DotProductKernel : public GroupedMatmulKernel {
public:
  DotProductKernel(GroupedMatmulOp op, StructuredBuilder &b, KernelShape shape)
      : GroupedMatmulKernel(op, b, shape, shape.columnTile) {
    WeightQuantAttr quant = op.getWeightQuantAttr();
    if (quant && isWeightOnlyFormat(quant.getFormat())) {
      weightOnly.emplace(op, shape);
      // The packed formats store K / 2 bytes per row: K is lhs's.
      reduction = cast<RankedTensorType>(op.getLhs().getType()).getDimSize(1);
    }
  }

  /// How the weights are decoded (the moe.weight_decode attribute), or
  /// empty for float weights.
  StringRef decodeName() {
    if (weightOnly)
      return weightOnly->decodeName();
    if (op.getWeightQuantAttr())
      return "fp8_e4m3_integer_ops";
    return "";
  }

protected:
  Value computeTile(StructuredBuilder &tb, Value expert, Value lo,
                    Value rowCount, Value col0, Value colCount,
                    Value tile) override {
    return blockedLoop(
        tb, rowCount, blocks(shape.rowBlock), tile,
        [&](StructuredBuilder &nb, Value block, int64_t blockRows, Value iter) {
          return computeBlock(nb, expert, lo, block, blockRows, col0, colCount,
                              iter);
        });
  }

private:
  /// Computes rows [block, block + rows) of the tile for every column:
  /// blocks of columnBlock columns, then the remaining columns one by one.
  Value computeBlock(StructuredBuilder &nb, Value expert, Value lo, Value block,
                     int64_t rows, Value col0, Value colCount, Value tile) {
    SmallVector<BlockRow> blockRows;
    for (int64_t i = 0; i < rows; ++i) {
      Value local = nb.create<arith::AddIOp>(block, nb.index(i));
      blockRows.push_back(blockRow(nb, nb.create<arith::AddIOp>(lo, local)));
    }
    return blockedLoop(
        nb, colCount, blocks(shape.columnBlock), tile,
        [&](StructuredBuilder &cb, Value column, int64_t columns, Value iter) {
          SmallVector<Value> localColumns, cols;
          for (int64_t c = 0; c < columns; ++c) {
            localColumns.push_back(
                cb.create<arith::AddIOp>(column, cb.index(c)));
            cols.push_back(cb.create<arith::AddIOp>(col0, localColumns.back()));
          }
          SmallVector<Value> results =
              columnResults(cb, expert, cols, blockRows);
          Value updated = iter;
          for (int64_t c = 0; c < columns; ++c)
            for (int64_t i = 0; i < rows; ++i) {
              Value localRow = cb.create<arith::AddIOp>(block, cb.index(i));
              updated = cb.create<tensor::InsertOp>(
                  cb.castFloat(results[c * rows + i], outType), updated,
                  ValueRange{localRow, localColumns[c]});
            }
          return updated;
        });
  }

  /// FP8 weights W[e, row, k ..< k + vw] (decoded) times their block's
  /// scale: the vector lies in one block along K (quantizedKernelApplies).
  Value dequantize(StructuredBuilder &sb, WeightQuantAttr quant, Value w,
                   Value expert, Value row, Value k) {
    Value scale = sb.create<tensor::ExtractOp>(
        op.getRhsScales(),
        ValueRange{expert,
                   sb.create<arith::DivUIOp>(row, sb.index(quant.getBlockN())),
                   sb.create<arith::DivUIOp>(k, sb.index(quant.getBlockK()))});
    return sb.create<arith::MulFOp>(
        w, sb.create<vector::BroadcastOp>(w.getType(), scale));
  }

  /// The f32 results of output columns `cols` for every row of the block,
  /// column-major: result[c * rows + i].
  SmallVector<Value> columnResults(StructuredBuilder &cb, Value expert,
                                   ArrayRef<Value> cols,
                                   ArrayRef<BlockRow> blockRows) {
    int64_t rows = blockRows.size();
    int64_t columns = cols.size();
    bool interleaved = op.getGluLayout() == GluLayout::interleaved;
    // The weight rows feeding each accumulator group: gate (or the plain
    // projection) and, for a GLU, up.
    SmallVector<Value> weightRows;
    for (Value col : cols) {
      if (!glu) {
        weightRows.push_back(col);
        continue;
      }
      Value gateRow =
          interleaved ? cb.create<arith::MulIOp>(col, cb.index(2)) : col;
      weightRows.push_back(gateRow);
      weightRows.push_back(
          interleaved ? cb.create<arith::AddIOp>(gateRow, cb.index(1))
                      : cb.create<arith::AddIOp>(col, cb.index(width)));
    }
    int64_t groups = weightRows.size();
    int64_t vw = shape.vectorWidth;
    auto accType = VectorType::get({vw}, cb.getF32Type());
    Value zeroAcc = cb.create<arith::ConstantOp>(
        DenseElementsAttr::get(accType, cb.getF32FloatAttr(0.0f)));
    SmallVector<Value> init(groups * rows, zeroAcc);

    // acc[g * rows + i] += A[row_i, k:] * W[expert, weightRows[g], k:], one
    // step of `kStep` k: one vector each, or two for the 4-bit formats.
    int64_t kStep = weightOnly ? weightOnly->kPerStep() : vw;
    auto step = [&](StructuredBuilder &sb, Value k, ValueRange accs,
                    bool inBounds) {
      SmallVector<SmallVector<Value>> weights;
      for (Value row : weightRows) {
        if (weightOnly) {
          weights.push_back(weightOnly->weights(sb, expert, row, k, inBounds));
          continue;
        }
        Value w = loadF32(sb, op.getRhs(), {expert, row, k}, shape.vectorWidth,
                          inBounds);
        if (WeightQuantAttr quant = op.getWeightQuantAttr())
          w = dequantize(sb, quant, w, expert, row, k);
        weights.push_back({w});
      }
      SmallVector<Value> next(accs.begin(), accs.end());
      for (int64_t i = 0; i < rows; ++i) {
        SmallVector<Value> a =
            weightOnly ? weightOnly->activations(sb, op.getLhs(),
                                                 blockRows[i].aRow, k, inBounds)
                       : SmallVector<Value>{
                             loadF32(sb, op.getLhs(), {blockRows[i].aRow, k},
                                     shape.vectorWidth, inBounds)};
        for (int64_t g = 0; g < groups; ++g)
          for (auto [aPart, wPart] : llvm::zip_equal(a, weights[g]))
            next[g * rows + i] =
                sb.create<vector::FMAOp>(aPart, wPart, next[g * rows + i]);
      }
      return next;
    };

    int64_t mainEnd = reduction / kStep * kStep;
    SmallVector<Value> accs = init;
    if (mainEnd > 0) {
      auto loop = cb.create<scf::ForOp>(
          cb.index(0), cb.index(mainEnd), cb.index(kStep), init,
          [&](OpBuilder &nested, Location loc, Value k, ValueRange iter) {
            StructuredBuilder sb(loc, nested);
            sb.create<scf::YieldOp>(step(sb, k, iter, /*inBounds=*/true));
          });
      accs.assign(loop.getResults().begin(), loop.getResults().end());
    }
    if (mainEnd < reduction)
      accs = step(cb, cb.index(mainEnd), accs, /*inBounds=*/false);

    // int8 weights: the row's scale multiplies the sum, not every weight.
    SmallVector<Value> rowFactors;
    for (Value row : weightRows)
      rowFactors.push_back(weightOnly ? weightOnly->rowFactor(cb, expert, row)
                                      : Value());
    auto reduce = [&](Value acc, int64_t g) -> Value {
      Value sum = cb.create<vector::ReductionOp>(vector::CombiningKind::ADD,
                                                 acc, Value(),
                                                 arith::FastMathFlags::reassoc);
      if (rowFactors[g])
        sum = cb.create<arith::MulFOp>(sum, rowFactors[g]);
      return sum;
    };
    // One bias element per weight row, shared by the block's rows.
    SmallVector<Value> biasTerms;
    for (Value row : weightRows)
      biasTerms.push_back(biasTerm(cb, expert, row));
    SmallVector<Value> results;
    double alpha = op.getAlpha().convertToDouble();
    double limit = op.getLimit().convertToDouble();
    int64_t perColumn = glu ? 2 : 1;
    for (int64_t c = 0; c < columns; ++c)
      for (int64_t i = 0; i < rows; ++i) {
        int64_t gate = c * perColumn;
        Value value =
            addBias(cb, reduce(accs[gate * rows + i], gate), biasTerms[gate]);
        if (glu)
          value = gluActivation(
              cb, value,
              addBias(cb, reduce(accs[(gate + 1) * rows + i], gate + 1),
                      biasTerms[gate + 1]),
              *op.getEpilogue(), alpha, limit);
        results.push_back(weighted(cb, blockRows[i].scale, value));
      }
    return results;
  }

  /// The weight-only format's steps, for mxfp4, int4 and int8 weights.
  std::optional<WeightOnlySteps> weightOnly;
};

} // namespace

bool mlir::moe::quantizedKernelApplies(GroupedMatmulOp op, KernelShape shape,
                                       std::string &why) {
  WeightQuantAttr quant = op.getWeightQuantAttr();
  if (!quant)
    return true;
  if (op.getRhsLayout() == RhsLayout::panels)
    return lowBitPanelKernelApplies(op, shape, why);
  if (isWeightOnlyFormat(quant.getFormat()))
    return WeightOnlySteps::applies(op, shape, why);
  if (quant.getActivation() != ActivationQuant::none) {
    why = "the activation quantization is not explicit (run "
          "moe-quantize-activations first)";
    return false;
  }
  if (op.getRhsLayout() != RhsLayout::nk) {
    why = "quantized weights are dequantized by the nk and panels kernels "
          "only";
    return false;
  }
  WeightShape weights = weightShape(
      cast<RankedTensorType>(op.getRhs().getType()), op.getRhsLayout());
  int64_t bk = quant.getBlockK();
  if (bk % shape.vectorWidth != 0 && bk < weights.reduction) {
    why = "the scale block along K is not a multiple of the vector width";
    return false;
  }
  return true;
}

Value mlir::moe::buildDotProductKernel(GroupedMatmulOp op, StructuredBuilder &b,
                                       KernelShape shape) {
  DotProductKernel kernel(op, b, shape);
  Value result = kernel.build();
  // The decoding of quantized weights is a decision of the kernel: recorded
  // on its scf.forall.
  StringRef decode = kernel.decodeName();
  if (!decode.empty())
    result.getDefiningOp()->setAttr("moe.weight_decode",
                                    b.getStringAttr(decode));
  return result;
}
