"""utils/build-gpu-baseline-artifacts.sh refuses what names no commit, and a
wrong number of arguments, with a message and exit 2, before it checks out
or builds anything."""

import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "utils" / "build-gpu-baseline-artifacts.sh"


def run(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_usage_errors_exit_2():
    for args in ((), ("HEAD", "out", "extra")):
        result = run(*args)
        assert result.returncode == 2
        assert "usage:" in result.stderr


def test_unknown_commit_is_named():
    result = run("no-such-commit-0123")
    assert result.returncode == 2
    assert "'no-such-commit-0123' names no commit" in result.stderr
    assert not (ROOT / "artifacts" / "gpu-baseline-no-such-commit-0123").exists()
