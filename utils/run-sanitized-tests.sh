#!/usr/bin/env bash
# Builds MoE-MLIR with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-sanitized/ and runs the lit suite and the CPU integration suite on
# that build: every moe-opt and moe-compile run of the tests is checked. Any
# report fails the run.
# Usage: utils/run-sanitized-tests.sh [pytest arguments]  (default: the suites)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-sanitized
llvm=/usr/lib/llvm-22
cd "$root"

bash utils/install-deps.sh
# The sanitizers' runtime libraries.
if ! dpkg-query -W -f='${Status}' libclang-rt-22-dev 2>/dev/null | grep -q "install ok installed"; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends libclang-rt-22-dev
fi

if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$llvm/bin/clang" \
    -DCMAKE_CXX_COMPILER="$llvm/bin/clang++" \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DLLVM_USE_LINKER=lld \
    -DLLVM_USE_SANITIZER="Address;Undefined" \
    -DMLIR_DIR="$llvm/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$llvm/bin/lit"
fi
ninja -C "$build" -j "${MOE_MLIR_JOBS:-2}" all

# Every report is fatal. LLVM's tools free their global state at exit only in
# part, so leak checking is off; use-after-free, overflows and UB are not.
# The LLVM and MLIR libraries from Debian are not instrumented: their bump
# allocators never unpoison what the instrumented inline code poisoned, so
# manual poisoning (allow_user_poisoning) is off too.
export ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== lit (sanitized)"
"$llvm/bin/lit" -sv "$build/test"
echo "== pytest (sanitized)"
# The suites drive the instrumented moe-opt and moe-compile; what they build
# and Python loads is compiled by clang from LLVM IR, uninstrumented.
if [ "$#" -eq 0 ]; then
  set -- python/tests test/Integration/CPU
fi
# The wheel test builds the project again, uninstrumented: not here.
MOE_MLIR_BUILD_DIR="$build" MOE_MLIR_SKIP_WHEEL_TEST=1 \
  python3 -m pytest -q -p no:cacheprovider "$@"
