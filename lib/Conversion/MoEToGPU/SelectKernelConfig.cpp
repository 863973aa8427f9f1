//===- SelectKernelConfig.cpp - Pick each grouped matmul's GPU kernels ----===//
//
// moe-gpu-select-kernel-config: the one place where the GPU kernels of a
// grouped matmul are chosen, from the chip, the op's types and shapes and
// the pass options. The choice is recorded as the op's `moe.gpu_kernels`
// attribute, which convert-moe-to-gpu follows and nothing else decides.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "llvm/ADT/StringExtras.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUSELECTKERNELCONFIGPASS
#include "moe/Conversion/MoEToGPU/MoEToGPU.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Parameters of one tile shape, before it becomes an attribute.
struct Tile {
  MatmulKernel kernel = MatmulKernel::simt;
  int64_t rows = 1, columns = 128, k = 1, stages = 1, unroll = 1, splitK = 1;
  int64_t tileGroup = 1;
  SharedLayout a = SharedLayout::none, b = SharedLayout::none;
  bool inlineConstants = false;

  MatmulTileAttr get(MLIRContext *ctx) const {
    return MatmulTileAttr::get(ctx, kernel, rows, columns, k, stages, unroll,
                               splitK, tileGroup, a, b, inlineConstants);
  }
};

struct MoEGPUSelectKernelConfigPass
    : moe::impl::MoEGPUSelectKernelConfigPassBase<
          MoEGPUSelectKernelConfigPass> {
  using Base::Base;

  /// Options are checked as they are parsed, so that a pipeline built
  /// with bad ones fails before it runs.
  LogicalResult initializeOptions(
      StringRef options,
      function_ref<LogicalResult(const Twine &)> errorHandler) override {
    if (failed(Base::initializeOptions(options, errorHandler)))
      return failure();
    return validateOptions(errorHandler);
  }

  void runOnOperation() override {
    // Options set in C++ rather than parsed are checked here.
    Location loc = getOperation().getLoc();
    if (failed(validateOptions(
            [&](const Twine &message) { return emitError(loc) << message; })))
      return signalPassFailure();
    GpuChip target = *parseGpuChip(chip);
    WalkResult result = getOperation().walk([&](GroupedMatmulOp op) {
      return failed(select(op, target)) ? WalkResult::interrupt()
                                        : WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }

  LogicalResult
  validateOptions(function_ref<LogicalResult(const Twine &)> errorHandler) {
    auto inRange = [&](StringRef name, int64_t value, int64_t lo,
                       int64_t hi) -> LogicalResult {
      if (value >= lo && value <= hi)
        return success();
      return errorHandler("moe-gpu-select-kernel-config: " + name +
                          " must be in [" + Twine(lo) + ", " + Twine(hi) +
                          "], got " + Twine(value));
    };
    if (!parseGpuChip(chip))
      return errorHandler("moe-gpu-select-kernel-config: chip must be an "
                          "sm_XY name (sm_80, sm_90a, ...), got '" +
                          chip + "'");
    // A well-formed name of no chip (sm_999) would otherwise get the
    // kernels of whatever its number compares like.
    if (!minimumPTXVersion(chip))
      return errorHandler("moe-gpu-select-kernel-config: chip '" + chip +
                          "' is not one the project builds for (" +
                          llvm::join(projectCUDAChips(), ", ") + ")");
    if (failed(inRange("large-rows-per-expert", largeRowsPerExpert, 0,
                       int64_t(1) << 31)) ||
        failed(inRange("small-unroll", smallUnroll, 0, 16)) ||
        failed(inRange("small-stages", smallStages, 1, 2)) ||
        failed(inRange("small-split-k-from", smallSplitKFrom, 1,
                       int64_t(1) << 31)) ||
        failed(inRange("large-tile-group", largeTileGroup, 1, 64)))
      return failure();
    if (ptx != 0 && failed(inRange("ptx", ptx, 60, 999)))
      return failure();
    if (smallSplitK != 1 && smallSplitK != 4)
      return errorHandler(
          "moe-gpu-select-kernel-config: small-split-k must be 1 or 4, got " +
          Twine(static_cast<int64_t>(smallSplitK)));
    if (fp8SmallK != 32 && fp8SmallK != 64)
      return errorHandler(
          "moe-gpu-select-kernel-config: fp8-small-k must be 32 or 64, got " +
          Twine(static_cast<int64_t>(fp8SmallK)));
    if (failed(inRange("fp8-small-stages", fp8SmallStages, 1, 3)))
      return failure();
    if (fp8SmallSplitK != 1 && fp8SmallSplitK != 4)
      return errorHandler("moe-gpu-select-kernel-config: fp8-small-split-k "
                          "must be 1 or 4, got " +
                          Twine(static_cast<int64_t>(fp8SmallSplitK)));
    return success();
  }

  /// Whether the chip runs `kernel`: tensor cores with bf16 (and FP8
  /// widened to f16) from sm_80, e4m3 from sm_89, wgmma and TMA on sm_90a
  /// alone.
  static bool runs(const GpuChip &target, MatmulKernel kernel) {
    switch (kernel) {
    case MatmulKernel::simt:
      return true;
    case MatmulKernel::mma_sync:
    case MatmulKernel::mma_sync_staged:
    case MatmulKernel::mma_sync_wonly:
    case MatmulKernel::mma_sync_fp8_f16:
      return target.version >= 80;
    case MatmulKernel::wgmma:
    case MatmulKernel::wgmma_warp_specialized:
    case MatmulKernel::wgmma_fp8:
      return target.version == 90 && target.archSpecific;
    case MatmulKernel::mma_sync_fp8:
      return target.version >= 89;
    }
    return false;
  }

  /// mma.sync with e4m3 operands is PTX ISA 8.4: with the `ptx` option
  /// given, an older one is refused here rather than by ptxas.
  LogicalResult checkPtx(GroupedMatmulOp op, MatmulKernel kernel) {
    if (kernel != MatmulKernel::mma_sync_fp8 || ptx == 0 || ptx >= 84)
      return success();
    return op.emitOpError()
           << MoEDialect::getGpuKernelsAttrName()
           << ": the mma_sync_fp8 kernel needs PTX ISA 8.4 or newer "
              "(features +ptx84), got ptx = "
           << static_cast<int64_t>(ptx);
  }

  /// The FP8 kernels of `op` (weight_quant): mma_sync_fp8 for decode
  /// (mma_sync_fp8_f16 on sm_80), and for prefill wgmma_fp8 on sm_90a (with
  /// `wgmma`) where K and its blocks allow (K a multiple of 16, K blocks of
  /// whole 128-wide K tiles), else the decode kernel with 32-row tiles; or a
  /// diagnostic where no GPU kernel multiplies its FP8 form.
  FailureOr<GroupedMatmulKernelsAttr> chooseFp8(GroupedMatmulOp op,
                                                const GpuChip &target) {
    WeightQuantAttr quant = op.getWeightQuantAttr();
    auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
    int64_t reduction = weightShape(rhsType, op.getRhsLayout()).reduction;
    int64_t blockK = std::min(quant.getBlockK(), reduction);
    auto refuse = [&]() {
      return op.emitOpError() << "FP8 weights (weight_quant) on the GPU: ";
    };
    // e4m3 MMAs from sm_89; on sm_80 the same loops widen the e4m3
    // fragments to f16.
    MatmulKernel mmaKernel = runs(target, MatmulKernel::mma_sync_fp8)
                                 ? MatmulKernel::mma_sync_fp8
                                 : MatmulKernel::mma_sync_fp8_f16;
    if (!runs(target, mmaKernel))
      return refuse() << "the FP8 kernels need sm_80 or newer (mma.sync with "
                         "e4m3 operands from sm_89, widened to f16 on sm_80), "
                         "got "
                      << chip;
    if (quant.getActivation() == ActivationQuant::none)
      return refuse() << "the mma_sync_fp8 kernel multiplies e4m3 "
                         "activations: activation = none has no GPU kernel";
    if (op.getRhsLayout() != RhsLayout::nk || reduction % 8)
      return refuse() << "the mma_sync_fp8 kernel needs the nk layout and K "
                         "a multiple of 8, got K = "
                      << reduction;
    if (blockK < reduction && blockK % 32)
      return refuse() << "the mma_sync_fp8 kernel needs K blocks of a "
                         "multiple of 32 columns (or one block over K), got "
                         "bk = "
                      << quant.getBlockK();
    // The largest unroll up to small-unroll (8 if not given) that divides a
    // K block's steps of `stepK`: a whole block of 128 where it can.
    auto blockUnroll = [&](int64_t stepK) {
      int64_t steps = llvm::divideCeil(blockK, stepK);
      int64_t unroll =
          std::min<int64_t>(smallUnroll ? int64_t(smallUnroll) : 8, steps);
      while (steps % unroll)
        --unroll;
      return unroll;
    };
    MLIRContext *ctx = op.getContext();
    Tile small;
    small.kernel = mmaKernel;
    small.rows = 16;
    small.columns = 64;
    small.k = 32;
    small.unroll = blockUnroll(32);
    // 32 rows: twice the decode tile's, and with a GLU (gate and up tiles
    // in every warp) the same 64 columns, so the sums, partial sums and
    // fragments of 4 steps fit the registers without spilling.
    Tile large = small;
    large.rows = 32;
    large.columns = op.getEpilogue() ? 64 : 128;
    // The decode tile's wide steps, register stages and split-K, where the
    // options ask for them (Fp8StagedDecodeMainloop.cpp): 16-byte steps
    // where K and its blocks are whole steps of 64; split-K as the bf16
    // decode kernel's, on whole K blocks.
    if (fp8SmallK == 64 && reduction % 16 == 0 &&
        (blockK == reduction || blockK % 64 == 0))
      small.k = 64;
    small.unroll = blockUnroll(small.k);
    small.stages = fp8SmallStages;
    small.splitK = decodeSplitK(fp8SmallSplitK, reduction);
    small.columns = 4 / small.splitK * 16;
    bool wgmmaTiles =
        reduction % 16 == 0 && (blockK == reduction || blockK % 128 == 0);
    if (wgmma && wgmmaFp8 && runs(target, MatmulKernel::wgmma_fp8) &&
        wgmmaTiles) {
      // 128 rows by 128 weight rows: the f32 partial sums and accumulators
      // of a consumer thread take 128 registers, as the bf16 kernel's 256
      // weight rows of accumulators do.
      large.kernel = MatmulKernel::wgmma_fp8;
      large.rows = 128;
      large.k = 128;
      large.stages = 4;
      large.unroll = 1;
      large.tileGroup = largeTileGroup;
      large.a = large.b = SharedLayout::swizzle_128b;
      large.inlineConstants = true;
    }
    // From 32 rows per expert, where the mma_sync_fp8 kernel's 32-row
    // tiles start; not yet measured for the wgmma_fp8 tile.
    int64_t threshold = largeRowsPerExpert ? int64_t(largeRowsPerExpert) : 32;
    if (failed(checkPtx(op, mmaKernel)))
      return failure();
    return GroupedMatmulKernelsAttr::get(ctx, small.get(ctx), large.get(ctx),
                                         threshold);
  }

  /// The weight-only kernels of `op` (weight_quant format mxfp4, int4 or
  /// int8): mma_sync_wonly for both shapes, 16-row tiles with the decode
  /// kernel's register stages for decode and 32-row tiles for prefill; or
  /// a diagnostic naming what the kernel cannot take.
  FailureOr<GroupedMatmulKernelsAttr> chooseWeightOnly(GroupedMatmulOp op,
                                                       const GpuChip &target) {
    WeightQuantAttr quant = op.getWeightQuantAttr();
    Type lhs = cast<RankedTensorType>(op.getLhs().getType()).getElementType();
    auto refuse = [&]() {
      return op.emitOpError()
             << "weight-only weights (weight_quant format "
             << stringifyWeightFormat(quant.getFormat()) << ") on the GPU: ";
    };
    if (!runs(target, MatmulKernel::mma_sync_wonly))
      return refuse() << "the mma_sync_wonly kernel's bf16 mma.sync needs "
                         "sm_80 or newer, got "
                      << chip;
    // The dialect keeps these formats in the nk layout.
    if (!(lhs.isBF16() || lhs.isF16() || lhs.isF32()))
      return refuse() << "the mma_sync_wonly kernel needs bf16, f16 or f32 "
                         "activations, got "
                      << lhs;
    if (lhs.isF16() && quant.getFormat() == WeightFormat::mxfp4)
      return refuse() << "the mma_sync_wonly kernel multiplies mxfp4 weights "
                         "in bf16 (their e8m0 scales span bf16's exponent "
                         "range, not f16's): it needs bf16 or f32 "
                         "activations, got "
                      << lhs;
    // A lane's 32 weights of a step share one scale: the dialect's groups
    // (mxfp4's 32, int4's 32, 64 and 128) start at multiples of 32 of K.
    MLIRContext *ctx = op.getContext();
    Tile small;
    small.kernel = MatmulKernel::mma_sync_wonly;
    small.rows = 16;
    small.columns = 64;
    small.k = 64 * quant.getWeightsPerElement();
    small.stages = smallStages;
    // One step of 4-bit weights is 128 of K, whose activations (64 words a
    // lane for two rows, both register groups) already fill the registers
    // that the bf16 decode kernel's 4 steps take; int8's step is 64.
    small.unroll = smallUnroll ? int64_t(smallUnroll)
                               : (quant.getWeightsPerElement() == 2 ? 1 : 2);
    Tile large = small;
    large.rows = 32;
    large.columns = op.getEpilogue() ? 64 : 128;
    large.stages = 1;
    large.unroll = 1;
    int64_t threshold = largeRowsPerExpert ? int64_t(largeRowsPerExpert) : 32;
    return GroupedMatmulKernelsAttr::get(ctx, small.get(ctx), large.get(ctx),
                                         threshold);
  }

  LogicalResult select(GroupedMatmulOp op, const GpuChip &target) {
    StringRef name = MoEDialect::getGpuKernelsAttrName();
    if (auto pinned = op->getAttrOfType<GroupedMatmulKernelsAttr>(name)) {
      for (MatmulTileAttr tile : {pinned.getSmall(), pinned.getLarge()}) {
        if (!runs(target, tile.getKernel()))
          return op.emitOpError()
                 << name << ": the " << stringifyMatmulKernel(tile.getKernel())
                 << " kernel does not run on " << chip;
        if (failed(checkPtx(op, tile.getKernel())))
          return failure();
      }
      return success();
    }
    if (WeightQuantAttr quant = op.getWeightQuantAttr()) {
      FailureOr<GroupedMatmulKernelsAttr> kernels =
          quant.getFormat() == WeightFormat::fp8_e4m3
              ? chooseFp8(op, target)
              : chooseWeightOnly(op, target);
      if (failed(kernels))
        return failure();
      op->setAttr(name, *kernels);
      return success();
    }
    op->setAttr(name, choose(op, target));
    return success();
  }

  /// The warps of a decode block that split K: `splitK` (an option) from
  /// small-split-k-from on. Below it, a part would be a step or two of
  /// loads, which may cost less than the sum through shared memory.
  int64_t decodeSplitK(int64_t splitK, int64_t reduction) const {
    return reduction >= smallSplitKFrom ? splitK : 1;
  }

  /// The decode kernel's K steps per group where small-unroll is not given,
  /// from the K of one warp's part and the weights' N. With two groups in
  /// registers, 4 steps keep the most bytes in flight where a part is long
  /// (at least 32 steps) or the weights are wide (N of 4096 or more: at
  /// least 256 blocks of 16 columns per row tile, several waves of a grid
  /// that streams more than it waits); on short parts of narrow weights, a
  /// group of 2 needs fewer registers and shortens each block's chain. On an
  /// H100 (gpu_kernel_times.py, two groups, docs/benchmarks.md): Qwen3's
  /// gate/up at T = 1 (16 steps a part, N 1536) 28.7 us with 2 steps
  /// against 32.1 with 4; DeepSeek-V3's down (16 steps, N 7168) 83.6 us
  /// with 4 against 88.7 with 2, and its gate/up (56 steps) 167.6 with 4
  /// against 177.7 with 2. Qwen3's down at T = 32 (24 steps, N 2048) takes
  /// 118.5 us with 2, against 172.8 with one group of 8.
  static int64_t decodeUnroll(int64_t partK, int64_t columns) {
    return partK >= 32 * 32 || columns >= 4096 ? 4 : 2;
  }

  GroupedMatmulKernelsAttr choose(GroupedMatmulOp op, const GpuChip &target) {
    MLIRContext *ctx = op.getContext();
    auto rhsType = cast<RankedTensorType>(op.getRhs().getType());
    Type rhs = rhsType.getElementType();
    Type lhs = cast<RankedTensorType>(op.getLhs().getType()).getElementType();
    WeightShape weights = weightShape(rhsType, op.getRhsLayout());
    bool glu = op.getEpilogue().has_value();
    bool wgmmaChip = wgmma && runs(target, MatmulKernel::wgmma);
    // wgmma with TMA weights streams an expert's weights faster than the
    // decode kernel from 8 rows on, though most of a 128-row tile is then
    // empty (on an H200, DeepSeek-V3 T = 512: 5.4 against 7.8 ms; Mixtral
    // T = 32: 0.70 against 0.79 ms); the staged mma.sync tile needs 64.
    int64_t threshold = largeRowsPerExpert ? int64_t(largeRowsPerExpert)
                        : wgmmaChip        ? 8
                                           : 64;

    bool tensorCores = runs(target, MatmulKernel::mma_sync) &&
                       op.getRhsLayout() == RhsLayout::nk &&
                       (rhs.isBF16() || rhs.isF16()) &&
                       weights.reduction % 8 == 0 &&
                       (lhs.isF32() || lhs.isBF16() || lhs.isF16());
    if (!tensorCores) {
      MatmulTileAttr simt = Tile().get(ctx);
      return GroupedMatmulKernelsAttr::get(ctx, simt, simt, threshold);
    }

    // Decode: 4 warps of 16 columns, or with split-K 4 warps that share 16
    // columns and each take a quarter of K.
    Tile small;
    small.kernel = MatmulKernel::mma_sync;
    small.rows = 16;
    small.k = 32;
    small.stages = smallStages;
    small.splitK = decodeSplitK(smallSplitK, weights.reduction);
    small.columns = 4 / small.splitK * 16;
    small.unroll = smallUnroll ? int64_t(smallUnroll)
                               : decodeUnroll(weights.reduction / small.splitK,
                                              weights.columns);

    Tile large;
    // cp.async copies bytes: the activations have the weights' type, or
    // are f32 and converted when read.
    bool staged = largeStaged && (lhs == rhs || lhs.isF32());
    if (staged && wgmmaChip && lhs == rhs) {
      large.kernel = wgmmaProducer ? MatmulKernel::wgmma_warp_specialized
                                   : MatmulKernel::wgmma;
      large.rows = 128;
      large.columns = glu ? 128 : 256;
      large.k = 64;
      large.stages = 4;
      large.tileGroup = largeTileGroup;
      large.a = wgmmaSwizzledA ? SharedLayout::swizzle_128b
                               : SharedLayout::k_chunk_major;
      large.b = SharedLayout::swizzle_128b;
    } else if (staged) {
      large.kernel = MatmulKernel::mma_sync_staged;
      large.rows = 128;
      large.columns = glu ? 64 : 128;
      large.k = 32;
      large.stages = 4;
      large.tileGroup = largeTileGroup;
      large.a = large.b = SharedLayout::padded;
    } else {
      large.kernel = MatmulKernel::mma_sync;
      large.rows = 32;
      large.columns = 128;
      large.k = 32;
    }
    // The prefill kernel sees its constants as constants, not as
    // parameters: its K loop's stage arithmetic and descriptors then fold
    // (1.2-1.3x at prefill on an H200). The decode kernel measured slower
    // so (DeepSeek-V3 T = 32: 4.9 against 3.9 ms) and keeps them as
    // parameters.
    large.inlineConstants = true;
    return GroupedMatmulKernelsAttr::get(ctx, small.get(ctx), large.get(ctx),
                                         threshold);
  }
};

} // namespace
