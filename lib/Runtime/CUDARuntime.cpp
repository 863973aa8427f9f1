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
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CUDARuntime.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

namespace {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = void *;
using CUmodule = void *;
using CUfunction = void *;
using CUstream = void *;
using CUevent = void *;

constexpr CUresult kSuccess = 0;
constexpr CUresult kInvalidValue = 1;
constexpr CUresult kOutOfMemory = 2;
constexpr int kPointerAttributeMemoryType = 2;
constexpr int kFuncAttributeMaxDynamicSharedBytes = 8;
constexpr int kLaunchAttributeClusterDimension = 4;
constexpr int kStaticSharedLimit = 48 * 1024;
constexpr unsigned kStreamNonBlocking = 1;
constexpr unsigned kEventDisableTiming = 2;
constexpr int kStatusDeviceError = 6;
constexpr int kStatusOutOfMemory = 7;

/// cuda.h's launch configuration for cuLaunchKernelEx, with the one
/// attribute the runtime sets (the cluster shape), laid out as in CUDA 12.
struct LaunchAttribute {
  int id;
  char pad[4];
  union {
    char bytes[64];
    struct {
      unsigned x, y, z;
    } clusterDim;
  } value;
};
static_assert(sizeof(LaunchAttribute) == 72, "CUlaunchAttribute layout");
struct LaunchConfig {
  unsigned gridDimX, gridDimY, gridDimZ;
  unsigned blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  CUstream stream;
  LaunchAttribute *attrs;
  unsigned numAttrs;
};

/// cuda.h's CUtensorMap: 128 opaque bytes, 64-byte aligned.
struct alignas(64) TensorMap {
  unsigned long long opaque[16];
};

/// The driver entry points the runtime uses, resolved from libcuda.so.1.
struct Driver {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxPushCurrent)(CUcontext);
  CUresult (*cuCtxPopCurrent)(CUcontext *);
  CUresult (*cuCtxGetCurrent)(CUcontext *);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **);
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuStreamWaitEvent)(CUstream, CUevent, unsigned);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemAllocManaged)(CUdeviceptr *, size_t, unsigned);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned, size_t, CUstream);
  CUresult (*cuMemsetD16Async)(CUdeviceptr, unsigned short, size_t, CUstream);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  CUresult (*cuPointerGetAttribute)(void *, int, CUdeviceptr);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  // CUDA 12 drivers; null on older ones (the calls then fail as statuses).
  CUresult (*cuLaunchKernelEx)(const LaunchConfig *, CUfunction, void **,
                               void **) = nullptr;
  CUresult (*cuTensorMapEncodeTiled)(TensorMap *, int, unsigned, void *,
                                     const unsigned long long *,
                                     const unsigned long long *,
                                     const unsigned *, const unsigned *, int,
                                     int, int, int) = nullptr;
  CUcontext context = nullptr;
  bool ready = false;
  char failure[256] = "";
};

thread_local int threadStatus = 0;
thread_local char threadMessage[320] = "";
thread_local int defaultDevice = 0;
// While set, lowered code runs on the caller's stream: its "create" hands out
// that stream and its synchronize/destroy leave it alone, so a call only
// enqueues work (and can be captured in a CUDA graph).
thread_local bool useCallerStream = false;
thread_local void *callerStream = nullptr;

void fail(int status, const char *what, const char *detail) {
  if (threadStatus != 0)
    return; // the first failure is the one worth reporting
  threadStatus = status;
  std::snprintf(threadMessage, sizeof(threadMessage), "%s: %s", what, detail);
}

template <typename Fn> bool resolve(void *library, const char *name, Fn &fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  return fn != nullptr;
}

