//===- KernelBuilder.cpp - Building GPU kernels on memrefs ----------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::gpu_lowering;

void KernelBuilder::launch(StringRef name, Value gridX, Value gridY,
                           int64_t threads, BodyFn body) {
  launch(name, gridX, gridY, threads, TypeRange{},
         [&](KernelBuilder &kb, ValueRange) { body(kb); });
}

void KernelBuilder::launch(StringRef name, Value gridX, Value gridY,
                           int64_t threads, TypeRange workgroup,
                           function_ref<void(KernelBuilder &, ValueRange)> body,
                           int64_t dynamicSharedBytes,
                           ArrayRef<NamedAttribute> attributes) {
  Value dynamicShared;
  if (dynamicSharedBytes > 0)
    dynamicShared =
        create<arith::ConstantIntOp>(getI32Type(), dynamicSharedBytes);
  // An empty grid is not a valid launch: skip it.
  Value blocks = create<arith::MulIOp>(gridX, gridY);
  Value any =
      create<arith::CmpIOp>(arith::CmpIPredicate::ugt, blocks, index(0));
  auto guardOp = create<scf::IfOp>(any, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard outer(*this);
  setInsertionPointToStart(guardOp.thenBlock());
  // CUDA caps gridDim.y at 65535, and a y extent of rows or tiles can exceed
  // it (65536 tokens, or the rows one rank receives under expert
  // parallelism). Unless it is a constant within the cap, the host launches
  // the kernel once per 65535 rows, each launch offsetting its y. This keeps
  // the kernels' bodies free of a loop that would cost them registers.
  std::optional<int64_t> constantY = getConstantIntValue(gridY);
  if (constantY && *constantY <= kMaxGridY) {
    buildLaunch(name, gridX, gridY, /*firstY=*/Value(), threads, workgroup,
                dynamicShared, body, attributes);
    return;
  }
  Value cap = index(kMaxGridY);
  forEach(index(0), gridY, cap, [&](KernelBuilder &lb, Value firstY) {
    Value count = lb.minIndex(lb.create<arith::SubIOp>(gridY, firstY), cap);
    lb.buildLaunch(name, gridX, count, firstY, threads, workgroup,
                   dynamicShared, body, attributes);
  });
}

void KernelBuilder::buildLaunch(
    StringRef name, Value gridX, Value gridY, Value firstY, int64_t threads,
    TypeRange workgroup, Value dynamicShared,
    function_ref<void(KernelBuilder &, ValueRange)> body,
    ArrayRef<NamedAttribute> attributes) {
  Value one = index(1);
  MLIRContext *ctx = getContext();
  auto op = create<gpu::LaunchOp>(
      gridX, gridY, one, index(threads), one, one, dynamicShared,
      /*asyncTokenType=*/Type(), ValueRange{}, workgroup, TypeRange{}, Value(),
      Value(), Value(), FlatSymbolRefAttr::get(ctx, "moe_kernels"),
      FlatSymbolRefAttr::get(ctx, name));
  for (NamedAttribute attribute : attributes)
    op->setAttr(attribute.getName(), attribute.getValue());
  OpBuilder::InsertionGuard guard(*this);
  setInsertionPointToStart(&op.getBody().front());
  // The body reads its y through blockId: this launch's block y plus the
  // launch's first, computed once at the top of the body.
  Value outerBlockY = launchBlockY;
  launchBlockY = Value();
  if (firstY)
    launchBlockY = create<arith::AddIOp>(
        create<gpu::BlockIdOp>(gpu::Dimension::y), firstY);
  body(*this, op.getWorkgroupAttributions());
  create<gpu::TerminatorOp>();
  launchBlockY = outerBlockY;
}

KernelBuilder KernelBuilder::nestedAt(Location loc, OpBuilder &nested) const {
  KernelBuilder nb(loc, nested);
  nb.launchBlockY = launchBlockY;
  return nb;
}

Value KernelBuilder::threadId() {
  return create<gpu::ThreadIdOp>(gpu::Dimension::x);
}

Value KernelBuilder::blockId(gpu::Dimension dimension) {
  if (dimension == gpu::Dimension::y && launchBlockY)
    return launchBlockY;
  return create<gpu::BlockIdOp>(dimension);
}

Value KernelBuilder::globalThreadId(int64_t threads) {
  return create<arith::AddIOp>(
      create<arith::MulIOp>(blockId(gpu::Dimension::x), index(threads)),
      threadId());
}

Value KernelBuilder::ceilDiv(Value a, int64_t b) {
  return create<arith::DivUIOp>(create<arith::AddIOp>(a, index(b - 1)),
                                index(b));
}

Value KernelBuilder::minIndex(Value a, Value b) {
  return create<arith::MinUIOp>(a, b);
}

Value KernelBuilder::lessThan(Value a, Value b) {
  return create<arith::CmpIOp>(arith::CmpIPredicate::ult, a, b);
}

Value KernelBuilder::alignedTo(Value memref, int64_t bytes) {
  Value address = create<memref::ExtractAlignedPointerAsIndexOp>(memref);
  return create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                               create<arith::RemUIOp>(address, index(bytes)),
                               index(0));
}

