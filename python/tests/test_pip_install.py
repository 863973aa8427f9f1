"""`pip install .` end to end: the wheel is built from the checkout, installed
into a fresh virtual environment (no system site-packages: numpy and ml_dtypes
come from PyPI into it), and a script run from a folder outside the checkout,
with nothing of the source tree on its path, compiles layers with the
installed tools and checks them against the installed oracle.

The wheel is a second build of the project (in build-wheel/; with ccache,
MOE_MLIR_CCACHE, it reuses the objects of build/) and the venv needs PyPI.
MOE_MLIR_SKIP_WHEEL_TEST=1 skips this test, e.g. on a machine without
network; nothing else does.
"""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.environ.get("MOE_MLIR_SKIP_WHEEL_TEST") == "1",
                                reason="MOE_MLIR_SKIP_WHEEL_TEST=1")

# What the wheel must hold beside the Python modules.
NATIVE = ["bin/moe-opt", "bin/moe-compile", "lib/libMoEPlugin.so",
          "lib/libmoe_cuda_runtime.so", "lib/libmoe_cuda_runtime.a",
          "include/moe/Runtime/moe_runtime.h"]

# Runs inside the venv. It prints one JSON object the test checks.
SCRIPT = r'''
import json, os, pathlib, subprocess, sys
import ml_dtypes
import numpy as np
import moe_mlir
from moe_mlir import aot, cpu, irgen
from moe_mlir import reference as ref

H, I, E, K = 32, 16, 8, 2
rng = np.random.default_rng(7)
x = rng.standard_normal((5, H)).astype(np.float32)
router = (rng.standard_normal((E, H)) * 0.5).astype(np.float32)
w13 = (rng.standard_normal((E, 2 * I, H)) * 0.2).astype(np.float32)
w2 = (rng.standard_normal((E, H, I)) * 0.2).astype(np.float32)
route = ref.MODEL_RECIPES["mixtral"]
want = ref.layer(x, router, w13, w2, **route)

def error(got, want):
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))

report = {"package": moe_mlir.__file__, "build_dir": str(cpu.build_dir()),
          "numpy": np.__file__, "ml_dtypes": ml_dtypes.__file__}
# Ahead of time: moe-compile from the wheel, a Mixtral config.
layer = aot.compile({"model_type": "mixtral", "hidden_size": H, "intermediate_size": I,
                     "num_local_experts": E, "num_experts_per_tok": K},
                    name="wheel", out_dir="aot").load()
report["aot_error"] = error(layer(x, router, w13, w2), want)
# bf16 numpy arrays through a bf16 artifact.
bf16 = aot.compile(layer={"hidden": H, "intermediate": I, "experts": E, "k": K,
                          "renormalize": True, "dtype": "bf16"},
                   name="wheel_bf16", out_dir="aot").load()
args = [a.astype(ml_dtypes.bfloat16) for a in (x, router, w13, w2)]
y = bf16(*args)
report["bf16_dtype"] = str(y.dtype)
report["bf16_error"] = error(y.astype(np.float32),
                             ref.layer(*[a.astype(np.float32) for a in args], **route))
# Through moe-opt from the wheel: compile_module and call.
module = cpu.compile_module(irgen.layer_ir(None, H, E, I, K, renormalize=True),
                            out_dir="cpu")
(y,) = module.call("layer", [x, router, w13, w2], [cpu.TensorSpec((5, H), "f32")])
report["cpu_error"] = error(y, want)
# The plugin from the wheel loads into Debian's mlir-opt.
plugin = cpu.build_dir() / "lib" / "libMoEPlugin.so"
proc = subprocess.run(
    [str(cpu.LLVM_BIN / "mlir-opt"), f"--load-dialect-plugin={plugin}",
     f"--load-pass-plugin={plugin}",
     "--pass-pipeline=builtin.module(moe-decompose-layer)"],
    input=irgen.layer_ir(None, H, E, I, K), capture_output=True, text=True)
report["plugin_rc"] = proc.returncode
report["plugin_out"] = proc.stdout + proc.stderr
# MOE_MLIR_BUILD_DIR still overrides where the tools are found.
os.environ["MOE_MLIR_BUILD_DIR"] = "/nonexistent-build"
try:
    cpu.moe_opt()
    report["override"] = "not used"
except cpu.CompileError as e:
    report["override"] = str(e)
print(json.dumps(report))
'''


def _clean_env(**extra):
    """The environment without anything pointing into the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MOE_MLIR_BUILD_DIR", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _run(cmd, cwd, env, timeout):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} failed "
                                  f"(exit {proc.returncode}):\n{proc.stdout[-4000:]}\n"
                                  f"{proc.stderr[-4000:]}")
    return proc.stdout


def test_wheel_installs_and_runs_a_layer(tmp_path):
    assert REPO not in tmp_path.resolve().parents
    jobs = os.environ.get("MOE_MLIR_JOBS", "2")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-w", dist],
         tmp_path, _clean_env(CMAKE_BUILD_PARALLEL_LEVEL=jobs), timeout=3000)
    (wheel,) = dist.glob("moe_mlir-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in ["moe_mlir/aot.py", "moe_mlir/reference.py"]
               + [f"moe_mlir/_native/{n}" for n in NATIVE] if n not in names]
    assert not missing, f"{wheel.name} lacks {missing}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path, _clean_env(), timeout=300)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", wheel], tmp_path, _clean_env(), timeout=900)

    work = tmp_path / "run"
    work.mkdir()
    (work / "check.py").write_text(SCRIPT)
    # -I: no PYTHON* variables, no user site, not even the script's folder on
    # the path: only the venv.
    out = _run([python, "-I", "check.py"], work, _clean_env(), timeout=900)
    report = json.loads(out.strip().splitlines()[-1])

    site = venv.resolve()
    for key in ("package", "build_dir", "numpy", "ml_dtypes"):
        path = pathlib.Path(report[key]).resolve()
        assert site in path.parents, f"{key} comes from {path}, not the venv"
        assert REPO not in path.parents
    assert pathlib.Path(report["build_dir"]).name == "_native"
    assert report["aot_error"] < 1e-5, report
    assert report["cpu_error"] < 1e-5, report
    assert report["bf16_dtype"] == "bfloat16", report
    assert report["bf16_error"] < 1e-2, report
    assert report["plugin_rc"] == 0 and "moe.route" in report["plugin_out"], report
    assert "moe-opt not found at /nonexistent-build/bin/moe-opt" in report["override"]
