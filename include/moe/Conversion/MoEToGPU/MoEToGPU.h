//===- MoEToGPU.h - moe ops to GPU kernels ----------------------*- C++ -*-===//

#ifndef MOE_CONVERSION_MOETOGPU_MOETOGPU_H
#define MOE_CONVERSION_MOETOGPU_MOETOGPU_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL_CONVERTMOETOGPUPASS
#define GEN_PASS_DECL_MOEGPUSELECTKERNELCONFIGPASS
#define GEN_PASS_DECL_MOEGPUSHAREROWTILESPASS
#define GEN_PASS_DECL_MOEGPUPROGRAMMATICLAUNCHPASS
#define GEN_PASS_REGISTRATION
#include "moe/Conversion/MoEToGPU/MoEToGPU.h.inc"

/// The patterns of convert-moe-to-gpu: one per moe op that becomes kernels
/// (and one for element-wise linalg.generic ops), each replacing the op by
/// the host code that launches them, on tensors of the same types.
void populateMoEToGPUConversionPatterns(RewritePatternSet &patterns);

/// An NVIDIA chip as `sm_XY` (or `sm_XYa`, its architecture-specific
/// features such as wgmma) names it.
struct GpuChip {
  unsigned version = 0; // XY: 80, 89, 90, ...
  bool archSpecific = false;
};
/// The chip `name` names, or nullopt if it is not an `sm_XY[a]` name.
std::optional<GpuChip> parseGpuChip(StringRef name);

/// The first PTX ISA version of CUDA chip `name`, times ten (78 for 7.8),
/// for each chip the project builds for; 0 for any other name.
unsigned minimumPTXVersion(StringRef name);
/// The chips the project builds for, in the order they are listed to users.
SmallVector<StringRef> projectCUDAChips();

} // namespace mlir::moe

#endif // MOE_CONVERSION_MOETOGPU_MOETOGPU_H
