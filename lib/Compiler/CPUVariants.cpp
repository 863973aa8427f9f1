//===- CPUVariants.cpp - The CPUs a CPU artifact is compiled for ----------===//

#include "moe/Compiler/CPUVariants.h"

#include "moe/Compiler/CPUFeatures.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/TargetParser/X86TargetParser.h"

using namespace llvm;
using namespace mlir::moe;

static Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// The --chip values accepted, in words.
static std::string acceptedChips() {
  SmallVector<StringRef> cpus;
  X86::fillValidCPUArchList(cpus, /*Only64Bit=*/true);
  // The levels first: they are what a portable artifact is made of.
  SmallVector<StringRef> levels = {"x86-64", "x86-64-v2", "x86-64-v3",
                                   "x86-64-v4"};
  SmallVector<StringRef> named;
  for (StringRef cpu : cpus)
    if (!is_contained(levels, cpu))
      named.push_back(cpu);
  return formatv("portable ({0}), native, one of the levels {1}, or a CPU "
                 "clang knows ({2}), or a comma-separated list of them",
                 kPortableChips, join(levels, ", "), join(named, ", "));
}

Expected<std::vector<std::string>> mlir::moe::parseChipList(StringRef chip) {
  if (chip.empty())
    return std::vector<std::string>{"native"};
  StringRef list = chip == "portable" ? StringRef(kPortableChips) : chip;
  SmallVector<StringRef> names;
  list.split(names, ',', -1, /*KeepEmpty=*/true);
  std::vector<std::string> chips;
  for (StringRef name : names) {
    name = name.trim();
    if (name.empty())
      return fail(formatv("--chip '{0}': an empty CPU name in the list", chip));
    bool known = name == "native" ||
                 X86::parseArchX86(name, /*Only64Bit=*/true) != X86::CK_None;
    if (!known)
      return fail(formatv("--chip: unknown CPU '{0}'; accepted: {1}", name,
                          acceptedChips()));
    if (name == "native" && names.size() > 1)
      return fail(formatv("--chip '{0}': native (the building machine's "
                          "CPU) cannot be one of several variants; name the "
                          "CPUs or levels",
                          chip));
    if (is_contained(chips, name.str()))
      return fail(formatv("--chip '{0}': '{1}' is named twice", chip, name));
    chips.push_back(name.str());
  }
  return chips;
}

Expected<std::vector<CPUVariant>>
mlir::moe::planCPUVariants(StringRef clang, ArrayRef<std::string> chips) {
  std::vector<CPUVariant> variants;
  for (const std::string &chip : chips) {
    Expected<std::vector<std::string>> features =
        cpuFeaturesForChip(clang, chip);
    if (!features)
      return features.takeError();
    CPUVariant variant;
    variant.chip = chip;
    if (chips.size() > 1) {
      variant.symbolSuffix = "_" + chip;
      for (char &c : variant.symbolSuffix)
        if (!isAlnum(c))
          c = '_';
    }
    variant.features = std::move(*features);
    variants.push_back(std::move(variant));
  }
  // Two variants with the same features would be the same code twice.
  for (size_t i = 0; i < variants.size(); ++i)
    for (size_t j = i + 1; j < variants.size(); ++j)
      if (variants[i].features == variants[j].features)
        return fail(formatv("--chip: '{0}' and '{1}' have the same CPU "
                            "features; keep one of them",
                            variants[i].chip, variants[j].chip));
  // Most features first, ties in the order given (std::stable_sort would
  // do, but libstdc++'s uses a deprecated buffer clang warns of).
  std::vector<size_t> order(variants.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  llvm::sort(order, [&](size_t a, size_t b) {
    size_t fa = variants[a].features.size(), fb = variants[b].features.size();
    return fa != fb ? fa > fb : a < b;
  });
  std::vector<CPUVariant> sorted;
  for (size_t i : order)
    sorted.push_back(std::move(variants[i]));
  return sorted;
}

std::vector<std::string>
mlir::moe::commonCPUFeatures(ArrayRef<CPUVariant> variants) {
  if (variants.empty())
    return {};
  std::vector<std::string> common = variants.front().features;
  for (const CPUVariant &variant : variants.drop_front())
    erase_if(common, [&](const std::string &feature) {
      return !is_contained(variant.features, feature);
    });
  return common;
}

json::Array mlir::moe::cpuVariantsToJSON(ArrayRef<CPUVariant> variants,
                                         StringRef function) {
  json::Array list;
  for (const CPUVariant &variant : variants)
    list.push_back(json::Object{
        {"chip", variant.chip},
        {"symbol", ("_mlir_ciface_" + function + variant.symbolSuffix).str()},
        {"cpu_features", json::Array(variant.features)}});
  return list;
}
