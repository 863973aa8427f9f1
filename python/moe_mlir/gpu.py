"""Compile moe IR for NVIDIA GPUs here, and run it on a GPU machine.

Compiling needs this project's build (moe-opt), LLVM 22 and the CUDA toolkit's
ptxas/fatbinary; running needs only the NVIDIA driver, torch and the shared
objects: ``compile_shared_object`` lowers a module with
``moe-opt --moe-lower-to-nvvm-pipeline`` (kernels embedded as a fatbin),
translates the host code to LLVM IR and links it with ``clang -shared`` against
``libmoe_cuda_runtime.so``, which is copied beside it. ``GpuModule`` loads such
an object with ctypes and calls its functions on torch CUDA tensors.

Each lowered function ``@f`` takes its inputs, then its results as
out-parameters, then a workspace (``memref<?xi8>``) whose size
``@f_workspace_size`` computes from the inputs; all are memref descriptors of
device pointers.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
from typing import Sequence

from .cpu import CompileError, LLVM_BIN, _descriptor_type, _run, build_dir, moe_opt

DEFAULT_CHIP = "sm_90a"
DEFAULT_FEATURES = "+ptx80"


def runtime_library() -> pathlib.Path:
    path = build_dir() / "lib" / "libmoe_cuda_runtime.so"
    if not path.exists():
        raise CompileError(f"{path} not found: build the project first")
    return path


def pipeline_options(chip: str = DEFAULT_CHIP, features: str = DEFAULT_FEATURES,
                     extra: str = "") -> str:
    return f"chip={chip} features={features} {extra}".strip()


def lower_to_llvm_dialect(ir: str, options: str = pipeline_options()) -> str:
    """Runs ``moe-lower-to-nvvm-pipeline{options}`` on ``ir``; ptxas comes from
    CUDA_HOME (default /usr/local/cuda)."""
    env = dict(os.environ)
    env.setdefault("CUDA_HOME", "/usr/local/cuda")
    return _run([moe_opt(), f"--moe-lower-to-nvvm-pipeline={options}"], stdin=ir, env=env)


def ptxas_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "ptxas"


def lower_to_ptx(ir: str, chip: str = DEFAULT_CHIP, features: str = DEFAULT_FEATURES,
                 extra: str = "") -> str:
    """The PTX of ``ir``'s kernels (the pipeline's ``format=isa``)."""
    lowered = lower_to_llvm_dialect(ir, pipeline_options(chip, features, f"format=isa {extra}"))
    ptx = re.search(r'assembly = "(.*?)"', lowered, re.S).group(1)
    return re.sub(r"\\([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), ptx)


def ptxas_report(ptx: str, chip: str = DEFAULT_CHIP) -> str:
    """``ptxas -v``'s report on ``ptx``: each kernel's registers, stack frame
    and spills, and its performance notes."""
    return subprocess.run([str(ptxas_path()), f"-arch={chip}", "-v", "-", "-o", os.devnull],
                          input=ptx, capture_output=True, text=True, check=True).stderr


def compile_shared_object(ir: str, out_dir: str | os.PathLike, name: str | None = None,
                          chip: str = DEFAULT_CHIP, features: str = DEFAULT_FEATURES,
                          pipeline_extra: str = "") -> pathlib.Path:
    """Compiles ``ir`` into ``out_dir/lib<name>.so`` and returns its path."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = pipeline_options(chip, features, pipeline_extra)
    name = name or hashlib.sha256(f"{options}\n{ir}".encode()).hexdigest()[:16]
    llvm_dialect = out / f"{name}.llvm.mlir"
    llvm_dialect.write_text(lower_to_llvm_dialect(ir, options))
    llvm_ir = out / f"{name}.ll"
    _run([LLVM_BIN / "mlir-translate", "--mlir-to-llvmir", llvm_dialect, "-o", llvm_ir])
    runtime = out / "libmoe_cuda_runtime.so"
    shutil.copyfile(runtime_library(), runtime)
    shared = out / f"lib{name}.so"
    _run([LLVM_BIN / "clang", "-O2", "-shared", "-fPIC", "-Wno-override-module", llvm_ir,
          "-o", shared, f"-L{out}", "-lmoe_cuda_runtime", "-Wl,-rpath,$ORIGIN"])
    for temporary in (llvm_dialect, llvm_ir):
        temporary.unlink()
    return shared