/// The driver, loaded and initialized once per process; `ready` is false
/// (with the reason in `failure`) when there is none.
Driver &driver() {
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
    bool ok = resolve(library, "cuInit", d.cuInit) &&
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
              resolve(library, "cuPointerGetAttribute",
                      d.cuPointerGetAttribute) &&
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

/// Gives one entry point a current context: the caller's, or else the
/// primary context of the default device, pushed for the call's duration.
/// `ok` is false when the driver is missing or an earlier call on this thread
/// failed.
class Scope {
public:
  explicit Scope(const char *what) : d(driver()), what(what) {
    if (threadStatus != 0)
      return;
    if (!d.ready) {
      fail(kStatusDeviceError, what, d.failure);
      return;
    }
    if (d.cuCtxGetCurrent(&current) != kSuccess)
      current = nullptr;
    if (!current) {
      if (d.cuCtxPushCurrent(d.context) != kSuccess) {
        fail(kStatusDeviceError, what, "cannot make the context current");
        return;
      }
      current = d.context;
      pushed = true;
    }
    entered = true;
  }
  ~Scope() {
    if (pushed)
      d.cuCtxPopCurrent(nullptr);
  }
  bool ok() const { return entered && threadStatus == 0; }
  CUcontext context() const { return current; }

  /// Records a failed driver call; returns whether it succeeded.
  bool check(CUresult result) {
    if (result == kSuccess)
      return true;
    const char *message = "unknown error";
    d.cuGetErrorString(result, &message);
    fail(result == kOutOfMemory ? kStatusOutOfMemory : kStatusDeviceError,
         what, message ? message : "unknown error");
    return false;
  }

private:
  Driver &d;
  const char *what;
  CUcontext current = nullptr;
  bool pushed = false;
  bool entered = false;
};

/// A GPU binary embedded in lowered code, and its modules, one per context
/// it has been launched in.
struct LazyModule {
  const void *image;
  std::mutex mutex;
  std::vector<std::pair<CUcontext, CUmodule>> loaded;
};

/// Lets `function` take `smem` bytes of dynamic shared memory beyond the
/// 48 KiB a launch gets without asking.
bool allowSharedMemory(Scope &scope, void *function, int32_t smem) {
  if (smem <= kStaticSharedLimit)
    return true;
  return scope.check(driver().cuFuncSetAttribute(
      function, kFuncAttributeMaxDynamicSharedBytes, smem));
}

} // namespace

#define MOE_EXPORT extern "C" __attribute__((visibility("default")))

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

MOE_EXPORT void mgpuSetDefaultDevice(int32_t device) {
  defaultDevice = device;
}

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

MOE_EXPORT void mgpuLaunchKernel(void *function, intptr_t gridX,
                                 intptr_t gridY, intptr_t gridZ,
                                 intptr_t blockX, intptr_t blockY,
                                 intptr_t blockZ, int32_t smem, void *stream,
                                 void **params, void **extra,
                                 size_t /*paramsCount*/) {
  Scope scope("mgpuLaunchKernel");
  if (!scope.ok())
    return;
  if (gridX <= 0 || gridY <= 0 || gridZ <= 0) // empty grids launch nothing
    return;
  if (!allowSharedMemory(scope, function, smem))
    return;
  scope.check(driver().cuLaunchKernel(function, gridX, gridY, gridZ, blockX,
                                      blockY, blockZ, smem, stream, params,
                                      extra));
}

MOE_EXPORT void mgpuLaunchClusterKernel(
    void *function, intptr_t clusterX, intptr_t clusterY, intptr_t clusterZ,
    intptr_t gridX, intptr_t gridY, intptr_t gridZ, intptr_t blockX,
    intptr_t blockY, intptr_t blockZ, int32_t smem, void *stream,
    void **params, void **extra, size_t /*paramsCount*/) {
  Scope scope("mgpuLaunchClusterKernel");
  if (!scope.ok())
    return;
  if (gridX <= 0 || gridY <= 0 || gridZ <= 0)
    return;
  if (!driver().cuLaunchKernelEx) {
    fail(kStatusDeviceError, "mgpuLaunchClusterKernel",
         "the driver has no cuLaunchKernelEx (CUDA 12 or later needed)");
    return;
  }
  if (clusterX <= 0 || clusterY <= 0 || clusterZ <= 0 ||
      gridX % clusterX || gridY % clusterY || gridZ % clusterZ) {
    fail(kStatusDeviceError, "mgpuLaunchClusterKernel",
         "the grid is not a whole number of clusters");
    return;
  }
  if (!allowSharedMemory(scope, function, smem))
    return;
  LaunchAttribute cluster{};
  cluster.id = kLaunchAttributeClusterDimension;
  cluster.value.clusterDim = {static_cast<unsigned>(clusterX),
                              static_cast<unsigned>(clusterY),
                              static_cast<unsigned>(clusterZ)};
  LaunchConfig config{static_cast<unsigned>(gridX),
                      static_cast<unsigned>(gridY),
                      static_cast<unsigned>(gridZ),
                      static_cast<unsigned>(blockX),
                      static_cast<unsigned>(blockY),
                      static_cast<unsigned>(blockZ),
                      static_cast<unsigned>(smem),
                      stream,
                      &cluster,
                      1};
  scope.check(driver().cuLaunchKernelEx(&config, function, params, extra));
}

