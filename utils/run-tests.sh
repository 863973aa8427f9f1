#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test: lit (dialect, passes,
# pipelines), the CPU integration suite against the numpy oracle, and the
# Python tests. GPU tests skip where there is no GPU. The pip install test
# (python/tests/test_pip_install.py) needs PyPI; MOE_MLIR_SKIP_WHEEL_TEST=1
# skips it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash utils/install-deps.sh
bash utils/build.sh "$root/build"

echo "== lit"
/usr/lib/llvm-22/bin/lit -sv build/test
echo "== pytest"
MOE_MLIR_BUILD_DIR="$root/build" python3 -m pytest -q -p no:cacheprovider \
  python/tests test/Integration/CPU test/Integration/GPU