class GpuError(RuntimeError):
    """A call failed on the device; the message is the runtime's."""


def _tensor_descriptor(tensor):
    if not tensor.is_contiguous():
        raise ValueError("tensors passed to compiled code must be contiguous")
    desc = _descriptor_type(tensor.dim())()
    desc.allocated = desc.aligned = tensor.data_ptr()
    desc.offset = 0
    for i, (size, stride) in enumerate(zip(tensor.shape, tensor.stride())):
        desc.sizes[i] = size
        desc.strides[i] = stride
    return desc


class GpuModule:
    """A compiled module loaded on a GPU machine (torch must be importable)."""

    def __init__(self, shared_object: str | os.PathLike):
        import torch  # noqa: F401  (initializes the CUDA context torch uses)

        self.path = pathlib.Path(shared_object)
        self._runtime = ctypes.CDLL(str(self.path.parent / "libmoe_cuda_runtime.so"),
                                    mode=ctypes.RTLD_GLOBAL)
        self._runtime.moeCudaTakeStatus.restype = ctypes.c_int
        self._runtime.moeCudaLastMessage.restype = ctypes.c_char_p
        self._runtime.moeCudaSetStream.argtypes = [ctypes.c_void_p]
        # Loading runs the constructor that loads the kernels' module.
        self._lib = ctypes.CDLL(str(self.path))
        self._check("loading the kernels")
        self._workspaces: dict = {}

    def _check(self, what: str) -> None:
        status = self._runtime.moeCudaTakeStatus()
        if status != 0:
            message = self._runtime.moeCudaLastMessage().decode(errors="replace")
            raise GpuError(f"{what}: status {status}: {message}")

    def workspace_bytes(self, name: str, inputs: Sequence) -> int:
        function = getattr(self._lib, f"_mlir_ciface_{name}_workspace_size")
        function.restype = ctypes.c_int64
        descriptors = [_tensor_descriptor(t) for t in inputs]
        function.argtypes = [ctypes.c_void_p] * len(descriptors)
        return int(function(*[ctypes.addressof(d) for d in descriptors]))

    def workspace(self, name: str, inputs: Sequence):
        """A cached device buffer large enough for ``name`` on ``inputs``."""
        import torch

        need = max(self.workspace_bytes(name, inputs), 1)
        held = self._workspaces.get(name)
        if held is None or held.numel() < need:
            held = torch.empty(need, dtype=torch.uint8, device=inputs[0].device)
            self._workspaces[name] = held
        return held

    def call(self, name: str, inputs: Sequence, outputs: Sequence, stream=None,
             workspace=None) -> None:
        """Enqueues ``name`` on ``stream`` (torch's current stream by default).

        Nothing is allocated or synchronized: the call can be captured in a
        CUDA graph once its workspace exists.
        """
        import torch

        if workspace is None:
            workspace = self.workspace(name, inputs)
        if stream is None:
            stream = torch.cuda.current_stream()
        descriptors = [_tensor_descriptor(t) for t in list(inputs) + list(outputs)]
        descriptors.append(_tensor_descriptor(workspace))
        function = getattr(self._lib, f"_mlir_ciface_{name}")
        function.restype = None
        function.argtypes = [ctypes.c_void_p] * len(descriptors)
        self._runtime.moeCudaSetStream(ctypes.c_void_p(stream.cuda_stream))
        try:
            function(*[ctypes.addressof(d) for d in descriptors])
        finally:
            self._runtime.moeCudaClearStream()
        self._check(name)
