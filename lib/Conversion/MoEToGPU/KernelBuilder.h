//===- KernelBuilder.h - Building GPU kernels on memrefs --------*- C++ -*-===//
//
// The GPU lowering writes each kernel as a gpu.launch whose body works on
// memrefs with scf loops: one thread per token, per selection or per output
// element, or one warp per tensor-core tile. This builder keeps those bodies
// short: launches, thread and block ids, guarded loads and stores, and loops
// that carry values.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_KERNELBUILDER_H
#define MOE_LIB_CONVERSION_MOETOGPU_KERNELBUILDER_H

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/StructuredBuilder.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace mlir::moe::gpu_lowering {

/// Threads per block of the element-wise and per-token kernels.
constexpr int64_t kBlockThreads = 128;
constexpr int64_t kWarpSize = 32;
/// The largest gridDim.y CUDA launches.
constexpr int64_t kMaxGridY = 65535;

class KernelBuilder : public StructuredBuilder {
public:
  using StructuredBuilder::StructuredBuilder;
  using BodyFn = function_ref<void(KernelBuilder &)>;
  using LoopFn =
      function_ref<SmallVector<Value>(KernelBuilder &, Value, ValueRange)>;

  /// A gpu.launch of `grid` (x, y) blocks of `threads` threads whose body is
  /// built by `body`; the kernel is outlined under `name`. Past kMaxGridY
  /// blocks along y, it is launched once per kMaxGridY rows of blocks.
  void launch(StringRef name, Value gridX, Value gridY, int64_t threads,
              BodyFn body);
  /// The same with workgroup (shared) memory buffers of `workgroup` types,
  /// which `body` receives, and `dynamicSharedBytes` of dynamic shared
  /// memory (gpu.dynamic_shared_memory in the body).
  /// `attributes` are set on each gpu.launch (moe.inline_constants).
  void launch(StringRef name, Value gridX, Value gridY, int64_t threads,
              TypeRange workgroup,
              function_ref<void(KernelBuilder &, ValueRange)> body,
              int64_t dynamicSharedBytes = 0,
              ArrayRef<NamedAttribute> attributes = {});

  Value threadId();
  Value blockId(gpu::Dimension dimension);
  /// blockIdx.x * blockDim + threadIdx.x for a 1-D launch.
  Value globalThreadId(int64_t threads);

  /// ceil(a / b) for index values, b a positive constant.
  Value ceilDiv(Value a, int64_t b);
  Value minIndex(Value a, Value b);
  Value lessThan(Value a, Value b);
  /// i1: whether `memref`'s aligned pointer is a multiple of `bytes`.
  Value alignedTo(Value memref, int64_t bytes);

  Value load(Value memref, ValueRange indices);
  void store(Value value, Value memref, ValueRange indices);

  /// Runs `body` only where `condition` holds.
  void ifThen(Value condition, BodyFn body);
  /// Runs `thenBody` where `condition` holds and `elseBody` elsewhere.
  void ifThenElse(Value condition, BodyFn thenBody, BodyFn elseBody);
  /// for (i = from; i < to; i += step) carrying `inits`.
  SmallVector<Value> forLoop(Value from, Value to, Value step, ValueRange inits,
                             LoopFn body);
  /// The same loop without carried values.
  void forEach(Value from, Value to, Value step,
               function_ref<void(KernelBuilder &, Value)> body);

private:
  /// One gpu.launch; with `firstY`, the body's block y is offset by it.
  void buildLaunch(StringRef name, Value gridX, Value gridY, Value firstY,
                   int64_t threads, TypeRange workgroup, Value dynamicShared,
                   function_ref<void(KernelBuilder &, ValueRange)> body,
                   ArrayRef<NamedAttribute> attributes);
  /// A builder at `nested` (a region's body) that reads block y as this one.
  KernelBuilder nestedAt(Location loc, OpBuilder &nested) const;

  /// Inside the body of a launch split along y: its block y plus the
  /// launch's first y, which blockId(y) returns.
  Value launchBlockY;
};

/// A memref view of a tensor operand, for reading.
Value readBuffer(KernelBuilder &b, Value tensor);

/// A fresh buffer with the shape of `init` (a tensor), and the tensor that
/// holds what a kernel writes into it.
struct OutputBuffer {
  Value buffer;
  Value tensor;
};
OutputBuffer allocateLike(KernelBuilder &b, Value init);
/// A fresh buffer of `type` whose dynamic dimensions are `dynamicSizes`.
OutputBuffer allocate(KernelBuilder &b, RankedTensorType type,
                      ValueRange dynamicSizes);

/// Expert offsets as the kernels read them: from a buffer, or as scalars
/// when the offsets are built on the host (a single expert's [0, rows]).
class OffsetsSource {
public:
  static OffsetsSource fromTensor(KernelBuilder &b, Value offsets);
  /// offsets[e] as an index, clamped to [lower, rows] so that a malformed
  /// offsets tensor can only shrink an expert's range, never overrun.
  Value at(KernelBuilder &b, Value expert, Value lower, Value rows) const;
  int64_t numExperts() const { return count - 1; }

private:
  Value buffer;
  SmallVector<Value> scalars;
  int64_t count = 0;
};

/// The routed rows of `numExperts` experts: expert e holds rows
/// [offsets[e], offsets[e + 1]), clamped to [0, numRows).
struct ExpertRows {
  OffsetsSource offsets;
  Value numRows;
  int64_t numExperts;

  /// [lo, hi) of expert e.
  std::pair<Value, Value> range(KernelBuilder &b, Value e) const;
  /// The end of the last expert's rows: rows past it belong to no expert.
  Value routedEnd(KernelBuilder &b) const;
};

/// Warps per block of the tensor-core grouped matmul.
constexpr int64_t kWarpsPerBlock = 4;

/// A `#moe.matmul_tile` as the tensor-core kernel reads it: per-warp
/// shapes and the switches between its main loops.
struct TensorCoreConfig {
  int64_t mTiles;      // 16-row MMA tiles per warp (rows per block tile)
  int64_t warpColumns; // output columns per warp, a multiple of 8
  int64_t unroll;      // k16 steps whose loads are issued together
  // mma_sync: groups of `unroll` steps in flight in registers; with 2, each
  // group's loads are issued before the previous group's MMAs.
  int64_t registerStages = 1;
  // mma_sync_fp8: K per step (32: 8 bytes per lane and row, 64: 16 bytes).
  int64_t stepK = 32;
  // mma_sync_fp8_f16: the e4m3 fragments widened to f16 for
  // mma.sync.m16n8k16 (fp8MmaSync's `viaF16`), as on sm_80.
  bool fp8ViaF16 = false;
  // Warps that share the same columns and split K, their sums added through
  // shared memory: 1, or kWarpsPerBlock.
  int64_t splitK;
  // Tiles staged through shared memory with cp.async and read with ldmatrix
  // by 8 warps (mma_sync_staged), or, with wgmma, read by wgmma.mma_async.
  bool staged = false;
  bool wgmma = false;
  // Row tiles whose blocks run one after another for each column block
  // (grouped order, so a wave shares its weight columns).
  int64_t tileGroup = 1;
  // wgmma_warp_specialized: a producer warpgroup issues the copies while
  // the two consumer warpgroups multiply.
  bool wgmmaProducer = false;
  // The A tile in the weight tile's 128-byte swizzle (a_layout =
  // swizzle_128b), copied in whole 128-byte row segments; else
  // K-chunk-major, unswizzled.
  bool wgmmaSwizzledA = false;

  static TensorCoreConfig fromTile(MatmulTileAttr tile);
};

} // namespace mlir::moe::gpu_lowering

#endif // MOE_LIB_CONVERSION_MOETOGPU_KERNELBUILDER_H
