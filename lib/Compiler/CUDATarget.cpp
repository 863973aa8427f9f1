//===- CUDATarget.cpp - The CUDA chip and PTX features of an artifact -----===//

#include "moe/Compiler/CUDATarget.h"

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

Error mlir::moe::checkCUDATarget(StringRef chip, StringRef features) {
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
    return fail(formatv("--chip '{0}' is not a CUDA chip LLVM knows; known: {1}",
                        chip, join(known, ", ")));
  }

  SmallVector<StringRef> items;
  features.split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  if (items.empty())
    return fail("--cuda-features is empty; give the PTX version, e.g. +ptx80");
  for (StringRef item : items) {
    StringRef name = item.drop_front();
    bool known = llvm::any_of(info->getAllProcessorFeatures(),
                              [&](const SubtargetFeatureKV &feature) {
                                return name == feature.Key;
                              });
    if ((!item.starts_with("+") && !item.starts_with("-")) || !known)
      return fail(formatv("--cuda-features: '{0}' is not +<feature> or "
                          "-<feature> of an NVPTX feature LLVM knows (the PTX "
                          "version: +ptx80, ...)",
                          item));
  }
  return Error::success();
}
