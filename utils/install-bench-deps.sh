#!/usr/bin/env bash
# Installs what the benchmarks need beyond utils/install-deps.sh (which the build
# and the tests need): torch from PyPI for the CPU benchmark's bf16 ceiling and
# its PyTorch eager-loop peer (python/benchmarks/cpu.py), and matplotlib for the
# plots of python/benchmarks/plot_fractions.py. PyPI's default torch wheel is the
# CUDA build (about 5 GB); it runs on the CPU as well. Idempotent: packages
# already importable are skipped.
# Usage: bash utils/install-bench-deps.sh   (after utils/install-deps.sh)
set -euo pipefail

python_packages=(torch matplotlib)

# Debian's python3 is externally managed (PEP 668): there the packages go into
# the user's site, as pip allows with --break-system-packages. Elsewhere (a venv,
# pyenv) into the interpreter's own site. The marker decides, not a failed
# install, so a pip error is reported as it is instead of retried elsewhere.
pip_install() {
  if python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
         and sys.prefix == sys.base_prefix else 1)'; then
    python3 -m pip install -q --user --break-system-packages "$@"
  else
    python3 -m pip install -q "$@"
  fi
}
python3 - "${python_packages[@]}" <<'PY' || pip_install "${python_packages[@]}"
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(p) for p in sys.argv[1:]) else 1)
PY
python3 -c 'import torch, matplotlib; print("install-bench-deps: torch", torch.__version__,
"matplotlib", matplotlib.__version__)'
