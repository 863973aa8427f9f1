//===- CPUDispatchEmitter.cpp - Picking a CPU kernel variant --------------===//
//
// The shim is compiled for the x86-64 baseline, so the choice runs on any
// x86-64 CPU; a variant's instructions are only reached after its features
// were checked. __builtin_cpu_supports reads compiler-rt's CPU model, which
// checks with XGETBV that the OS saves the AVX and AVX-512 state as well.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/CPUDispatchEmitter.h"

#include "moe/Compiler/CABIEmitter.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace llvm;
using namespace mlir::moe;

/// `text` as a C string literal.
static std::string cString(StringRef text) {
  std::string literal = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      literal += '\\';
    literal += c;
  }
  return literal + "\"";
}

std::string mlir::moe::cpuVariantSymbol(const ABIFunction &abi) {
  return abi.prefix + "_cpu_variant";
}

void mlir::moe::emitCPUDispatch(const ABIFunction &abi, raw_ostream &os) {
  const std::vector<CPUVariant> &variants = abi.cpuVariants;
  size_t count = variants.size();
  std::string params =
      join(map_range(abi.tensors,
                     [](const ABITensor &t) {
                       return formatv("memref_{0}d *", t.shape.size()).str();
                     }),
           ", ");
  std::string chips = join(
      map_range(variants, [](const CPUVariant &v) { return v.chip; }), ", ");
  os << "#include <pthread.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
     << "#include <string.h>\n\n"
     << "/* The kernel, compiled for each CPU of --chip=" << abi.chip
     << ". */\n"
     << "typedef void (*moe_cpu_kernel_fn)(" << params << ");\n";
  for (const CPUVariant &v : variants)
    os << "void _mlir_ciface_" << abi.symbol << v.symbolSuffix << "(" << params
       << ");\n";
  os << "\n";
  for (size_t i = 0; i < count; ++i) {
    os << "/* The first feature the " << variants[i].chip
       << " kernel uses that this CPU lacks, or NULL. */\n"
       << "static const char *moe_cpu_lacks_" << i << "(void) {\n";
    for (const std::string &feature : variants[i].features)
      os << "  if (!__builtin_cpu_supports(" << cString(feature) << ")) return "
         << cString(feature) << ";\n";
    os << "  return NULL;\n}\n\n";
  }
  os << "typedef struct {\n  const char *chip;\n  moe_cpu_kernel_fn kernel;\n"
     << "  const char *(*lacks)(void);\n} moe_cpu_variant;\n\n"
     << "/* In the order they are tried: most features first. */\n"
     << "static const moe_cpu_variant moe_cpu_variants[" << count << "] = {\n";
  for (size_t i = 0; i < count; ++i)
    os << "    {" << cString(variants[i].chip) << ", _mlir_ciface_"
       << abi.symbol << variants[i].symbolSuffix << ", moe_cpu_lacks_" << i
       << "},\n";
  os << "};\n\n";

  // The choice is made once: every thread sees the same variant, and the
  // message stays valid for status_string.
  os << "static pthread_once_t moe_cpu_once = PTHREAD_ONCE_INIT;\n"
     << "static const moe_cpu_variant *moe_cpu_chosen;\n"
     << "static char moe_cpu_why[2048];\n\n"
     << "static void moe_cpu_append(const char *a, const char *b) {\n"
     << "  size_t used = strlen(moe_cpu_why);\n"
     << "  snprintf(moe_cpu_why + used, sizeof moe_cpu_why - used, \"%s%s\", "
        "a, b);\n}\n\n"
     << "static void moe_cpu_choose(void) {\n"
     << "  const char *forced = getenv(\"MOE_MLIR_CPU_VARIANT\");\n"
     << "  size_t i;\n"
     << "  __builtin_cpu_init();\n"
     << "  if (forced && *forced) {\n"
     << "    for (i = 0; i < " << count << "; ++i) {\n"
     << "      const char *lacks;\n"
     << "      if (strcmp(forced, moe_cpu_variants[i].chip) != 0) continue;\n"
     << "      lacks = moe_cpu_variants[i].lacks();\n"
     << "      if (!lacks) {\n"
     << "        moe_cpu_chosen = &moe_cpu_variants[i];\n        return;\n"
     << "      }\n"
     << "      moe_cpu_append(\"this CPU lacks \", lacks);\n"
     << "      moe_cpu_append(\", which the kernel variant \", forced);\n"
     << "      moe_cpu_append(\" was compiled for (MOE_MLIR_CPU_VARIANT)\", "
        "\"\");\n"
     << "      return;\n    }\n"
     << "    moe_cpu_append(\"MOE_MLIR_CPU_VARIANT=\", forced);\n"
     << "    moe_cpu_append(\" names no kernel variant of this library (\", "
     << cString(chips) << ");\n"
     << "    moe_cpu_append(\")\", \"\");\n    return;\n  }\n"
     << "  for (i = 0; i < " << count << "; ++i) {\n"
     << "    const char *lacks = moe_cpu_variants[i].lacks();\n"
     << "    if (!lacks) {\n"
     << "      moe_cpu_chosen = &moe_cpu_variants[i];\n      return;\n    }\n";
  if (count == 1)
    os << "    moe_cpu_append(\"this CPU lacks \", lacks);\n"
       << "    moe_cpu_append(\", which the kernel was compiled for "
          "(--chip=\", "
       << cString(abi.chip) << ");\n"
       << "    moe_cpu_append(\")\", \"\");\n";
  else
    os << "    if (i == 0)\n"
       << "      moe_cpu_append(\"this CPU runs none of the kernel's "
          "variants (--chip=\", "
       << cString(abi.chip) << ");\n"
       << "    moe_cpu_append(i == 0 ? \"): \" : \", \", "
          "moe_cpu_variants[i].chip);\n"
       << "    moe_cpu_append(\" needs \", lacks);\n";
  os << "  }\n}\n\n"
     << "/* The chosen variant's kernel, or NULL when none runs here. */\n"
     << "static moe_cpu_kernel_fn moe_cpu_kernel(void) {\n"
     << "  pthread_once(&moe_cpu_once, moe_cpu_choose);\n"
     << "  return moe_cpu_chosen ? moe_cpu_chosen->kernel : NULL;\n}\n\n"
     << "/* Why no variant runs here, or NULL when one does. */\n"
     << "static const char *moe_cpu_unsupported(void) {\n"
     << "  return moe_cpu_kernel() ? NULL : moe_cpu_why;\n}\n\n"
     << "const char *" << cpuVariantSymbol(abi) << "(void) {\n"
     << "  return moe_cpu_kernel() ? moe_cpu_chosen->chip : NULL;\n}\n\n";
}
