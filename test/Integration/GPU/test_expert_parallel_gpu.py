"""Expert parallelism on GPUs against the unpartitioned kernel and the fp32 reference.

Artifacts come from `bash utils/build-gpu-artifacts.sh`; the checks need torch with
CUDA and skip cleanly elsewhere (the two-rank check also needs two GPUs). Run them
with pytest, or as `python3 test/Integration/GPU/test_expert_parallel_gpu.py`.

- One GPU: P = 2 and 4 ranks run one after another
  (`moe_mlir.expert_parallel.run_ranks_in_sequence`) with the compiled local-expert
  and combine kernels, the all-to-all done by slicing. Uniform routing, every token
  on rank 0's experts (the other ranks receive nothing), and ranks with one token.
- gpt-oss's experts (interleaved swiglu_oai, gate/up and down biases) over P = 2 and
  4 ranks in sequence, each rank holding its experts' rows of the biases.
- More rows than CUDA launches blocks along y (65535), as one rank receives at
  deepseek-v3's T = 16384.
- Two GPUs: `python/benchmarks/expert_parallel.py --check-only` under torchrun, with
  NCCL's all-to-all, uniform and skewed, at T = 1 (one rank has no token), 7 and 300.
"""

import os
import subprocess
import sys


from device_artifacts import ARTIFACTS, ROOT, artifact_index as artifacts, torch  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

from moe_mlir import torch_reference  # noqa: E402


BF16_BOUND = 2e-2


def test_ranks_in_sequence_match_unpartitioned():
    entries = artifacts()
    from moe_mlir import expert_parallel as ep
    from moe_mlir.gpu import GpuModule

    reference_entry = entries["ep-small"]
    H, I, E, k = (reference_entry[key] for key in ("H", "I", "E", "k"))
    unpartitioned = GpuModule(ARTIFACTS / reference_entry["library"])
    combine = GpuModule(ARTIFACTS / entries["ep-small-combine"]["library"])
    weights = torch_reference.make_weights(H, I, E, seed=11)
    failures = []
    for ranks, sizes, skewed in [(2, [37, 29], False), (4, [20, 1, 13, 1], False),
                                 (4, [9, 16, 4, 7], True), (2, [1, 1], False)]:
        L = ep.local_experts(E, ranks)
        local = GpuModule(ARTIFACTS / entries[f"ep-small-of{ranks}"]["library"])
        T = sum(sizes)
        tokens = torch_reference.make_tokens(T, H, L if skewed else E, k, seed=T + ranks)
        x, ids, w = tokens["x"], tokens["ids"], tokens["weights"]
        received = {}

        def experts(rank, xs, row_ids, row_weights):
            received[rank] = xs.shape[0]
            owned = ep.owned_experts(E, ranks, rank)
            ys = torch.full_like(xs, float("nan"))
            if xs.shape[0]:
                mapping = torch.from_numpy(ep.expert_map(E, ranks, rank)).cuda()
                local.call("experts", [xs, weights["w13"][owned].contiguous(),
                                       weights["w2"][owned].contiguous(),
                                       row_ids.contiguous(), row_weights.contiguous(),
                                       mapping], [ys])
            return ys

        def combined(ys, order, row_weights):
            out = torch.full((row_weights.shape[0], H), float("nan"), dtype=ys.dtype,
                             device="cuda")
            combine.call("combine", [ys, order, row_weights], [out])
            return out

        starts = [sum(sizes[:r]) for r in range(ranks + 1)]
        inputs = [tuple(t[a:b].contiguous() for t in (x, ids, w))
                  for a, b in zip(starts[:-1], starts[1:])]
        y_ep = torch.cat(ep.run_ranks_in_sequence(inputs, E, experts, combined))
        again = torch.cat(ep.run_ranks_in_sequence(inputs, E, experts, combined))
        y_one = torch.full_like(x, float("nan"))
        operands = [x, weights["w13"], weights["w2"], ids, w]
        unpartitioned.call("experts", operands, [y_one])
        torch.cuda.synchronize()
        ref = torch_reference.reference_fp32(*operands)
        err = torch_reference.relative_error(y_ep, ref)
        vs_one = torch_reference.relative_error(y_ep, y_one.float())
        print(f"  P={ranks} tokens {sizes} skewed={skewed}: rows per rank "
              f"{[received[r] for r in range(ranks)]}, rel err {err:.2e}, "
              f"vs one kernel {vs_one:.2e}")
        if skewed and any(received[r] for r in range(1, ranks)):
            failures.append((ranks, sizes, "rows reached ranks without the experts"))
        if not (err <= BF16_BOUND and vs_one <= BF16_BOUND and torch.equal(y_ep, again)):
            failures.append((ranks, sizes, skewed, err, vs_one))
    assert not failures, failures


