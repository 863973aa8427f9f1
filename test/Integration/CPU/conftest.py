"""pytest setup of the CPU integration tests: compile moe IR, run it, compare with numpy.

Every test draws its inputs from ``np.random.default_rng(seed)`` with a fresh seed per
test (``MOE_TEST_SEED=<n>`` pins it); a failing test reports its seed so the exact
inputs can be replayed. Each distinct IR text is compiled once per session.
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


class KernelCache:
    """Compiles each distinct IR text once and keeps the loaded module."""

    def __init__(self, out_dir: pathlib.Path):
        self.out_dir = out_dir
        self._modules = {}

    def __call__(self, ir: str) -> cpu.CompiledModule:
        module = self._modules.get(ir)
        if module is None:
            try:
                module = cpu.compile_module(ir, self.out_dir)
            except cpu.CompileError as error:
                # The IR is part of the failure: without it the diagnostics lack context.
                raise cpu.CompileError(f"{error}\n--- input IR ---\n{ir}") from None
            self._modules[ir] = module
        return module


@pytest.fixture(scope="session")
def compile_ir(tmp_path_factory):
    """``compile_ir(ir) -> cpu.CompiledModule``, cached by IR text for the session."""
    return KernelCache(tmp_path_factory.mktemp("cpu-kernels"))


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
