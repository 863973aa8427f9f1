"""Compile moe IR for the host CPU and call it from numpy.

A module goes through ``moe-opt --moe-lower-to-cpu-pipeline`` (LLVM dialect),
``mlir-translate --mlir-to-llvmir`` and ``clang -O2 -shared``; the shared
object is loaded with ctypes. Each public function is called through its
``_mlir_ciface_`` wrapper: every tensor argument and result is a memref
descriptor passed by pointer, results as trailing out-parameters.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import numbers
import os
import pathlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import dtypes

LLVM_BIN = pathlib.Path(os.environ.get("MOE_MLIR_LLVM_BIN", "/usr/lib/llvm-22/bin"))
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Where ``pip install .`` puts the tools and runtime libraries: inside the
#: package, laid out as a build folder (bin/, lib/), so one lookup serves both.
INSTALLED_DIR = pathlib.Path(__file__).resolve().parent / "_native"

# numpy storage for each MLIR element type; bf16 travels as raw uint16 bits
# (ml_dtypes.bfloat16 arrays are viewed as such, see ``dtypes``).
# f8E4M3FN travels as its uint8 bits (ml_dtypes.float8_e4m3fn arrays are
# viewed as such); f8E8M0FNU scales as their uint8 bits, and i8 (int8 and the
# packed 4-bit weight formats) as int8.
_STORAGE = {"f32": np.float32, "f64": np.float64, "bf16": np.uint16,
            "f16": np.float16, "i32": np.int32, "i64": np.int64,
            "f8E4M3FN": np.uint8, "f8E8M0FNU": np.uint8, "i8": np.int8}


class CompileError(RuntimeError):
    """A step of the CPU compilation failed; the message holds its diagnostics."""


def build_dir() -> pathlib.Path:
    """The folder holding bin/moe-opt, bin/moe-compile and lib/: MOE_MLIR_BUILD_DIR
    when set; else the installed package's own (``pip install .``); else the
    build folder beside the sources (``utils/build.sh``)."""
    override = os.environ.get("MOE_MLIR_BUILD_DIR")
    if override:
        return pathlib.Path(override)
    if (INSTALLED_DIR / "bin").is_dir():
        return INSTALLED_DIR
    return REPO_ROOT / "build"


def tool(name: str) -> pathlib.Path:
    """The path of the project's tool ``name`` (moe-opt, moe-compile)."""
    path = build_dir() / "bin" / name
    if not path.exists():
        raise CompileError(f"{name} not found at {path}: build the project first "
                           f"(utils/build.sh), install it (pip install .), or set "
                           f"MOE_MLIR_BUILD_DIR to a build folder")
    return path


def moe_opt() -> pathlib.Path:
    return tool("moe-opt")


