#!/usr/bin/env bash
# Installs everything MoE-MLIR needs to build and test, from Debian's packages and PyPI.
# Idempotent: packages already present are skipped, so a second run is quick.
set -euo pipefail

# python3-venv: the wheel test (test_pip_install.py) installs into a fresh venv;
# python3-pip: the PyPI packages below, for Debian's own python3;
# libclang-rt-22-dev: compiler-rt's CPU model, which CPU artifacts' feature
# checks link (CPUKernels.cpp).
debian_packages=(
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  clang-22 libclang-rt-22-dev lld-22 ninja-build ccache libomp-22-dev cmake python3-venv python3-pip
)
# torch and transformers: the Hugging Face drop-in's tests (test_hf_dropin.py)
# build small models of each family and run them on the CPU. PyPI's torch is
# the CUDA build (about 5 GB with its nvidia-* wheels); it runs on the CPU too.
python_packages=(numpy ml_dtypes pytest torch transformers)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

# Debian's python3 marks its packages externally managed (PEP 668) and
# packages neither ml_dtypes nor recent numpy: there the packages go into the
# user's site as pip allows with --break-system-packages.
pip_install() {
  python3 -m pip install -q "$@" ||
    python3 -m pip install -q --user --break-system-packages "$@"
}
python3 - "${python_packages[@]}" <<'PY' || pip_install "${python_packages[@]}"
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(p) for p in sys.argv[1:]) else 1)
PY
echo "install-deps: done"
