//===- CPUFeatures.cpp - The CPU features an artifact needs ---------------===//

#include "moe/Compiler/CPUFeatures.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

using namespace llvm;

namespace {

/// clang's feature macros and the __builtin_cpu_supports name of each: the
/// instruction-set extensions generated code can use. The baseline of
/// x86-64 (SSE, SSE2) is not listed: every x86-64 CPU has it.
constexpr std::pair<StringLiteral, StringLiteral> kFeatures[] = {
    {"__SSE3__", "sse3"},
    {"__SSSE3__", "ssse3"},
    {"__SSE4_1__", "sse4.1"},
    {"__SSE4_2__", "sse4.2"},
    {"__POPCNT__", "popcnt"},
    {"__AVX__", "avx"},
    {"__AVX2__", "avx2"},
    {"__FMA__", "fma"},
    {"__F16C__", "f16c"},
    {"__BMI__", "bmi"},
    {"__BMI2__", "bmi2"},
    {"__LZCNT__", "lzcnt"},
    {"__MOVBE__", "movbe"},
    {"__ADX__", "adx"},
    {"__AES__", "aes"},
    {"__PCLMUL__", "pclmul"},
    {"__SHA__", "sha"},
    {"__GFNI__", "gfni"},
    {"__VAES__", "vaes"},
    {"__VPCLMULQDQ__", "vpclmulqdq"},
    {"__AVXVNNI__", "avxvnni"},
    {"__AVX512F__", "avx512f"},
    {"__AVX512CD__", "avx512cd"},
    {"__AVX512VL__", "avx512vl"},
    {"__AVX512BW__", "avx512bw"},
    {"__AVX512DQ__", "avx512dq"},
    {"__AVX512IFMA__", "avx512ifma"},
    {"__AVX512VBMI__", "avx512vbmi"},
    {"__AVX512VBMI2__", "avx512vbmi2"},
    {"__AVX512VNNI__", "avx512vnni"},
    {"__AVX512BITALG__", "avx512bitalg"},
    {"__AVX512VPOPCNTDQ__", "avx512vpopcntdq"},
    {"__AVX512BF16__", "avx512bf16"},
    {"__AVX512FP16__", "avx512fp16"},
    {"__AVX512VP2INTERSECT__", "avx512vp2intersect"},
    {"__AMX_TILE__", "amx-tile"},
    {"__AMX_BF16__", "amx-bf16"},
    {"__AMX_INT8__", "amx-int8"},
};

Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

} // namespace

std::vector<std::string> mlir::moe::cpuFeaturesFromMacros(StringRef macros) {
  SmallVector<StringRef> lines;
  macros.split(lines, '\n', -1, /*KeepEmpty=*/false);
  std::vector<std::string> features;
  for (const auto &[macro, name] : kFeatures)
    for (StringRef line : lines) {
      SmallVector<StringRef> words;
      line.split(words, ' ', -1, /*KeepEmpty=*/false);
      if (words.size() >= 2 && words[0] == "#define" && words[1] == macro) {
        features.push_back(name.str());
        break;
      }
    }
  return features;
}

Expected<std::vector<std::string>>
mlir::moe::cpuFeaturesForChip(StringRef clang, StringRef chip) {
  SmallString<128> out, err;
  if (std::error_code ec =
          sys::fs::createTemporaryFile("moe-cpu-features", "txt", out))
    return fail("cannot create a temporary file: " + ec.message());
  if (std::error_code ec =
          sys::fs::createTemporaryFile("moe-cpu-features", "err", err))
    return fail("cannot create a temporary file: " + ec.message());
  FileRemover removeOut(out), removeErr(err);
  std::string march = ("-march=" + chip).str();
  SmallVector<StringRef> args = {clang, march, "-x",       "c",
                                 "-E",  "-dM", "/dev/null"};
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(out),
                                          StringRef(err)};
  std::string message;
  int status =
      sys::ExecuteAndWait(clang, args, std::nullopt, redirects, 0, 0, &message);
  if (status != 0) {
    std::string why = message;
    if (auto text = MemoryBuffer::getFile(err))
      why = (*text)->getBuffer().trim().split('\n').first.str();
    return fail(
        formatv("--chip '{0}': clang cannot compile for it: {1}", chip, why));
  }
  auto text = MemoryBuffer::getFile(out);
  if (!text)
    return fail("cannot read clang's predefined macros: " +
                text.getError().message());
  return cpuFeaturesFromMacros((*text)->getBuffer());
}
