"""moe.dispatch compiled for the CPU: rows and offsets must match the oracle exactly."""

import numpy as np
import pytest

from harness import assert_equal, call, random_ids
from moe_mlir import irgen
from moe_mlir import reference as ref

# (id, T, k, E, fraction of ids set to -1, expert map ("random" or None), attributes)
CASES = [
    ("plain", 16, 2, 8, 0.0, None, dict()),
    ("k1", 16, 1, 4, 0.0, None, dict()),
    ("dropped_ids", 16, 2, 8, 0.25, None, dict()),
    ("capacity_position", 32, 2, 8, 0.0, None, dict(capacity=3)),
    ("capacity_score", 32, 2, 8, 0.0, None, dict(capacity=3, drop_policy="score")),
    ("capacity_one_position", 16, 3, 4, 0.0, None, dict(capacity=1)),
    ("capacity_one_score", 16, 3, 4, 0.0, None, dict(capacity=1, drop_policy="score")),
    ("capacity_large", 16, 2, 8, 0.0, None, dict(capacity=100, drop_policy="score")),
    ("capacity_factor_position", 32, 2, 8, 0.0, None, dict(capacity_factor=1.25)),
    ("capacity_factor_score", 32, 2, 8, 0.0, None,
     dict(capacity_factor=1.25, drop_policy="score")),
    ("capacity_factor_small", 24, 4, 8, 0.0, None, dict(capacity_factor=0.3)),
    ("capacity_factor_fraction", 13, 3, 5, 0.0, None,
     dict(capacity_factor=0.7, drop_policy="score")),
    ("capacity_with_dropped_ids", 32, 2, 8, 0.2, None, dict(capacity=3, drop_policy="score")),
    ("expert_map", 16, 2, 8, 0.0, "random", dict()),
    ("expert_map_capacity_position", 32, 2, 8, 0.0, "random", dict(capacity=2)),
    ("expert_map_capacity_score", 32, 2, 8, 0.1, "random",
     dict(capacity=2, drop_policy="score")),
    ("expert_map_capacity_factor", 32, 2, 8, 0.0, "random", dict(capacity_factor=1.5)),
    ("one_token", 1, 2, 8, 0.0, None, dict()),
    ("one_token_capacity", 1, 4, 8, 0.0, None, dict(capacity=1, drop_policy="score")),
    ("k_equals_E", 8, 4, 4, 0.0, None, dict(capacity=5)),
    ("odd_sizes", 13, 3, 5, 0.0, None, dict()),
    ("many", 64, 8, 16, 0.0, None, dict(capacity_factor=1.0, drop_policy="score")),
]


def _expert_map(rng, E):
    """A random global-to-local map with some experts on other devices; returns (map, L)."""
    local = rng.permutation(E)[: max(1, E // 2)]
    expert_map = np.full(E, -1, dtype=np.int32)
    expert_map[local] = np.arange(len(local), dtype=np.int32)
    return expert_map, len(local)


def _run(compile_ir, rng, T, k, E, drop, with_map, attrs, dynamic=False, tokens=None):
    weights_needed = attrs.get("drop_policy") == "score"
    expert_map = L = None
    if with_map:
        expert_map, L = _expert_map(rng, E)
    module = compile_ir(irgen.dispatch_ir(None if dynamic else T, k, E, weights=weights_needed,
                                          expert_map=with_map, num_local_experts=L, **attrs))
    for t in tokens or [T]:
        ids = random_ids(rng, t, k, E, drop)
        weights = rng.random((t, k)).astype(np.float32)
        inputs = [ids] + ([weights] if weights_needed else []) + (
            [expert_map] if with_map else [])
        n_offsets = (E if L is None else L) + 1
        rows, offsets = call(module, "dispatch", inputs,
                             [((t * k,), "i32"), ((n_offsets,), "i32")])
        want_rows, want_offsets = ref.dispatch(
            ids, weights if weights_needed else None, num_experts=E, expert_map=expert_map,
            num_local_experts=L, **attrs)
        what = (f"dispatch T={t} k={k} E={E} {attrs} expert_map={expert_map}\n"
                f"ids={ids.tolist()}" + (f"\nweights={weights.tolist()}" if weights_needed else ""))
        assert_equal(offsets, want_offsets, f"{what}\noffsets")
        assert_equal(rows, want_rows, f"{what}\nrows")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_dispatch(compile_ir, rng, case):
    _, T, k, E, drop, expert_map, attrs = case
    _run(compile_ir, rng, T, k, E, drop, expert_map, attrs)


@pytest.mark.parametrize("attrs", [dict(), dict(capacity=3),
                                   dict(capacity_factor=1.25, drop_policy="score")],
                         ids=["plain", "capacity", "capacity_factor_score"])
def test_dispatch_dynamic_tokens(compile_ir, rng, attrs):
    """capacity_factor makes C depend on the runtime T: ceil(f * T * k / E)."""
    _run(compile_ir, rng, None, 2, 8, 0.1, None, attrs, dynamic=True, tokens=[1, 3, 16, 33])


def test_dispatch_score_ties_go_to_lower_token(compile_ir, rng):
    """Weights from a few exact values tie often; the lower token, then slot, wins."""
    T, k, E, C = 32, 2, 4, 3
    ids = random_ids(rng, T, k, E)
    weights = rng.choice(np.array([0.25, 0.5, 0.75], dtype=np.float32), size=(T, k))
    module = compile_ir(irgen.dispatch_ir(T, k, E, weights=True, capacity=C,
                                          drop_policy="score"))
    rows, offsets = call(module, "dispatch", [ids, weights], [((T * k,), "i32"), ((E + 1,), "i32")])
    want_rows, want_offsets = ref.dispatch(ids, weights, num_experts=E, capacity=C,
                                           drop_policy="score")
    assert_equal(offsets, want_offsets, "dispatch score ties: offsets")
    assert_equal(rows, want_rows, "dispatch score ties: rows")


@pytest.mark.parametrize("policy", ["position", "score"])
def test_dispatch_all_on_one_expert(compile_ir, rng, policy):
    """Every token's first choice is expert 2: it overflows, the others stay empty or not."""
    T, k, E, C = 16, 2, 6, 5
    ids = random_ids(rng, T, k, E)
    ids[:, 0] = 2
    ids[:, 1] = np.where(ids[:, 1] == 2, 3, ids[:, 1])
    weights = rng.random((T, k)).astype(np.float32)
    module = compile_ir(irgen.dispatch_ir(T, k, E, weights=policy == "score", capacity=C,
                                          drop_policy=policy))
    inputs = [ids] + ([weights] if policy == "score" else [])
    rows, offsets = call(module, "dispatch", inputs, [((T * k,), "i32"), ((E + 1,), "i32")])
    want_rows, want_offsets = ref.dispatch(ids, weights, num_experts=E, capacity=C,
                                           drop_policy=policy)
    assert want_offsets[3] - want_offsets[2] == C
    assert_equal(offsets, want_offsets, f"dispatch all on one expert ({policy}): offsets")
    assert_equal(rows, want_rows, f"dispatch all on one expert ({policy}): rows")
