#!/usr/bin/env bash
# Builds the libFuzzer targets with ASan and UBSan in a build directory of
# their own and runs each on a seed corpus made from the tests.
#
# Usage: utils/run-fuzzers.sh [seconds per target]   (default 60)
#   MOE_FUZZ_BUILD   build directory (default build-fuzz)
#   MOE_FUZZ_JOBS    fuzzing processes per target (default 1)
# Targets: moe-ir-fuzzer (the IR parser and verifier), moe-config-fuzzer
# (moe-compile's config reader). A finding is written to
# $MOE_FUZZ_BUILD/fuzz/<target>/crash-* and the script exits non-zero.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_FUZZ_BUILD:-$root/build-fuzz}
seconds=${1:-60}
jobs=${MOE_FUZZ_JOBS:-1}
llvm=/usr/lib/llvm-22

if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$llvm/bin/clang" \
    -DCMAKE_CXX_COMPILER="$llvm/bin/clang++" \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DLLVM_USE_LINKER=lld \
    -DMLIR_DIR="$llvm/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$llvm/bin/lit" \
    -DLLVM_USE_SANITIZER="Address;Undefined" \
    -DLLVM_USE_SANITIZE_COVERAGE=ON \
    -DMOE_MLIR_ENABLE_FUZZERS=ON
fi
# Only the fuzzers and the libraries they link.
ninja -C "$build" -j "${MOE_MLIR_JOBS:-2}" moe-ir-fuzzer moe-config-fuzzer

# Seeds: every test case of moe IR (split at "// -----") and every config.
seeds=$build/fuzz/seeds
rm -rf "$seeds" && mkdir -p "$seeds/ir" "$seeds/config"
python3 - "$root" "$seeds" <<'PY'
import json, pathlib, re, sys
root, seeds = map(pathlib.Path, sys.argv[1:3])
n = 0
for path in sorted(root.glob("test/**/*.mlir")):
    for case in re.split(r"^// -----$", path.read_text(), flags=re.M):
        (seeds / "ir" / f"{n:05d}.mlir").write_text(case)
        n += 1
m = 0
for path in sorted((root / "test").glob("**/Inputs/**/*")):
    if path.is_file() and path.suffix in ("", ".json"):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if text.lstrip().startswith("{"):
            (seeds / "config" / f"{m:05d}.json").write_text(text)
            m += 1
print(f"seeds: {n} IR cases, {m} configs")
PY

# Leak checking is off (the IR target keeps one context for every input);
# manual poisoning too: Debian's LLVM and MLIR libraries are not instrumented
# and their bump allocators never unpoison what instrumented inline code
# poisoned. Undefined behaviour is a finding like an ASan report.
export ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

status=0
for target in moe-ir-fuzzer moe-config-fuzzer; do
  kind=${target#moe-}; kind=${kind%-fuzzer}
  out=$build/fuzz/$target
  mkdir -p "$out/corpus"
  echo "== $target: $seconds s"
  # -rss_limit_mb: a module that needs more memory than this is a finding.
  # With -jobs, libFuzzer writes fuzz-<job>.log files into the current
  # folder: run from the target's own.
  set +e
  (cd "$out" && "$build/bin/$target" "$out/corpus" "$seeds/$kind" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=16384 -jobs="$jobs" -workers="$jobs" \
      -artifact_prefix="$out/" -print_final_stats=1) 2>&1 | tee "$out/log.txt" \
    | grep -E "^(#[0-9]+ +DONE|stat::|==[0-9]+==ERROR|SUMMARY|.*crash-|.*timeout-)"
  fuzzer_status=${PIPESTATUS[0]}
  set -e
  # The fuzzer's own status: one that could not start, or stopped on a
  # finding it wrote nowhere, is a failure too.
  if [ "$fuzzer_status" -ne 0 ]; then
    echo "$target: exited with status $fuzzer_status"
    status=1
  fi
  if ls "$out"/crash-* "$out"/timeout-* "$out"/oom-* >/dev/null 2>&1; then
    echo "$target: findings in $out"
    status=1
  fi
done
exit $status
