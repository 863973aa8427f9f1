//===- CABIEmitter.cpp - The C ABI of a compiled function -----------------===//
//
// What moe-compile writes for a function describeABI (ABIDescription.cpp)
// accepted: the C header, the shim that checks the arguments and calls the
// kernel (and, on the CPU, guards its allocations and checks the CPU
// features), the exported symbols and the manifest's tensor list.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/CABIEmitter.h"

#include "moe/Compiler/CPUDispatchEmitter.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/WeightDequantization.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <set>

using namespace llvm;
using namespace mlir;
using namespace mlir::moe;

/// A tensor that <prefix>_pack_<name> writes from E experts' [N, K] Linear
/// weights (K in stored elements: bytes of k-pairs for 4-bit codes), in
/// panels of `panelWidth` columns (0 for kn); `wordOrder` where its 4-bit
/// rows are in the word order (kWordOrderPanelWidth).
struct PackedWeights {
  const ABITensor *tensor;
  int64_t experts, n, k, panelWidth;
  bool wordOrder;
};

/// The w13 and w2 tensors of a layer whose weights are stored packed.
static std::vector<PackedWeights> packedWeights(const ABIFunction &abi) {
  std::vector<PackedWeights> packed;
  StringRef layout = abi.weightLayout;
  if (layout.empty() || layout == "nk")
    return packed;
  // Quantized weights in panels bring their scales and zero points along
  // (4-D like them; FP8's block scales stay 3-D and as they are).
  auto isPacked = [&](const ABITensor &t) {
    if (t.name == "w13" || t.name == "w2")
      return true;
    return layout == "panels" && t.shape.size() == 4 &&
           llvm::is_contained(
               {"w13_scales", "w2_scales", "w13_zero_points", "w2_zero_points"},
               t.name);
  };
  bool fourBit = abi.weightQuant == "mxfp4" || abi.weightQuant == "int4";
  for (const ABITensor &t : abi.tensors) {
    if (t.isResult || !isPacked(t))
      continue;
    ArrayRef<int64_t> s = t.shape;
    if (layout == "kn") {
      packed.push_back({&t, s[0], s[2], s[1], 0, false});
    } else if (layout == "panels") {
      bool codes = t.name == "w13" || t.name == "w2";
      packed.push_back({&t, s[0], s[1] * s[3], s[2], s[3],
                        fourBit && codes && s[3] == kWordOrderPanelWidth});
    } else if (layout == "panels_vnni") {
      packed.push_back(
          {&t, s[0], s[1] * (s[3] / 2), s[2] * 2, s[3] / 2, false});
    }
  }
  return packed;
}

/// The element offset in `layout` of Linear element (e, n, k), in C.
static std::string packedOffset(StringRef layout, const PackedWeights &w) {
  int64_t P = w.panelWidth;
  if (layout == "kn")
    return formatv("(e * {0} + k) * {1} + n", w.k, w.n);
  if (layout == "panels")
    return formatv("((e * {0} + n / {1}) * {2} + k) * {1} + n % {1}", w.n / P,
                   P, w.k);
  return formatv("((e * {0} + n / {1}) * {2} + k / 2) * {3} + 2 * (n % {1}) "
                 "+ k % 2",
                 w.n / P, P, w.k / 2, 2 * P);
}

