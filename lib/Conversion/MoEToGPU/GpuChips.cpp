//===- GpuChips.cpp - The CUDA chips the project builds for ---------------===//
//
// One table of the chips the GPU target accepts, with the first PTX ISA
// version of each (from the PTX ISA's release notes): the kernel selection
// refuses any other chip, and the CUDA target check (moe/Pipelines/
// CUDATarget.h) a PTX version older than the chip's, on which the NVPTX
// backend would stop the process.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
struct ChipPTX {
  StringLiteral chip;
  unsigned minimumPTX;
};
} // namespace

static constexpr ChipPTX kChips[] = {
    {"sm_70", 60},   {"sm_72", 61},  {"sm_75", 63},   {"sm_80", 70},
    {"sm_86", 71},   {"sm_87", 74},  {"sm_89", 78},   {"sm_90", 78},
    {"sm_90a", 80},  {"sm_100", 86}, {"sm_100a", 86}, {"sm_101", 86},
    {"sm_101a", 86}, {"sm_120", 87}, {"sm_120a", 87},
};

std::optional<GpuChip> mlir::moe::parseGpuChip(StringRef name) {
  StringRef digits = name;
  if (!digits.consume_front("sm_"))
    return std::nullopt;
  GpuChip chip;
  chip.archSpecific = digits.consume_back("a");
  if (digits.empty() || digits.getAsInteger(10, chip.version) ||
      chip.version < 10 || chip.version > 999)
    return std::nullopt;
  return chip;
}

unsigned mlir::moe::minimumPTXVersion(StringRef name) {
  for (const ChipPTX &entry : kChips)
    if (entry.chip == name)
      return entry.minimumPTX;
  return 0;
}

SmallVector<StringRef> mlir::moe::projectCUDAChips() {
  SmallVector<StringRef> chips;
  for (const ChipPTX &entry : kChips)
    chips.push_back(entry.chip);
  return chips;
}
