//===- LayerGenerator.h - Valid layers from a fuzzer's bytes ----*- C++ -*-===//
//
// The pipeline fuzzers need modules that verify, so that a failure to lower
// one is a finding: they draw a LayerSpec field by field from the input's
// bytes, inside the ranges validateLayerSpec and moe.layer's verifier
// accept, and build its module with buildLayerModule or buildExpertsModule,
// as moe-compile does. A finding is reported with the spec as moe-compile
// --layer settings, which reproduce it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_MOE_FUZZ_LAYERGENERATOR_H
#define MOE_TOOLS_MOE_FUZZ_LAYERGENERATOR_H

#include "moe/Compiler/LayerSpec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OwningOpRef.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <string>

namespace mlir::moe::fuzz {

/// A layer drawn from the input and which of moe-compile's entries to build.
struct GeneratedLayer {
  LayerSpec spec;
  /// buildExpertsModule (moe-compile --entry=experts) instead of the layer.
  bool expertsEntry = false;
};

/// Draws a layer whose sizes are small (a lowering's compile time should
/// not depend on them, the limits table of docs/testing.md says; small
/// sizes keep the executions fast) and whose every other field takes any
/// value the spec's validation accepts: each dtype, scoring, group score,
/// activation, GLU layout, drop policy, weight layout and FP8 scheme,
/// grouped routing, capacities, biases and the shared expert.
GeneratedLayer generateLayer(FuzzedDataProvider &data);

/// The spec as moe-compile settings: `moe-compile --layer=<this>` (with
/// --entry=experts for an experts entry) builds the same module.
std::string layerSettings(const LayerSpec &spec);

/// Every diagnostic emitted in `context` while it lives, kept as text with
/// its location, so that a finding can print what went wrong.
class DiagnosticLog {
public:
  explicit DiagnosticLog(MLIRContext *context);
  const std::string &text() const { return log; }
  /// Whether an error's message contains `fragment`.
  bool hasErrorContaining(llvm::StringRef fragment) const;

private:
  std::string log;
  llvm::SmallVector<std::string> errors;
  ScopedDiagnosticHandler handler;
};

/// Prints a finding: `what` failed on `layer` (its moe-compile command),
/// with the diagnostics; then aborts, so that libFuzzer keeps the input.
[[noreturn]] void reportFinding(llvm::StringRef target, llvm::StringRef what,
                                const GeneratedLayer &layer,
                                llvm::StringRef extraFlags,
                                const DiagnosticLog &diagnostics);

/// The module of `layer` (null if the spec does not validate: the generator
/// keeps to the validation's ranges, so that is rare). A spec that
/// validates but whose module does not verify is a finding: validation
/// promises the verifier's rules.
OwningOpRef<ModuleOp> buildGeneratedModule(llvm::StringRef target,
                                           const GeneratedLayer &layer,
                                           MLIRContext &context,
                                           const DiagnosticLog &diagnostics);

} // namespace mlir::moe::fuzz

#endif // MOE_TOOLS_MOE_FUZZ_LAYERGENERATOR_H
