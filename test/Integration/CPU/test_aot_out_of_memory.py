"""A CPU artifact whose temporaries cannot be allocated returns MOE_STATUS_OUT_OF_MEMORY
(and frees what it held) instead of writing through a NULL pointer; the next call with
memory to spare succeeds.

The call runs in a child process whose address space is capped (RLIMIT_AS) just above
what it already maps, after a first call with one token has started the OpenMP threads.
"""

import subprocess
import sys

import pytest

from moe_mlir import cpu

H, E, I, K = 64, 8, 32, 2
# The call's temporaries for this many tokens (the permuted rows, both projections)
# are several hundred MiB, far above the 64 MiB the child keeps free.
TOKENS = 1 << 18

CHILD = r"""
import ctypes, resource, sys
import numpy as np

path, T, H, E, I = sys.argv[1], *map(int, sys.argv[2:6])
forward = ctypes.CDLL(path).moe_oom_forward
forward.restype = ctypes.c_int
forward.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int64, ctypes.c_void_p,
                                            ctypes.c_size_t, ctypes.c_void_p]
rng = np.random.default_rng(0)
x = rng.standard_normal((T, H)).astype(np.float32)
router = rng.standard_normal((E, H)).astype(np.float32)
w13 = (rng.standard_normal((E, 2 * I, H)) * 0.1).astype(np.float32)
w2 = (rng.standard_normal((E, H, I)) * 0.1).astype(np.float32)
y = np.zeros((T, H), np.float32)
tensors = [a.ctypes.data for a in (x, router, w13, w2, y)]


def mapped():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024


print("one token", forward(*tensors, 1, None, 0, None), flush=True)
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (mapped() + (64 << 20), hard))
print("capped", forward(*tensors, T, None, 0, None), flush=True)
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
print("uncapped", forward(*tensors, T, None, 0, None), flush=True)
print("finite", bool(np.isfinite(y).all()), flush=True)
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    tool = cpu.build_dir() / "bin" / "moe-compile"
    if not tool.exists():
        pytest.skip("moe-compile is not built")
    out = tmp_path_factory.mktemp("oom")
    subprocess.run([str(tool), f"--layer=hidden={H},intermediate={I},experts={E},k={K}",
                    "--name=oom", "-o", str(out)], check=True)
    return out / "libmoe_oom.so"


def test_out_of_memory_status(library):
    # MOE_STATUS_OUT_OF_MEMORY in moe/Runtime/moe_runtime.h.
    assert "MOE_STATUS_OUT_OF_MEMORY = 7" in (library.parent / "moe_oom.h").read_text()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(library), str(TOKENS), str(H), str(E), str(I)],
        capture_output=True, text=True, timeout=300,
        env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert child.returncode == 0, (
        f"the child died (exit {child.returncode}): {child.stdout}{child.stderr}")
    assert child.stdout.splitlines() == [
        "one token 0", "capped 7", "uncapped 0", "finite True"], child.stdout
