//===- CUDARuntime.cpp - The project's CUDA runtime for lowered host code -===//
//
// Only libc and the dlopen'd driver: no CUDA toolkit header, no LLVM, no MLIR.
// The few driver types are opaque handles; the entry points are looked up by
// name once, under std::call_once.
//
// Calls run in the caller's current context (the one torch or the CUDA
// runtime made current), or in the primary context of the default device when
// the thread has none. A module image is loaded lazily, once per context that
// launches from it, under a lock: the global constructor of lowered code only
// registers the image, so loading a library needs no driver and no device.
//
// This file loads the driver and answers the status and device entry points;
// the others are by concern: CUDAModules.cpp (kernel images and launches),
// CUDATensorMaps.cpp (TMA tensor maps), CUDAStreams.cpp (streams, events,
// memory), all on CUDADriver.h.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CUDARuntime.h"

#include "CUDADriver.h"

#include <dlfcn.h>

#include <cstdio>
#include <mutex>

using namespace moe::cuda_runtime;

namespace moe::cuda_runtime {
thread_local int threadStatus = 0;
thread_local char threadMessage[320] = "";
thread_local int defaultDevice = 0;
thread_local bool useCallerStream = false;
thread_local void *callerStream = nullptr;
thread_local bool nextLaunchProgrammatic = false;
} // namespace moe::cuda_runtime

void moe::cuda_runtime::fail(int status, const char *what, const char *detail) {
  if (threadStatus != 0)
    return; // the first failure is the one worth reporting
  threadStatus = status;
  std::snprintf(threadMessage, sizeof(threadMessage), "%s: %s", what, detail);
}

namespace {

template <typename Fn> bool resolve(void *library, const char *name, Fn &fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  return fn != nullptr;
}

} // namespace

Driver &moe::cuda_runtime::driver() {
  static Driver d;
  static std::once_flag once;
  std::call_once(once, [] {
    void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      std::snprintf(d.failure, sizeof(d.failure),
                    "cannot load libcuda.so.1 (no NVIDIA driver)");
      return;
    }
    // Versioned names first: the unversioned ones are the legacy ABI.
    bool ok =
        resolve(library, "cuInit", d.cuInit) &&
        resolve(library, "cuDeviceGet", d.cuDeviceGet) &&
        resolve(library, "cuDevicePrimaryCtxRetain",
                d.cuDevicePrimaryCtxRetain) &&
        resolve(library, "cuCtxPushCurrent_v2", d.cuCtxPushCurrent) &&
        resolve(library, "cuCtxPopCurrent_v2", d.cuCtxPopCurrent) &&
        resolve(library, "cuCtxGetCurrent", d.cuCtxGetCurrent) &&
        resolve(library, "cuModuleLoadData", d.cuModuleLoadData) &&
        resolve(library, "cuModuleUnload", d.cuModuleUnload) &&
        resolve(library, "cuModuleGetFunction", d.cuModuleGetFunction) &&
        resolve(library, "cuLaunchKernel", d.cuLaunchKernel) &&
        resolve(library, "cuStreamCreate", d.cuStreamCreate) &&
        resolve(library, "cuStreamDestroy_v2", d.cuStreamDestroy) &&
        resolve(library, "cuStreamSynchronize", d.cuStreamSynchronize) &&
        resolve(library, "cuStreamWaitEvent", d.cuStreamWaitEvent) &&
        resolve(library, "cuEventCreate", d.cuEventCreate) &&
        resolve(library, "cuEventDestroy_v2", d.cuEventDestroy) &&
        resolve(library, "cuEventSynchronize", d.cuEventSynchronize) &&
        resolve(library, "cuEventRecord", d.cuEventRecord) &&
        resolve(library, "cuMemAlloc_v2", d.cuMemAlloc) &&
        resolve(library, "cuMemAllocManaged", d.cuMemAllocManaged) &&
        resolve(library, "cuMemFree_v2", d.cuMemFree) &&
        resolve(library, "cuMemcpyAsync", d.cuMemcpyAsync) &&
        resolve(library, "cuMemsetD32Async", d.cuMemsetD32Async) &&
        resolve(library, "cuMemsetD16Async", d.cuMemsetD16Async) &&
        resolve(library, "cuGetErrorString", d.cuGetErrorString) &&
        resolve(library, "cuPointerGetAttribute", d.cuPointerGetAttribute) &&
        resolve(library, "cuFuncSetAttribute", d.cuFuncSetAttribute) &&
        resolve(library, "cuMemcpyHtoD_v2", d.cuMemcpyHtoD);
    if (!ok) {
      std::snprintf(d.failure, sizeof(d.failure),
                    "libcuda.so.1 lacks a driver entry point: %s", dlerror());
      return;
    }
    resolve(library, "cuLaunchKernelEx", d.cuLaunchKernelEx);
    resolve(library, "cuTensorMapEncodeTiled", d.cuTensorMapEncodeTiled);
    CUdevice device = 0;
    if (d.cuInit(0) != kSuccess ||
        d.cuDeviceGet(&device, defaultDevice) != kSuccess ||
        d.cuDevicePrimaryCtxRetain(&d.context, device) != kSuccess) {
      std::snprintf(d.failure, sizeof(d.failure),
                    "cannot initialize CUDA device %d", defaultDevice);
      return;
    }
    d.ready = true;
  });
  return d;
}

bool moe::cuda_runtime::allowSharedMemory(Scope &scope, void *function,
                                          int32_t smem) {
  if (smem <= kStaticSharedLimit)
    return true;
  return scope.check(driver().cuFuncSetAttribute(
      function, kFuncAttributeMaxDynamicSharedBytes, smem));
}

MOE_EXPORT int moeCudaTakeStatus(void) {
  int status = threadStatus;
  // The message stays: it describes the failure just taken until the next.
  threadStatus = 0;
  return status;
}

MOE_EXPORT const char *moeCudaLastMessage(void) { return threadMessage; }

MOE_EXPORT int moeCudaIsDevicePointer(const void *pointer) {
  Driver &d = driver();
  if (!d.ready)
    return 1; // the launch reports the missing driver
  unsigned memoryType = 0;
  // The driver knows device, managed and registered host memory; it answers
  // "invalid value" for memory it has never seen.
  return d.cuPointerGetAttribute(&memoryType, kPointerAttributeMemoryType,
                                 reinterpret_cast<CUdeviceptr>(pointer)) !=
         kInvalidValue;
}

MOE_EXPORT void mgpuSetDefaultDevice(int32_t device) { defaultDevice = device; }
