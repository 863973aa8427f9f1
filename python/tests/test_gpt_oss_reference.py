"""The oracle's gpt-oss layer (router bias, expert biases, interleaved clamped
SwiGLU, softmax over the top k) against the transcription of gpt-oss's own MoE
block (moe_mlir.gpt_oss_reference), with non-zero biases, in float64."""

import os
import re
import secrets

import numpy as np
import pytest

from moe_mlir import gpt_oss_reference as gpt_oss
from moe_mlir import reference as ref


def checkpoint(rng, H, I, E, bias_scale=0.5):
    """Random gpt-oss tensors in the Hugging Face checkpoint's layout."""
    return {
        "router.weight": rng.standard_normal((E, H)),
        "router.bias": bias_scale * rng.standard_normal(E),
        "experts.gate_up_proj": rng.standard_normal((E, H, 2 * I)) / np.sqrt(H),
        "experts.gate_up_proj_bias": bias_scale * rng.standard_normal((E, 2 * I)),
        "experts.down_proj": rng.standard_normal((E, I, H)) / np.sqrt(I),
        "experts.down_proj_bias": bias_scale * rng.standard_normal((E, H)),
    }


def transcription(x, ckpt, k, limit=7.0):
    return gpt_oss.moe_block(
        x, ckpt["router.weight"], ckpt["router.bias"], ckpt["experts.gate_up_proj"],
        ckpt["experts.gate_up_proj_bias"], ckpt["experts.down_proj"],
        ckpt["experts.down_proj_bias"], experts_per_token=k, swiglu_limit=limit)


def oracle(x, ckpt, k, limit=7.0):
    """reference.layer with the checkpoint's tensors as moe.layer takes them: the
    projections in the Linear layout [E, N, K], the biases as they are."""
    return ref.layer_with_routing(
        x, ckpt["router.weight"], np.transpose(ckpt["experts.gate_up_proj"], (0, 2, 1)),
        np.transpose(ckpt["experts.down_proj"], (0, 2, 1)),
        router_bias=ckpt["router.bias"], w13_bias=ckpt["experts.gate_up_proj_bias"],
        w2_bias=ckpt["experts.down_proj_bias"], **dict(ref.MODEL_RECIPES["gpt_oss"], k=k),
        **dict(ref.MODEL_FFN["gpt_oss"], limit=limit))


@pytest.fixture
def rng(request):
    """Fresh inputs each run; MOE_TEST_SEED=<n> replays the seed a failure reports."""
    seed = int(os.environ.get("MOE_TEST_SEED", secrets.randbits(63)))
    request.node.add_report_section("setup", "seed", f"MOE_TEST_SEED={seed}")
    return np.random.default_rng(seed)


@pytest.mark.parametrize("T,H,I,E,k", [
    (1, 16, 8, 8, 4), (13, 24, 12, 32, 4), (40, 20, 10, 6, 2), (5, 7, 3, 5, 5)])
def test_oracle_matches_transcription(rng, T, H, I, E, k):
    ckpt = checkpoint(rng, H, I, E)
    x = 6.0 * rng.standard_normal((T, H))  # large enough to reach the clamps
    y, _, ids = oracle(x, ckpt, k)
    want = transcription(x, ckpt, k)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    # A clamp is reached, so the test covers them.
    h = np.einsum("th,ehn->ten", x, ckpt["experts.gate_up_proj"])
    assert np.any(np.abs(h[np.arange(T)[:, None], ids]) > 7.0)


def test_biases_matter(rng):
    # Each bias alone changes the output: none is dropped on the way.
    T, H, I, E, k = 9, 16, 8, 8, 4
    ckpt = checkpoint(rng, H, I, E)
    x = rng.standard_normal((T, H))
    y = oracle(x, ckpt, k)[0]
    for name in ("router.bias", "experts.gate_up_proj_bias", "experts.down_proj_bias"):
        without = dict(ckpt, **{name: np.zeros_like(ckpt[name])})
        np.testing.assert_allclose(oracle(x, without, k)[0], transcription(x, without, k),
                                   rtol=1e-12, atol=1e-12)
        assert np.max(np.abs(oracle(x, without, k)[0] - y)) > 1e-3, name


