"""Expert parallelism: a layer's experts split over P ranks, rows exchanged all-to-all.

The E experts are split into P contiguous blocks of L = E / P; rank r owns experts
r·L ..< (r+1)·L and holds only their weights. One call of the expert half of a layer on
rank r, with its own tokens x [T_r, H] and their routing (ids, weights [T_r, k]):

1. **Plan** (:func:`plan_sends`). Each selection (t, j) goes to the rank that owns expert
   ids[t, j]. The selections are ordered by destination rank, stably (by t, then j,
   within one destination): ``order`` [T_r·k], and ``counts`` rows for each rank.
2. **Dispatch all-to-all.** The rows x[order // k] travel with their global expert id
   and routing weight (:func:`gather_sends`). Rank q receives every rank's rows for it,
   in rank order.
3. **Local experts.** The compiled expert half of rank q's L experts
   (``irgen.experts_ir(..., k=1, num_local_experts=L)``) runs over the received rows
   as tokens with one selection each. Its expert map (:func:`expert_map`) turns global
   ids into local weights; each output row carries its routing weight already.
4. **Combine all-to-all.** The output rows return along the same splits, so rank r gets
   them back in ``order``.
5. **Combine.** The compiled ``moe.combine {prescaled}`` with rows = ``order`` adds each
   token's k rows in ascending j in f32. The result does not depend on P, nor on when
   the rows arrived: the same inputs give bitwise the same output.

The planning and exchange functions work on numpy arrays and on torch tensors alike,
so the partitioning logic is tested on the CPU (:func:`run_ranks_in_sequence`, the P
ranks one after another, with the all-to-all done by slicing) as well as on GPUs.
:class:`ExpertParallelExperts` is the distributed form: torch.distributed with the
NCCL backend (``torchrun``), the compiled kernels loaded with :mod:`moe_mlir.gpu`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

Array = Any  # a numpy array or a torch tensor


def local_experts(num_experts: int, ranks: int) -> int:
    """L = E / P, the experts each rank owns."""
    if ranks < 1:
        raise ValueError(f"the number of ranks must be positive, got {ranks}")
    if num_experts % ranks:
        raise ValueError(f"{num_experts} experts do not split evenly over {ranks} ranks")
    return num_experts // ranks


def expert_map(num_experts: int, ranks: int, rank: int) -> np.ndarray:
    """Rank ``rank``'s expert map: global expert -> local index, -1 on other ranks."""
    L = local_experts(num_experts, ranks)
    if not 0 <= rank < ranks:
        raise ValueError(f"rank {rank} is not in [0, {ranks})")
    mapping = np.full(num_experts, -1, dtype=np.int32)
    mapping[rank * L:(rank + 1) * L] = np.arange(L, dtype=np.int32)
    return mapping


def owned_experts(num_experts: int, ranks: int, rank: int) -> slice:
    """The global experts rank ``rank`` holds, as a slice of the expert dimension."""
    L = local_experts(num_experts, ranks)
    return slice(rank * L, (rank + 1) * L)


def _is_torch(array: Array) -> bool:
    return type(array).__module__.split(".")[0] == "torch"


@dataclass
class SendPlan:
    """Where one rank's selections go.

    ``order``: int32 [T·k], the flat selection indices t·k+j sorted by destination rank
    (stable); ``counts``: the number of rows sent to each rank, in rank order.
    """

    order: Array
    counts: list[int]


def _plan_on_device(ids, num_experts: int, ranks: int):
    """torch form of the plan, without a host synchronization: (order, counts
    per rank, number of ids outside [0, E)), all on the ids' device."""
    import torch

    L = local_experts(num_experts, ranks)
    flat = ids.reshape(-1).long()
    invalid = ((flat < 0) | (flat >= num_experts)).sum()
    destination = flat.clamp(0, num_experts - 1) // L
    order = torch.argsort(destination, stable=True).to(torch.int32)
    return order, torch.bincount(destination, minlength=ranks), invalid


def plan_sends(ids: Array, num_experts: int, ranks: int) -> SendPlan:
    """Orders the selections of ``ids`` [T, k] by the rank that owns their expert."""
    L = local_experts(num_experts, ranks)
    if ids.ndim != 2:
        raise ValueError(f"ids must be [T, k], got shape {tuple(ids.shape)}")
    if _is_torch(ids):
        import torch

        order, counts, invalid = _plan_on_device(ids, num_experts, ranks)
        host = torch.cat([counts, invalid.reshape(1)]).tolist()
        if host[-1]:
            raise ValueError(f"expert ids must lie in [0, {num_experts})")
        return SendPlan(order, [int(c) for c in host[:-1]])
    flat = ids.reshape(-1)
    if flat.shape[0] and (int(flat.min()) < 0 or int(flat.max()) >= num_experts):
        raise ValueError(f"expert ids must lie in [0, {num_experts})")
    destination = flat.astype(np.int64) // L
    order = np.argsort(destination, kind="stable").astype(np.int32)
    counts = np.bincount(destination, minlength=ranks).tolist()
    return SendPlan(order, [int(c) for c in counts])


