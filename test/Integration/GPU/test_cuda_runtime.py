"""The project's CUDA runtime (libmoe_cuda_runtime.so) and the sm_90a fatbin
path: on a GPU machine, a kernel compiled here by gpu-lower-to-nvvm-pipeline
runs through the runtime and its result is checked; everywhere, failures come
back as statuses, never as a crash or an exit.

Device run: `bash utils/build-gpu-artifacts.sh` here, then on the GPU machine
`python3 test/Integration/GPU/test_cuda_runtime.py` (pytest is not needed).
"""

import ctypes
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu"))
BUILD_RUNTIME = ROOT / "build" / "lib" / "libmoe_cuda_runtime.so"

from standalone import run_tests, skip  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def has_driver():
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


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
