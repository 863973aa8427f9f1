//===- CUDATensorMaps.cpp - TMA tensor maps -------------------------------===//

#include "moe/Runtime/CUDARuntime.h"

#include "CUDADriver.h"

#include <cstring>
#include <mutex>
#include <vector>

using namespace moe::cuda_runtime;

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
    int64_t swizzle, int64_t l2Promotion, int64_t oobFill, int64_t *boxDims) {
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
      globalStrides[r] =
          static_cast<unsigned long long>(strides[rank - 2 - r] * elementBytes);
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
