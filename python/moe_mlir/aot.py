"""Ahead-of-time MoE layers: compile with moe-compile, call through the C ABI.

    from moe_mlir import aot
    artifact = aot.compile(config="config.json", out_dir="out")   # or layer={...}
    layer = artifact.load()
    y = layer(x, router, w13, w2)          # numpy arrays, in the ABI's order

    gpu = aot.compile(config="config.json", target="cuda").load()
    y = gpu(x, router, w13, w2)            # torch CUDA tensors, current stream

    experts = aot.compile(config="config.json", entry="experts").load()
    y = experts(x, topk_ids, topk_weights, w13, w2)   # the routing given

The artifact is a shared library exporting ``moe_<name>_forward``,
``moe_<name>_workspace_size`` and ``moe_<name>_status_string`` (see
``include/moe/Runtime/moe_runtime.h``), its C header and a JSON manifest
describing the tensors. Loading needs only ctypes and numpy; calling a CUDA
artifact needs torch and the NVIDIA driver, nothing from LLVM or CUDA's
toolkit.
"""

from __future__ import annotations

import ctypes
import json
import math
import numbers
import os
import pathlib
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from . import cpu, dtypes

# f8E4M3FN (FP8 weights) and f8E8M0FNU (MXFP4 scales) travel as their uint8
# bits; ml_dtypes.float8_e4m3fn and float8_e8m0fnu arrays are viewed as such.
# i8 tensors (int8 weights, packed 4-bit bytes, zero points) are bytes: uint8
# arrays (gpt-oss stores its blocks so) are viewed as int8.
_STORAGE = {"f32": np.float32, "bf16": np.uint16, "f16": np.float16, "i32": np.int32,
            "f8E4M3FN": np.uint8, "f8E8M0FNU": np.uint8, "i8": np.int8}


def _dtype_name(spec: dict) -> str:
    """The numpy dtypes a manifest tensor takes, for error messages."""
    if spec["dtype"] == "bf16":
        return "ml_dtypes.bfloat16 or uint16 (bf16 bits)"
    if spec["dtype"] == "f8E4M3FN":
        return "ml_dtypes.float8_e4m3fn or uint8 (e4m3 bits)"
    if spec["dtype"] == "f8E8M0FNU":
        return "ml_dtypes.float8_e8m0fnu or uint8 (e8m0 bits)"
    if spec["dtype"] == "i8":
        return "int8 or uint8 (bytes)"
    return np.dtype(_STORAGE[spec["dtype"]]).name


def _as_bytes(array: np.ndarray, dtype: str) -> np.ndarray:
    """The storage view of a one-byte tensor given in one of the dtypes it
    takes; other arrays unchanged (the dtype check follows)."""
    if dtype == "f8E4M3FN":
        return dtypes.fp8_bits(array)
    if (dtype == "f8E8M0FNU" and dtypes.FLOAT8_E8M0FNU is not None
            and array.dtype == dtypes.FLOAT8_E8M0FNU):
        return array.view(np.uint8)
    if dtype == "i8" and array.dtype == np.uint8:
        return array.view(np.int8)
    return array


