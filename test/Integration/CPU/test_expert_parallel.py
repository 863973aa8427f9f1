"""Expert parallelism on one device: the layer's experts split over P ranks.

Two forms, with the ranks run one after another:

- Replicated tokens: each rank dispatches every token with an expert map (global
  expert -> local index, -1 when the expert lives elsewhere), runs only its local
  experts' weights, and combines its partial sums; the P partial outputs, added in
  rank order, must equal the unpartitioned layer.
- All-to-all (``moe_mlir.expert_parallel``): each rank owns some of the tokens, sends
  each selection's row to the rank of its expert, runs its local experts over the rows
  it receives, gets the outputs back and combines them. The exchange is done by
  slicing, exactly where the collective would move the rows.
"""

import numpy as np
import pytest

from harness import assert_close, assert_equal, call, normal, random_ids
from moe_mlir import expert_parallel as ep
from moe_mlir import irgen
from moe_mlir import reference as ref

T, H, E, I, K = 24, 16, 8, 12, 2


def partition_ir(local_experts: int) -> str:
    L = local_experts
    return f"""
func.func @rank(%x: tensor<{T}x{H}xf32>, %logits: tensor<{T}x{E}xf32>,
                %map: tensor<{E}xi32>, %w13: tensor<{L}x{2 * I}x{H}xf32>,
                %w2: tensor<{L}x{H}x{I}xf32>) -> (tensor<{T}x{H}xf32>, tensor<{L + 1}xi32>) {{
  %w, %ids = moe.route %logits {{k = {K} : i64, renormalize}}
      : tensor<{T}x{E}xf32> -> tensor<{T}x{K}xf32>, tensor<{T}x{K}xi32>
  %rows, %offsets = moe.dispatch %ids expert_map(%map : tensor<{E}xi32>) {{num_experts = {E} : i64}}
      : tensor<{T}x{K}xi32> -> tensor<{T * K}xi32>, tensor<{L + 1}xi32>
  %e0 = tensor.empty() : tensor<{T * K}x{H}xf32>
  %xs = moe.permute ins(%x, %rows : tensor<{T}x{H}xf32>, tensor<{T * K}xi32>)
      outs(%e0 : tensor<{T * K}x{H}xf32>) {{k = {K} : i64}} -> tensor<{T * K}x{H}xf32>
  %e1 = tensor.empty() : tensor<{T * K}x{2 * I}xf32>
  %h = moe.grouped_matmul ins(%xs, %w13, %offsets : tensor<{T * K}x{H}xf32>, tensor<{L}x{2 * I}x{H}xf32>, tensor<{L + 1}xi32>)
      outs(%e1 : tensor<{T * K}x{2 * I}xf32>) -> tensor<{T * K}x{2 * I}xf32>
  %e2 = tensor.empty() : tensor<{T * K}x{I}xf32>
  %a = moe.glu ins(%h : tensor<{T * K}x{2 * I}xf32>) outs(%e2 : tensor<{T * K}x{I}xf32>) -> tensor<{T * K}x{I}xf32>
  %e3 = tensor.empty() : tensor<{T * K}x{H}xf32>
  %ys = moe.grouped_matmul ins(%a, %w2, %offsets : tensor<{T * K}x{I}xf32>, tensor<{L}x{H}x{I}xf32>, tensor<{L + 1}xi32>)
      outs(%e3 : tensor<{T * K}x{H}xf32>) -> tensor<{T * K}x{H}xf32>
  %e4 = tensor.empty() : tensor<{T}x{H}xf32>
  %y = moe.combine ins(%ys, %rows, %w : tensor<{T * K}x{H}xf32>, tensor<{T * K}xi32>, tensor<{T}x{K}xf32>)
      outs(%e4 : tensor<{T}x{H}xf32>) -> tensor<{T}x{H}xf32>
  return %y, %offsets : tensor<{T}x{H}xf32>, tensor<{L + 1}xi32>
}}
"""


