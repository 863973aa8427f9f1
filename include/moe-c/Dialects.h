/*===- Dialects.h - C API of the moe dialect ----------------------*- C -*-===*
 *
 * Registration of the moe dialect, its passes and pipelines, and building
 * and lowering a layer, for ML compilers that drive MLIR through its C API.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_C_DIALECTS_H
#define MOE_C_DIALECTS_H

#include "mlir-c/IR.h"
#include "mlir-c/Support.h"

#ifdef __cplusplus
extern "C" {
#endif

MLIR_DECLARE_CAPI_DIALECT_REGISTRATION(MoE, moe);

/// Registers the moe passes and pipelines (moe-lower-to-cpu-pipeline, ...)
/// in the global pass registry, so textual pipelines can name them.
MLIR_CAPI_EXPORTED void moeRegisterPasses(void);

/// Adds the moe dialect and every dialect its pipelines produce.
MLIR_CAPI_EXPORTED void moeRegisterAllDialects(MlirDialectRegistry registry);

/// Builds a module holding `func.func @<name>` with one moe.layer, from
/// settings "hidden=64,intermediate=32,experts=8,k=2,renormalize,..." (the
/// keys of moe-compile --layer). Returns a null module and reports the
/// reason through the context's diagnostics on bad settings.
MLIR_CAPI_EXPORTED MlirModule moeBuildLayerModule(MlirContext context,
                                                  MlirStringRef name,
                                                  MlirStringRef settings);

/// Runs moe-lower-to-cpu-pipeline on `module` in place.
MLIR_CAPI_EXPORTED MlirLogicalResult moeLowerToCPU(MlirModule module);

#ifdef __cplusplus
}
#endif

#endif /* MOE_C_DIALECTS_H */
