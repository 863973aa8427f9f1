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


def run_tests(namespace, only=()):
    """Runs the test_* functions of a module's namespace (those named in
    `only`, where given; `--list` in it prints their names instead); exits
    non-zero on a failure or on a name that is no test."""
    global pytest
    pytest = None  # skips become RuntimeError("skipped: ...")
    tests = {name: test for name, test in namespace.items()
             if name.startswith("test_") and callable(test)}
    if "--list" in only:
        print("\n".join(tests))
        sys.exit(0)
    unknown = [name for name in only if name not in tests]
    if unknown:
        print(f"FAIL no such test: {', '.join(unknown)}", flush=True)
        sys.exit(1)
    failures = 0
    for name, test in tests.items():
        if only and name not in only:
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