/// The body of a pack function whose 4-bit panels are in the word order
/// (docs/quantization.md): byte o of a panel's row j gathers the nibbles of
/// weight k = 2j + (o / 2) % 2 of columns 16 (2 (o % 2)) + o / 4 (low) and
/// 16 (2 (o % 2) + 1) + o / 4 (high) from their Linear bytes.
static void emitWordOrderPacking(const PackedWeights &w, raw_ostream &os) {
  int64_t P = w.panelWidth;
  os << "  for (int64_t e = 0; e < " << w.experts << "; ++e)\n"
     << "    for (int64_t p = 0; p < " << w.n / P << "; ++p)\n"
     << "      for (int64_t j = 0; j < " << w.k << "; ++j)\n"
     << "        for (int64_t o = 0; o < " << P << "; ++o) {\n"
     << "          int64_t column = p * " << P << " + 32 * (o % 2) + o / 4;\n"
     << "          int shift = 4 * ((o / 2) % 2);\n"
     << "          unsigned lo = (src[(e * " << w.n << " + column) * " << w.k
     << " + j] >> shift) & 15u;\n"
     << "          unsigned hi = (src[(e * " << w.n << " + column + 16) * "
     << w.k << " + j] >> shift) & 15u;\n"
     << "          dst[((e * " << w.n / P << " + p) * " << w.k << " + j) * "
     << P << " + o] = (unsigned char)(lo | hi << 4);\n"
     << "        }\n"
     << "  return MOE_STATUS_SUCCESS;\n}\n";
}

static std::string parameterList(const ABIFunction &abi) {
  std::string params;
  for (const ABITensor &t : abi.tensors)
    params += formatv("{0}void *{1}, ", t.isResult ? "" : "const ", t.name);
  params += "int64_t num_tokens, void *workspace, size_t workspace_size, "
            "void *stream";
  return params;
}

std::string mlir::moe::emitHeader(const ABIFunction &abi,
                                  StringRef runtimeHeader) {
  std::string guard = StringRef(abi.prefix).upper() + "_H";
  std::string text;
  raw_string_ostream os(text);
  os << "/* Generated by moe-compile. The C ABI of one compiled MoE function. "
        "*/\n"
     << "#ifndef " << guard << "\n#define " << guard << "\n\n"
     << runtimeHeader << "\n"
     << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
     << "/* Tensors (dense, row-major):\n";
  for (const ABITensor &t : abi.tensors) {
    os << " *   " << (t.isResult ? "out " : "in  ") << t.name << " [";
    os << llvm::join(llvm::map_range(t.shape,
                                     [](int64_t s) {
                                       return s < 0 ? std::string("num_tokens")
                                                    : std::to_string(s);
                                     }),
                     ", ");
    os << "] " << t.elementType << "\n";
  }
  os << " * num_tokens: 1 .. " << abi.maxTokens << ".\n";
  if (abi.cuda)
    os << " * CUDA: tensors and the workspace are device memory, 16-byte "
          "aligned; the call\n * enqueues on `stream` (NULL: the legacy "
          "default stream) and does not wait.\n";
  else
    os << " * CPU: host memory; `stream` must be NULL.\n";
  os << " */\n"
     << "#define " << StringRef(abi.prefix).upper() << "_MAX_TOKENS "
     << abi.maxTokens << "\n\n"
     << "size_t " << abi.prefix << "_workspace_size(int64_t num_tokens);\n"
     << "moe_status " << abi.prefix << "_forward(" << parameterList(abi)
     << ");\n"
     << "const char *" << abi.prefix << "_status_string(moe_status status);\n";
  if (!abi.cuda)
    os << "\n/* The CPU the kernel that runs here was compiled for (--chip, "
          "or the variant\n * picked from its list), or NULL when this CPU "
          "runs none of them. */\n"
       << "const char *" << cpuVariantSymbol(abi) << "(void);\n";
  for (const PackedWeights &w : packedWeights(abi))
    os << "\n/* Writes " << w.tensor->name << " in the " << abi.weightLayout
       << " layout"
       << (w.panelWidth ? formatv(" (panels of {0} columns{1})", w.panelWidth,
                                  w.wordOrder ? ", the word order" : "")
                              .str()
                        : "")
       << "\n * from E = " << w.experts << " experts' [" << w.n << ", " << w.k
       << "] Linear weights (`linear`, [E, N, K], " << w.tensor->elementType
       << "):\n * a one-time step when the model loads."
       << (abi.cuda ? " Host memory, for a\n * copy to the device after." : "")
       << " */\n"
       << "moe_status " << abi.prefix << "_pack_" << w.tensor->name
       << "(const void *linear, void *packed);\n";
  os << "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* " << guard << " */\n";
  return text;
}

