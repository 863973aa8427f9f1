//===- moe-ir-fuzzer.cpp - libFuzzer target: IR parser and verifier -------===//
//
// Each input is parsed as a module of the moe dialect and the upstream
// dialects its tests use, then verified, unless it nests past what the
// tools parse (they refuse it before parsing). Errors are expected and
// swallowed; what the fuzzer looks for is a crash, a sanitizer report or a
// hang.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/IRNesting.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdint>

using namespace mlir;

/// One context for every input: building one per input costs more than the
/// parse. Uniqued types and attributes of earlier inputs stay in it.
static MLIRContext &context() {
  static MLIRContext *ctx = [] {
    DialectRegistry registry;
    registry.insert<moe::MoEDialect, arith::ArithDialect, func::FuncDialect,
                    linalg::LinalgDialect, math::MathDialect, scf::SCFDialect,
                    tensor::TensorDialect>();
    auto *c = new MLIRContext(registry);
    c->loadAllAvailableDialects();
    c->printOpOnDiagnostic(false);
    c->disableMultithreading();
    return c;
  }();
  return *ctx;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  // The tools refuse IR nested past the parser's recursion before parsing
  // it (moe/Compiler/IRNesting.h); so does the target, as they do.
  if (moe::findExcessiveNesting(text))
    return 0;
  MLIRContext &ctx = context();
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(text, "fuzz"), llvm::SMLoc());
  // parseSourceFile verifies the module after parsing it.
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &ctx);
  if (module)
    (void)verify(*module);
  return 0;
}