@pytest.mark.parametrize("ranks", [1, 2, 4, 8])
def test_partitioned_layer_matches_unpartitioned(compile_ir, pipeline, rng, ranks):
    local = E // ranks
    module = compile_ir(partition_ir(local), pipeline)
    x = normal(rng, (T, H))
    logits = normal(rng, (T, E))
    w13 = normal(rng, (E, 2 * I, H), scale=0.25)
    w2 = normal(rng, (E, H, I), scale=0.25)

    weights, ids = ref.route(logits, k=K, renormalize=True)
    rows, offsets = ref.dispatch(ids, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, K), w13, offsets)
    ys = ref.grouped_matmul(ref.glu(h), w2, offsets)
    want = ref.combine(ys, rows, weights)

    total = np.zeros((T, H))
    for rank in range(ranks):
        owned = np.arange(rank * local, (rank + 1) * local)
        expert_map = np.full(E, -1, dtype=np.int32)
        expert_map[owned] = np.arange(local, dtype=np.int32)
        y, offsets = call(module, "rank",
                          [x, logits, expert_map, w13[owned], w2[owned]],
                          [((T, H), "f32"), ((local + 1,), "i32")])
        _, want_offsets = ref.dispatch(ids, num_experts=E, expert_map=expert_map,
                                       num_local_experts=local)
        assert_equal(offsets, want_offsets, f"rank {rank} offsets")
        total += y
    assert_close(total, want, "f32", f"sum over {ranks} ranks")


def _ranks_layer(compile_ir, ranks, E, H, I, k):
    """(experts(rank, x, ids, weights), combine(ys, rows, weights)) for P = ``ranks``."""
    L = ep.local_experts(E, ranks)
    local = compile_ir(irgen.experts_ir(None, H, E, I, 1, dtype="f32",
                                        num_local_experts=L))
    combine = compile_ir(irgen.combine_ir(None, H, None, k, prescaled=True))
    return local, combine


def _partition_tokens(x, ids, weights, sizes):
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return [(x[a:b], ids[a:b], weights[a:b]) for a, b in zip(starts[:-1], starts[1:])]


ALL_TO_ALL_CASES = {
    # name: (ranks, tokens per rank, routing)
    "two-ranks": (2, [13, 9], "random"),
    "four-ranks": (4, [5, 1, 8, 6], "random"),
    "one-rank": (1, [11], "random"),
    "all-on-rank-0": (4, [6, 7, 3, 2], "first-rank"),
    "one-token-each": (2, [1, 1], "random"),
}


@pytest.mark.parametrize("case", list(ALL_TO_ALL_CASES))
def test_all_to_all_matches_unpartitioned(compile_ir, rng, case):
    ranks, sizes, routing = ALL_TO_ALL_CASES[case]
    E, H, I, k = 8, 16, 12, 2
    total = sum(sizes)
    x = normal(rng, (total, H))
    w13 = normal(rng, (E, 2 * I, H), scale=0.25)
    w2 = normal(rng, (E, H, I), scale=0.25)
    if routing == "first-rank":  # every selection on rank 0's experts; the others get nothing
        ids = random_ids(rng, total, k, ep.local_experts(E, ranks))
    else:
        ids = random_ids(rng, total, k, E)
    weights = rng.random((total, k)).astype(np.float32)

    rows, offsets = ref.dispatch(ids, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, k), w13, offsets)
    want = ref.combine(ref.grouped_matmul(ref.glu(h), w2, offsets), rows, weights)

    local, combine = _ranks_layer(compile_ir, ranks, E, H, I, k)
    received = {}

    def experts(rank, xs, row_ids, row_weights):
        received[rank] = len(xs)
        owned = ep.owned_experts(E, ranks, rank)
        assert np.all((row_ids >= owned.start) & (row_ids < owned.stop)), \
            f"rank {rank} received rows of experts it does not own"
        if len(xs) == 0:
            return np.zeros((0, H), dtype=np.float32)
        return call(local, "experts",
                    [xs, w13[owned], w2[owned], row_ids, row_weights,
                     ep.expert_map(E, ranks, rank)], [((len(xs), H), "f32")])[0]

    def combined(ys, order, w):
        return call(combine, "combine", [ys, order, w], [((len(w), H), "f32")])[0]

    inputs = _partition_tokens(x, ids, weights, sizes)
    outputs = ep.run_ranks_in_sequence(inputs, E, experts, combined)
    assert sum(received.values()) == total * k
    if routing == "first-rank":
        assert received[0] == total * k
    assert_close(np.concatenate(outputs), want, "f32", f"{case}: tokens of every rank")
    # The combine adds each token's rows in a fixed order: running again is bitwise equal.
    again = ep.run_ranks_in_sequence(inputs, E, experts, combined)
    assert all(np.array_equal(a, b) for a, b in zip(outputs, again))