def test_ranks_in_sequence_gpt_oss_biases():
    entries = artifacts()
    from moe_mlir import expert_parallel as ep
    from moe_mlir.gpu import GpuModule

    combine = GpuModule(ARTIFACTS / entries["ep-small-combine"]["library"])
    failures = []
    for ranks, sizes in [(2, [37, 29]), (4, [20, 1, 0, 13]), (2, [1, 1])]:
        entry = entries[f"ep-gpt-oss-of{ranks}"]
        H, I, E, k = (entry[key] for key in ("H", "I", "E", "k"))
        local = GpuModule(ARTIFACTS / entry["library"])
        weights = torch_reference.make_weights(H, I, E, seed=23)
        gen = torch.Generator(device="cuda")
        gen.manual_seed(29 + ranks)
        biases = {name: (0.5 * torch.randn(E, n, generator=gen, device="cuda")).bfloat16()
                  for name, n in (("w13_bias", 2 * I), ("w2_bias", H))}
        T = sum(sizes)
        tokens = torch_reference.make_tokens(T, H, E, k, seed=T + 31 * ranks)
        x, ids, w = tokens["x"], tokens["ids"], tokens["weights"]

        def experts(rank, xs, row_ids, row_weights):
            owned = ep.owned_experts(E, ranks, rank)
            ys = torch.full_like(xs, float("nan"))
            if xs.shape[0]:
                mapping = torch.from_numpy(ep.expert_map(E, ranks, rank)).cuda()
                local.call("experts", [xs, weights["w13"][owned].contiguous(),
                                       weights["w2"][owned].contiguous(),
                                       biases["w13_bias"][owned].contiguous(),
                                       biases["w2_bias"][owned].contiguous(),
                                       row_ids.contiguous(), row_weights.contiguous(),
                                       mapping], [ys])
            return ys

        def combined(ys, order, row_weights):
            out = torch.full((row_weights.shape[0], H), float("nan"), dtype=ys.dtype,
                             device="cuda")
            if row_weights.shape[0]:
                combine.call("combine", [ys, order, row_weights], [out])
            return out

        starts = [sum(sizes[:r]) for r in range(ranks + 1)]
        inputs = [tuple(t[a:b].contiguous() for t in (x, ids, w))
                  for a, b in zip(starts[:-1], starts[1:])]
        y_ep = torch.cat(ep.run_ranks_in_sequence(inputs, E, experts, combined))
        torch.cuda.synchronize()
        ref = torch_reference.reference_fp32(x, weights["w13"], weights["w2"], ids, w,
                                             activation="swiglu_oai", **biases)
        err = torch_reference.relative_error(y_ep, ref)
        print(f"  gpt-oss P={ranks} tokens {sizes}: rel err {err:.2e}")
        if not err <= BF16_BOUND:
            failures.append((ranks, sizes, err))
    assert not failures, failures


def test_rows_past_the_grid_y_cap():
    # A rank can receive more than 65535 rows (CUDA's gridDim.y cap), as one
    # rank of deepseek-v3 does at T = 16384; so can a combine over that many
    # tokens. The kernels stride over the rows past the cap.
    entries = artifacts()
    from moe_mlir.gpu import GpuModule

    entry = entries["ep-small"]
    H, I, E, k = (entry[key] for key in ("H", "I", "E", "k"))
    module = GpuModule(ARTIFACTS / entry["library"])
    T = 70001
    inputs = {**torch_reference.make_weights(H, I, E, seed=5),
              **torch_reference.make_tokens(T, H, E, k, seed=6)}
    operands = torch_reference.experts_operands(inputs)
    y = torch.full_like(inputs["x"], float("nan"))
    module.call("experts", operands, [y])
    torch.cuda.synchronize()
    error = torch_reference.relative_error(y, torch_reference.reference_fp32(*operands))
    print(f"  T = {T}: rel err {error:.2e}")
    assert error <= BF16_BOUND


def test_torchrun_two_ranks():
    artifacts()
    if torch.cuda.device_count() < 2:
        skip("needs two GPUs")
    env = dict(os.environ, NCCL_NVLS_ENABLE="0")
    for extra in ([], ["--skew"]):
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                   str(ROOT / "python" / "benchmarks" / "expert_parallel.py"),
                   "--shape", "small", "--tokens", "1", "7", "300", "--check-only",
                   *extra]
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=600)
        print(result.stdout[-3000:])
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.count("check=ok") == 3, result.stdout[-3000:]


if __name__ == "__main__":
    run_tests(globals())
