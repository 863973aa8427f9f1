//===- CUDARuntime.h - The project's CUDA runtime for lowered host code -*- C++
//-*-===//
//
// libmoe_cuda_runtime.so implements the host entry points that MLIR's GPU
// lowering (gpu-to-llvm) calls: mgpuModuleLoad, mgpuLaunchKernel and
// mgpuLaunchClusterKernel (thread-block clusters, cuLaunchKernelEx; launches
// past 48 KiB of shared memory ask for it first; programmatic dependent
// launch after moeCudaNextLaunchProgrammatic), streams, events, memory,
// and mgpuTensorMapEncodeTiledMemref (TMA tensor maps, what
// nvgpu.tma.create.descriptor lowers to; each is allocated in device memory
// and kept, so create them outside loops and graph captures). It is written
// on the CUDA driver API and loads libcuda.so.1 with dlopen on first use, so
// hosts without a GPU still start.
// Kernels run in the thread's current context (the primary context of the
// default device when there is none); an embedded GPU binary is loaded once
// per context, on its first launch there, under a lock.
//
// The lowered code calls these entry points without checking results, so
// every failure is recorded as a status instead of printed or fatal: the
// first failure on a thread sticks until moeCudaTakeStatus() reads and clears
// it, and an entry point that follows a failure does nothing.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CUDARUNTIME_H
#define MOE_RUNTIME_CUDARUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// MOE_STATUS_* of moe_runtime.h: 0 for success, MOE_STATUS_DEVICE_ERROR when
/// the driver failed or is missing, MOE_STATUS_OUT_OF_MEMORY for allocations.
int moeCudaTakeStatus(void);

/// The message of the last failure on this thread ("" when none); reading
/// the status does not clear it.
const char *moeCudaLastMessage(void);

/// Whether the driver can address `pointer` from a kernel: device, managed
/// or registered host memory (1), or memory it has never seen (0). Without a
/// driver it answers 1 and leaves the error to the launch.
int moeCudaIsDevicePointer(const void *pointer);

/// Until moeCudaClearStream(), lowered code on this thread enqueues its
/// launches on `stream` (a CUstream; null is the legacy default stream) and
/// returns without synchronizing. Without it, each launch runs on a stream
/// of its own and is waited for.
void moeCudaSetStream(void *stream);
void moeCudaClearStream(void);

/// Makes this thread's next kernel launch (mgpuLaunchKernel or
/// mgpuLaunchClusterKernel) a programmatic dependent launch: through
/// cuLaunchKernelEx with programmatic stream serialization, so the kernel
/// may start while the one ahead of it on the stream still runs, and must
/// wait for it with griddepcontrol.wait (sm_90). Lowered code calls it
/// before each launch marked moe.programmatic_launch. A driver without
/// cuLaunchKernelEx makes that launch fail as a status.
void moeCudaNextLaunchProgrammatic(void);

#ifdef __cplusplus
}
#endif

#endif // MOE_RUNTIME_CUDARUNTIME_H