/// The element size of each CUtensorMapDataType, in bytes.
static int tensorMapElementBytes(int64_t type) {
  static const int bytes[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4};
  return type >= 0 && type < 13 ? bytes[type] : 0;
}

namespace {

/// Tensor maps already in device memory, by context and encoded bytes:
/// lowered code encodes its maps on every call, and the same tensor gives the
/// same map, which is then neither allocated nor copied again (so a call
/// after the first one can be captured in a CUDA graph). Bounded: past
/// `kCapacity` maps, new ones are allocated per call and never freed.
class TensorMapCache {
public:
  static constexpr size_t kCapacity = 4096;

  CUdeviceptr find(CUcontext context, const TensorMap &map) {
    std::lock_guard<std::mutex> lock(mutex);
    for (const Entry &entry : entries)
      if (entry.context == context &&
          std::memcmp(entry.map.opaque, map.opaque, sizeof(map.opaque)) == 0)
        return entry.device;
    return 0;
  }

  void insert(CUcontext context, const TensorMap &map, CUdeviceptr device) {
    std::lock_guard<std::mutex> lock(mutex);
    if (entries.size() < kCapacity)
      entries.push_back({context, map, device});
  }

private:
  struct Entry {
    CUcontext context;
    TensorMap map;
    CUdeviceptr device;
  };
  std::mutex mutex;
  std::vector<Entry> entries;
};

TensorMapCache &tensorMaps() {
  static TensorMapCache cache;
  return cache;
}

} // namespace

/// Encodes a TMA tensor map for a ranked memref descriptor (what
/// nvgpu.tma.create.descriptor lowers to) and returns the address of a copy
/// in device memory, made on the first request for that map in the current
/// context and reused after (TensorMapCache).
MOE_EXPORT void *mgpuTensorMapEncodeTiledMemref(
    int64_t rank, void *rankedDescriptor, int64_t dataType, int64_t interleave,
    int64_t swizzle, int64_t l2Promotion, int64_t oobFill,
    int64_t *boxDims) {
  Scope scope("mgpuTensorMapEncodeTiledMemref");
  if (!scope.ok())
    return nullptr;
  int elementBytes = tensorMapElementBytes(dataType);
  if (rank < 1 || rank > 5 || !rankedDescriptor || !boxDims ||
      elementBytes == 0) {
    fail(kStatusDeviceError, "mgpuTensorMapEncodeTiledMemref",
         "rank must be 1 to 5, with a known element type");
    return nullptr;
  }
  if (!driver().cuTensorMapEncodeTiled) {
    fail(kStatusDeviceError, "mgpuTensorMapEncodeTiledMemref",
         "the driver has no cuTensorMapEncodeTiled (CUDA 12 or later needed)");
    return nullptr;
  }
  // {allocated, aligned, offset, sizes[rank], strides[rank]}, outermost
  // dimension first; the tensor map wants the innermost first.
  auto *fields = static_cast<int64_t *>(rankedDescriptor);
  char *aligned = reinterpret_cast<char *>(fields[1]);
  int64_t offset = fields[2];
  const int64_t *sizes = fields + 3;
  const int64_t *strides = fields + 3 + rank;
  unsigned long long globalDim[5] = {1, 1, 1, 1, 1};
  unsigned long long globalStrides[5] = {0, 0, 0, 0, 0};
  unsigned boxDim[5] = {1, 1, 1, 1, 1}, elementStrides[5] = {1, 1, 1, 1, 1};
  for (int64_t r = 0; r < rank; ++r) {
    globalDim[r] = static_cast<unsigned long long>(sizes[rank - 1 - r]);
    boxDim[r] = static_cast<unsigned>(boxDims[rank - 1 - r]);
    if (r + 1 < rank)
      globalStrides[r] = static_cast<unsigned long long>(
          strides[rank - 2 - r] * elementBytes);
  }
  TensorMap map;
  if (!scope.check(driver().cuTensorMapEncodeTiled(
          &map, static_cast<int>(dataType), static_cast<unsigned>(rank),
          aligned + offset * elementBytes, globalDim, globalStrides, boxDim,
          elementStrides, static_cast<int>(interleave),
          static_cast<int>(swizzle), static_cast<int>(l2Promotion),
          static_cast<int>(oobFill))))
    return nullptr;
  if (CUdeviceptr cached = tensorMaps().find(scope.context(), map))
    return reinterpret_cast<void *>(cached);
  CUdeviceptr device = 0;
  if (!scope.check(driver().cuMemAlloc(&device, sizeof(map))))
    return nullptr;
  if (!scope.check(driver().cuMemcpyHtoD(device, &map, sizeof(map)))) {
    driver().cuMemFree(device);
    return nullptr;
  }
  tensorMaps().insert(scope.context(), map, device);
  return reinterpret_cast<void *>(device);
}