class MoEError(RuntimeError):
    """A call into an artifact returned a non-success status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"status {status}: {message}")
        self.status = status


def moe_compile() -> pathlib.Path:
    return cpu.tool("moe-compile")


def _settings(layer: Mapping[str, object]) -> str:
    """``layer`` as moe-compile's ``--layer`` text. A ',' or '=' inside a key
    or value would split it into other settings, so they are refused."""
    parts = []
    for key, value in layer.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (numbers.Real, str)):
            text = str(value)
        else:
            raise ValueError(f"layer setting {key!r}: expected a bool, number or string, "
                             f"got {type(value).__name__}")
        for what, item in (("name", str(key)), ("value", text)):
            if not item or any(c in item for c in ",=") or item != item.strip():
                raise ValueError(f"layer setting {key!r}: its {what} {item!r} must be "
                                 f"non-empty, without ',', '=' or surrounding spaces")
        parts.append(f"{key}={text}")
    return ",".join(parts)


@dataclass
class Artifact:
    """The files moe-compile wrote for one layer."""

    directory: pathlib.Path
    name: str

    @property
    def manifest(self) -> dict:
        return json.loads((self.directory / f"moe_{self.name}.json").read_text())

    @property
    def library(self) -> pathlib.Path:
        return self.directory / f"libmoe_{self.name}.so"

    @property
    def header(self) -> pathlib.Path:
        return self.directory / f"moe_{self.name}.h"

    def load(self) -> "Layer":
        return Layer(self.library, self.manifest)


def compile(config: Optional[str | os.PathLike | Mapping] = None, *,
            layer: Optional[Mapping[str, object]] = None, name: str = "layer",
            out_dir: Optional[str | os.PathLike] = None, ir: Optional[str] = None,
            emit: Sequence[str] = ("so", "header", "manifest"),
            chip: Optional[str] = None, target: str = "cpu",
            entry: str = "layer") -> Artifact:
    """Runs moe-compile on a config.json (path or dict), ``layer`` settings
    (they override the config's), or MoE IR text, for ``target`` (cpu or
    cuda). ``entry`` picks what a layer from a config or settings exports:
    ``"layer"`` (routing inside: x, router, w13, w2, ...) or ``"experts"``
    (its routed experts with the routing given: x, topk_ids [T, k] int32,
    topk_weights [T, k] float32, w13, w2). ``chip`` is moe-compile's
    ``--chip``: for the CPU, one clang -march CPU (default: the host), a
    comma-separated list of them or ``"portable"``, a kernel variant per
    x86-64 level picked at the first call (``Layer.cpu_variant``)."""
    if entry not in ("layer", "experts"):
        raise ValueError(f"entry must be 'layer' or 'experts', got {entry!r}")
    if entry != "layer" and ir is not None:
        raise ValueError("entry applies to a layer from a config or settings; "
                         "IR exports its own function")
    # moe-compile takes IR or a config, never both; IR with a config would
    # otherwise compile the IR and leave the config unread.
    if ir is not None and config is not None:
        raise ValueError("give either ir or config, not both")
    if layer is not None and not isinstance(layer, Mapping):
        raise ValueError(f"layer must be a mapping of settings, got "
                         f"{type(layer).__name__}")
    out = pathlib.Path(out_dir or tempfile.mkdtemp(prefix="moe-aot-"))
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(moe_compile()), f"--name={name}", f"--target={target}",
           f"--emit={','.join(emit)}", "-o", str(out)]
    # An empty chip goes to moe-compile too, which refuses it, rather than
    # quietly meaning the default.
    if chip is not None:
        cmd.append(f"--chip={chip}")
    if entry != "layer":
        cmd.append(f"--entry={entry}")
    if ir is not None:
        source = out / f"{name}.input.mlir"
        source.write_text(ir)
        cmd.append(str(source))
    elif config is not None:
        if isinstance(config, Mapping):
            path = out / f"{name}.config.json"
            path.write_text(json.dumps(config))
            config = path
        cmd.append(f"--config={config}")
    if layer:
        cmd.append(f"--layer={_settings(layer)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise cpu.CompileError(f"moe-compile failed (exit {proc.returncode}):\n{proc.stderr}")
    return Artifact(out, name)


class Layer:
    """A loaded artifact. Calling it runs ``moe_<name>_forward``: on numpy
    arrays for a CPU artifact, on torch CUDA tensors for a CUDA one."""

    def __init__(self, library: pathlib.Path, manifest: dict):
        self.manifest = manifest
        self.target = manifest.get("target", "cpu")
        # "layer" (routing inside) or "experts" (topk_ids, topk_weights in);
        # artifacts from IR record none.
        self.entry = manifest.get("entry")
        self._lib = ctypes.CDLL(str(library))
        prefix = manifest["prefix"]
        self._forward = getattr(self._lib, f"{prefix}_forward")
        self._workspace_size = getattr(self._lib, f"{prefix}_workspace_size")
        self._status_string = getattr(self._lib, f"{prefix}_status_string")
        tensors = manifest["tensors"]
        self.inputs = [t for t in tensors if t["direction"] == "in"]
        self.outputs = [t for t in tensors if t["direction"] == "out"]
        self._forward.restype = ctypes.c_int
        self._forward.argtypes = ([ctypes.c_void_p] * len(tensors)
                                  + [ctypes.c_int64, ctypes.c_void_p, ctypes.c_size_t,
                                     ctypes.c_void_p])
        self._workspace_size.restype = ctypes.c_size_t
        self._workspace_size.argtypes = [ctypes.c_int64]
        self._status_string.restype = ctypes.c_char_p
        self._status_string.argtypes = [ctypes.c_int]

    def status_string(self, status: int) -> str:
        return self._status_string(status).decode(errors="replace")

    @property
    def cpu_variant(self) -> Optional[str]:
        """The CPU whose compilation of the kernel runs here (a CPU
        artifact's ``cpu_variants``: the best this CPU supports, or the one
        ``MOE_MLIR_CPU_VARIANT`` names), or None when this CPU runs none of
        them; the call then returns MOE_STATUS_UNSUPPORTED. Fixed at the
        library's first call or query."""
        symbol = f"{self.manifest['prefix']}_cpu_variant"
        if symbol not in self.manifest.get("symbols", []):
            raise ValueError(f"this artifact has no {symbol} (target "
                             f"{self.target})")
        fn = getattr(self._lib, symbol)
        fn.restype = ctypes.c_char_p
        fn.argtypes = []
        chip = fn()
        return chip.decode() if chip is not None else None

    def pack(self, name: str, linear) -> np.ndarray:
        """``moe_<name>_pack_<tensor>``: the expert weights ``name`` ("w13" or
        "w2") packed by the library from their Linear layout [E, N, K] (numpy,
        bf16 as uint16 bits), for a layer compiled with a packed
        ``weight_layout``. Quantized layers in ``panels`` pack their weights
        as stored ([E, N, K / 2] bytes for mxfp4 and int4, gpt-oss's blocks
        viewed so) and, for the weight-only formats, ``w13_scales``,
        ``w2_scales`` and the zero points ([E, N, G]) the same way. bf16 weights are ``ml_dtypes.bfloat16`` (packed
        alike) or uint16 bits (packed as bits)."""
        symbol = f"{self.manifest['prefix']}_pack_{name}"
        if symbol not in self.manifest.get("symbols", []):
            raise ValueError(f"this artifact has no {symbol} (weight_layout "
                             f"{self.manifest.get('layer', {}).get('weight_layout', 'nk')})")
        spec = next(t for t in self.inputs if t["name"] == name)
        layer = self.manifest["layer"]
        H, I, E = layer["hidden"], layer["intermediate"], layer["experts"]
        want = (E, 2 * I, H) if name == "w13" else (E, H, I)
        shape = spec["shape"]
        if layer.get("weight_layout") == "panels":
            # [E, N / P, Ks, P] from [E, N, Ks]: quantized weights as stored (K / 2
            # bytes of 4-bit codes), their scales and zero points [E, N, G].
            want = (shape[0], shape[1] * shape[3], shape[2])
        source = np.ascontiguousarray(_as_bytes(np.asarray(linear), spec["dtype"]))
        if layer.get("weight_layout") == "panels" and source.ndim == 4 and name in ("w13", "w2"):
            # gpt-oss's mxfp4 *_blocks [E, N, K / 32, 16] are the [E, N, K / 2] bytes.
            source = source.reshape(source.shape[0], source.shape[1], -1)
        bfloat16 = spec["dtype"] == "bf16" and dtypes.is_bfloat16(source)
        if bfloat16:
            source = dtypes.bits(source)
        dtype = _STORAGE[spec["dtype"]]
        if source.dtype != dtype or source.shape != want:
            raise ValueError(f"'{name}' must be {want} {_dtype_name(spec)} (Linear "
                             f"layout [E, N, K]), got {source.shape} {source.dtype.name}")
        packed = np.empty(spec["shape"], dtype=dtype)
        fn = getattr(self._lib, symbol)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        status = fn(source.ctypes.data, packed.ctypes.data)
        if status != 0:
            raise MoEError(status, self.status_string(status))
        return dtypes.as_bfloat16(packed) if bfloat16 else packed

    def workspace_size(self, tokens: int) -> int:
        return int(self._workspace_size(tokens))

    def forward_pointers(self, pointers: Sequence[int], tokens: int, workspace: Optional[int],
                         workspace_size: int, stream: Optional[int] = None) -> None:
        """Calls the C ABI on raw pointers (inputs, then outputs); raises
        MoEError on a non-success status."""
        status = self._forward(*pointers, tokens, workspace, workspace_size, stream)
        if status != 0:
            raise MoEError(status, self.status_string(status))

    def shape(self, tensor: dict, tokens: int) -> tuple:
        return tuple(tokens if s < 0 else s for s in tensor["shape"])

    @staticmethod
    def per_token(tensor: dict) -> bool:
        """Whether the tensor's leading dimension is the token count."""
        return bool(tensor["shape"]) and tensor["shape"][0] < 0

    def leading_shape(self, shapes: Sequence[tuple]) -> tuple:
        """The leading dimensions ``[*]`` shared by the per-token inputs,
        whose shapes are ``[*, rest]`` for a manifest shape ``[T, rest]``."""
        lead = None
        for tensor, shape in zip(self.inputs, shapes):
            if not self.per_token(tensor):
                continue
            shape = tuple(shape)
            rest = tuple(tensor["shape"][1:])
            cut = len(shape) - len(rest)
            if cut < 0 or shape[cut:] != rest:
                want = ", ".join(["*"] + [str(d) for d in rest])
                raise ValueError(f"'{tensor['name']}' must have shape [{want}], got {shape}")
            if lead is None:
                lead = shape[:cut]
            elif shape[:cut] != lead:
                raise ValueError(f"'{tensor['name']}' has leading dimensions {shape[:cut]}, "
                                 f"the other per-token inputs {lead}")
        return lead or ()

    def output_shape(self, tensor: dict, lead: tuple) -> tuple:
        """An output's shape for inputs of leading dimensions ``lead``."""
        if self.per_token(tensor):
            return tuple(lead) + tuple(tensor["shape"][1:])
        return tuple(tensor["shape"])

    def _check_count(self, inputs: Sequence) -> None:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} inputs "
                             f"({', '.join(t['name'] for t in self.inputs)}), got {len(inputs)}")

    def __call__(self, *inputs):
        """Runs the layer. The per-token inputs (``x``, and ``topk_ids``
        and ``topk_weights`` of an experts entry) may have any leading
        dimensions ``[*, H]`` (``[*, k]``), the same for all; the output has
        them too. Ids outside ``[0, E)`` select nothing. No tokens at all give
        an empty output without a call into the library. bf16 tensors are
        ``ml_dtypes.bfloat16`` arrays or uint16 bits; bf16 outputs are
        bfloat16 when a bf16 input was, uint16 bits otherwise. FP8 weights
        (f8E4M3FN) are ``ml_dtypes.float8_e4m3fn`` arrays or uint8 bits, with
        their f32 scales (``w13_scales``, ``w2_scales``) as the manifest
        lists them. Weight-only layers take their i8 tensors (packed 4-bit
        or int8 weights, zero points) as int8 or uint8 arrays and MXFP4's
        e8m0 scales (f8E8M0FNU) as uint8 bits or
        ``ml_dtypes.float8_e8m0fnu`` (``moe_mlir.pack_lowbit`` converts
        GPTQ, AWQ and compressed-tensors tensors)."""
        if self.target == "cuda":
            return self._call_cuda(*inputs)
        self._check_count(inputs)
        given = [np.asarray(value) for value in inputs]
        lead = self.leading_shape([a.shape for a in given])
        tokens = math.prod(lead)
        arrays = []
        bfloat16 = False
        for spec, array in zip(self.inputs, given):
            if self.per_token(spec):
                array = array.reshape((tokens,) + tuple(spec["shape"][1:]))
            given_dtype = array.dtype.name
            array = np.ascontiguousarray(_as_bytes(array, spec["dtype"]))
            want = self.shape(spec, tokens)
            is_bfloat16 = spec["dtype"] == "bf16" and dtypes.is_bfloat16(array)
            if array.shape != want or (array.dtype != _STORAGE[spec["dtype"]]
                                       and not is_bfloat16):
                raise ValueError(f"'{spec['name']}' must be {want} {_dtype_name(spec)}, "
                                 f"got {array.shape} {given_dtype}")
            if is_bfloat16:
                array, bfloat16 = dtypes.bits(array), True
            arrays.append(array)
        outs = [np.zeros(self.shape(t, tokens), dtype=_STORAGE[t["dtype"]])
                for t in self.outputs]
        if tokens:
            size = self.workspace_size(tokens)
            workspace = np.empty(size, dtype=np.uint8) if size else None
            self.forward_pointers([a.ctypes.data for a in arrays + outs], tokens,
                                  None if workspace is None else workspace.ctypes.data, size)
        outs = [o.reshape(self.output_shape(t, lead)) for t, o in zip(self.outputs, outs)]
        if bfloat16:
            outs = [dtypes.as_bfloat16(o) if t["dtype"] == "bf16" else o
                    for t, o in zip(self.outputs, outs)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _call_cuda(self, *inputs):
        """Runs on torch CUDA tensors, enqueued on torch's current stream of
        their device; the workspace comes from torch's caching allocator."""
        import torch

        from .torch_tensors import check_tensors, TORCH_DTYPES

        self._check_count(inputs)
        tensors, lead = check_tensors(self, inputs, "cuda")
        tokens = math.prod(lead)
        device = tensors[0].device
        outs = [torch.empty(self.shape(t, tokens), dtype=TORCH_DTYPES[t["dtype"]],
                            device=device) for t in self.outputs]
        if tokens:
            size = self.workspace_size(tokens)
            workspace = torch.empty(max(size, 1), dtype=torch.uint8, device=device)
            with torch.cuda.device(device):
                stream = torch.cuda.current_stream(device).cuda_stream
                self.forward_pointers([t.data_ptr() for t in tensors + outs], tokens,
                                      workspace.data_ptr(), size, stream)
        outs = [o.reshape(self.output_shape(t, lead)) for t, o in zip(self.outputs, outs)]
        return outs[0] if len(outs) == 1 else tuple(outs)
