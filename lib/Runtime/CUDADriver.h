//===- CUDADriver.h - The driver API the CUDA runtime is written on -*- C++
//-*-===//
//
// What the runtime's entry points (CUDARuntime.cpp, CUDAModules.cpp,
// CUDATensorMaps.cpp, CUDAStreams.cpp) share: the few driver types as opaque
// handles, the entry points looked up in the dlopen'd libcuda.so.1 (driver()),
// the thread's sticky status (fail()), and the context a call runs in
// (Scope). Internal to the runtime: nothing here is exported.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_RUNTIME_CUDADRIVER_H
#define MOE_LIB_RUNTIME_CUDADRIVER_H

#include <cstddef>
#include <cstdint>

#define MOE_EXPORT extern "C" __attribute__((visibility("default")))

namespace moe::cuda_runtime {

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
constexpr int kLaunchAttributeProgrammaticStreamSerialization = 6;
constexpr int kStaticSharedLimit = 48 * 1024;
constexpr unsigned kStreamNonBlocking = 1;
constexpr unsigned kEventDisableTiming = 2;
constexpr int kStatusDeviceError = 6;
constexpr int kStatusOutOfMemory = 7;

/// cuda.h's launch configuration for cuLaunchKernelEx, with the
/// attributes the runtime sets (the cluster shape, programmatic stream
/// serialization), laid out as in CUDA 12.
struct LaunchAttribute {
  int id;
  char pad[4];
  union {
    char bytes[64];
    struct {
      unsigned x, y, z;
    } clusterDim;
    int programmaticStreamSerializationAllowed;
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
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **);
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

extern thread_local int threadStatus;
extern thread_local char threadMessage[320];
extern thread_local int defaultDevice;
// While set, lowered code runs on the caller's stream: its "create" hands out
// that stream and its synchronize/destroy leave it alone, so a call only
// enqueues work (and can be captured in a CUDA graph).
extern thread_local bool useCallerStream;
extern thread_local void *callerStream;
// Set by moeCudaNextLaunchProgrammatic(): the thread's next launch may start
// before the kernel ahead of it on the stream has finished (the kernel waits
// for it with griddepcontrol.wait). Every launch takes and clears it.
extern thread_local bool nextLaunchProgrammatic;

/// Records the thread's first failure (a later one is dropped until
/// moeCudaTakeStatus() clears it) with `what` failed and why.
void fail(int status, const char *what, const char *detail);

/// The driver, loaded and initialized once per process; `ready` is false
/// (with the reason in `failure`) when there is none.
Driver &driver();

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
    fail(result == kOutOfMemory ? kStatusOutOfMemory : kStatusDeviceError, what,
         message ? message : "unknown error");
    return false;
  }

private:
  Driver &d;
  const char *what;
  CUcontext current = nullptr;
  bool pushed = false;
  bool entered = false;
};

/// Lets `function` take `smem` bytes of dynamic shared memory beyond the
/// 48 KiB a launch gets without asking.
bool allowSharedMemory(Scope &scope, void *function, int32_t smem);

} // namespace moe::cuda_runtime

#endif // MOE_LIB_RUNTIME_CUDADRIVER_H