def test_router_bias_routes_every_token_to_the_same_experts(rng):
    # A dominant router bias sends all tokens to experts 2, 5, 6 and 7; the other
    # four get no token, and their biases must add nothing.
    T, H, I, E, k = 11, 12, 6, 8, 4
    ckpt = checkpoint(rng, H, I, E)
    ckpt["router.bias"][[2, 5, 6, 7]] += 100.0
    x = rng.standard_normal((T, H))
    y, _, ids = oracle(x, ckpt, k)
    assert set(np.unique(ids)) == {2, 5, 6, 7}
    np.testing.assert_allclose(y, transcription(x, ckpt, k), rtol=1e-12, atol=1e-12)


def test_swiglu_matches_the_oracle_glu(rng):
    h = 4.0 * rng.standard_normal((6, 10))
    np.testing.assert_allclose(gpt_oss.swiglu(h, limit=3.0),
                               ref.glu(h, "swiglu_oai", "interleaved", limit=3.0),
                               rtol=1e-14, atol=1e-14)


def test_grouped_matmul_bias_is_per_expert_and_before_the_epilogue(rng):
    # Rows 0-2 are expert 0's, rows 3-4 no expert's (zero, bias included), and
    # the row scale multiplies the biased GLU output.
    lhs = rng.standard_normal((5, 4))
    rhs = rng.standard_normal((2, 6, 4))
    bias = rng.standard_normal((2, 6))
    offsets = np.array([0, 3, 3])
    rows = np.array([0, 1, 2, 3, 4])
    scale = rng.uniform(0.1, 1.0, size=(5, 1))
    got = ref.grouped_matmul(lhs, rhs, offsets, rows=rows, row_scale=scale, bias=bias,
                             epilogue="silu")
    h = lhs[:3] @ rhs[0].T + bias[0]
    want = np.zeros((5, 3))
    want[:3] = ref.glu(h, "silu") * scale[:3]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 6\)"):
        ref.grouped_matmul(lhs, rhs, offsets, bias=bias[:, :3])


@pytest.mark.parametrize("name, shape", [("router_bias", (5,)), ("router_bias", (1, 4)),
                                         ("w13_bias", (4, 3)), ("w2_bias", (4, 7))])
def test_layer_names_a_bias_of_the_wrong_shape(rng, name, shape):
    # E = 4, H = 6, I = 3: router_bias (4,), w13_bias (4, 6), w2_bias (4, 6).
    want = {"router_bias": (4,), "w13_bias": (4, 6), "w2_bias": (4, 6)}[name]
    biases = {key: np.zeros(value) for key, value in
              (("router_bias", (4,)), ("w13_bias", (4, 6)), ("w2_bias", (4, 6)))}
    biases[name] = np.zeros(shape)
    with pytest.raises(ValueError, match=re.escape(f"{name} must have shape {want}, "
                                                   f"got {shape}")):
        ref.layer(rng.standard_normal((2, 6)), rng.standard_normal((4, 6)),
                  rng.standard_normal((4, 6, 6)), rng.standard_normal((4, 6, 3)), k=2,
                  **biases)


def test_torch_reference_with_biases(rng):
    # The fp32 torch oracle of the expert half (what the GPU tests use) with
    # gpt-oss's biases and activation, against the float64 one.
    torch = pytest.importorskip("torch")
    from moe_mlir import torch_reference

    T, H, I, E, k = 10, 16, 8, 6, 4
    ckpt = checkpoint(rng, H, I, E)
    x = 3.0 * rng.standard_normal((T, H))
    ids = np.stack([rng.permutation(E)[:k] for _ in range(T)]).astype(np.int32)
    weights = rng.uniform(0.1, 1.0, size=(T, k))
    w13 = np.transpose(ckpt["experts.gate_up_proj"], (0, 2, 1))
    w2 = np.transpose(ckpt["experts.down_proj"], (0, 2, 1))
    b13, b2 = ckpt["experts.gate_up_proj_bias"], ckpt["experts.down_proj_bias"]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    got = torch_reference.reference_fp32(t(x), t(w13), t(w2), torch.from_numpy(ids), t(weights),
                                         w13_bias=t(b13), w2_bias=t(b2),
                                         activation="swiglu_oai").double().numpy()
    rows, offsets = ref.dispatch(ids, weights, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, k), w13, offsets, bias=b13)
    ys = ref.grouped_matmul(ref.glu(h, "swiglu_oai", "interleaved"), w2, offsets, bias=b2)
    want = ref.combine(ys, rows, weights)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
