//===- CUDAModules.cpp - Kernel images and launches -----------------------===//

#include "moe/Runtime/CUDARuntime.h"

#include "CUDADriver.h"

#include <mutex>
#include <utility>
#include <vector>

using namespace moe::cuda_runtime;

namespace {

/// A GPU binary embedded in lowered code, and its modules, one per context
/// it has been launched in.
struct LazyModule {
  const void *image;
  std::mutex mutex;
  std::vector<std::pair<CUcontext, CUmodule>> loaded;
};

} // namespace

MOE_EXPORT void *mgpuModuleLoad(void *data, size_t /*size*/) {
  return new LazyModule{data, {}, {}};
}

MOE_EXPORT void mgpuModuleUnload(void *handle) {
  auto *module = static_cast<LazyModule *>(handle);
  if (!module)
    return;
  // At process exit the contexts may be gone already; failures are moot then.
  Driver &d = driver();
  for (auto [context, loaded] : module->loaded)
    if (d.ready && d.cuCtxPushCurrent(context) == kSuccess) {
      d.cuModuleUnload(loaded);
      d.cuCtxPopCurrent(nullptr);
    }
  delete module;
}

MOE_EXPORT void *mgpuModuleGetFunction(void *handle, const char *name) {
  Scope scope("mgpuModuleGetFunction");
  auto *module = static_cast<LazyModule *>(handle);
  if (!scope.ok())
    return nullptr;
  if (!module) {
    fail(kStatusDeviceError, "mgpuModuleGetFunction", "no module");
    return nullptr;
  }
  CUmodule loaded = nullptr;
  {
    std::lock_guard<std::mutex> lock(module->mutex);
    for (auto [context, candidate] : module->loaded)
      if (context == scope.context())
        loaded = candidate;
    if (!loaded) {
      if (!scope.check(driver().cuModuleLoadData(&loaded, module->image)))
        return nullptr;
      module->loaded.emplace_back(scope.context(), loaded);
    }
  }
  CUfunction function = nullptr;
  scope.check(driver().cuModuleGetFunction(&function, loaded, name));
  return function;
}

MOE_EXPORT void moeCudaNextLaunchProgrammatic(void) {
  nextLaunchProgrammatic = true;
}

namespace {

/// Launches through cuLaunchKernelEx with `attributes`, failing as a status
/// where the driver predates it (CUDA 12).
void launchEx(Scope &scope, const char *what, void *function, intptr_t gridX,
              intptr_t gridY, intptr_t gridZ, intptr_t blockX, intptr_t blockY,
              intptr_t blockZ, int32_t smem, void *stream, void **params,
              void **extra, LaunchAttribute *attributes,
              unsigned numAttributes) {
  if (!driver().cuLaunchKernelEx) {
    fail(kStatusDeviceError, what,
         "the driver has no cuLaunchKernelEx (CUDA 12 or later is needed for "
         "clusters and programmatic dependent launch; compile without pdl "
         "for older drivers)");
    return;
  }
  LaunchConfig config{static_cast<unsigned>(gridX),
                      static_cast<unsigned>(gridY),
                      static_cast<unsigned>(gridZ),
                      static_cast<unsigned>(blockX),
                      static_cast<unsigned>(blockY),
                      static_cast<unsigned>(blockZ),
                      static_cast<unsigned>(smem),
                      stream,
                      attributes,
                      numAttributes};
  scope.check(driver().cuLaunchKernelEx(&config, function, params, extra));
}

/// The attribute that lets a launch start before the kernel ahead of it on
/// the stream has finished.
LaunchAttribute programmaticSerialization() {
  LaunchAttribute attribute{};
  attribute.id = kLaunchAttributeProgrammaticStreamSerialization;
  attribute.value.programmaticStreamSerializationAllowed = 1;
  return attribute;
}

} // namespace

MOE_EXPORT void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                 intptr_t gridZ, intptr_t blockX,
                                 intptr_t blockY, intptr_t blockZ, int32_t smem,
                                 void *stream, void **params, void **extra,
                                 size_t /*paramsCount*/) {
  // Taken first, so that a launch that returns early clears it too.
  bool programmatic = std::exchange(nextLaunchProgrammatic, false);
  Scope scope("mgpuLaunchKernel");
  if (!scope.ok())
    return;
  if (gridX <= 0 || gridY <= 0 || gridZ <= 0) // empty grids launch nothing
    return;
  if (!allowSharedMemory(scope, function, smem))
    return;
  if (programmatic) {
    LaunchAttribute attribute = programmaticSerialization();
    launchEx(scope, "mgpuLaunchKernel", function, gridX, gridY, gridZ, blockX,
             blockY, blockZ, smem, stream, params, extra, &attribute, 1);
    return;
  }
  scope.check(driver().cuLaunchKernel(function, gridX, gridY, gridZ, blockX,
                                      blockY, blockZ, smem, stream, params,
                                      extra));
}

MOE_EXPORT void
mgpuLaunchClusterKernel(void *function, intptr_t clusterX, intptr_t clusterY,
                        intptr_t clusterZ, intptr_t gridX, intptr_t gridY,
                        intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                        intptr_t blockZ, int32_t smem, void *stream,
                        void **params, void **extra, size_t /*paramsCount*/) {
  bool programmatic = std::exchange(nextLaunchProgrammatic, false);
  Scope scope("mgpuLaunchClusterKernel");
  if (!scope.ok())
    return;
  if (gridX <= 0 || gridY <= 0 || gridZ <= 0)
    return;
  if (clusterX <= 0 || clusterY <= 0 || clusterZ <= 0 || gridX % clusterX ||
      gridY % clusterY || gridZ % clusterZ) {
    fail(kStatusDeviceError, "mgpuLaunchClusterKernel",
         "the grid is not a whole number of clusters");
    return;
  }
  if (!allowSharedMemory(scope, function, smem))
    return;
  LaunchAttribute attributes[2] = {};
  attributes[0].id = kLaunchAttributeClusterDimension;
  attributes[0].value.clusterDim = {static_cast<unsigned>(clusterX),
                                    static_cast<unsigned>(clusterY),
                                    static_cast<unsigned>(clusterZ)};
  if (programmatic)
    attributes[1] = programmaticSerialization();
  launchEx(scope, "mgpuLaunchClusterKernel", function, gridX, gridY, gridZ,
           blockX, blockY, blockZ, smem, stream, params, extra, attributes,
           programmatic ? 2 : 1);
}
