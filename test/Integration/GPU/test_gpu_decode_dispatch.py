"""The decode-sized dispatch that also writes the row tiles, on a GPU machine.

Up to 256 selections (T * k) one block sorts them by expert, and by default
(`dispatch-row-tiles`) that block also writes the grouped matmuls' row-tile
schedule, so a decode call launches four kernels: the dispatch, the gate/up
and down matmuls and the combine. The `<shape>@dispatch-row-tiles=false`
artifacts are the same layer with the schedule launched on its own after the
dispatch (five kernels). Both come from `bash utils/build-gpu-artifacts.sh`
(no GPU needed); the checks skip cleanly without a GPU. Run them with
pytest, or as `python3 test/Integration/GPU/test_gpu_decode_dispatch.py`.

- Each benchmark shape, the K-tail edge and 300 experts (more than the
  block's threads), at T in {1, 7, 32} and at the first T past one block
  (the chunked sort, then the schedule kernel), with random routing, half
  the experts without tokens, every selection on expert 0, every selection
  on the last expert, and every token on the same k experts: the output is
  bitwise that of the separate schedule, and within the bf16 bound of torch
  fp32.
- The kernels a call launches (torch.profiler): at T in {1, 7, 32} four,
  the dispatch's one-block kernel `moe_dispatch_block_row_tiles` and no
  `moe_tile_schedule`; one more with the separate schedule; past one block
  the same kernels on both.
"""


from device_artifacts import artifact_index as artifacts, torch  # noqa: E402
from device_artifacts import load_module as load  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

from moe_mlir import torch_reference  # noqa: E402

BF16_BOUND = 2e-2
SHAPES = ("mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3", "edge-tail", "edge-experts")
DECODE_TOKENS = (1, 7, 32)
#: Selections one dispatch block sorts (and schedules the tiles of).
BLOCK_SELECTIONS = 256
SEPARATE = "dispatch-row-tiles=false"


def _one_past_block(k):
    """The fewest tokens whose selections take the chunked sort."""
    return BLOCK_SELECTIONS // k + 1


def _half_experts(T, E, k):
    # Only the lower half of the experts gets tokens.
    return torch.stack([torch.randperm(E // 2)[:k] for _ in range(T)])


def _all_on_first(T, E, k):
    # Every selection on expert 0: one expert holds all T * k rows.
    return torch.zeros(T, k, dtype=torch.int64)


def _all_on_last(T, E, k):
    # Every selection on the last expert, whose rows end the routed ones.
    return torch.full((T, k), E - 1, dtype=torch.int64)


def _same_experts(T, E, k):
    # Every token picks experts 0..k-1: those get all tokens, the rest none.
    return torch.arange(k).repeat(T, 1)


ROUTINGS = {"random": None, "half the experts empty": _half_experts,
            "all on expert 0": _all_on_first, "all on the last expert": _all_on_last,
            "the same k experts": _same_experts}


def _pair(name):
    """A shape's default entry (the dispatch writes the tiles) and its entry
    with the separate schedule kernel."""
    entries = artifacts()
    separate = entries.get(f"{name}@{SEPARATE}")
    if separate is None:
        skip(f"no {name}@{SEPARATE} artifact (rebuild artifacts/gpu)")
    return entries[name], separate


def _operands(entry, weights, T, seed, ids_fn):
    tokens = torch_reference.make_tokens(T, entry["H"], entry["E"], entry["k"], seed)
    if ids_fn is not None:
        tokens["ids"] = ids_fn(T, entry["E"], entry["k"]).to(torch.int32).cuda().contiguous()
    return [tokens["x"], weights["w13"], weights["w2"], tokens["ids"], tokens["weights"]]


def _call(module, operands):
    y = torch.full_like(operands[0], float("nan"))
    module.call("experts", operands, [y])
    return y


def test_fused_schedule_matches_separate_kernel():
    failures = []
    for name in SHAPES:
        fused, separate = _pair(name)
        H, I, E, k = fused["H"], fused["I"], fused["E"], fused["k"]
        weights = torch_reference.make_weights(H, I, E, seed=31)
        for T in DECODE_TOKENS + (_one_past_block(k),):
            for label, ids_fn in ROUTINGS.items():
                operands = _operands(fused, weights, T, 700 + T, ids_fn)
                y = _call(load(fused), operands)
                y_separate = _call(load(separate), operands)
                torch.cuda.synchronize()
                error = torch_reference.relative_error(
                    y, torch_reference.reference_fp32(*operands))
                same = bool(torch.equal(y, y_separate))
                print(f"  {name:14s} T={T:3d} {label:24s} rel err {error:.2e} "
                      f"bitwise as the separate schedule: {same}", flush=True)
                if not (same and error <= BF16_BOUND):
                    failures.append((name, T, label, error, same))
        del weights
        torch.cuda.empty_cache()
    assert not failures, failures


def _launched_kernels(module, operands):
    """The moe kernels one call launches, in order (after a warm-up call)."""
    from torch.profiler import ProfilerActivity, profile

    y = torch.empty_like(operands[0])
    module.call("experts", operands, [y])
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        module.call("experts", operands, [y])
        torch.cuda.synchronize()
    events = [e for e in prof.events()
              if e.device_type == torch.autograd.DeviceType.CUDA and e.name.startswith("moe_")]
    return [e.name for e in sorted(events, key=lambda e: e.time_range.start)]


def test_decode_calls_launch_four_kernels():
    failures = []
    for name in SHAPES:
        fused, separate = _pair(name)
        H, I, E, k = fused["H"], fused["I"], fused["E"], fused["k"]
        weights = torch_reference.make_weights(H, I, E, seed=37)
        for T in DECODE_TOKENS:
            operands = _operands(fused, weights, T, 800 + T, None)
            kernels = _launched_kernels(load(fused), operands)
            before = _launched_kernels(load(separate), operands)
            print(f"  {name:14s} T={T:3d} {len(kernels)} kernels {kernels}; "
                  f"separate schedule {len(before)}", flush=True)
            ok = (len(kernels) == 4 and kernels[0] == "moe_dispatch_block_row_tiles"
                  and not any(n.startswith("moe_tile_schedule") for n in kernels)
                  and len(before) == 5 and before[0] == "moe_dispatch_block"
                  and before[1].startswith("moe_tile_schedule"))
            if not ok:
                failures.append((name, T, kernels, before))
        T = _one_past_block(k)
        operands = _operands(fused, weights, T, 900, None)
        kernels = _launched_kernels(load(fused), operands)
        before = _launched_kernels(load(separate), operands)
        print(f"  {name:14s} T={T:3d} (chunked) {kernels}", flush=True)
        if not (kernels == before and "moe_dispatch_count" in kernels
                and any(n.startswith("moe_tile_schedule") for n in kernels)):
            failures.append((name, T, kernels, before))
        del weights
        torch.cuda.empty_cache()
    assert not failures, failures


if __name__ == "__main__":
    run_tests(globals())
