//===- CUDATarget.cpp - The CUDA chip and PTX features of a build ---------===//

#include "moe/Pipelines/CUDATarget.h"

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/TargetParser/Triple.h"

#include <memory>

using namespace llvm;

extern "C" void LLVMInitializeNVPTXTargetInfo();
extern "C" void LLVMInitializeNVPTXTargetMC();

static Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// The PTX version of an NVPTX feature name (ptx80 -> 80), or 0.
static unsigned ptxVersion(StringRef feature) {
  unsigned version = 0;
  if (!feature.consume_front("ptx") || feature.getAsInteger(10, version))
    return 0;
  return version;
}

unsigned mlir::moe::requestedPTXVersion(StringRef features) {
  SmallVector<StringRef> items;
  features.split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  unsigned requested = 0;
  for (StringRef item : items)
    if (item.consume_front("+"))
      requested = std::max(requested, ptxVersion(item));
  return requested;
}

Error mlir::moe::checkCUDATarget(StringRef chip, StringRef features,
                                 StringRef chipOption,
                                 StringRef featuresOption) {
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTargetMC();
  Triple triple("nvptx64-nvidia-cuda");
  std::string error;
  const Target *target = TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return fail("this LLVM has no NVPTX target: " + error);
  std::unique_ptr<MCSubtargetInfo> info(
      target->createMCSubtargetInfo(triple, "", ""));
  if (!info)
    return fail("LLVM cannot describe NVPTX subtargets");
  if (!info->isCPUStringValid(chip)) {
    SmallVector<StringRef> known;
    for (const SubtargetSubTypeKV &cpu : info->getAllProcessorDescriptions())
      if (StringRef(cpu.Key).starts_with("sm_"))
        known.push_back(cpu.Key);
    return fail(formatv("{0} '{1}' is not a CUDA chip LLVM knows; known: {2}",
                        chipOption, chip, join(known, ", ")));
  }

  SmallVector<StringRef> items;
  features.split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  if (items.empty())
    return fail(formatv("{0} is empty; give the PTX version, e.g. +ptx80",
                        featuresOption));
  unsigned requested = 0;
  for (StringRef item : items) {
    StringRef name = item.drop_front();
    bool known = llvm::any_of(
        info->getAllProcessorFeatures(),
        [&](const SubtargetFeatureKV &feature) { return name == feature.Key; });
    if ((!item.starts_with("+") && !item.starts_with("-")) || !known)
      return fail(formatv("{0}: '{1}' is not +<feature> or -<feature> of an "
                          "NVPTX feature LLVM knows (the PTX version: +ptx80, "
                          "...)",
                          featuresOption, item));
    // The backend reads a PTX version from the features and nothing else
    // that a build may choose: a chip feature is ignored (the chip is
    // chipOption's) and so is a version turned off, which would leave the
    // build at a version nobody asked for.
    if (item.starts_with("-"))
      return fail(formatv("{0}: '{1}' turns a feature off, which chooses "
                          "nothing; give the PTX version to build for, e.g. "
                          "+ptx80",
                          featuresOption, item));
    if (!ptxVersion(name))
      return fail(formatv("{0}: '{1}' is not a PTX version (+ptx80, ...); "
                          "the chip is {2}",
                          featuresOption, item, chipOption));
    requested = std::max(requested, ptxVersion(name));
  }

  // The backend stops the process on a PTX version older than the chip's
  // (its NVPTXSubtarget check, which the MC layer does not expose). A chip
  // LLVM knows but the project's table does not would reach that check with
  // no answer here: refused rather than risked.
  unsigned minimum = minimumPTXVersion(chip);
  if (!minimum)
    return fail(formatv("{0} '{1}' is not one the project builds for ({2})",
                        chipOption, chip, join(projectCUDAChips(), ", ")));
  if (requested && requested < minimum)
    return fail(formatv("{0} +ptx{1} is older than {2} '{3}' needs: +ptx{4} "
                        "or newer",
                        featuresOption, requested, chipOption, chip, minimum));
  return Error::success();
}
