"""synccheck_mma_probe.py's kernels are valid PTX for sm_90a (each probe,
plain and in its loop), and without a driver the script says so and exits 2
rather than reporting a probe. Needs ptxas for the first part; runs without a
GPU: it checks the probes, not the tools."""

import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "python"))

import synccheck_mma_probe as probe  # noqa: E402
from standalone import has_driver  # noqa: E402


@pytest.mark.parametrize("looped", [False, True])
@pytest.mark.parametrize("name,mma,word,expected", probe.PROBES)
def test_probe_kernels_assemble(tmp_path, name, mma, word, expected, looped):
    from moe_mlir import gpu

    if not gpu.ptxas_path().exists():
        pytest.skip("no ptxas (CUDA toolkit)")
    ptx = probe.kernel_ptx(mma, hex(word), looped)
    assert mma in ptx and ("bar.sync 0;" in ptx) == looped
    run = subprocess.run([str(gpu.ptxas_path()), "-arch=sm_90a", "-", "-o",
                          str(tmp_path / "probe.cubin")],
                         input=ptx, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "probe.cubin").stat().st_size > 0


def test_probe_without_a_driver_exits_2():
    if has_driver():
        pytest.skip("a CUDA driver is present: the probe would run")
    run = subprocess.run([sys.executable, str(HERE / "synccheck_mma_probe.py")],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "no CUDA driver" in run.stdout