/// Declares memref descriptor structs for the ranks `abi` passes.
static void emitDescriptorTypes(const ABIFunction &abi, raw_ostream &os) {
  std::set<size_t> ranks;
  for (const ABITensor &t : abi.tensors)
    ranks.insert(t.shape.size());
  if (abi.cuda)
    ranks.insert(1); // the workspace
  for (size_t rank : ranks) {
    os << "typedef struct {\n  void *allocated;\n  void *aligned;\n"
       << "  int64_t offset;\n";
    if (rank)
      os << "  int64_t sizes[" << rank << "];\n  int64_t strides[" << rank
         << "];\n";
    os << "} memref_" << rank << "d;\n\n";
  }
}

/// Declares `d<i>`, the dense row-major descriptor of tensor i over the
/// pointer expression `pointer(i)`; dynamic sizes are num_tokens.
template <typename PointerFn>
static void emitDescriptors(const ABIFunction &abi, size_t count,
                            PointerFn pointer, raw_ostream &os) {
  for (size_t i = 0; i < count; ++i) {
    const ABITensor &t = abi.tensors[i];
    size_t rank = t.shape.size();
    std::string p = pointer(i);
    os << "  memref_" << rank << "d d" << i << " = {" << p << ", " << p
       << ", 0";
    if (rank) {
      SmallVector<std::string> sizes, strides(rank);
      for (int64_t s : t.shape)
        sizes.push_back(s < 0 ? "num_tokens" : std::to_string(s));
      // In int64_t from the start: a product of int literals could overflow.
      std::string stride = "(int64_t)1";
      for (size_t d = rank; d-- > 0;) {
        strides[d] = stride;
        stride = "(" + stride + ") * " + sizes[d];
      }
      os << ", {" << llvm::join(sizes, ", ") << "}, {"
         << llvm::join(strides, ", ") << "}";
    }
    os << "};\n";
  }
}

/// CPU artifacts: the kernel's malloc, calloc and free, which the link
/// redirects here (moe-compile links with --wrap), so that an allocation the
/// kernel cannot get makes the call return MOE_STATUS_OUT_OF_MEMORY instead
/// of the kernel writing through NULL. The kernel allocates its temporaries
/// on the calling thread, outside its OpenMP regions (their scratch is on
/// the stack), so the guard unwinds with longjmp to the call and frees what
/// the call still holds: each block carries a header linking it into the
/// calling thread's list of live blocks.
static void emitAllocationGuard(raw_ostream &os) {
  os << R"c(#include <setjmp.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void __real_free(void *pointer);

/* 16 bytes, so blocks keep malloc's alignment. A block outside a call links
 * to itself. */
typedef struct moe_block {
  struct moe_block *previous, *next;
} moe_block;

/* The live blocks of this thread's call, and where a failure returns to. */
static __thread moe_block *moe_call_blocks;
static __thread jmp_buf *moe_on_out_of_memory;

static void *moe_track(moe_block *block) {
  if (!block) {
    if (moe_on_out_of_memory)
      longjmp(*moe_on_out_of_memory, 1);
    return NULL;
  }
  block->previous = block->next = block;
  if (moe_on_out_of_memory) {
    block->previous = NULL;
    block->next = moe_call_blocks;
    if (moe_call_blocks)
      moe_call_blocks->previous = block;
    moe_call_blocks = block;
  }
  return block + 1;
}

void *__wrap_malloc(size_t size) {
  if (size > SIZE_MAX - sizeof(moe_block))
    return moe_track(NULL);
  return moe_track((moe_block *)__real_malloc(sizeof(moe_block) + size));
}

void *__wrap_calloc(size_t count, size_t size) {
  if (size && count > (SIZE_MAX - sizeof(moe_block)) / size)
    return moe_track(NULL);
  return moe_track(
      (moe_block *)__real_calloc(1, sizeof(moe_block) + count * size));
}

void __wrap_free(void *pointer) {
  if (!pointer)
    return;
  moe_block *block = (moe_block *)pointer - 1;
  if (block->next != block) {
    if (block->previous)
      block->previous->next = block->next;
    else
      moe_call_blocks = block->next;
    if (block->next)
      block->next->previous = block->previous;
  }
  __real_free(block);
}

/* After a failed allocation: frees the temporaries the call still held. */
static void moe_release_call_blocks(void) {
  while (moe_call_blocks) {
    moe_block *block = moe_call_blocks;
    moe_call_blocks = block->next;
    __real_free(block);
  }
}

)c";
}

