//===- Pipelines.h - Pipelines from moe ops to executable code --*- C++ -*-===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"
#include "mlir/Support/LLVM.h"

namespace mlir {
class OpPassManager;
namespace moe {

/// Options of `moe-lower-to-cpu-pipeline`.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  PassOptions::Option<bool> cInterface{
      *this, "c-interface",
      llvm::cl::desc("Emit _mlir_ciface_ wrappers so C and ctypes callers "
                     "pass memref descriptors by pointer"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> fuseRouting{
      *this, "fuse-routing",
      llvm::cl::desc("Run moe-fuse-routing: gather, GLU and routing weights "
                     "in the grouped matmuls"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> vectorize{
      *this, "vectorize",
      llvm::cl::desc("Lower grouped matmuls with convert-moe-to-vector "
                     "instead of the reference linalg lowering"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes of the grouped matmul kernel (16: AVX-512, "
                     "8: AVX2)"),
      llvm::cl::init(16)};
  PassOptions::Option<int64_t> panelRowBlock{
      *this, "panel-row-block",
      llvm::cl::desc("Routed rows of the register block of the kernel over "
                     "panels or kn weights"),
      llvm::cl::init(6)};
  PassOptions::Option<int64_t> panelColumnBlock{
      *this, "panel-column-block",
      llvm::cl::desc("Panels of output columns (two weight vectors each) of "
                     "the register block of the kernel over panels or kn "
                     "weights"),
      llvm::cl::init(2)};
  PassOptions::Option<int64_t> panelColumnTile{
      *this, "panel-column-tile",
      llvm::cl::desc("Output columns per work item of the kernel over panels "
                     "or kn weights"),
      llvm::cl::init(128)};
  PassOptions::Option<int64_t> prefetchDistance{
      *this, "prefetch-distance",
      llvm::cl::desc("Weight rows (k) the kernel over panels or kn weights "
                     "prefetches ahead (0: none)"),
      llvm::cl::init(16)};
  PassOptions::Option<std::string> targetCpu{
      *this, "target-cpu",
      llvm::cl::desc("The CPU the kernels are for (an LLVM x86-64 CPU name, "
                     "native: the host); bf16 panels_vnni weights use "
                     "vdpbf16ps where it has AVX512_BF16"),
      llvm::cl::init("native")};
  PassOptions::Option<bool> approximateMath{
      *this, "approximate-math",
      llvm::cl::desc("Inline polynomial approximations of exp, erf and tanh "
                     "instead of libm calls"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> threads{
      *this, "threads",
      llvm::cl::desc("Run the grouped matmul work items on OpenMP threads"),
      llvm::cl::init(true)};
};

/// Lowers a module of moe ops (on tensors) to the LLVM dialect for the host
/// CPU: decompose layers, the linalg lowering, bufferization, loops, LLVM.
void buildMoELowerToCPUPipeline(OpPassManager &pm,
                                const CPUPipelineOptions &options);

/// Checks `options` as a whole: target-cpu is a CPU LLVM knows, and the
/// vectorized kernel's options are given only with vectorize (where they
/// would otherwise be ignored). Their ranges are the vector pass's to check.
LogicalResult validateCPUPipelineOptions(
    const CPUPipelineOptions &options,
    function_ref<LogicalResult(const Twine &)> errorHandler);

/// The default of moe-gpu-share-row-tiles's dispatch-row-tiles, which the
/// NVVM pipeline forwards.
bool defaultDispatchRowTiles();

/// Options of `moe-lower-to-nvvm-pipeline`.
struct NVVMPipelineOptions : public PassPipelineOptions<NVVMPipelineOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("GPU architecture the kernels are compiled for (sm_80, "
                     "sm_89, sm_90a, ...)"),
      llvm::cl::init("sm_90a")};
  PassOptions::Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX features (sm_90a needs +ptx80 or newer)"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("What the kernels are serialized to: fatbin (machine "
                     "code plus PTX), bin (cubin), isa (PTX text) or "
                     "offloading (LLVM bitcode)"),
      llvm::cl::init("fatbin")};
  PassOptions::Option<int> optLevel{
      *this, "opt-level",
      llvm::cl::desc("Optimization level of the device code"),
      llvm::cl::init(3)};
  PassOptions::Option<bool> cInterface{
      *this, "c-interface",
      llvm::cl::desc("Emit _mlir_ciface_ wrappers so C and ctypes callers "
                     "pass memref descriptors by pointer"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> fuseRouting{
      *this, "fuse-routing",
      llvm::cl::desc("Run moe-fuse-routing: gather, GLU and routing weights "
                     "in the grouped matmuls"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> pdl{
      *this, "pdl",
      llvm::cl::desc("Programmatic dependent launch: each kernel may start "
                     "while the one before it runs, waiting with "
                     "griddepcontrol.wait before it touches memory "
                     "(moe-gpu-programmatic-launch). Off by default until it "
                     "has been checked on a GPU; true needs sm_90 or newer"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> dispatchRowTiles{
      *this, "dispatch-row-tiles",
      llvm::cl::desc("The dispatch schedules the row tiles of the grouped "
                     "matmuls over its rows, in its own one-block kernel at "
                     "decode sizes (moe-gpu-share-row-tiles; false: the "
                     "schedule is a launch of its own)"),
      llvm::cl::init(defaultDispatchRowTiles())};
  PassOptions::Option<std::string> kernelConfig{
      *this, "kernel-config",
      llvm::cl::desc("Options of moe-gpu-select-kernel-config, which picks "
                     "each grouped matmul's kernels (the chip is this "
                     "pipeline's), e.g. kernel-config={wgmma=false "
                     "small-unroll=4}"),
      llvm::cl::init("")};
};

/// Lowers a module of moe ops (on tensors) to host LLVM dialect code that
/// launches NVVM kernels embedded as a GPU binary: decomposition, GPU
/// kernels, bufferization, workspace binding, outlining, NVVM, serialization.
/// Fails, through `errorHandler`, on options out of their range: a chip that
/// is not an sm_XY name, features that are not +ptxNN, an unknown format,
/// an opt-level outside [0, 3], pdl=true on a chip before sm_90, or a
/// kernel-config its pass refuses.
LogicalResult buildMoELowerToNVVMPipeline(
    OpPassManager &pm, const NVVMPipelineOptions &options,
    function_ref<LogicalResult(const Twine &)> errorHandler);

/// Whether `options` launch the kernels programmatically (`pdl`).
bool usesProgrammaticLaunch(const NVVMPipelineOptions &options);

/// Registers every pipeline of the project with the pass registry.
void registerMoEPipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
