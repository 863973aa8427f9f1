"""pytest setup of the CPU integration tests: compile moe IR, run it, compare with numpy.

Every test draws its inputs from ``np.random.default_rng(seed)`` with a fresh seed per
test (``MOE_TEST_SEED=<n>`` pins it); a failing test reports its seed so the exact
inputs can be replayed. Each distinct IR text is compiled once per session and pipeline
variant (PIPELINES).
"""

import os
import pathlib
import secrets
import sys

import numpy as np
import pytest

# The tests import the in-tree package without installing it.
_PYTHON_DIR = pathlib.Path(__file__).resolve().parents[3] / "python"
if str(_PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(_PYTHON_DIR))

from moe_mlir import cpu  # noqa: E402


def _missing_toolchain():
    """Why these tests cannot run here, or None when they can."""
    try:
        cpu.moe_opt()
    except cpu.CompileError as error:
        return str(error)
    for tool in ("mlir-translate", "clang"):
        if not (cpu.LLVM_BIN / tool).exists():
            return f"{tool} not found in {cpu.LLVM_BIN} (set MOE_MLIR_LLVM_BIN)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing_toolchain()
    if reason is None:
        return
    here = pathlib.Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason=f"CPU integration tests need the toolchain: {reason}")
    for item in items:
        if here in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


#: Variants of the CPU pipeline that tests of the grouped matmul and of whole layers run
#: under: the default (fused routing, vectorized OpenMP grouped matmul), the reference
#: linalg lowering of every op, the vectorized kernel without routing fusion, the
#: vectorized kernel at AVX2 width (its remainder handling differs) and at one lane
#: (one-lane accumulators, for the biased grouped matmuls), the kernel over panels with
#: other register blocks than the default (5 rows by 3 panels), the kernel for
#: an AVX-512 CPU without AVX512_BF16 (panels_vnni pairs split into two FMAs instead of
#: vdpbf16ps), and the kernels' choices for an AVX2 CPU (4-bit weights decoded with
#: integer ops instead of table permutes). Each entry is the moe-opt flag without its leading "--".
PIPELINES = {
    "default": cpu.DEFAULT_PIPELINE,
    "reference": "moe-lower-to-cpu-pipeline=fuse-routing=false vectorize=false threads=false",
    "unfused": "moe-lower-to-cpu-pipeline=fuse-routing=false",
    "width8": "moe-lower-to-cpu-pipeline=vector-width=8",
    # The narrowest vector the option allows: one-lane accumulators.
    "width1": "moe-lower-to-cpu-pipeline=vector-width=1",
    "register_blocks": "moe-lower-to-cpu-pipeline=panel-row-block=5 panel-column-block=3",
    "no_bf16_dot": "moe-lower-to-cpu-pipeline=target-cpu=skylake-avx512",
    # The kernels' choices for an AVX2 CPU (x86-64-v3; compiled for the host).
    "avx2": "moe-lower-to-cpu-pipeline=target-cpu=x86-64-v3",
}


class KernelCache:
    """Compiles each distinct (IR text, pipeline) once and keeps the loaded module."""

    def __init__(self, out_dir: pathlib.Path):
        self.out_dir = out_dir
        self._modules = {}

    def __call__(self, ir: str, pipeline: str = "default") -> cpu.CompiledModule:
        key = (ir, pipeline)
        module = self._modules.get(key)
        if module is None:
            try:
                module = cpu.compile_module(ir, self.out_dir, pipeline=PIPELINES[pipeline])
            except cpu.CompileError as error:
                # The IR is part of the failure: without it the diagnostics lack context.
                raise cpu.CompileError(f"{error}\n--- pipeline: {PIPELINES[pipeline]}\n"
                                       f"--- input IR ---\n{ir}") from None
            self._modules[key] = module
        return module


@pytest.fixture(scope="session")
def compile_ir(tmp_path_factory):
    """``compile_ir(ir, pipeline="default") -> cpu.CompiledModule``, cached for the session;
    ``pipeline`` names an entry of PIPELINES."""
    return KernelCache(tmp_path_factory.mktemp("cpu-kernels"))


@pytest.fixture(params=["default", "reference", "unfused", "width8"])
def pipeline(request):
    """Each CPU pipeline variant, for whole layers (which every variant lowers differently)."""
    return request.param


@pytest.fixture(params=["default", "reference", "width8", "no_bf16_dot"])
def matmul_pipeline(request):
    """The variants that lower a lone grouped matmul differently (routing fusion has
    nothing to fuse there)."""
    return request.param


@pytest.fixture
def seed(request):
    """The random seed of this test: fresh each run unless MOE_TEST_SEED is set."""
    value = int(os.environ.get("MOE_TEST_SEED", secrets.randbits(63)))
    request.node.user_properties.append(("seed", value))
    return value


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in item.user_properties:
            if name == "seed":
                report.sections.append(
                    ("random seed", f"seed = {value}; replay with MOE_TEST_SEED={value}"))
