"""What the GPU tests share: skipping, the driver check, the artifacts' index, and
running without pytest.

The device machine may have no pytest, so each GPU test file also runs as a
script (`python3 test/Integration/GPU/<file>.py`): `run_tests` calls its
`test_*` functions, where a skip is a RuntimeError("skipped: ...").
"""

import ctypes
import json
import pathlib
import sys

try:
    import pytest
except ImportError:  # the device machine may have no pytest
    pytest = None


def has_driver():
    """Whether the NVIDIA driver (libcuda.so.1) loads on this host."""
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def skip(reason):
    if pytest is not None:
        pytest.skip(reason)
    raise RuntimeError(f"skipped: {reason}")


def artifact_index(directory):
    """The GPU artifacts' index.json (built by utils/build-gpu-artifacts.sh), by
    name; skips where torch has no CUDA GPU or the artifacts are missing."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        skip("needs torch with a CUDA GPU")
    index = pathlib.Path(directory) / "index.json"
    if not index.exists():
        skip("needs artifacts/gpu (bash utils/build-gpu-artifacts.sh)")
    return {entry["name"]: entry for entry in json.loads(index.read_text())}


def run_tests(namespace):
    """Runs the test_* functions of a module's namespace; exits non-zero on a failure."""
    global pytest
    pytest = None  # skips become RuntimeError("skipped: ...")
    failures = 0
    for name, test in list(namespace.items()):
        if not (name.startswith("test_") and callable(test)):
            continue
        try:
            test()
            print(f"PASS {name}", flush=True)
        except RuntimeError as error:
            if not str(error).startswith("skipped"):
                failures += 1
                print(f"FAIL {name}: RuntimeError: {error}", flush=True)
            else:
                print(f"SKIP {name}: {error}", flush=True)
        except Exception as error:  # report every failure, then exit non-zero
            failures += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
    sys.exit(1 if failures else 0)
