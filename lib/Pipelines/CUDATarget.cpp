//===- CUDATarget.cpp - The CUDA chip and PTX features of a build ---------===//

#include "moe/Pipelines/CUDATarget.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
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
    if (item.starts_with("+"))
      requested = std::max(requested, ptxVersion(name));
  }

  // The backend stops the process on a PTX version older than the chip's
  // (its NVPTXSubtarget check, which the MC layer does not expose): the
  // first PTX ISA version of each chip, from the PTX ISA's release notes.
  unsigned minimum = StringSwitch<unsigned>(chip)
                         .Case("sm_70", 60)
                         .Case("sm_72", 61)
                         .Case("sm_75", 63)
                         .Case("sm_80", 70)
                         .Case("sm_86", 71)
                         .Case("sm_87", 74)
                         .Cases("sm_89", "sm_90", 78)
                         .Case("sm_90a", 80)
                         .Cases("sm_100", "sm_100a", "sm_101", "sm_101a", 86)
                         .Cases("sm_120", "sm_120a", 87)
                         .Default(0);
  // A chip LLVM knows but this table does not would reach that check with
  // no answer here: refused rather than risked.
  if (!minimum)
    return fail(formatv("{0} '{1}' is not one the project builds for (sm_70, "
                        "sm_72, sm_75, sm_80, sm_86, sm_87, sm_89, sm_90, "
                        "sm_90a, sm_100, sm_100a, sm_101, sm_101a, sm_120, "
                        "sm_120a)",
                        chipOption, chip));
  if (requested && requested < minimum)
    return fail(formatv("{0} +ptx{1} is older than {2} '{3}' needs: +ptx{4} "
                        "or newer",
                        featuresOption, requested, chipOption, chip, minimum));
  return Error::success();
}
