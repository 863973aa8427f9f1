"""The experts entry (moe-compile --entry=experts) as a PyTorch custom op:
op(x, topk_ids, topk_weights, w13, w2) against the numpy oracle, with ids
outside [0, E), x of shape [*, H] and no tokens; torch.library.opcheck and
torch.compile(fullgraph=True). Skips where torch is not installed; where
moe-compile is missing (the GPU machine) it uses the artifact of
utils/build-cpu-artifacts.sh."""

import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from moe_mlir import aot  # noqa: E402
from moe_mlir import reference as ref  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
PREBUILT = ROOT / "artifacts" / "cpu"
H, I, E, K = 64, 48, 8, 2


@pytest.fixture(scope="module")
def op(tmp_path_factory):
    from moe_mlir import torch_op

    try:
        artifact = aot.compile(layer=dict(hidden=H, intermediate=I, experts=E, k=K),
                               entry="experts", name="torch_experts",
                               out_dir=tmp_path_factory.mktemp("torch_experts"))
    except Exception:
        if not (PREBUILT / "libmoe_torch_experts.so").exists():
            pytest.skip("no moe-compile and no artifacts/cpu (utils/build-cpu-artifacts.sh)")
        artifact = aot.Artifact(PREBUILT, "torch_experts")
    layer = artifact.load()
    assert layer.entry == "experts"
    return torch_op.register(layer, "torch_experts")


def inputs(seed, tokens):
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randperm(E, generator=g)[:K] for _ in range(tokens)])
    return (torch.randn(tokens, H, generator=g),
            ids.reshape(tokens, K).to(torch.int32),
            torch.rand(tokens, K, generator=g),
            torch.randn(E, 2 * I, H, generator=g) * 0.2,
            torch.randn(E, H, I, generator=g) * 0.2)


def oracle(x, ids, weights, w13, w2):
    x, ids, weights, w13, w2 = (a.numpy() for a in (x, ids, weights, w13, w2))
    rows, offsets = ref.dispatch(ids, weights, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, K), w13, offsets)
    ys = ref.grouped_matmul(ref.glu(h), w2, offsets)
    return ref.combine(ys, rows, weights)


def relative_error(y, want):
    return np.abs(y.numpy() - want).max() / np.abs(want).max()


@pytest.mark.parametrize("tokens", [1, 5, 40])
def test_matches_oracle(op, tokens):
    args = inputs(tokens, tokens)
    err = relative_error(op(*args), oracle(*args))
    assert err <= 1e-5, err


def test_out_of_range_ids(op):
    x, ids, weights, w13, w2 = inputs(3, 6)
    ids[0, 1], ids[1, 0], ids[2, 1] = -1, E, 2**31 - 1
    ids[3] = torch.tensor([-2**31, E + 4], dtype=torch.int32)
    y = op(x, ids, weights, w13, w2)
    assert torch.all(y[3] == 0)
    err = relative_error(y, oracle(x, ids, weights, w13, w2))
    assert err <= 1e-5, err


def test_leading_dimensions_and_empty_batch(op):
    x, ids, weights, w13, w2 = inputs(4, 6)
    y = op(x.view(2, 3, H), ids.view(2, 3, K), weights.view(2, 3, K), w13, w2)
    assert y.shape == (2, 3, H)
    assert torch.equal(y.reshape(6, H), op(x, ids, weights, w13, w2))
    empty = op(x[:0], ids[:0], weights[:0], w13, w2)
    assert empty.shape == (0, H)


def test_bad_arguments_raise(op):
    x, ids, weights, w13, w2 = inputs(5, 4)
    with pytest.raises(ValueError, match="'topk_ids' must be torch.int32"):
        op(x, ids.long(), weights, w13, w2)
    with pytest.raises(ValueError, match="'topk_weights' must be torch.float32"):
        op(x, ids, weights.double(), w13, w2)


def test_opcheck(op):
    torch.library.opcheck(op, inputs(7, 9))


def test_compile_fullgraph(op):
    def experts(x, ids, weights, w13, w2):
        return op(x, ids, weights, w13, w2) * 2.0

    compiled = torch.compile(experts, fullgraph=True)
    args = inputs(11, 13)
    assert torch.allclose(compiled(*args), experts(*args), rtol=1e-6, atol=1e-6)
