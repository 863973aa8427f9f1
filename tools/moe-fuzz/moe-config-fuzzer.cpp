//===- moe-config-fuzzer.cpp - libFuzzer target: moe-compile's config reader =//
//
// Each input is read as a model's config.json and the layer it describes is
// validated, as moe-compile does. Errors are expected; what the fuzzer looks
// for is a crash, a sanitizer report (an overflow in a size product, say) or
// a hang.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/HFConfig.h"
#include "moe/Compiler/LayerSpec.h"

#include "llvm/Support/Error.h"

#include <cstdint>

using namespace mlir::moe;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::Expected<LayerSpec> spec = layerSpecFromHFConfigText(
      llvm::StringRef(reinterpret_cast<const char *>(data), size));
  if (!spec) {
    llvm::consumeError(spec.takeError());
    return 0;
  }
  if (llvm::Error e = validateLayerSpec(*spec)) {
    llvm::consumeError(std::move(e));
    return 0;
  }
  return 0;
}
