"""Every lowered GPU kernel at two sizes, for compute-sanitizer.

`bash utils/gpu-sanitize.sh` runs this file under each compute-sanitizer tool
(memcheck, racecheck, initcheck, synccheck), instrumenting the project's
kernels only (their names start with `moe_`), one pass (test_* function) per
process, so that what one pass holds cannot starve the next. Each call is
also checked against its reference, so a kernel that the tool slows or
reorders still has to be right:

- the expert half of every experts artifact (the benchmark shapes, the edge
  shapes, f16, every kernel option) whose weights fit the pass's memory
  budget (`MOE_SANITIZE_WEIGHT_BUDGET` bytes, 4 GiB by default: DeepSeek-V3's
  22.5 GB do not fit beside the tool), at T = 1 (the decode kernels) and at a
  T whose rows per expert select the prefill kernels, with an expert-less and
  a one-expert routing at the larger size; every kernel option and edge
  shape keeps at least one artifact within the budget (`plan_experts`), so
  the decode and prefill kernels, ragged tiles (edge-tail, edge-plain) and
  more experts than a block has threads (edge-experts) are all covered;
  each case's tensors are freed before the next;
- gpt-oss's biased experts, routing, capacity dispatch, expert choice, both
  losses and whole layers, through the GPU tests' own cases, which stay at a
  few hundred tokens (gpt-oss's at 4096 at most);
- the FP8 layers and experts entries of test_fp8_gpu.py (small moe-compile
  layers, H <= 768: the activation quantization and both FP8 main loops, at
  up to 4096 tokens);
- the weight-only experts (MXFP4, int4, int8; bf16 and f16 activations)
  whose quantized weights fit the budget, at T = 1 and 300 with random
  routing and with every selection on the last expert.

`python3 sanitize_kernels.py [test_name ...]` runs those passes only
(`--list` prints them). Without a GPU it skips, as the tests do.
"""

import gc
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import device_artifacts  # noqa: E402
import test_gpu_kernels as kernels  # noqa: E402
import test_gpu_routing_ops as routing_ops  # noqa: E402
import test_fp8_gpu as fp8  # noqa: E402
import test_gpt_oss_gpu as gpt_oss  # noqa: E402
import test_weight_only_gpu as weight_only  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

#: Kinds of artifact that hold the `experts` function of the expert half.
EXPERTS_KINDS = ("experts", "experts-f16", "experts-variant")
#: Bytes of expert weights one case may allocate under the tools, by default.
DEFAULT_WEIGHT_BUDGET = 4 << 30


def weight_bytes(entry):
    """The bytes of an experts artifact's w13 [E, 2I, H] and w2 [E, H, I]
    (bf16 or f16)."""
    return 3 * entry["E"] * entry["I"] * entry["H"] * 2


def kernel_group(entry):
    """What an artifact covers beside its shape: its kind and pipeline
    options (the part of its name after '@'), e.g. ("experts-variant",
    "wgmma=false")."""
    name = entry["name"]
    return entry["kind"], name.split("@", 1)[1] if "@" in name else ""


def plan_experts(entries, budget):
    """The experts artifacts a sanitizer pass runs, and those it leaves out
    (name, why): every artifact of EXPERTS_KINDS whose weights fit `budget`.
    Raises ValueError where the budget would leave a kernel group (kind and
    options) or an edge shape with no artifact, since the pass would then
    stop covering kernels rather than shapes."""
    chosen, left_out = [], []
    for entry in entries:
        if entry["kind"] not in EXPERTS_KINDS:
            continue
        if weight_bytes(entry) <= budget:
            chosen.append(entry)
        else:
            left_out.append((entry["name"], f"weights {weight_bytes(entry) / 2**30:.1f} GiB "
                                            f"> budget {budget / 2**30:.1f} GiB"))
    groups = {kernel_group(e) for e in entries if e["kind"] in EXPERTS_KINDS}
    covered = {kernel_group(e) for e in chosen}
    edges = {e["name"] for e in entries
             if e["kind"] == "experts" and e["name"].startswith("edge-")}
    missing = sorted(map(str, groups - covered)) + sorted(
        edges - {e["name"] for e in chosen})
    if missing:
        raise ValueError(f"a weight budget of {budget} bytes leaves no artifact for "
                         f"{', '.join(missing)}")
    return chosen, left_out


