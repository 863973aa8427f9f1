#!/usr/bin/env bash
# The main job: installs the dependencies, builds, then compiles the example
# layers (python/examples/*.mlir) through the CPU pipeline, runs them on random
# inputs, checks them against the numpy fp64 oracle and times them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash utils/install-deps.sh
bash utils/build.sh "$root/build"
MOE_MLIR_BUILD_DIR="$root/build" python3 python/examples/run_layers.py "$@"
