#!/usr/bin/env bash
# Runs every lowered GPU kernel (test/Integration/GPU/sanitize_kernels.py: each
# at two sizes, checked against its reference) under each compute-sanitizer
# tool, on a machine with an NVIDIA GPU and the CUDA toolkit. Only the
# project's kernels (names starting with moe_) are instrumented; torch's own
# kernels run plainly. torch's caching allocator is off, so every tensor is an
# allocation of its own whose bounds memcheck knows, and what is freed goes
# back to the device (leaks are not checked: torch keeps its context to exit).
# Each pass of the file (`sanitize_kernels.py --list`) runs in a process of its
# own. Each tool's log goes to $MOE_SANITIZE_LOGS (default sanitize-logs/), and
# the script prints one line per tool (its passes' PASS/FAIL/SKIP counts and the
# tool's summaries, counted) and exits non-zero if any tool reports an error or
# a check fails. MOE_SANITIZE_PASSES (names from `sanitize_kernels.py --list`)
# runs those passes only, in that order. MOE_SANITIZE_WEIGHT_BUDGET caps the expert weights of one
# experts case (bytes, default 4 GiB; see sanitize_kernels.py).
#
#   bash utils/build-gpu-artifacts.sh          # here: the artifacts
#   bash utils/gpu-sanitize.sh [tool ...]      # there: memcheck racecheck initcheck synccheck
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
logs=${MOE_SANITIZE_LOGS:-sanitize-logs}
mkdir -p "$logs"
sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
if [ ! -x "$sanitizer" ]; then
  echo "gpu-sanitize: compute-sanitizer not found (PATH or \$CUDA_HOME/bin)" >&2
  exit 2
fi
script="$root/test/Integration/GPU/sanitize_kernels.py"
mapfile -t passes < <(python3 "$script" --list)
if [ -n "${MOE_SANITIZE_PASSES:-}" ]; then
  # A subset of the passes, in the order given (each must be one of --list's).
  read -r -a chosen <<< "$MOE_SANITIZE_PASSES"
  for pass in "${chosen[@]}"; do
    if ! printf '%s\n' "${passes[@]}" | grep -qx -- "$pass"; then
      echo "gpu-sanitize: unknown pass '$pass' in MOE_SANITIZE_PASSES (sanitize_kernels.py --list: ${passes[*]})" >&2
      exit 2
    fi
  done
  passes=("${chosen[@]}")
fi
if [ ${#passes[@]} -eq 0 ]; then
  echo "gpu-sanitize: $script lists no passes" >&2
  exit 2
fi
tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(memcheck racecheck initcheck synccheck)
status=0
for tool in "${tools[@]}"; do
  case "$tool" in
    memcheck|racecheck|initcheck|synccheck) ;;
    *) echo "gpu-sanitize: unknown tool '$tool' (memcheck, racecheck, initcheck, synccheck)" >&2
       exit 2 ;;
  esac
  extra=()
  [ "$tool" = racecheck ] && extra=(--racecheck-report all)
  start=$(date +%s)
  : > "$logs/$tool.log"
  rc=0
  # One process per pass: what a pass holds on the device (modules,
  # workspaces, a failed case's tensors) cannot starve the next one.
  for pass in "${passes[@]}"; do
    echo "== $pass" >> "$logs/$tool.log"
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --tool "$tool" "${extra[@]}" --kernel-name kns=moe_ --error-exitcode 99 \
      --print-limit 20 python3 "$script" "$pass" >> "$logs/$tool.log" 2>&1
    pass_rc=$?
    [ $pass_rc -ne 0 ] && rc=$pass_rc
  done
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$logs/$tool.log" | sort | uniq -c | tr -s ' \n' ' ')
  checks="$(grep -c '^PASS' "$logs/$tool.log") passed, $(grep -c '^FAIL' "$logs/$tool.log") failed, $(grep -c '^SKIP' "$logs/$tool.log") skipped"
  echo "$tool: exit $rc, $checks, $(( $(date +%s) - start )) s; $summary"
  [ $rc -ne 0 ] && status=1
done
exit $status