static std::string descriptorAddresses(size_t count) {
  std::string list;
  for (size_t i = 0; i < count; ++i)
    list += (i ? ", &d" : "&d") + std::to_string(i);
  return list;
}

std::string mlir::moe::emitShim(const ABIFunction &abi) {
  size_t numInputs = llvm::count_if(
      abi.tensors, [](const ABITensor &t) { return !t.isResult; });
  std::string text;
  raw_string_ostream os(text);
  os << "/* Generated by moe-compile: argument checks and the call into the\n"
        " * compiled function through its _mlir_ciface_ entry point. */\n"
     << "#include <stddef.h>\n#include <stdint.h>\n\n"
     << "#include \"" << abi.prefix << ".h\"\n\n";
  emitDescriptorTypes(abi, os);
  auto descriptorParams = [&](size_t count) {
    std::string list;
    for (size_t i = 0; i < count; ++i)
      list += formatv("{0}memref_{1}d *", i ? ", " : "",
                      abi.tensors[i].shape.size());
    return list;
  };
  if (abi.cuda)
    os << "void _mlir_ciface_" << abi.symbol << "("
       << descriptorParams(abi.tensors.size()) << ", memref_1d *);\n"
       << "int64_t _mlir_ciface_" << abi.symbol << "_workspace_size("
       << descriptorParams(numInputs) << ");\n"
       << "/* The project's CUDA runtime, linked in (CUDARuntime.h). */\n"
       << "int moeCudaTakeStatus(void);\n"
       << "const char *moeCudaLastMessage(void);\n"
       << "void moeCudaSetStream(void *stream);\n"
       << "void moeCudaClearStream(void);\n"
       << "int moeCudaIsDevicePointer(const void *pointer);\n";
  os << "\nstatic int misaligned(const void *p, size_t alignment) {\n"
     << "  return ((uintptr_t)p) % alignment != 0;\n}\n\n";
  if (!abi.cuda) {
    emitAllocationGuard(os);
    emitCPUDispatch(abi, os);
  }

  os << "size_t " << abi.prefix << "_workspace_size(int64_t num_tokens) {\n";
  if (abi.cuda) {
    os << "  if (num_tokens < 1 || num_tokens > " << abi.maxTokens
       << ") return 0;\n";
    // The query reads only the shapes (moe-gpu-workspace guarantees it).
    emitDescriptors(abi, numInputs, [](size_t) { return "NULL"; }, os);
    os << "  return (size_t)_mlir_ciface_" << abi.symbol << "_workspace_size("
       << descriptorAddresses(numInputs) << ");\n}\n\n";
  } else {
    os << "  /* CPU kernels keep their temporaries on the heap. */\n"
       << "  (void)num_tokens;\n  return 0;\n}\n\n";
  }

  os << "const char *" << abi.prefix
     << "_status_string(moe_status status) {\n  switch (status) {\n"
     << "  case MOE_STATUS_SUCCESS: return \"success\";\n"
     << "  case MOE_STATUS_NULL_POINTER: return \"a tensor "
     << (abi.cuda ? "or workspace " : "") << "pointer is NULL\";\n"
     << "  case MOE_STATUS_MISALIGNED: return \"a tensor is not aligned to "
     << (abi.cuda ? "16 bytes" : "its element size") << "\";\n"
     << "  case MOE_STATUS_BAD_NUM_TOKENS: return \"num_tokens is outside [1, "
     << abi.maxTokens << "]\";\n"
     << "  case MOE_STATUS_WORKSPACE_TOO_SMALL: return \"workspace_size is "
        "below the workspace-size query\";\n"
     << "  case MOE_STATUS_UNSUPPORTED: ";
  if (abi.cuda)
    os << "return \"unsupported\";\n";
  else
    os << "{\n    const char *why = moe_cpu_unsupported();\n"
       << "    return why ? why : \"a CPU artifact takes no stream\";\n  }\n";
  if (abi.cuda)
    os << "  case MOE_STATUS_DEVICE_ERROR:\n"
       << "  case MOE_STATUS_OUT_OF_MEMORY: {\n"
       << "    /* The driver's words for this thread's last failure. */\n"
       << "    const char *message = moeCudaLastMessage();\n"
       << "    if (message && *message) return message;\n"
       << "    return status == MOE_STATUS_OUT_OF_MEMORY ? \"out of memory\" "
          ": \"device error\";\n  }\n"
       << "  case MOE_STATUS_NOT_DEVICE_MEMORY: return \"a tensor or the "
          "workspace is not memory the device can address\";\n";
  else
    os << "  case MOE_STATUS_DEVICE_ERROR: return \"device error\";\n"
       << "  case MOE_STATUS_OUT_OF_MEMORY: return \"out of memory\";\n"
       << "  case MOE_STATUS_NOT_DEVICE_MEMORY: return \"not device "
          "memory\";\n";
  os << "  }\n  return \"unknown status\";\n}\n\n";

  os << "moe_status " << abi.prefix << "_forward(" << parameterList(abi)
     << ") {\n";
  if (!abi.cuda)
    os << "  moe_cpu_kernel_fn kernel = moe_cpu_kernel();\n"
       << "  if (!kernel) return MOE_STATUS_UNSUPPORTED;\n";
  for (const ABITensor &t : abi.tensors)
    os << "  if (!" << t.name << ") return MOE_STATUS_NULL_POINTER;\n";
  for (const ABITensor &t : abi.tensors)
    os << "  if (misaligned(" << t.name << ", " << abi.alignment(t)
       << ")) return MOE_STATUS_MISALIGNED;\n";
  os << "  if (num_tokens < 1 || num_tokens > " << abi.maxTokens
     << ") return MOE_STATUS_BAD_NUM_TOKENS;\n"
     << "  size_t required = " << abi.prefix << "_workspace_size(num_tokens);\n"
     << "  if (workspace_size < required) return "
        "MOE_STATUS_WORKSPACE_TOO_SMALL;\n";
  if (abi.cuda) {
    os << "  if (!workspace && required) return MOE_STATUS_NULL_POINTER;\n"
       << "  if (misaligned(workspace, 16)) return MOE_STATUS_MISALIGNED;\n";
    // A host pointer would fault on the device and poison the context.
    for (const ABITensor &t : abi.tensors)
      os << "  if (!moeCudaIsDevicePointer(" << t.name
         << ")) return MOE_STATUS_NOT_DEVICE_MEMORY;\n";
    os << "  if (required && !moeCudaIsDevicePointer(workspace)) return "
          "MOE_STATUS_NOT_DEVICE_MEMORY;\n";
  } else {
    os << "  (void)workspace;\n"
       << "  if (stream) return MOE_STATUS_UNSUPPORTED;\n";
  }
  emitDescriptors(
      abi, abi.tensors.size(),
      [&](size_t i) { return "(void *)" + abi.tensors[i].name; }, os);
  if (abi.cuda) {
    os << "  memref_1d ws = {workspace, workspace, 0, {(int64_t)"
          "workspace_size}, {1}};\n"
       << "  moeCudaTakeStatus();\n"
       << "  moeCudaSetStream(stream);\n"
       << "  _mlir_ciface_" << abi.symbol << "("
       << descriptorAddresses(abi.tensors.size()) << ", &ws);\n"
       << "  moeCudaClearStream();\n"
       << "  return (moe_status)moeCudaTakeStatus();\n}\n";
  } else {
    // Nothing but the guard's unwinding changes after setjmp, so no local
    // needs to be volatile.
    os << "  jmp_buf on_out_of_memory;\n"
       << "  moe_call_blocks = NULL;\n"
       << "  if (setjmp(on_out_of_memory)) {\n"
       << "    moe_on_out_of_memory = NULL;\n"
       << "    moe_release_call_blocks();\n"
       << "    return MOE_STATUS_OUT_OF_MEMORY;\n  }\n"
       << "  moe_on_out_of_memory = &on_out_of_memory;\n"
       << "  kernel(" << descriptorAddresses(abi.tensors.size()) << ");\n"
       << "  moe_on_out_of_memory = NULL;\n"
       << "  return MOE_STATUS_SUCCESS;\n}\n";
  }
  for (const PackedWeights &w : packedWeights(abi)) {
    int64_t bytes = w.tensor->elementBytes;
    os << "\nmoe_status " << abi.prefix << "_pack_" << w.tensor->name
       << "(const void *linear, void *packed) {\n"
       << "  if (!linear || !packed) return MOE_STATUS_NULL_POINTER;\n"
       << "  const unsigned char *src = (const unsigned char *)linear;\n"
       << "  unsigned char *dst = (unsigned char *)packed;\n";
    if (w.wordOrder) {
      emitWordOrderPacking(w, os);
      continue;
    }
    os << "  for (int64_t e = 0; e < " << w.experts << "; ++e)\n"
       << "    for (int64_t n = 0; n < " << w.n << "; ++n)\n"
       << "      for (int64_t k = 0; k < " << w.k << "; ++k) {\n"
       << "        int64_t from = (e * " << w.n << " + n) * " << w.k
       << " + k;\n"
       << "        int64_t to = " << packedOffset(abi.weightLayout, w) << ";\n"
       << "        for (int b = 0; b < " << bytes << "; ++b)\n"
       << "          dst[to * " << bytes << " + b] = src[from * " << bytes
       << " + b];\n"
       << "      }\n"
       << "  return MOE_STATUS_SUCCESS;\n}\n";
  }
  return text;
}

std::vector<std::string> mlir::moe::exportedSymbols(const ABIFunction &abi) {
  std::vector<std::string> symbols = {abi.prefix + "_workspace_size",
                                      abi.prefix + "_forward",
                                      abi.prefix + "_status_string"};
  if (!abi.cuda)
    symbols.push_back(cpuVariantSymbol(abi));
  for (const PackedWeights &w : packedWeights(abi))
    symbols.push_back(abi.prefix + "_pack_" + w.tensor->name);
  return symbols;
}

std::string mlir::moe::emitVersionScript(const ABIFunction &abi) {
  std::string script = "{\n  global:\n";
  for (const std::string &symbol : exportedSymbols(abi))
    script += "    " + symbol + ";\n";
  return script + "  local: *;\n};\n";
}

json::Array mlir::moe::abiToJSON(const ABIFunction &abi) {
  json::Array tensors;
  for (const ABITensor &t : abi.tensors)
    tensors.push_back(json::Object{
        {"name", t.name},
        {"shape", json::Array(t.shape)},
        {"dtype", t.elementType},
        {"direction", t.isResult ? "out" : "in"},
    });
  return tensors;
}
