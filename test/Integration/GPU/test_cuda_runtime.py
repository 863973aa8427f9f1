"""The project's CUDA runtime (libmoe_cuda_runtime.so) and the sm_90a fatbin
path: on a GPU machine, kernels compiled here by gpu-lower-to-nvvm-pipeline
run through the runtime and their results are checked (a plain launch, a
cluster launch, and a TMA copy through a tensor map the runtime encodes);
everywhere, failures come back as statuses, never as a crash or an exit.

Device run: `bash utils/build-gpu-artifacts.sh` here, then on the GPU machine
`python3 test/Integration/GPU/test_cuda_runtime.py` (pytest is not needed).
"""

import ctypes
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu"))
BUILD_RUNTIME = ROOT / "build" / "lib" / "libmoe_cuda_runtime.so"

from standalone import has_driver, run_tests, skip  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def gpu_ready():
    return torch is not None and torch.cuda.is_available() and \
        (ARTIFACTS / "libvector_add.so").exists()


def runtime(path):
    lib = ctypes.CDLL(str(path))
    lib.moeCudaTakeStatus.restype = ctypes.c_int
    lib.moeCudaLastMessage.restype = ctypes.c_char_p
    lib.mgpuStreamCreate.restype = ctypes.c_void_p
    lib.mgpuModuleGetFunction.restype = ctypes.c_void_p
    lib.mgpuModuleGetFunction.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


class MemRef1D(ctypes.Structure):
    _fields_ = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * 1),
                ("strides", ctypes.c_int64 * 1)]


class MemRef2D(ctypes.Structure):
    _fields_ = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * 2),
                ("strides", ctypes.c_int64 * 2)]


def descriptor2d(tensor):
    d = MemRef2D()
    d.allocated = d.aligned = tensor.data_ptr()
    d.offset = 0
    for i in range(2):
        d.sizes[i] = tensor.shape[i]
        d.strides[i] = tensor.stride(i)
    return d


def descriptor(tensor):
    d = MemRef1D()
    d.allocated = d.aligned = tensor.data_ptr()
    d.offset = 0
    d.sizes[0] = tensor.numel()
    d.strides[0] = 1
    return d


def test_runtime_without_driver_reports_status():
    if has_driver():
        skip("a driver is present; this checks hosts without one")
    if not BUILD_RUNTIME.exists():
        skip("libmoe_cuda_runtime.so is not built")
    lib = runtime(BUILD_RUNTIME)
    assert lib.mgpuStreamCreate() is None
    assert lib.moeCudaTakeStatus() == 6  # MOE_STATUS_DEVICE_ERROR
    # The status is cleared by the read; the next failure reports again.
    assert lib.moeCudaTakeStatus() == 0
    assert lib.mgpuStreamCreate() is None
    assert b"libcuda.so.1" in lib.moeCudaLastMessage()


def test_tensor_map_without_driver_reports_status():
    if has_driver():
        skip("a driver is present; this checks hosts without one")
    if not BUILD_RUNTIME.exists():
        skip("libmoe_cuda_runtime.so is not built")
    lib = runtime(BUILD_RUNTIME)
    lib.mgpuTensorMapEncodeTiledMemref.restype = ctypes.c_void_p
    box = (ctypes.c_int64 * 2)(64, 8)
    assert lib.mgpuTensorMapEncodeTiledMemref(
        ctypes.c_int64(2), None, ctypes.c_int64(7), ctypes.c_int64(0), ctypes.c_int64(0),
        ctypes.c_int64(0), ctypes.c_int64(0), box) is None
    assert lib.moeCudaTakeStatus() == 6


def test_cluster_launch_on_gpu():
    if not gpu_ready() or not (ARTIFACTS / "libcluster_ids.so").exists():
        skip("needs a CUDA GPU, torch and artifacts/gpu")
    if torch.cuda.get_device_capability() < (9, 0):
        skip("clusters need sm_90")
    lib = runtime(ARTIFACTS / "libmoe_cuda_runtime.so")
    kernel = ctypes.CDLL(str(ARTIFACTS / "libcluster_ids.so"))
    out = torch.full((16, 4), -1, dtype=torch.int32, device="cuda")
    d = descriptor2d(out)
    kernel._mlir_ciface_cluster_ids(ctypes.byref(d))
    torch.cuda.synchronize()
    assert lib.moeCudaTakeStatus() == 0, lib.moeCudaLastMessage()
    blocks = torch.arange(16)
    want = torch.stack([(blocks % 4) // 2, (blocks // 4) // 2,
                        torch.full((16,), 2), torch.full((16,), 2)], dim=1)
    assert torch.equal(out.cpu(), want.to(torch.int32)), out


def test_tensor_map_copy_on_gpu():
    if not gpu_ready() or not (ARTIFACTS / "libtma_copy.so").exists():
        skip("needs a CUDA GPU, torch and artifacts/gpu")
    if torch.cuda.get_device_capability() < (9, 0):
        skip("TMA needs sm_90")
    lib = runtime(ARTIFACTS / "libmoe_cuda_runtime.so")
    kernel = ctypes.CDLL(str(ARTIFACTS / "libtma_copy.so"))
    x = torch.randn(64, 8, device="cuda")
    y = torch.full_like(x, float("nan"))
    dx, dy = descriptor2d(x), descriptor2d(y)
    kernel._mlir_ciface_tma_copy(ctypes.byref(dx), ctypes.byref(dy))
    torch.cuda.synchronize()
    assert lib.moeCudaTakeStatus() == 0, lib.moeCudaLastMessage()
    assert torch.equal(x, y)


def test_vector_add_on_gpu():
    if not gpu_ready():
        skip("needs a CUDA GPU, torch and artifacts/gpu (utils/build-gpu-artifacts.sh)")
    lib = runtime(ARTIFACTS / "libmoe_cuda_runtime.so")
    kernel = ctypes.CDLL(str(ARTIFACTS / "libvector_add.so"))
    for n in (1, 127, 128, 1000, 1 << 20):
        a = torch.randn(n, device="cuda")
        b = torch.randn(n, device="cuda")
        want = a + b
        da, db = descriptor(a), descriptor(b)
        kernel._mlir_ciface_vector_add(ctypes.byref(da), ctypes.byref(db))
        torch.cuda.synchronize()
        assert lib.moeCudaTakeStatus() == 0, lib.moeCudaLastMessage()
        assert torch.equal(b, want), f"n={n}"


def test_driver_errors_are_statuses_on_gpu():
    if not gpu_ready():
        skip("needs a CUDA GPU, torch and artifacts/gpu")
    lib = runtime(ARTIFACTS / "libmoe_cuda_runtime.so")
    assert lib.mgpuModuleGetFunction(None, b"missing") is None
    assert lib.moeCudaTakeStatus() == 6
    assert lib.moeCudaTakeStatus() == 0


if __name__ == "__main__":
    run_tests(globals())
