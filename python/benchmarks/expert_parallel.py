"""Expert parallelism over NCCL: a layer's expert half on P GPUs against one GPU.

Launch one process per GPU with torchrun, over artifacts built here by
``python3 python/benchmarks/gpu_artifacts.py`` (ctypes; no MLIR there):

    torchrun --nproc-per-node=2 python/benchmarks/expert_parallel.py \\
        [--shape deepseek-v3|small] [--tokens 4096 16384] [--check-only] [--skew]

A global batch of T tokens is split evenly over the P ranks; rank r holds experts
r·E/P ..< (r+1)·E/P (``moe_mlir.expert_parallel``). Rank 0 makes the weights and
tokens (``gpu_peers``: near-uniform routing, or with ``--skew`` every token routed
to rank 0's experts) and broadcasts them. For each T:

- check: the P ranks' outputs, gathered on rank 0, against the unpartitioned
  compiled kernel over all T tokens on rank 0's GPU and against the torch fp32
  reference; a second call must give bitwise the same output; every buffer the
  kernels write is poisoned with NaN first;
- timing (unless ``--check-only``): the mean time of a whole expert-parallel
  call (both all-to-alls, the local experts, the combine; the slowest rank),
  of the local experts alone, and of one GPU running the unpartitioned kernel
  over all T tokens, each over the same number of calls after warm-up.

The table is printed last by rank 0; the exit status is non-zero when a check
failed. Routing is given, as in ``gpu.py``. NCCL_NVLS_ENABLE=0 is kept set.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu"))

import gpu_peers  # noqa: E402

#: Relative error bound (max |y - ref| / max |ref|) of bf16 outputs.
BF16_BOUND = 2e-2


def token_split(T: int, ranks: int) -> list[int]:
    """T tokens over the ranks as evenly as possible (the first ranks get the rest)."""
    return [T // ranks + (r < T % ranks) for r in range(ranks)]


def broadcast_new(make, shape, dtype, rank: int):
    """``make()`` on rank 0, sent to every rank."""
    import torch
    import torch.distributed as dist

    tensor = make() if rank == 0 else torch.empty(shape, dtype=dtype, device="cuda")
    dist.broadcast(tensor, src=0)
    return tensor


def time_calls(fn, reps: int, warmup: int, collective: bool = True) -> float:
    """Mean milliseconds per call over ``reps`` calls; with ``collective``, the
    ranks start together and the slowest rank's time is returned."""
    import torch
    import torch.distributed as dist

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    if collective:
        dist.barrier()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    ms = torch.tensor([start.elapsed_time(end) / reps], device="cuda")
    if collective:
        dist.all_reduce(ms, op=dist.ReduceOp.MAX)
    return float(ms.item())