def _run(cmd: Sequence[str], stdin: str | None = None, env: dict | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise CompileError(f"{pathlib.Path(str(cmd[0])).name} failed "
                           f"(exit {proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def lower_to_llvm_dialect(ir: str, pipeline: str = "moe-lower-to-cpu-pipeline") -> str:
    """Runs the CPU pipeline on ``ir`` and returns the LLVM-dialect module.

    The kernels' instructions follow ``target_cpu()``, the CPU clang compiles
    for, unless ``pipeline`` names a ``target-cpu`` itself."""
    return _run([moe_opt(), f"--{for_target_cpu(pipeline)}"], stdin=ir)


def for_target_cpu(pipeline: str) -> str:
    """``pipeline`` with ``target-cpu=target_cpu()`` among the CPU pipeline's
    options, where it has none."""
    name, _, options = pipeline.partition("=")
    if name != "moe-lower-to-cpu-pipeline" or "target-cpu=" in options:
        return pipeline
    return f"{name}={(options + ' ') if options else ''}target-cpu={target_cpu()}"


DEFAULT_PIPELINE = "moe-lower-to-cpu-pipeline"


def compile_shared_object(ir: str, out_dir: str | os.PathLike | None = None,
                          opt_level: str = "-O2",
                          pipeline: str = DEFAULT_PIPELINE) -> pathlib.Path:
    """Compiles moe IR to a shared object and returns its path.

    ``pipeline`` is the moe-opt pipeline with its options, e.g.
    ``"moe-lower-to-cpu-pipeline=fuse-routing=false vectorize=false"``.
    """
    digest = hashlib.sha256(f"{target_cpu()}\n{pipeline}\n{ir}".encode()).hexdigest()[:16]
    out = pathlib.Path(out_dir or tempfile.mkdtemp(prefix="moe-mlir-"))
    out.mkdir(parents=True, exist_ok=True)
    llvm_dialect = out / f"{digest}.llvm.mlir"
    llvm_dialect.write_text(lower_to_llvm_dialect(ir, pipeline))
    llvm_ir = out / f"{digest}.ll"
    _run([LLVM_BIN / "mlir-translate", "--mlir-to-llvmir", llvm_dialect, "-o", llvm_ir])
    shared = out / f"lib{digest}.so"
    llvm_lib = LLVM_BIN.parent / "lib"
    # The grouped matmul kernels run on OpenMP threads (Debian's libomp).
    _run([LLVM_BIN / "clang", opt_level, f"-march={target_cpu()}", "-shared", "-fPIC",
          "-Wno-override-module", llvm_ir, "-o", shared, f"-L{llvm_lib}", "-lomp",
          f"-Wl,-rpath,{llvm_lib}", "-lm"])
    return shared


def target_cpu() -> str:
    """The CPU the code is compiled for: MOE_MLIR_CPU, or the host."""
    return os.environ.get("MOE_MLIR_CPU", "native")


@dataclass(frozen=True)
class TensorSpec:
    """Shape and MLIR element type of a result buffer the caller allocates."""

    shape: tuple[int, ...]
    element_type: str

    def allocate(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=_STORAGE[self.element_type])


@functools.lru_cache(maxsize=None)
def _descriptor_type(rank: int):
    """The ctypes struct of a rank-``rank`` memref descriptor; one class per rank,
    since building a ctypes Structure class costs more than a decode step's call."""
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
              ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    return type(f"MemRef{rank}D", (ctypes.Structure,), {"_fields_": fields})


def _descriptor(array: np.ndarray):
    if not array.flags["C_CONTIGUOUS"]:
        raise ValueError("arrays passed to compiled code must be C-contiguous")
    data = array.__array_interface__["data"][0]
    if not array.ndim:
        return _descriptor_type(0)(data, data, 0)
    rank_array = ctypes.c_int64 * array.ndim
    itemsize = array.itemsize
    strides = [s // itemsize for s in array.strides]
    return _descriptor_type(array.ndim)(data, data, 0, rank_array(*array.shape),
                                        rank_array(*strides))


class CompiledModule:
    """A compiled module; ``call`` runs one of its functions on numpy arrays.

    With ``signatures`` (what ``compile_module`` records from the IR), ``call``
    checks the function name, the number of inputs and results, and each one's
    dtype, rank and static sizes, raising ValueError instead of letting the
    compiled code read or write out of bounds. Dynamic input sizes that the
    function's ops tie together must agree (``@<name>__check_sizes``, also added
    by ``moe-export-result-sizes``). A result's dynamic sizes are
    checked against those the function computes for the inputs, which
    ``@<name>__result_sizes`` (added by ``moe-export-result-sizes``) returns
    before the call: a smaller buffer would be written past its end.
    """

    def __init__(self, shared_object: str | os.PathLike,
                 signatures: dict[str, Signature] | None = None,
                 size_relations: dict[str, list[str]] | None = None):
        self.path = pathlib.Path(shared_object)
        self.signatures = signatures
        self.size_relations = size_relations or {}
        self._lib = ctypes.CDLL(str(self.path))
        self._functions: dict[tuple[str, int], object] = {}

    def _function(self, symbol: str, count: int):
        """The library's ``symbol`` taking ``count`` descriptor pointers, its
        ctypes prototype set once (setting it costs more than a decode call's
        arguments)."""
        key = (symbol, count)
        function = self._functions.get(key)
        if function is None:
            # A function object of its own (indexing makes a new one; attribute
            # access shares one per symbol), so each count keeps its prototype.
            function = self._lib[symbol]
            function.restype = None
            function.argtypes = [ctypes.c_void_p] * count
            self._functions[key] = function
        return function

    def _call_helper(self, symbol: str, addresses: Sequence[int],
                     out: np.ndarray) -> None:
        """Calls ``symbol`` on the inputs' descriptor ``addresses`` and ``out``."""
        descriptor = _descriptor(out)
        self._function(symbol, len(addresses) + 1)(*addresses,
                                                     ctypes.addressof(descriptor))

    def _check_input_sizes(self, name: str, arrays: Sequence[np.ndarray],
                           addresses: Sequence[int]) -> None:
        """Raises ValueError where dynamic input sizes that the function's ops tie
        together (say moe.dispatch's ids and weights) disagree: the lowering would
        read past the shorter input. ``@<name>__check_sizes`` decides."""
        relations = self.size_relations.get(name)
        if not relations:
            return
        failed = np.zeros((1,), np.int32)
        self._call_helper(f"_mlir_ciface_{name}__check_sizes", addresses, failed)
        if failed[0]:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ValueError(f"@{name}: input sizes disagree ({shapes}): "
                             f"{relations[int(failed[0]) - 1]} must be equal")

    def _check(self, name: str, arrays: Sequence[np.ndarray],
               results: Sequence[TensorSpec]) -> None:
        for i, spec in enumerate(results):
            if not isinstance(spec, TensorSpec):
                raise ValueError(f"@{name} result {i}: expected a TensorSpec, got "
                                 f"{type(spec).__name__}")
            if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                       and d >= 0 for d in spec.shape):
                raise ValueError(f"@{name} result {i}: shape {tuple(spec.shape)} is not "
                                 f"a tuple of sizes >= 0")
        if self.signatures is None:
            return
        signature = self.signatures.get(name)
        if signature is None:
            known = ", ".join(sorted(self.signatures)) or "none"
            raise ValueError(f"no public function @{name} with tensor arguments in "
                             f"the module (functions: {known})")
        if len(arrays) != len(signature.inputs):
            raise ValueError(f"@{name} takes {len(signature.inputs)} inputs, got "
                             f"{len(arrays)}")
        if len(results) != len(signature.results):
            raise ValueError(f"@{name} has {len(signature.results)} results, got "
                             f"{len(results)} result specs")
        for i, (array, want) in enumerate(zip(arrays, signature.inputs)):
            _check_tensor(f"@{name} input {i}", want, array.shape, array.dtype)
        for i, (spec, want) in enumerate(zip(results, signature.results)):
            _check_tensor(f"@{name} result {i}", want, spec.shape,
                          _STORAGE.get(spec.element_type, object), spec.element_type)

    def _check_result_sizes(self, name: str, addresses: Sequence[int],
                            results: Sequence[TensorSpec]) -> None:
        """Raises ValueError unless each result's dynamic sizes are those the
        function computes for the inputs (in their storage form) whose
        descriptors are at ``addresses``."""
        if self.signatures is None:
            return
        wants = self.signatures[name].results
        count = sum(d is None for want in wants for d in want.shape)
        if count == 0:
            return
        symbol = f"_mlir_ciface_{name}__result_sizes"
        if not hasattr(self._lib, symbol):
            raise ValueError(f"@{name} has dynamic result sizes, but {self.path.name} has "
                             f"no @{name}__result_sizes to check them with (compile it "
                             f"with compile_module)")
        sizes = np.zeros((count,), np.int64)
        self._call_helper(symbol, addresses, sizes)
        computed = iter(int(n) for n in sizes)
        for i, (spec, want) in enumerate(zip(results, wants)):
            shape = tuple(next(computed) if w is None else w for w in want.shape)
            if tuple(spec.shape) != shape:
                raise ValueError(f"@{name} result {i}: shape {tuple(spec.shape)}, but for "
                                 f"these inputs the function computes {shape} ({want})")

    def call(self, name: str, inputs: Sequence[np.ndarray],
             results: Sequence[TensorSpec], poison: bool = False) -> list[np.ndarray]:
        """Calls ``name`` with ``inputs``; returns freshly allocated results.

        bf16 inputs are ``ml_dtypes.bfloat16`` arrays or, the raw form, uint16
        arrays of bf16 bits (see ``dtypes``); bf16 results are bfloat16 when a
        bf16 input was, uint16 bits otherwise. Results are filled in place by
        the compiled code; with ``poison`` they start as all-ones bytes.
        f8E4M3FN inputs are ``ml_dtypes.float8_e4m3fn`` arrays or their uint8
        bits.
        """
        arrays = [np.ascontiguousarray(dtypes.fp8_bits(a)) for a in inputs]
        # bf16 results take the form of the bf16 inputs: ml_dtypes.bfloat16
        # when one was, raw uint16 bits otherwise.
        bfloat16_out = any(dtypes.is_bfloat16(a) for a in arrays)
        self._check(name, arrays, results)
        arrays = [dtypes.bits(a) if dtypes.is_bfloat16(a) else a for a in arrays]
        # The inputs' descriptors serve the size checks and the call; they
        # must stay referenced until the last of them returns.
        descriptors = [_descriptor(a) for a in arrays]
        addresses = [ctypes.addressof(d) for d in descriptors]
        self._check_input_sizes(name, arrays, addresses)
        self._check_result_sizes(name, addresses, results)
        outs = [spec.allocate() for spec in results]
        if poison:
            # Every byte 0xFF (NaN for floats, -1 for integers): an element the
            # compiled code does not write shows.
            for out in outs:
                out.view(np.uint8).fill(0xFF)
        out_descriptors = [_descriptor(a) for a in outs]
        addresses += [ctypes.addressof(d) for d in out_descriptors]
        self._function(f"_mlir_ciface_{name}", len(addresses))(*addresses)
        if bfloat16_out:
            outs = [dtypes.as_bfloat16(o) if spec.element_type == "bf16" else o
                    for spec, o in zip(results, outs)]
        return outs


def compile_module(ir: str, out_dir: str | os.PathLike | None = None,
                   pipeline: str = DEFAULT_PIPELINE) -> CompiledModule:
    """Compiles ``ir`` through the CPU pipeline (or ``pipeline``) and loads it.

    The public functions' signatures are read from ``ir``, so ``call`` checks its
    arguments against them; the library also holds each function's
    ``@<name>__result_sizes`` (``moe-export-result-sizes``), with which ``call``
    checks the dynamic sizes of the result buffers."""
    signatures = function_signatures(ir)
    with_sizes = _run([moe_opt(), "--moe-export-result-sizes"], stdin=ir)
    return CompiledModule(compile_shared_object(with_sizes, out_dir, pipeline=pipeline),
                          signatures, _size_relations(with_sizes))


_CHECK_RE = re.compile(r"func\.func @(\w+)__check_sizes\(.*attributes \{moe\.size_relations = "
                       r"\[(.*?)\]\}")


def _size_relations(ir: str) -> dict[str, list[str]]:
    """Per function, the size relations its ``@<name>__check_sizes`` checks, in
    order (its ``moe.size_relations``)."""
    relations = {}
    for match in _CHECK_RE.finditer(ir):
        relations[match.group(1)] = re.findall(r'"([^"]*)"', match.group(2))
    return relations


@dataclass(frozen=True)
class TensorType:
    """A ranked tensor type of a function signature; None marks a dynamic size."""

    shape: tuple[int | None, ...]
    element_type: str

    def __str__(self) -> str:
        dims = "".join(f"{'?' if d is None else d}x" for d in self.shape)
        return f"tensor<{dims}{self.element_type}>"


@dataclass(frozen=True)
class Signature:
    """The tensor arguments and results of a public function."""

    inputs: tuple[TensorType, ...]
    results: tuple[TensorType, ...]


_FUNC_RE = re.compile(r'"func\.func"\(\) <\{(.*)\}> \(')
_TYPE_RE = re.compile(r"(\w+)<([^<>]*)>|(\w+)")


def _parse_types(text: str) -> tuple[TensorType, ...] | None:
    """The tensor types of a comma-separated list; None when one is not a ranked
    tensor of an element type the calls pass."""
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if not text:
        return ()
    types = []
    for item in re.split(r",\s*(?![^<>]*>)", text):
        match = re.fullmatch(r"tensor<((?:(?:\?|\d+)x)*)(\w+)>", item.strip())
        if not match or match.group(2) not in _STORAGE:
            return None
        dims = [d for d in match.group(1).split("x") if d]
        types.append(TensorType(tuple(None if d == "?" else int(d) for d in dims),
                                match.group(2)))
    return tuple(types)


def function_signatures(ir: str) -> dict[str, Signature]:
    """The signatures of ``ir``'s public functions whose arguments and results are
    all ranked tensors of the element types ``call`` passes (as moe-opt parses
    them)."""
    generic = _run([moe_opt(), "--mlir-print-op-generic"], stdin=ir)
    signatures = {}
    for line in generic.splitlines():
        match = _FUNC_RE.search(line)
        if not match or 'sym_visibility = "private"' in match.group(1):
            continue
        attrs = match.group(1)
        name = re.search(r'sym_name = "([^"]+)"', attrs)
        ftype = re.search(r"function_type = \((.*?)\) -> (\(.*?\)|tensor<[^>]*>|\(\))"
                          r"(?:, |$)", attrs)
        if not name or not ftype:
            continue
        inputs, results = _parse_types(ftype.group(1)), _parse_types(ftype.group(2))
        if inputs is not None and results is not None:
            signatures[name.group(1)] = Signature(inputs, results)
    return signatures


def _check_tensor(what: str, want: TensorType, shape: tuple[int, ...], storage,
                  element_type: str | None = None) -> None:
    """Raises ValueError unless ``shape`` and the numpy ``storage`` dtype (or the
    MLIR ``element_type``) fit ``want``."""
    if element_type is not None and element_type != want.element_type:
        raise ValueError(f"{what}: element type {element_type}, the function's is "
                         f"{want.element_type} ({want})")
    expected = np.dtype(_STORAGE[want.element_type])
    given = np.dtype(storage)
    if given != expected and not (want.element_type == "bf16" and given == dtypes.BFLOAT16):
        raise ValueError(f"{what}: numpy dtype {np.dtype(storage)}, {want} needs "
                         + ("ml_dtypes.bfloat16 or uint16 (bf16 bits)"
                            if want.element_type == "bf16" else str(expected)))
    if len(shape) != len(want.shape) or any(
            w is not None and w != d for w, d in zip(want.shape, shape)):
        raise ValueError(f"{what}: shape {tuple(shape)} does not fit {want}")


def to_storage(array: np.ndarray, element_type: str) -> np.ndarray:
    """Converts float data to the numpy storage of an MLIR element type; bf16
    becomes its raw uint16 bits (a ``bfloat16`` array exactly, float data
    rounded to nearest even)."""
    if element_type == "bf16":
        if dtypes.is_bfloat16(array):
            return np.ascontiguousarray(dtypes.bits(array))
        return dtypes.f32_to_bf16_bits(np.asarray(array, dtype=np.float32))
    return np.ascontiguousarray(array, dtype=_STORAGE[element_type])


def from_storage(array: np.ndarray, element_type: str) -> np.ndarray:
    """Converts a result buffer back to float64 for comparisons; bf16 results
    may be ``bfloat16`` arrays or uint16 bits."""
    if element_type == "bf16":
        return dtypes.bf16_bits_to_f32(array).astype(np.float64)
    return array.astype(np.float64)