Value KernelBuilder::load(Value memref, ValueRange indices) {
  return create<memref::LoadOp>(memref, indices);
}

void KernelBuilder::store(Value value, Value memref, ValueRange indices) {
  create<memref::StoreOp>(value, memref, indices);
}

void KernelBuilder::ifThen(Value condition, BodyFn body) {
  create<scf::IfOp>(condition, [&](OpBuilder &nested, Location loc) {
    KernelBuilder nb = nestedAt(loc, nested);
    body(nb);
    nb.create<scf::YieldOp>();
  });
}

void KernelBuilder::ifThenElse(Value condition, BodyFn thenBody,
                               BodyFn elseBody) {
  create<scf::IfOp>(
      condition,
      [&](OpBuilder &nested, Location loc) {
        KernelBuilder nb = nestedAt(loc, nested);
        thenBody(nb);
        nb.create<scf::YieldOp>();
      },
      [&](OpBuilder &nested, Location loc) {
        KernelBuilder nb = nestedAt(loc, nested);
        elseBody(nb);
        nb.create<scf::YieldOp>();
      });
}

SmallVector<Value> KernelBuilder::forLoop(Value from, Value to, Value step,
                                          ValueRange inits, LoopFn body) {
  auto op = create<scf::ForOp>(
      from, to, step, inits,
      [&](OpBuilder &nested, Location loc, Value iv, ValueRange iter) {
        KernelBuilder nb = nestedAt(loc, nested);
        nb.create<scf::YieldOp>(body(nb, iv, iter));
      });
  return SmallVector<Value>(op.getResults());
}

void KernelBuilder::forEach(Value from, Value to, Value step,
                            function_ref<void(KernelBuilder &, Value)> body) {
  forLoop(from, to, step, {}, [&](KernelBuilder &nb, Value iv, ValueRange) {
    body(nb, iv);
    return SmallVector<Value>{};
  });
}

Value gpu_lowering::readBuffer(KernelBuilder &b, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  return b.create<bufferization::ToBufferOp>(memrefType, tensor,
                                             /*read_only=*/true);
}

OutputBuffer gpu_lowering::allocateLike(KernelBuilder &b, Value init) {
  auto type = cast<RankedTensorType>(init.getType());
  SmallVector<Value> dynamicSizes;
  for (int64_t dim = 0; dim < type.getRank(); ++dim)
    if (type.isDynamicDim(dim))
      dynamicSizes.push_back(b.dimValue(init, dim));
  return allocate(b, type, dynamicSizes);
}

OutputBuffer gpu_lowering::allocate(KernelBuilder &b, RankedTensorType type,
                                    ValueRange dynamicSizes) {
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  Value buffer = b.create<memref::AllocOp>(memrefType, dynamicSizes);
  Value tensor = b.create<bufferization::ToTensorOp>(
      type, buffer, /*restrict=*/true, /*writable=*/true);
  return {buffer, tensor};
}

OffsetsSource OffsetsSource::fromTensor(KernelBuilder &b, Value offsets) {
  OffsetsSource source;
  source.count = cast<RankedTensorType>(offsets.getType()).getDimSize(0);
  if (auto elements = offsets.getDefiningOp<tensor::FromElementsOp>())
    source.scalars.assign(elements.getElements().begin(),
                          elements.getElements().end());
  else
    source.buffer = readBuffer(b, offsets);
  return source;
}

std::pair<Value, Value> ExpertRows::range(KernelBuilder &b, Value e) const {
  Value lo = offsets.at(b, e, b.index(0), numRows);
  Value hi = offsets.at(b, b.create<arith::AddIOp>(e, b.index(1)), lo, numRows);
  return {lo, hi};
}

Value ExpertRows::routedEnd(KernelBuilder &b) const {
  return offsets.at(b, b.index(numExperts), b.index(0), numRows);
}

Value OffsetsSource::at(KernelBuilder &b, Value expert, Value lower,
                        Value rows) const {
  Value raw;
  if (buffer) {
    raw = b.load(buffer, expert);
  } else {
    raw = scalars.front();
    for (auto [position, scalar] : llvm::enumerate(scalars))
      raw = b.create<arith::SelectOp>(
          b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, expert,
                                  b.index(position)),
          scalar, raw);
  }
  // Negative values clamp to `lower` through the signed max.
  Value signedValue = b.create<arith::IndexCastOp>(b.getIndexType(), raw);
  Value atLeast = b.create<arith::MaxSIOp>(signedValue, lower);
  return b.create<arith::MinSIOp>(atLeast, rows);
}