def main() -> int:
    import torch
    import torch.distributed as dist

    from moe_mlir import expert_parallel as ep
    from moe_mlir.gpu import GpuModule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="deepseek-v3")
    parser.add_argument("--tokens", nargs="*", type=int, default=[4096, 16384])
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--skew", action="store_true",
                        help="route every token to rank 0's experts")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--json", help="rank 0 also writes the rows here")
    args = parser.parse_args()

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    rank, ranks = dist.get_rank(), dist.get_world_size()

    entries = gpu_peers.artifact_entries(ARTIFACTS)
    local_name = f"ep-{args.shape}-of{ranks}"
    if local_name not in entries:
        raise SystemExit(f"no artifact {local_name}: add {ranks} ranks for {args.shape} to "
                         "EP_RANKS in python/benchmarks/gpu_artifacts.py and rebuild")
    entry = entries[local_name]
    H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
    L = ep.local_experts(E, ranks)
    owned = ep.owned_experts(E, ranks, rank)

    weights = gpu_peers.make_weights(H, I, E, args.seed) if rank == 0 else None
    w13 = broadcast_new(lambda: weights["w13"], (E, 2 * I, H), torch.bfloat16, rank)
    w2 = broadcast_new(lambda: weights["w2"], (E, H, I), torch.bfloat16, rank)
    local_w13, local_w2 = w13[owned].clone(), w2[owned].clone()
    if rank != 0:
        del w13, w2
    weights = None
    torch.cuda.empty_cache()

    layer = ep.ExpertParallelExperts(
        GpuModule(ARTIFACTS / entry["library"]),
        GpuModule(ARTIFACTS / entries[f"ep-{args.shape}-combine"]["library"]),
        local_w13, local_w2, E, poison=True)
    single = (GpuModule(ARTIFACTS / entries[entry["unpartitioned"]]["library"])
              if rank == 0 else None)

    rows, failed = [], False
    for T in args.tokens:
        seed = args.seed + T
        experts_for_tokens = L if args.skew else E
        tokens = (gpu_peers.make_tokens(T, H, experts_for_tokens, k, seed)
                  if rank == 0 else None)
        x = broadcast_new(lambda: tokens["x"], (T, H), torch.bfloat16, rank)
        ids = broadcast_new(lambda: tokens["ids"], (T, k), torch.int32, rank)
        w = broadcast_new(lambda: tokens["weights"], (T, k), torch.float32, rank)
        sizes = token_split(T, ranks)
        begin = sum(sizes[:rank])
        mine = [t[begin:begin + sizes[rank]].contiguous() for t in (x, ids, w)]

        y = layer(*mine)
        again = layer(*mine)
        torch.cuda.synchronize()
        same = torch.tensor([int(torch.equal(y, again))], device="cuda")
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        received = layer.dispatch(*mine)
        received_rows = torch.tensor([received.rows.shape[0]], device="cuda")
        all_received = [torch.zeros_like(received_rows) for _ in range(ranks)]
        dist.all_gather(all_received, received_rows)
        if rank == 0:
            parts = [y] + [torch.empty(sizes[r], H, dtype=y.dtype, device="cuda")
                           for r in range(1, ranks)]
            for r in range(1, ranks):
                if sizes[r]:
                    dist.recv(parts[r], src=r)
            y_ep = torch.cat(parts)
        elif sizes[rank]:
            dist.send(y, dst=0)

        row = dict(shape=args.shape, T=T, ranks=ranks,
                   received="/".join(str(int(n.item())) for n in all_received))
        if rank == 0:
            operands = [x, w13, w2, ids, w]
            y_one = torch.full_like(x, float("nan"))
            single.call("experts", operands, [y_one])
            ref = gpu_peers.reference_fp32(*operands)
            row.update(err_ep=gpu_peers.relative_error(y_ep, ref),
                       err_one=gpu_peers.relative_error(y_one, ref),
                       ep_vs_one=gpu_peers.relative_error(y_ep, y_one.float()),
                       deterministic=bool(same.item()))
            del ref
            ok = (row["err_ep"] <= BF16_BOUND and row["ep_vs_one"] <= BF16_BOUND
                  and row["deterministic"])
            row["check"] = "ok" if ok else "FAIL"
            failed |= not ok
        if not args.check_only:
            row["ep_ms"] = time_calls(lambda: layer(*mine), args.reps, args.warmup)
            row["experts_ms"] = time_calls(lambda: layer.compute(received), args.reps,
                                           args.warmup)
            if rank == 0:
                row["one_ms"] = time_calls(lambda: single.call("experts", operands, [y_one]),
                                           args.reps, args.warmup, collective=False)
                row["speedup"] = row["one_ms"] / row["ep_ms"]
                row["ep_tok_s"] = T / row["ep_ms"] * 1e3
                row["one_tok_s"] = T / row["one_ms"] * 1e3
            dist.barrier()
        if rank == 0:
            rows.append(row)
            print(" ".join(f"{key}={value}" for key, value in row.items()), flush=True)
        del x, ids, w, mine, y, again, received, tokens
        torch.cuda.empty_cache()

    status = torch.tensor([int(failed)], device="cuda")
    dist.broadcast(status, src=0)
    if rank == 0:
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(rows))
        print()
        print(f"{torch.cuda.get_device_name()} x {ranks}, NCCL all-to-all; times in ms "
              f"(mean of {args.reps} calls)")
        print(gpu_peers.format_table(rows, [c for c in COLUMNS if c[0] in rows[0]]))
    dist.destroy_process_group()
    return int(status.item())


COLUMNS = [("shape", "shape"), ("T", "T"), ("ranks", "ranks"),
           ("received", "rows per rank"), ("check", "check"), ("err_ep", "err ep"),
           ("err_one", "err 1 GPU"), ("ep_vs_one", "ep vs 1 GPU"),
           ("one_ms", "1 GPU ms"), ("ep_ms", "ep ms"), ("experts_ms", "local experts ms"),
           ("speedup", "speedup"), ("one_tok_s", "1 GPU tok/s"), ("ep_tok_s", "ep tok/s")]


if __name__ == "__main__":
    sys.exit(main())