MOE_EXPORT void moeCudaSetStream(void *stream) {
  useCallerStream = true;
  callerStream = stream;
}

MOE_EXPORT void moeCudaClearStream(void) {
  useCallerStream = false;
  callerStream = nullptr;
}

MOE_EXPORT void *mgpuStreamCreate(void) {
  if (useCallerStream)
    return callerStream;
  Scope scope("mgpuStreamCreate");
  CUstream stream = nullptr;
  if (scope.ok())
    scope.check(driver().cuStreamCreate(&stream, kStreamNonBlocking));
  return stream;
}

MOE_EXPORT void mgpuStreamDestroy(void *stream) {
  if (useCallerStream && stream == callerStream)
    return;
  Scope scope("mgpuStreamDestroy");
  if (scope.ok() && stream)
    scope.check(driver().cuStreamDestroy(stream));
}

MOE_EXPORT void mgpuStreamSynchronize(void *stream) {
  if (useCallerStream && stream == callerStream)
    return;
  Scope scope("mgpuStreamSynchronize");
  if (scope.ok())
    scope.check(driver().cuStreamSynchronize(stream));
}

MOE_EXPORT void mgpuStreamWaitEvent(void *stream, void *event) {
  Scope scope("mgpuStreamWaitEvent");
  if (scope.ok())
    scope.check(driver().cuStreamWaitEvent(stream, event, 0));
}

MOE_EXPORT void *mgpuEventCreate(void) {
  Scope scope("mgpuEventCreate");
  CUevent event = nullptr;
  if (scope.ok())
    scope.check(driver().cuEventCreate(&event, kEventDisableTiming));
  return event;
}

MOE_EXPORT void mgpuEventDestroy(void *event) {
  Scope scope("mgpuEventDestroy");
  if (scope.ok() && event)
    scope.check(driver().cuEventDestroy(event));
}

MOE_EXPORT void mgpuEventSynchronize(void *event) {
  Scope scope("mgpuEventSynchronize");
  if (scope.ok())
    scope.check(driver().cuEventSynchronize(event));
}

MOE_EXPORT void mgpuEventRecord(void *event, void *stream) {
  Scope scope("mgpuEventRecord");
  if (scope.ok())
    scope.check(driver().cuEventRecord(event, stream));
}

MOE_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void * /*stream*/,
                              bool isHostShared) {
  Scope scope("mgpuMemAlloc");
  CUdeviceptr pointer = 0;
  if (!scope.ok() || sizeBytes == 0)
    return nullptr;
  if (isHostShared)
    scope.check(driver().cuMemAllocManaged(&pointer, sizeBytes, /*global=*/1));
  else
    scope.check(driver().cuMemAlloc(&pointer, sizeBytes));
  return reinterpret_cast<void *>(pointer);
}

MOE_EXPORT void mgpuMemFree(void *pointer, void * /*stream*/) {
  Scope scope("mgpuMemFree");
  if (scope.ok() && pointer)
    scope.check(driver().cuMemFree(reinterpret_cast<CUdeviceptr>(pointer)));
}

MOE_EXPORT void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                           void *stream) {
  Scope scope("mgpuMemcpy");
  if (scope.ok())
    scope.check(driver().cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                                       reinterpret_cast<CUdeviceptr>(src),
                                       sizeBytes, stream));
}

MOE_EXPORT void mgpuMemset32(void *dst, unsigned value, size_t count,
                             void *stream) {
  Scope scope("mgpuMemset32");
  if (scope.ok())
    scope.check(driver().cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst),
                                          value, count, stream));
}

MOE_EXPORT void mgpuMemset16(void *dst, unsigned short value, size_t count,
                             void *stream) {
  Scope scope("mgpuMemset16");
  if (scope.ok())
    scope.check(driver().cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst),
                                          value, count, stream));
}
