//===- CUDAStreams.cpp - Streams, events and memory -----------------------===//

#include "moe/Runtime/CUDARuntime.h"

#include "CUDADriver.h"

using namespace moe::cuda_runtime;

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
