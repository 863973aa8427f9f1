//===- CPUFeatures.cpp - The CPU features an artifact needs ---------------===//

#include "moe/Compiler/CPUFeatures.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
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
    {"__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16", "cx16"},
    {"__LAHF_SAHF__", "sahf"},
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
    {"__PRFCHW__", "prfchw"},
    {"__SHA__", "sha"},
    {"__GFNI__", "gfni"},
    {"__VAES__", "vaes"},
    {"__VPCLMULQDQ__", "vpclmulqdq"},
    {"__SSE4A__", "sse4a"},
    {"__FMA4__", "fma4"},
    {"__XOP__", "xop"},
    {"__TBM__", "tbm"},
    {"__AVXVNNI__", "avxvnni"},
    {"__AVXIFMA__", "avxifma"},
    {"__AVXNECONVERT__", "avxneconvert"},
    {"__AVXVNNIINT8__", "avxvnniint8"},
    {"__AVXVNNIINT16__", "avxvnniint16"},
    {"__CMPCCXADD__", "cmpccxadd"},
    {"__SHA512__", "sha512"},
    {"__SM3__", "sm3"},
    {"__SM4__", "sm4"},
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
    {"__AVX10_1__", "avx10.1"},
    {"__AVX10_2__", "avx10.2"},
    {"__APX_F__", "apxf"},
    {"__MOVRS__", "movrs"},
    {"__AMX_TILE__", "amx-tile"},
    {"__AMX_BF16__", "amx-bf16"},
    {"__AMX_INT8__", "amx-int8"},
    {"__AMX_FP16__", "amx-fp16"},
    {"__AMX_COMPLEX__", "amx-complex"},
    {"__AMX_FP8__", "amx-fp8"},
    {"__AMX_TF32__", "amx-tf32"},
    {"__AMX_AVX512__", "amx-avx512"},
    {"__AMX_MOVRS__", "amx-movrs"},
};

/// Feature macros checked through another feature, whose CPUID bit implies
/// them: CRC32 is part of SSE4.2, AVX10's 512-bit forms are AVX10 itself
/// (LLVM 22 has no 256-bit-only AVX10), and APX_F is the one CPUID bit of
/// APX's extended registers and new encodings.
constexpr StringLiteral kImpliedFeatures[] = {
    "__CRC32__",     "__AVX10_1_512__", "__AVX10_2_512__", "__EGPR__",
    "__PUSH2POP2__", "__PPX__",         "__NDD__",         "__CCMP__",
    "__NF__",        "__CF__",          "__ZU__"};

/// Feature macros not checked: their instructions (system state, cache
/// control, security, random numbers, user interrupts, ...) come only from
/// intrinsics or assembly, which the compiled kernel has none of, and some
/// (SGX) are often turned off on CPUs that have the rest.
constexpr StringLiteral kUncheckedFeatures[] = {
    "__CLDEMOTE__",  "__CLFLUSHOPT__", "__CLWB__",      "__CLZERO__",
    "__ENQCMD__",    "__FSGSBASE__",   "__HRESET__",    "__INVPCID__",
    "__KL__",        "__WIDEKL__",     "__LWP__",       "__MOVDIR64B__",
    "__MOVDIRI__",   "__MWAITX__",     "__PCONFIG__",   "__PKU__",
    "__PREFETCHI__", "__PTWRITE__",    "__RDPID__",     "__RDPRU__",
    "__RDRND__",     "__RDSEED__",     "__SERIALIZE__", "__SGX__",
    "__SHSTK__",     "__TSXLDTRK__",   "__UINTR__",     "__USERMSR__",
    "__WAITPKG__",   "__WBNOINVD__",   "__XSAVE__",     "__XSAVEC__",
    "__XSAVEOPT__",  "__XSAVES__",     "__RAOINT__"};

/// The names of the macros `macros` (clang -E -dM output) defines.
StringSet<> definedMacros(StringRef macros) {
  SmallVector<StringRef> lines;
  macros.split(lines, '\n', -1, /*KeepEmpty=*/false);
  StringSet<> names;
  for (StringRef line : lines) {
    SmallVector<StringRef> words;
    line.split(words, ' ', -1, /*KeepEmpty=*/false);
    if (words.size() >= 2 && words[0] == "#define")
      names.insert(words[1]);
  }
  return names;
}

Error fail(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

} // namespace

Expected<std::vector<std::string>>
mlir::moe::cpuFeaturesFromMacros(StringRef macros, StringRef baselineMacros,
                                 StringRef chip) {
  StringSet<> defined = definedMacros(macros);
  StringSet<> baseline = definedMacros(baselineMacros);
  std::vector<std::string> features;
  for (const auto &[macro, name] : kFeatures)
    if (defined.contains(macro))
      features.push_back(name.str());
  // A feature macro the tables do not know (a newer clang's) could stand for
  // instructions the kernel uses and the library would not check: refused.
  // Upper-case macros beyond the baseline's are features; the others name
  // the CPU and its tuning (__znver4__, __tune_znver4__).
  SmallVector<std::string> unknown;
  for (const auto &entry : defined) {
    StringRef macro = entry.getKey();
    if (baseline.contains(macro) || !macro.starts_with("__") ||
        any_of(macro, isLower) || is_contained(kImpliedFeatures, macro) ||
        is_contained(kUncheckedFeatures, macro) ||
        any_of(kFeatures, [&](const auto &f) { return f.first == macro; }))
      continue;
    unknown.push_back(macro.str());
  }
  if (!unknown.empty()) {
    llvm::sort(unknown);
    return fail(formatv("--chip '{0}': clang enables {1} for it, a CPU feature "
                        "moe-compile cannot check at run time; choose an "
                        "older --chip (x86-64-v4, sapphirerapids, ...)",
                        chip, llvm::join(unknown, ", ")));
  }
  return features;
}

/// clang's predefined macros for -march=<chip>, or clang's complaint.
static Expected<std::string> predefinedMacros(StringRef clang, StringRef chip) {
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
  return (*text)->getBuffer().str();
}

Expected<std::vector<std::string>>
mlir::moe::cpuFeaturesForChip(StringRef clang, StringRef chip) {
  Expected<std::string> macros = predefinedMacros(clang, chip);
  if (!macros)
    return macros.takeError();
  Expected<std::string> baseline = predefinedMacros(clang, "x86-64");
  if (!baseline)
    return baseline.takeError();
  return cpuFeaturesFromMacros(*macros, *baseline, chip);
}