@pytest.mark.parametrize("ranks, sizes", [(2, [9, 4]), (4, [1, 6, 0, 3])])
def test_all_to_all_gpt_oss_biases(compile_ir, rng, ranks, sizes):
    # gpt-oss's experts (interleaved swiglu_oai, gate/up and down biases) split over
    # ranks: each rank holds its experts' rows of the biases too.
    E, H, I, k = 8, 16, 12, 4
    total = sum(sizes)
    x = normal(rng, (total, H), scale=2.0)
    w13 = normal(rng, (E, 2 * I, H), scale=0.5)
    w2 = normal(rng, (E, H, I), scale=0.25)
    b13 = normal(rng, (E, 2 * I), scale=0.5)
    b2 = normal(rng, (E, H), scale=0.5)
    ids = np.stack([rng.permutation(E)[:k] for _ in range(total)]).astype(np.int32)
    ids = ids.reshape(total, k)
    weights = rng.random((total, k)).astype(np.float32)
    rows, offsets = ref.dispatch(ids, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, k), w13, offsets, bias=b13)
    ys = ref.grouped_matmul(ref.glu(h, "swiglu_oai", "interleaved"), w2, offsets, bias=b2)
    want = ref.combine(ys, rows, weights)

    L = ep.local_experts(E, ranks)
    local = compile_ir(irgen.experts_ir(None, H, E, I, 1, dtype="f32", num_local_experts=L,
                                        activation="swiglu_oai", glu_layout="interleaved",
                                        expert_bias=True))
    combine = compile_ir(irgen.combine_ir(None, H, None, k, prescaled=True))

    def experts(rank, xs, row_ids, row_weights):
        owned = ep.owned_experts(E, ranks, rank)
        if len(xs) == 0:
            return np.zeros((0, H), dtype=np.float32)
        return call(local, "experts",
                    [xs, w13[owned], w2[owned], b13[owned], b2[owned], row_ids, row_weights,
                     ep.expert_map(E, ranks, rank)], [((len(xs), H), "f32")])[0]

    def combined(ys, order, w):
        return call(combine, "combine", [ys, order, w], [((len(w), H), "f32")])[0]

    outputs = ep.run_ranks_in_sequence(_partition_tokens(x, ids, weights, sizes), E, experts,
                                       combined)
    assert_close(np.concatenate(outputs), want, "f32", f"gpt-oss over {ranks} ranks")


def test_plan_orders_selections_by_rank_stably():
    ids = np.array([[5, 0], [2, 7], [1, 4]], dtype=np.int32)
    plan = ep.plan_sends(ids, num_experts=8, ranks=2)
    # Experts 0-3 live on rank 0, 4-7 on rank 1; within a rank, selection order.
    assert plan.order.tolist() == [1, 2, 4, 0, 3, 5]
    assert plan.counts == [3, 3]
    assert ep.expert_map(8, 2, 1).tolist() == [-1, -1, -1, -1, 0, 1, 2, 3]


@pytest.mark.parametrize("bad, message", [
    (lambda: ep.local_experts(8, 3), "do not split evenly"),
    (lambda: ep.local_experts(8, 0), "must be positive"),
    (lambda: ep.expert_map(8, 2, 2), "rank 2 is not in"),
    (lambda: ep.plan_sends(np.array([[8]], dtype=np.int32), 8, 2), r"in \[0, 8\)"),
    (lambda: ep.plan_sends(np.zeros(4, dtype=np.int32), 8, 2), "must be \\[T, k\\]"),
    (lambda: ep.split_rows(np.zeros((3, 2)), [1, 1]), "add up to 2, not 3"),
])
def test_bad_partitions_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()