def weight_budget():
    """The bytes of expert weights one case may allocate:
    MOE_SANITIZE_WEIGHT_BUDGET, or DEFAULT_WEIGHT_BUDGET."""
    return int(os.environ.get("MOE_SANITIZE_WEIGHT_BUDGET", DEFAULT_WEIGHT_BUDGET))


def experts_cases(entry):
    """(label, T, routing) of one artifact: decode, prefill, and at the prefill
    size half the experts without tokens and every token on the same k."""
    large = prefill_tokens(entry)
    return (("T=1", 1, None), (f"T={large}", large, None),
            ("empty experts", large, kernels._half_experts),
            ("all on the same experts", large, kernels._same_experts))


def prefill_tokens(entry):
    """The smallest T of at least 64 whose average rows per expert (T * k / E)
    reach 16, past every `large_rows_per_expert` the selection picks."""
    tokens = -(-16 * entry["E"] // entry["k"])
    return max(64, tokens)


def release_device_memory():
    """Frees what the last case left: its tensors (collected), the modules'
    workspaces, and the caching allocator's blocks, where one is on."""
    gc.collect()
    kernels.torch.cuda.synchronize()
    kernels.torch.cuda.empty_cache()


def free_device_memory():
    """The device's free memory in GiB, as the driver reports it (a figure
    that falls from artifact to artifact means memory that is not returned)."""
    free, _ = kernels.torch.cuda.mem_get_info()
    return f"{free / 2**30:.1f} GiB free"


def test_experts_at_two_sizes():
    if kernels.torch is None or not kernels.torch.cuda.is_available():
        skip("no CUDA device")
    budget = weight_budget()
    chosen, left_out = plan_experts(kernels.artifacts().values(), budget)
    for name, why in left_out:
        print(f"  experts {name:34s} left out: {why}", flush=True)
    failures = []
    for entry in chosen:
        print(f"  experts {entry['name']:34s} {free_device_memory()}", flush=True)
        for label, T, ids_fn in experts_cases(entry):
            error = kernels.experts_case(entry, T, seed=31 + T, ids_fn=ids_fn)
            print(f"  experts {entry['name']:34s} {label:24s} rel err {error:.2e}",
                  flush=True)
            if not error <= kernels.BF16_BOUND:
                failures.append((entry["name"], label, error))
            # The module's workspace grows to the largest call: dropped with
            # the case's inputs, so each case starts from what it needs.
            device_artifacts.clear_modules()
            release_device_memory()
    assert not failures, failures


def quantized_weight_bytes(entry):
    """The bytes of a weight-only artifact's codes (4 or 8 bits a weight; the
    scales and zero points are a few percent more)."""
    bits = 8 if entry["format"] == "int8" else 4
    return 3 * entry["E"] * entry["H"] * entry["I"] * bits // 8


def test_weight_only_experts():
    budget = weight_budget()
    failures = []
    for entry in weight_only.entries():
        if quantized_weight_bytes(entry) > budget:
            print(f"  weight-only {entry['name']:26s} left out: weights "
                  f"{quantized_weight_bytes(entry) / 2**30:.1f} GiB > budget "
                  f"{budget / 2**30:.1f} GiB", flush=True)
            continue
        print(f"  weight-only {entry['name']:26s} {free_device_memory()}", flush=True)
        last = kernels.torch.full((300, entry["k"]), entry["E"] - 1,
                                  dtype=kernels.torch.int32, device="cuda")
        failures += weight_only.check(
            [(entry, "T=1", weight_only.run_case(entry, 1, seed=41)),
             (entry, "T=300", weight_only.run_case(entry, 300, seed=42)),
             (entry, "one expert", weight_only.run_case(entry, 300, seed=43, ids=last))])
        device_artifacts.clear_modules()
        release_device_memory()
    assert not failures, failures


def test_fp8_layers():
    fp8.test_fp8_layers_match_oracle()


def test_fp8_experts():
    fp8.test_fp8_experts_entries()


def test_routing_kernels():
    kernels.test_routing_matches_oracle()


def test_layers():
    kernels.test_layers_match_oracle()


def test_capacity_dispatch():
    routing_ops.test_capacity_dispatch_matches_oracle()


def test_expert_choice():
    routing_ops.test_expert_choice_matches_oracle()


def test_losses():
    routing_ops.test_router_losses_match_oracle()


def test_capacity_layers():
    routing_ops.test_capacity_layers_match_oracle()


def test_gpt_oss_experts():
    gpt_oss.test_experts_kernels_under_each_pipeline_option()


if __name__ == "__main__":
    run_tests(globals(), sys.argv[1:])
