#!/usr/bin/env bash
# Runs the GPU checks and timings on a machine with an NVIDIA GPU, torch and
# the artifacts of utils/build-gpu-artifacts.sh (MOE_GPU_ARTIFACTS, default
# artifacts/gpu), in the order given, within a wall-clock budget, and prints
# one summary line per step last.
#
#   bash utils/run-gpu-checks.sh [step ...]
#
# A step is the name of a test file in test/Integration/GPU without its
# `test_` prefix and `.py` suffix (fp8_gpu, gpu_kernels, ...), or one of:
#   tests        every test file there, in name order
#   bench        gpu.py's bf16 table (python/benchmarks/gpu.py)
#   bench-fp8    gpu.py --fp8
#   bench-wonly  gpu.py --weight-only
#   sanitize     utils/gpu-sanitize.sh (its tools from MOE_SANITIZE_TOOLS,
#                default racecheck initcheck; MOE_SANITIZE_PASSES as there)
#   kernel-times gpu_kernel_times.py (MOE_GPU_KERNEL_TIMES_ARGS, default
#                "--fp8 --shapes qwen3-30b-a3b mixtral-8x7b --tokens 1 32")
#   profile      Nsight Compute (ncu, clocks left alone, caches flushed
#                before each kernel as it does by default) on the grouped
#                matmuls of one gpu_profile_calls.py call per shape
#                (MOE_GPU_PROFILE_ARGS, default "--fp8 --shapes mixtral-8x7b
#                qwen3-30b-a3b --tokens 1"): speed of light, warp states,
#                occupancy, scheduler, memory, launch and source-counter
#                (where warps stall, by SASS line) sections
# Without steps: tests, then bench, bench-fp8 and bench-wonly.
#
# Environment: MOE_GPU_BENCH_ARGS, MOE_GPU_BENCH_FP8_ARGS and
# MOE_GPU_BENCH_WONLY_ARGS (more gpu.py arguments, e.g. "--shapes
# qwen3-30b-a3b --tokens 1 32"), MOE_GPU_CHECK_BUDGET (seconds for all steps, default 540; a
# step gets at most what is left, and none starts with under 15 s left),
# MOE_GPU_CHECK_STEP_LIMIT (seconds a step may take, default 240),
# MOE_GPU_CHECK_LOGS (where each step's log goes, default gpu-check-logs/;
# the benches' --json files go there too). Exits non-zero if a step failed,
# timed out or was not reached.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PYTHONUNBUFFERED=1
export MOE_GPU_ARTIFACTS=${MOE_GPU_ARTIFACTS:-$root/artifacts/gpu}
budget=${MOE_GPU_CHECK_BUDGET:-540}
step_limit=${MOE_GPU_CHECK_STEP_LIMIT:-240}
logs=${MOE_GPU_CHECK_LOGS:-gpu-check-logs}
for value in "$budget" "$step_limit"; do
  if ! [[ "$value" =~ ^[1-9][0-9]*$ ]]; then
    echo "run-gpu-checks: budgets are whole seconds, got '$value'" >&2
    exit 2
  fi
done
mkdir -p "$logs"
summary="$logs/summary.txt"
: > "$summary"
start=$(date +%s)
status=0

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests bench bench-fp8 bench-wonly)
expanded=()
for step in "${steps[@]}"; do
  if [ "$step" = tests ]; then
    for file in test/Integration/GPU/test_*.py; do
      name=$(basename "$file" .py)
      expanded+=("${name#test_}")
    done
  else
    expanded+=("$step")
  fi
done

command_of() {
  case "$1" in
    bench) echo "python3 python/benchmarks/gpu.py ${MOE_GPU_BENCH_ARGS:-} --json $logs/bench.json" ;;
    bench-fp8) echo "python3 python/benchmarks/gpu.py --fp8 ${MOE_GPU_BENCH_FP8_ARGS:-} --json $logs/bench-fp8.json" ;;
    bench-wonly) echo "python3 python/benchmarks/gpu.py --weight-only ${MOE_GPU_BENCH_WONLY_ARGS:-} --json $logs/bench-wonly.json" ;;
    sanitize) echo "env MOE_SANITIZE_LOGS=$logs/sanitize bash utils/gpu-sanitize.sh ${MOE_SANITIZE_TOOLS:-racecheck initcheck}" ;;
    kernel-times) echo "python3 python/benchmarks/gpu_kernel_times.py ${MOE_GPU_KERNEL_TIMES_ARGS:---fp8 --shapes qwen3-30b-a3b mixtral-8x7b --tokens 1 32}" ;;
    profile) echo "ncu --clock-control none --kernel-name regex:moe_grouped_matmul --section SpeedOfLight --section WarpStateStats --section Occupancy --section SchedulerStats --section MemoryWorkloadAnalysis --section LaunchStats --section SourceCounters python3 python/benchmarks/gpu_profile_calls.py --calls 1 ${MOE_GPU_PROFILE_ARGS:---fp8 --shapes mixtral-8x7b qwen3-30b-a3b --tokens 1}" ;;
    *)
      if [ -f "test/Integration/GPU/test_$1.py" ]; then
        echo "python3 test/Integration/GPU/test_$1.py"
      fi ;;
  esac
}

for step in "${expanded[@]}"; do
  command=$(command_of "$step")
  if [ -z "$command" ]; then
    echo "run-gpu-checks: unknown step '$step'" >&2
    exit 2
  fi
done

for step in "${expanded[@]}"; do
  left=$(( budget - ($(date +%s) - start) ))
  if [ "$left" -lt 15 ]; then
    echo "$step: not run (the budget is spent)" >> "$summary"
    status=1
    continue
  fi
  limit=$(( left < step_limit ? left : step_limit ))
  t0=$(date +%s)
  # Through bash -c, so quoted arguments in MOE_GPU_BENCH_*_ARGS (shapes
  # with options: 'mixtral-8x7b@small-k=64 small-stages=2') stay whole.
  timeout "$limit" bash -c "$(command_of "$step")" > "$logs/$step.log" 2>&1
  rc=$?
  results=$(grep -E '^(PASS|FAIL|SKIP)' "$logs/$step.log" | cut -d' ' -f1 | sort | uniq -c | tr -s ' \n' ' ')
  [ "$rc" -eq 124 ] && results="timed out after ${limit} s; $results"
  echo "$step: exit $rc, $(( $(date +%s) - t0 )) s; $results" >> "$summary"
  [ "$rc" -ne 0 ] && status=1
done

for step in "${expanded[@]}"; do
  [ -f "$logs/$step.log" ] || continue
  if grep -q -E '^FAIL|Traceback' "$logs/$step.log"; then
    echo "== $step: failures"
    grep -E -A6 '^FAIL|Traceback' "$logs/$step.log" | head -30
  fi
  case "$step" in
    bench*|sanitize|kernel-times) echo "== $step"; grep -v '^\s*$' "$logs/$step.log" | tail -20 ;;
    profile) echo "== $step"; grep -E 'moe_grouped_matmul|Duration|Memory Throughput|Compute \(SM\) Throughput|DRAM Throughput|Achieved Occupancy|Registers Per Thread|Warp Cycles Per Issued|Grid Size|Block Size|Waves Per SM' "$logs/$step.log" | head -40 ;;
  esac
done
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader 2>/dev/null \
  | sed 's/^/card: /'
echo "== summary"
cat "$summary"
exit $status
