"""A moe-compile artifact as a PyTorch custom op: results against the numpy
oracle, torch.library.opcheck, and torch.compile(fullgraph=True). Skips where
torch is not installed; where moe-compile is missing (the GPU machine) it uses
the artifact of utils/build-cpu-artifacts.sh."""

import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from moe_mlir import aot  # noqa: E402
from moe_mlir import reference as ref  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
PREBUILT = ROOT / "artifacts" / "cpu"
SETTINGS = dict(hidden=64, intermediate=48, experts=8, k=2, renormalize=True)


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    try:
        artifact = aot.compile(layer=SETTINGS, name="torch_mixtral",
                               out_dir=tmp_path_factory.mktemp("torch"))
    except Exception:
        if not (PREBUILT / "libmoe_torch_mixtral.so").exists():
            pytest.skip("no moe-compile and no artifacts/cpu (utils/build-cpu-artifacts.sh)")
        artifact = aot.Artifact(PREBUILT, "torch_mixtral")
    return artifact.load()


@pytest.fixture(scope="module")
def op(layer):
    from moe_mlir import torch_op

    return torch_op.register(layer, "torch_mixtral")


def inputs(seed, tokens):
    g = torch.Generator().manual_seed(seed)
    H, I, E = SETTINGS["hidden"], SETTINGS["intermediate"], SETTINGS["experts"]
    return (torch.randn(tokens, H, generator=g),
            torch.randn(E, H, generator=g) * 0.5,
            torch.randn(E, 2 * I, H, generator=g) * 0.2,
            torch.randn(E, H, I, generator=g) * 0.2)


@pytest.mark.parametrize("tokens", [1, 5, 40])
def test_matches_oracle(op, tokens):
    args = inputs(tokens, tokens)
    y = op(*args)
    want = ref.layer(*[a.numpy() for a in args], k=2, renormalize=True)
    err = np.abs(y.numpy() - want).max() / np.abs(want).max()
    assert err <= 1e-5, err


def test_opcheck(op):
    torch.library.opcheck(op, inputs(7, 9))


def test_compile_fullgraph(op):
    def layer(x, router, w13, w2):
        return op(x, router, w13, w2) * 2.0

    compiled = torch.compile(layer, fullgraph=True)
    args = inputs(11, 13)
    assert torch.allclose(compiled(*args), layer(*args), rtol=1e-6, atol=1e-6)


def test_bad_arguments_raise(op):
    x, router, w13, w2 = inputs(3, 4)
    with pytest.raises(ValueError, match="'router' must have shape"):
        op(x, router[:, :10].contiguous(), w13, w2)
    with pytest.raises(ValueError, match="must be torch.float32"):
        op(x.double(), router, w13, w2)


def test_leading_dimensions(op):
    # x [*, H] -> y [*, H]: the values of the flattened call.
    x, router, w13, w2 = inputs(5, 6)
    y = op(x.view(2, 3, -1), router, w13, w2)
    assert y.shape == (2, 3, SETTINGS["hidden"])
    assert torch.equal(y, op(x, router, w13, w2).view(2, 3, -1))
    assert op(x[0], router, w13, w2).shape == (SETTINGS["hidden"],)
    torch.library.opcheck(op, (x.view(3, 2, -1), router, w13, w2))
    with pytest.raises(ValueError, match=r"'x' must have shape \[\*, 64\]"):
        op(x[:, :10], router, w13, w2)


def test_empty_batch_skips_the_call(op, layer, monkeypatch):
    def no_call(*args, **kwargs):
        raise AssertionError("the library was called for an empty batch")

    monkeypatch.setattr(layer, "forward_pointers", no_call)
    x, router, w13, w2 = inputs(8, 4)
    for shape in ((0, SETTINGS["hidden"]), (2, 0, SETTINGS["hidden"])):
        y = op(x.new_zeros(shape), router, w13, w2)
        assert y.shape == shape and y.dtype == torch.float32


def test_compile_fullgraph_leading_dimensions(op):
    def model(x, router, w13, w2):
        return op(x, router, w13, w2) + x

    args = inputs(12, 8)
    x = args[0].view(2, 4, -1)
    compiled = torch.compile(model, fullgraph=True)
    assert torch.allclose(compiled(x, *args[1:]), model(x, *args[1:]), rtol=1e-6, atol=1e-6)
