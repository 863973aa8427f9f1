#!/usr/bin/env bash
# Builds the libFuzzer targets with ASan and UBSan in a build directory of
# their own and runs each on a seed corpus made from the tests.
#
# Usage: utils/run-fuzzers.sh [seconds per target]   (default 60)
#   MOE_FUZZ_BUILD   build directory (default build-fuzz)
#   MOE_FUZZ_JOBS    fuzzing processes per target (default 1)
#   MOE_FUZZ_TARGETS the targets to run (default: all four)
# Targets: moe-ir-fuzzer (the IR parser and verifier), moe-config-fuzzer
# (moe-compile's config reader), moe-cpu-pipeline-fuzzer (valid layers drawn
# from the input through moe-lower-to-cpu-pipeline and LLVM IR),
# moe-gpu-lowering-fuzzer (the same through moe-lower-to-nvvm-pipeline to
# PTX). A finding is written to $MOE_FUZZ_BUILD/fuzz/<target>/crash-* (the
# pipeline targets print the moe-compile --layer command that repeats it)
# and the script exits non-zero.
set -euo pipefail
if [ ! -x /usr/bin/time ]; then
  echo "run-fuzzers: /usr/bin/time (Debian's time package) is needed to count CPU time" >&2
  exit 2
fi
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
    -DMOE_MLIR_CCACHE=ON \
    -DLLVM_USE_LINKER=lld \
    -DMLIR_DIR="$llvm/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$llvm/bin/lit" \
    -DLLVM_USE_SANITIZER="Address;Undefined" \
    -DLLVM_USE_SANITIZE_COVERAGE=ON \
    -DMOE_MLIR_ENABLE_FUZZERS=ON
fi
all_targets="moe-ir-fuzzer moe-config-fuzzer moe-cpu-pipeline-fuzzer moe-gpu-lowering-fuzzer"
targets=${MOE_FUZZ_TARGETS:-$all_targets}
for target in $targets; do
  case " $all_targets " in
    *" $target "*) ;;
    *) echo "run-fuzzers: unknown target '$target' ($all_targets)" >&2; exit 2 ;;
  esac
done
# Only the fuzzers and the libraries they link.
# shellcheck disable=SC2086
ninja -C "$build" -j "${MOE_MLIR_JOBS:-2}" $targets

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
# The pipeline targets read their input as the generator's choices: no test
# file is one. Their seeds are 64 fixed pseudo-random inputs of 256 bytes,
# long enough that every field of the layer and the options is drawn from
# them (libFuzzer would otherwise start from inputs of a few bytes, which
# leave most fields at their first choice).
mkdir -p "$seeds/pipeline"
python3 - "$seeds/pipeline" <<'PY'
import pathlib, random, sys
out = pathlib.Path(sys.argv[1])
generator = random.Random(19)
for i in range(64):
    (out / f"{i:02d}.bin").write_bytes(bytes(generator.randrange(256) for _ in range(256)))
PY

# Leak checking is off (the IR target keeps one context for every input);
# manual poisoning too: Debian's LLVM and MLIR libraries are not instrumented
# and their bump allocators never unpoison what instrumented inline code
# poisoned. Undefined behaviour is a finding like an ASan report.
export ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

status=0
for target in $targets; do
  kind=${target#moe-}; kind=${kind%-fuzzer}
  out=$build/fuzz/$target
  mkdir -p "$out/corpus"
  # The pipeline targets read a few hundred bytes of layer and options, at
  # full length from the start (-len_control=0), and one input lowers a
  # whole layer: a minute is a hang there.
  case $kind in
    ir|config) seed_dirs=("$seeds/$kind"); timeout=10; max_len=16384; len_control=100 ;;
    *) seed_dirs=("$seeds/pipeline"); timeout=60; max_len=512; len_control=0 ;;
  esac
  echo "== $target: $seconds s"
  # -rss_limit_mb: a module that needs more memory than this is a finding.
  # With -jobs, libFuzzer writes fuzz-<job>.log files into the current
  # folder: run from the target's own.
  set +e
  # GNU time counts the CPU the fuzzing processes got (libFuzzer waits for
  # its -jobs workers, so theirs is included): at nice 19 on a busy machine
  # that is less than wall time x jobs, and the CPU time is what a campaign
  # is measured in. It goes to a ledger beside the corpora.
  (cd "$out" && /usr/bin/time -f "%U %S %e" -o "$out/cpu.txt" \
      "$build/bin/$target" "$out/corpus" "${seed_dirs[@]}" \
      -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
      -max_len="$max_len" -len_control="$len_control" \
      -jobs="$jobs" -workers="$jobs" \
      -artifact_prefix="$out/" -print_final_stats=1) 2>&1 | tee "$out/log.txt" \
    | grep -E "^(#[0-9]+ +DONE|stat::|==[0-9]+==ERROR|==moe-.*FINDING|  moe-compile|SUMMARY|.*crash-|.*timeout-)"
  fuzzer_status=${PIPESTATUS[0]}
  set -e
  read -r user sys wall < <(tail -n 1 "$out/cpu.txt")
  cpu=$(python3 -c "print(round($user + $sys))")
  echo "$target: ${cpu} CPU-seconds in ${wall} s of wall time"
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "$jobs" "$wall" "$cpu" \
    >> "$build/fuzz/cpu-ledger.tsv"
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
