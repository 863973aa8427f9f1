#!/usr/bin/env bash
# Builds the benchmark shapes' expert halves (bf16 and FP8) with the compiler
# of another commit, into artifacts/gpu-baseline-<commit> (or the folder
# given), so a change is timed against it in the same run on the same card:
#
#   bash utils/build-gpu-baseline-artifacts.sh <commit> [out]
#   # there, both from one call:
#   MOE_GPU_ARTIFACTS=artifacts/gpu-baseline-<commit> python3 python/benchmarks/gpu_kernel_times.py
#   python3 python/benchmarks/gpu_kernel_times.py
#
# The commit is checked out in a temporary worktree (build-baseline/) and
# built there with utils/build.sh (ccache serves what did not change), then
# its own python/benchmarks/gpu_baseline_artifacts.py builds the artifacts;
# the worktree is removed after. A commit older than that script gets this
# tree's copy (it needs gpu_artifacts.py's BENCHMARK_SHAPES and FP8_IR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 <commit> [out]" >&2
  exit 2
fi
commit=$(git -C "$root" rev-parse --short --verify --quiet "$1^{commit}") || {
  echo "build-gpu-baseline-artifacts: '$1' names no commit" >&2
  exit 2
}
out=$(realpath -m "${2:-$root/artifacts/gpu-baseline-$commit}")
# Inside the checkout (an ignored folder): ccache's base_dir, where set to a
# folder above it, then serves the worktree's unchanged files from the cache.
mkdir -p "$root/build-baseline"
tree=$(mktemp -d "$root/build-baseline/tree-XXXXXX")
cleanup() { git -C "$root" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"; }
trap cleanup EXIT
git -C "$root" worktree add --detach --quiet "$tree" "$commit"
script="$tree/python/benchmarks/gpu_baseline_artifacts.py"
[ -f "$script" ] || cp "$root/python/benchmarks/gpu_baseline_artifacts.py" "$script"
bash "$tree/utils/build.sh" "$tree/build" > "$tree/build.log" 2>&1 || {
  echo "build-gpu-baseline-artifacts: building $commit failed; the end of its log:" >&2
  tail -20 "$tree/build.log" >&2
  exit 1
}
python3 "$script" --out "$out"
