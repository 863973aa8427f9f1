"""The experts pass of sanitize_kernels.py (compute-sanitizer) picks artifacts
whose weights fit its memory budget, without losing a kernel group or an edge
shape. Runs without a GPU: it checks the plan, not the kernels."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import sanitize_kernels  # noqa: E402


def entry(name, kind, H, I, E, k):
    return dict(name=name, kind=kind, H=H, I=I, E=E, k=k)


#: An index shaped as utils/build-gpu-artifacts.sh writes it (gpu_artifacts.py's
#: names): the benchmark shapes, the edge shapes, f16 and option variants.
SHAPES = {"mixtral-8x7b": (4096, 14336, 8, 2), "qwen3-30b-a3b": (2048, 768, 128, 8),
          "deepseek-v3": (7168, 2048, 256, 8)}
EDGES = {"edge-tail": (72, 40, 8, 2), "edge-plain": (100, 36, 4, 2),
         "edge-experts": (64, 32, 300, 4)}
INDEX = ([entry(n, "experts", *s) for n, s in {**SHAPES, **EDGES}.items()]
         + [entry(f"{n}@f16", "experts-f16", *s) for n, s in SHAPES.items()]
         + [entry(f"{n}@wgmma=false", "experts-variant", *s)
            for n, s in {**SHAPES, "edge-tail": EDGES["edge-tail"]}.items()]
         + [entry("route-qwen3", "route", 0, 0, 128, 8)])


def test_default_budget_leaves_out_only_what_does_not_fit():
    chosen, left_out = sanitize_kernels.plan_experts(
        INDEX, sanitize_kernels.DEFAULT_WEIGHT_BUDGET)
    # DeepSeek-V3's experts (22.5 GB in bf16) were the out-of-memory stop.
    assert [name for name, _ in left_out] == [
        "deepseek-v3", "deepseek-v3@f16", "deepseek-v3@wgmma=false"]
    assert all(why.endswith("GiB > budget 4.0 GiB") for _, why in left_out)
    names = {e["name"] for e in chosen}
    assert names == {e["name"] for e in INDEX
                     if e["kind"] != "route" and not e["name"].startswith("deepseek")}
    assert all(sanitize_kernels.weight_bytes(e) <= sanitize_kernels.DEFAULT_WEIGHT_BUDGET
               for e in chosen)


def test_budget_that_would_drop_a_kernel_group_is_refused():
    # 1 MiB keeps two edge shapes only: the f16 kernels would go unchecked.
    with pytest.raises(ValueError, match=r"experts-f16.*f16"):
        sanitize_kernels.plan_experts(INDEX, 1 << 20)


def test_budget_that_would_drop_an_edge_shape_is_refused():
    # edge-experts' 300 experts take 3.5 MiB; edge-tail and edge-plain less.
    index = [e for e in INDEX if e["kind"] == "experts" and e["name"].startswith("edge")]
    with pytest.raises(ValueError, match="edge-experts"):
        sanitize_kernels.plan_experts(index, 1 << 20)


def test_cases_cover_decode_prefill_and_empty_experts():
    for e in INDEX[:6]:
        cases = sanitize_kernels.experts_cases(e)
        sizes = [T for _, T, _ in cases]
        assert sizes[0] == 1
        # The prefill kernels run from 16 rows per expert on average.
        assert all(T * e["k"] >= 16 * e["E"] for T in sizes[1:])
        labels = [label for label, _, _ in cases]
        assert "empty experts" in labels and "all on the same experts" in labels
