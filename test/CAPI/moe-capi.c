/* The C API: register the dialect, build a layer from settings, verify it,
 * lower it to the LLVM dialect, and report bad settings as diagnostics.
 *
 * RUN: moe-capi-test 2>&1 | FileCheck %s
 */

#include <stdio.h>

#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/Diagnostics.h"
#include "mlir-c/IR.h"
#include "moe-c/Dialects.h"

static void printToFile(MlirStringRef text, void *userData) {
  fwrite(text.data, 1, text.length, (FILE *)userData);
}

static MlirLogicalResult printDiagnostic(MlirDiagnostic diagnostic,
                                         void *userData) {
  (void)userData;
  fprintf(stderr, "diagnostic: ");
  mlirDiagnosticPrint(diagnostic, printToFile, stderr);
  fprintf(stderr, "\n");
  return mlirLogicalResultSuccess();
}

/* Counts the operations named `name` under `op`. */
static int countOps(MlirOperation op, const char *name) {
  int count = 0;
  MlirIdentifier opName = mlirOperationGetName(op);
  MlirStringRef text = mlirIdentifierStr(opName);
  MlirStringRef wanted = mlirStringRefCreateFromCString(name);
  if (mlirStringRefEqual(text, wanted))
    ++count;
  for (intptr_t r = 0; r < mlirOperationGetNumRegions(op); ++r) {
    MlirRegion region = mlirOperationGetRegion(op, r);
    for (MlirBlock block = mlirRegionGetFirstBlock(region);
         !mlirBlockIsNull(block); block = mlirBlockGetNextInRegion(block))
      for (MlirOperation child = mlirBlockGetFirstOperation(block);
           !mlirOperationIsNull(child);
           child = mlirOperationGetNextInBlock(child))
        count += countOps(child, name);
  }
  return count;
}

int main(void) {
  MlirDialectRegistry registry = mlirDialectRegistryCreate();
  moeRegisterAllDialects(registry);
  MlirContext context = mlirContextCreateWithRegistry(registry, false);
  mlirDialectRegistryDestroy(registry);
  mlirDialectHandleLoadDialect(mlirGetDialectHandle__moe__(), context);
  mlirContextAttachDiagnosticHandler(context, printDiagnostic, NULL, NULL);
  moeRegisterPasses();

  MlirModule module = moeBuildLayerModule(
      context, mlirStringRefCreateFromCString("layer"),
      mlirStringRefCreateFromCString(
          "hidden=16,intermediate=8,experts=4,k=2,renormalize"));
  if (mlirModuleIsNull(module))
    return 1;
  MlirOperation op = mlirModuleGetOperation(module);
  // CHECK: verified: 1
  printf("verified: %d\n", mlirOperationVerify(op));
  // CHECK: moe.layer ops: 1
  printf("moe.layer ops: %d\n", countOps(op, "moe.layer"));
  // CHECK: lowered: 1
  printf("lowered: %d\n", mlirLogicalResultIsSuccess(moeLowerToCPU(module)));
  // CHECK: moe.layer ops after lowering: 0
  printf("moe.layer ops after lowering: %d\n", countOps(op, "moe.layer"));
  // CHECK: llvm.func ops: {{[1-9]}}
  printf("llvm.func ops: %d\n", countOps(op, "llvm.func"));
  fflush(stdout);
  mlirModuleDestroy(module);

  // A gpt-oss layer: router and expert biases, interleaved clamped SwiGLU.
  MlirModule gptOss = moeBuildLayerModule(
      context, mlirStringRefCreateFromCString("gpt_oss"),
      mlirStringRefCreateFromCString(
          "hidden=16,intermediate=8,experts=4,k=2,scoring=softmax_topk,"
          "activation=swiglu_oai,glu_layout=interleaved,router_bias,"
          "expert_bias"));
  if (mlirModuleIsNull(gptOss))
    return 1;
  MlirOperation gptOssOp = mlirModuleGetOperation(gptOss);
  // CHECK: gpt-oss verified: 1
  printf("gpt-oss verified: %d\n", mlirOperationVerify(gptOssOp));
  // CHECK: gpt-oss lowered: 1
  printf("gpt-oss lowered: %d\n",
         mlirLogicalResultIsSuccess(moeLowerToCPU(gptOss)));
  fflush(stdout);
  mlirModuleDestroy(gptOss);

  // CHECK: diagnostic: {{.*}}k = 9 is out of range: expected 1 <= k <= E = 4
  // CHECK: bad layer is null: 1
  MlirModule bad = moeBuildLayerModule(
      context, mlirStringRefCreateFromCString("bad"),
      mlirStringRefCreateFromCString("hidden=16,intermediate=8,experts=4,k=9"));
  fflush(stderr);
  printf("bad layer is null: %d\n", mlirModuleIsNull(bad));
  fflush(stdout);
  // CHECK: diagnostic: --layer: unknown setting 'experts_total'
  bad = moeBuildLayerModule(
      context, mlirStringRefCreateFromCString("bad"),
      mlirStringRefCreateFromCString("experts_total=4"));
  fflush(stderr);
  mlirContextDestroy(context);
  return 0;
}
