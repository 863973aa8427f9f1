"""Every lowered GPU kernel at two sizes, for compute-sanitizer.

`bash utils/gpu-sanitize.sh` runs this file under each compute-sanitizer tool
(memcheck, racecheck, initcheck, synccheck), instrumenting the project's
kernels only (their names start with `moe_`). Each call is also checked
against its reference, so a kernel that the tool slows or reorders still has
to be right:

- the expert half of every experts artifact (the benchmark shapes, the edge
  shapes, f16, every kernel option, gpt-oss's biased experts) at T = 1 (the
  decode kernels) and at a T whose rows per expert select the prefill
  kernels, with an expert-less and a one-expert routing at the larger size;
- routing, capacity dispatch, expert choice, both losses and whole layers,
  through the GPU tests' own cases, which stay at a few hundred tokens.

Without a GPU it skips, as the tests do.
"""

import gc
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import test_gpu_kernels as kernels  # noqa: E402
import test_gpu_routing_ops as routing_ops  # noqa: E402
import test_gpt_oss_gpu as gpt_oss  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

#: Kinds of artifact that hold the `experts` function of the expert half.
EXPERTS_KINDS = ("experts", "experts-f16", "experts-variant")


def prefill_tokens(entry):
    """The smallest T of at least 64 whose average rows per expert (T * k / E)
    reach 16, past every `large_rows_per_expert` the selection picks."""
    tokens = -(-16 * entry["E"] // entry["k"])
    return max(64, tokens)


def test_experts_at_two_sizes():
    if kernels.torch is None or not kernels.torch.cuda.is_available():
        skip("no CUDA device")
    failures = []
    for entry in kernels.artifacts().values():
        if entry["kind"] not in EXPERTS_KINDS:
            continue
        large = prefill_tokens(entry)
        for label, T, ids_fn in (("T=1", 1, None), (f"T={large}", large, None),
                                 ("empty experts", large, kernels._half_experts),
                                 ("all on the same experts", large,
                                  kernels._same_experts)):
            error = kernels.experts_case(entry, T, seed=31 + T, ids_fn=ids_fn)
            print(f"  experts {entry['name']:34s} {label:24s} rel err {error:.2e}",
                  flush=True)
            if not error <= kernels.BF16_BOUND:
                failures.append((entry["name"], label, error))
        # One entry's modules and inputs at a time: under the sanitizers the
        # largest shape's weights leave no room for a second set.
        kernels._modules.clear()
        gc.collect()
        kernels.torch.cuda.synchronize()
        kernels.torch.cuda.empty_cache()
    assert not failures, failures


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
    run_tests(globals())
