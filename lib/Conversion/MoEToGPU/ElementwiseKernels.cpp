//===- ElementwiseKernels.cpp - Parallel linalg.generic on the GPU --------===//
//
// Layer decomposition leaves a few element-wise linalg.generic ops (the
// shared expert's sum and its sigmoid gate). Each becomes one thread per
// element of its output: the indexing maps pick the inputs' elements and
// the payload is cloned as scalar code. moe.glu, the unfused activation of
// the gate and up halves, is one thread per output element too.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/Utils/Activation.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

namespace {

/// Indices of an operand: its map applied to the loop indices.
FailureOr<SmallVector<Value>> mapIndices(KernelBuilder &b, AffineMap map,
                                         ArrayRef<Value> loops) {
  SmallVector<Value> indices;
  for (AffineExpr expr : map.getResults()) {
    if (auto dim = dyn_cast<AffineDimExpr>(expr))
      indices.push_back(loops[dim.getPosition()]);
    else if (auto constant = dyn_cast<AffineConstantExpr>(expr))
      indices.push_back(b.index(constant.getValue()));
    else
      return failure();
  }
  return indices;
}

} // namespace

Replacements gpu_lowering::lowerElementwise(linalg::GenericOp generic,
                                            ValueRange operands,
                                            KernelBuilder &b) {
  if (generic.getNumReductionLoops() != 0 || generic.getNumDpsInits() != 1 ||
      !generic.hasPureTensorSemantics())
    return generic.emitOpError()
           << "has no GPU lowering: only element-wise generics on tensors "
              "with one output are supported";
  for (AffineMap map : generic.getIndexingMapsArray())
    for (AffineExpr expr : map.getResults())
      if (!isa<AffineDimExpr, AffineConstantExpr>(expr))
        return generic.emitOpError()
               << "has no GPU lowering: indexing maps must be projections";

  SmallVector<Value> inputs;
  int64_t numInputs = generic.getNumDpsInputs();
  for (Value input : operands.take_front(numInputs))
    inputs.push_back(
        isa<RankedTensorType>(input.getType()) ? readBuffer(b, input) : input);
  Value init = operands[numInputs];
  Block &payload = generic.getRegion().front();
  Value outArg = payload.getArguments().back();
  Value initBuffer = outArg.use_empty() ? Value() : readBuffer(b, init);
  OutputBuffer out = allocateLike(b, init);
  auto outType = cast<MemRefType>(out.buffer.getType());
  int64_t rank = outType.getRank();
  AffineMap outMap = generic.getIndexingMapsArray().back();
  if (!outMap.isIdentity())
    return generic.emitOpError()
           << "has no GPU lowering: the output map must be the identity";

  SmallVector<Value> extents;
  Value total = b.index(1);
  for (int64_t dim = 0; dim < rank; ++dim) {
    extents.push_back(b.create<memref::DimOp>(out.buffer, dim));
    total = b.create<arith::MulIOp>(total, extents.back());
  }
  b.launch("moe_elementwise", b.ceilDiv(total, kBlockThreads), b.index(1),
           kBlockThreads, [&](KernelBuilder &kb) {
             Value flat = kb.globalThreadId(kBlockThreads);
             kb.ifThen(kb.lessThan(flat, total), [&](KernelBuilder &tb) {
               // Row-major loop indices of the flat element.
               SmallVector<Value> loops(rank);
               Value rest = flat;
               for (int64_t dim = rank - 1; dim >= 0; --dim) {
                 loops[dim] = tb.create<arith::RemUIOp>(rest, extents[dim]);
                 rest = tb.create<arith::DivUIOp>(rest, extents[dim]);
               }
               IRMapping mapping;
               auto maps = generic.getIndexingMapsArray();
               for (auto [position, input] : llvm::enumerate(inputs)) {
                 Value arg = payload.getArgument(position);
                 if (!isa<MemRefType>(input.getType())) {
                   mapping.map(arg, input);
                   continue;
                 }
                 auto indices = mapIndices(tb, maps[position], loops);
                 mapping.map(arg, tb.load(input, *indices));
               }
               if (initBuffer)
                 mapping.map(outArg, tb.load(initBuffer, loops));
               for (Operation &op : payload.without_terminator()) {
                 if (auto index = dyn_cast<linalg::IndexOp>(op)) {
                   mapping.map(index.getResult(), loops[index.getDim()]);
                   continue;
                 }
                 tb.clone(op, mapping);
               }
               Value result =
                   mapping.lookup(payload.getTerminator()->getOperand(0));
               tb.store(result, out.buffer, loops);
             });
           });
  return SmallVector<Value>{out.tensor};
}

Replacements gpu_lowering::lowerGlu(GluOp op, GluOp::Adaptor operands,
                                    KernelBuilder &b) {
  Value h = readBuffer(b, operands.getH());
  OutputBuffer out = allocateLike(b, operands.getInit());
  int64_t width = cast<RankedTensorType>(op.getInit().getType()).getDimSize(1);
  bool interleaved = op.getGluLayout() == GluLayout::interleaved;
  Type outType =
      cast<RankedTensorType>(op.getInit().getType()).getElementType();
  Value numRows = b.create<memref::DimOp>(h, 0);
  b.launch(
      "moe_glu", b.ceilDiv(b.index(width), kBlockThreads), numRows,
      kBlockThreads, [&](KernelBuilder &kb) {
        Value column = kb.globalThreadId(kBlockThreads);
        Value row = kb.blockId(gpu::Dimension::y);
        kb.ifThen(kb.lessThan(column, kb.index(width)), [&](KernelBuilder &tb) {
          Value gateColumn = interleaved
                                 ? tb.create<arith::MulIOp>(column, tb.index(2))
                                 : column;
          Value upColumn = tb.create<arith::AddIOp>(
              gateColumn, tb.index(interleaved ? 1 : width));
          Value gate =
              tb.castFloat(tb.load(h, {row, gateColumn}), tb.getF32Type());
          Value up = tb.castFloat(tb.load(h, {row, upColumn}), tb.getF32Type());
          Value v = gluActivation(tb, gate, up, op.getActivation(),
                                  op.getAlpha().convertToDouble(),
                                  op.getLimit().convertToDouble());
          tb.store(tb.castFloat(v, outType), out.buffer, {row, column});
        });
      });
  return SmallVector<Value>{out.tensor};
}
