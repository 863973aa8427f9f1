"""Where the GPU tests find their artifacts, and how they load them.

`bash utils/build-gpu-artifacts.sh` writes them (no GPU needed) to
artifacts/gpu ($MOE_GPU_ARTIFACTS): the lowered kernels with their
index.json, and moe-compile's CUDA layers under aot/. Loading skips, as the
tests do, where torch has no CUDA GPU or the artifacts are missing. Importing
this module puts the repository's python/ first on sys.path, so the tests
that run as scripts import moe_mlir from the checkout.
"""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "python"))
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu"))
AOT = ARTIFACTS / "aot"

from standalone import artifact_index as _artifact_index, skip  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def require_gpu():
    """Skips unless torch sees a CUDA GPU."""
    if torch is None or not torch.cuda.is_available():
        skip("needs torch with a CUDA GPU")


def artifact_index():
    """The lowered kernels' index.json, by name (skips without a GPU or it)."""
    return _artifact_index(ARTIFACTS)


def entries_of(kind):
    """The index's entries of `kind`; skips where there are none."""
    entries = [e for e in artifact_index().values() if e["kind"] == kind]
    if not entries:
        skip(f"no '{kind}' artifacts (rebuild artifacts/gpu)")
    return entries


_modules = {}


def load_module(entry):
    """The GpuModule of an index entry, loaded once."""
    from moe_mlir.gpu import GpuModule

    if entry["name"] not in _modules:
        _modules[entry["name"]] = GpuModule(ARTIFACTS / entry["library"])
    return _modules[entry["name"]]


def clear_modules():
    """Drops the loaded modules, and with them their workspaces."""
    _modules.clear()


_layers = {}


def load_layer(name, missing="needs artifacts/gpu/aot (bash utils/build-gpu-artifacts.sh)"):
    """moe-compile's CUDA layer `name` (aot/libmoe_<name>.so) through
    moe_mlir.aot, loaded once; skips with `missing` where it was not built."""
    require_gpu()
    if not (AOT / f"libmoe_{name}.so").exists():
        skip(missing)
    from moe_mlir import aot

    if name not in _layers:
        _layers[name] = aot.Artifact(AOT, name).load()
    return _layers[name]
