"""Expert parallelism on one device: the layer's experts split over P ranks.

Each rank dispatches with an expert map (global expert -> local index, -1 when
the expert lives elsewhere), runs only its local experts' weights, and combines
its partial sums; the P partial outputs, added in rank order, must equal the
unpartitioned layer. This is the partitioning logic of expert parallelism with
the all-to-all replaced by running the ranks one after another.
"""

import numpy as np
import pytest

from harness import assert_close, assert_equal, call, normal
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