def gather_sends(x: Array, ids: Array, weights: Array, plan: SendPlan):
    """The rows to send, in ``plan.order``: (x rows [S, H], global ids [S, 1] i32,
    routing weights [S, 1] f32)."""
    k = ids.shape[1]
    order = plan.order.long() if _is_torch(plan.order) else plan.order
    rows = x[order // k]
    return (rows, ids.reshape(-1)[order].reshape(-1, 1),
            weights.reshape(-1)[order].reshape(-1, 1))


def split_rows(array: Array, counts: Sequence[int]) -> list:
    """``array`` cut along its first dimension into consecutive pieces of ``counts``."""
    pieces, start = [], 0
    for count in counts:
        pieces.append(array[start:start + count])
        start += count
    if start != array.shape[0]:
        raise ValueError(f"counts add up to {start}, not {array.shape[0]} rows")
    return pieces


def _concat(pieces: Sequence[Array]) -> Array:
    if _is_torch(pieces[0]):
        import torch

        return torch.cat(list(pieces))
    return np.concatenate(list(pieces))


#: ``experts(rank, x [R,H], ids [R,1], weights [R,1]) -> y [R,H]``: rank ``rank``'s
#: compiled local experts over its received rows (R may be 0: return an empty y).
ExpertsFn = Callable[[int, Array, Array, Array], Array]
#: ``combine(ys [T·k,H], rows [T·k] i32, weights [T,k]) -> out [T,H]``: the compiled
#: prescaled combine.
CombineFn = Callable[[Array, Array, Array], Array]


def run_ranks_in_sequence(inputs: Sequence[tuple[Array, Array, Array]], num_experts: int,
                          experts: ExpertsFn, combine: CombineFn) -> list:
    """Expert parallelism over ``len(inputs)`` ranks, run one rank after another.

    ``inputs[r]`` is rank r's (x, ids, weights); each all-to-all is done by slicing and
    concatenating in the order the collective uses. Returns every rank's output.
    """
    ranks = len(inputs)
    plans = [plan_sends(ids, num_experts, ranks) for _, ids, _ in inputs]
    sends = [gather_sends(x, ids, w, plan) for (x, ids, w), plan in zip(inputs, plans)]
    # Dispatch all-to-all: rank q receives piece q of every rank, in rank order.
    pieces = [[split_rows(part, plan.counts) for part in send]
              for send, plan in zip(sends, plans)]
    outputs_of = []
    for q in range(ranks):
        x, ids, weights = (_concat([pieces[r][part][q] for r in range(ranks)])
                           for part in range(3))
        outputs_of.append(split_rows(experts(q, x, ids, weights),
                                     [plans[r].counts[q] for r in range(ranks)]))
    # Combine all-to-all: rank r gets its rows back from every rank, in rank order,
    # which is plan.order.
    results = []
    for r, ((_, _, weights), plan) in enumerate(zip(inputs, plans)):
        ys = _concat([outputs_of[q][r] for q in range(ranks)])
        results.append(combine(ys, plan.order, weights))
    return results


@dataclass
class Received:
    """What a rank got from the dispatch all-to-all: ``rows`` [R, H], ``meta`` [R, 2]
    i32 (global expert id, routing weight's bits), with the plan and counts that send
    the outputs back."""

    rows: Any
    meta: Any
    plan: SendPlan
    counts: list[int]


class ExpertParallelExperts:
    """One rank's share of the expert half of a layer, across ranks over NCCL.

    Construct it on every rank of an initialized ``torch.distributed`` process group
    (NCCL backend, one GPU per rank), with the modules built by
    ``python/benchmarks/gpu_artifacts.py``:

    - ``experts``: a :class:`moe_mlir.gpu.GpuModule` with ``experts_ir(None, H, E, I, 1,
      num_local_experts=L)`` as function ``experts``;
    - ``combine``: one with ``combine_ir(None, H, None, k, dtype=..., prescaled=True)``
      as function ``combine``;
    - ``w13`` [L, 2I, H] and ``w2`` [L, H, I]: the weights of this rank's experts
      (:func:`owned_experts`);
    - ``w13_bias`` [L, 2I] and ``w2_bias`` [L, H], for gpt-oss's experts: their
      biases, with ``experts`` built by ``experts_ir(..., activation="swiglu_oai",
      glu_layout="interleaved", expert_bias=True)``.

    Calling it with this rank's tokens (x [T,H], ids [T,k] i32 global, weights [T,k]
    f32) returns their outputs [T,H]; every rank must call it, each with its own tokens
    (T may differ between ranks, and be 0). A call is :meth:`dispatch`, :meth:`compute`
    and :meth:`combine`. It allocates its exchange buffers per call and synchronizes
    the host once, to learn how many rows it receives. ``poison`` fills every buffer
    the kernels write with NaN first, so a row they miss cannot go unnoticed.
    """

    def __init__(self, experts, combine, w13, w2, num_experts: int, group=None,
                 poison: bool = False, w13_bias=None, w2_bias=None):
        import torch
        import torch.distributed as dist

        self.group = group
        self.ranks = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.num_experts = num_experts
        L = local_experts(num_experts, self.ranks)
        if w13.shape[0] != L or w2.shape[0] != L:
            raise ValueError(f"rank {self.rank} must hold {L} experts' weights, got "
                             f"w13 {tuple(w13.shape)} and w2 {tuple(w2.shape)}")
        self.experts_module, self.combine_module = experts, combine
        self.w13, self.w2 = w13, w2
        # gpt-oss's expert biases (this rank's experts' rows), for a module built
        # with irgen.experts_ir(..., expert_bias=True): [L, 2I] and [L, H], the
        # output columns of w13 [L, 2I, H] and w2 [L, H, I].
        if (w13_bias is None) != (w2_bias is None):
            raise ValueError("give both w13_bias and w2_bias, or neither")
        if w13_bias is not None:
            for name, bias, weight in (("w13_bias", w13_bias, w13), ("w2_bias", w2_bias, w2)):
                want = (L, weight.shape[1])
                if tuple(bias.shape) != want:
                    raise ValueError(f"rank {self.rank}'s {name} must be {want} (its {L} "
                                     f"experts' rows), got {tuple(bias.shape)}")
        self.biases = [] if w13_bias is None else [w13_bias, w2_bias]
        self.poison = poison
        self.map = torch.from_numpy(expert_map(num_experts, self.ranks, self.rank)).to(
            w13.device)

    def _exchange(self, send, send_counts: list[int], recv_counts: list[int]):
        import torch
        import torch.distributed as dist

        received = torch.empty((sum(recv_counts),) + tuple(send.shape[1:]),
                               dtype=send.dtype, device=send.device)
        dist.all_to_all_single(received, send.contiguous(), recv_counts, send_counts,
                               group=self.group)
        return received

    def _output(self, like):
        import torch

        if self.poison:
            return torch.full_like(like, float("nan"))
        return torch.empty_like(like)

    def dispatch(self, x, ids, weights) -> Received:
        """Sends each selection's row to the rank of its expert."""
        import torch
        import torch.distributed as dist

        if ids.ndim != 2:
            raise ValueError(f"ids must be [T, k], got shape {tuple(ids.shape)}")
        order, counts, invalid = _plan_on_device(ids, self.num_experts, self.ranks)
        # Each rank sends every rank its row count and whether it holds ids out
        # of range, so that all ranks refuse a bad call together rather than
        # leave the others waiting in the next collective.
        send = torch.stack([counts, invalid.expand(self.ranks)], dim=1)
        incoming = torch.empty_like(send)
        dist.all_to_all_single(incoming, send, group=self.group)
        host = torch.cat([counts, incoming.reshape(-1)]).tolist()  # the one sync
        sent, received = host[:self.ranks], host[self.ranks:]
        if any(received[1::2]):
            bad = [r for r, flag in enumerate(received[1::2]) if flag]
            raise ValueError(f"expert ids must lie in [0, {self.num_experts}); "
                             f"ranks {bad} passed ids outside it")
        plan = SendPlan(order, [int(c) for c in sent])
        recv_counts = [int(c) for c in received[0::2]]
        rows, row_ids, row_weights = gather_sends(x, ids, weights, plan)
        # The id and the weight of a row travel together, as two 32-bit words.
        meta = torch.cat([row_ids, row_weights.view(torch.int32)], dim=1)
        return Received(self._exchange(rows, plan.counts, recv_counts),
                        self._exchange(meta, plan.counts, recv_counts), plan, recv_counts)

    def compute(self, received: Received):
        """This rank's experts over the rows it received: [R, H], weights applied."""
        import torch

        ys = self._output(received.rows)
        if received.rows.shape[0]:
            meta = received.meta
            operands = [received.rows, self.w13, self.w2, *self.biases,
                        meta[:, :1].contiguous(),
                        meta[:, 1:].contiguous().view(torch.float32), self.map]
            self.experts_module.call("experts", operands, [ys])
        return ys

    def combine(self, ys, received: Received, x, weights):
        """Returns the output rows to their tokens' ranks and adds each token's k rows."""
        back = self._exchange(ys, received.counts, received.plan.counts)
        out = self._output(x)
        if x.shape[0]:
            self.combine_module.call("combine", [back, received.plan.order, weights], [out])
        return out

    def __call__(self, x, ids, weights):
        received = self.dispatch(x, ids, weights)
        return self.combine(self.compute(received), received, x, weights)
