"""The torch FP8 oracle (moe_mlir.torch_reference_fp8, what the GPU benchmark
checks its FP8 points against) against the numpy fp64 one (moe_mlir.reference
with weight_quant), on the CPU: the same e4m3 bytes and scales, and the same
expert half within the bf16 roundings that only the torch one models."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from moe_mlir import reference, reference_quant  # noqa: E402
from moe_mlir import torch_reference_fp8 as fp8  # noqa: E402


@pytest.mark.parametrize("shape,block", [((3, 40, 72), (128, 128)), ((2, 96, 200), (32, 32)),
                                         ((2, 130, 256), (128, 128))])
def test_weight_quantization_matches_numpy(shape, block):
    w = np.random.default_rng(1).standard_normal(shape)
    w[0, :4] = 0  # an all-zero block row gets scale 1 somewhere
    q, scales = fp8.quantize_weights(torch.from_numpy(w), block)
    want_q, want_scales = reference_quant.quantize_weights(w, block)
    assert np.array_equal(q.view(torch.uint8).numpy(), want_q.view(np.uint8))
    assert np.array_equal(scales.numpy(), want_scales)
    deq = fp8.dequantize_weights(q, scales, block).double().numpy()
    # The product of an e4m3 value and an f32 scale, rounded once to f32.
    np.testing.assert_allclose(
        deq, reference_quant.dequantize_weights(want_q, want_scales, block), rtol=2.0 ** -24)


@pytest.mark.parametrize("K,bk", [(200, 128), (256, 128), (72, 32), (40, 128)])
def test_row_quantization_matches_numpy(K, bk):
    a = np.random.default_rng(2).standard_normal((9, K)).astype(np.float32) * 3
    a[3] = 0  # an all-zero row: scales of 1, never NaN
    got = fp8.quantized_rows(torch.from_numpy(a), bk).double().numpy()
    want = reference_quant.quantize_activations(a, bk, "dynamic")
    np.testing.assert_allclose(got, want, rtol=2.0 ** -24)  # q * scale rounded to f32
    assert not np.isnan(got).any()


def test_expert_half_matches_numpy_oracle():
    T, H, I, E, k, block = 37, 200, 96, 6, 2, (128, 128)
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((T, H)).astype(np.float32)).bfloat16()
    w13 = rng.standard_normal((E, 2 * I, H)) * H ** -0.5
    w2 = rng.standard_normal((E, H, I)) * I ** -0.5
    q13, s13 = fp8.quantize_weights(torch.from_numpy(w13), block)
    q2, s2 = fp8.quantize_weights(torch.from_numpy(w2), block)
    ids = np.stack([rng.choice(E - 1, k, replace=False) for _ in range(T)]).astype(np.int32)
    weights = rng.random((T, k)).astype(np.float32)  # expert E - 1 gets no tokens
    got = fp8.reference_fp8(x, q13, q2, torch.from_numpy(ids), torch.from_numpy(weights),
                            s13, s2, block).double().numpy()

    quant = dict(block=block, activation="dynamic")
    xs = x.float().double().numpy()
    rows, offsets = reference.dispatch(ids, weights, num_experts=E)
    h = reference.grouped_matmul(reference.permute(xs, rows, k), q13.view(torch.uint8).numpy(),
                                 offsets, weight_quant=quant, rhs_scales=s13.numpy())
    # The GLU output is quantized from its f32 value in both.
    a = reference.glu(h, "silu", "concatenated")
    ys = reference.grouped_matmul(a, q2.view(torch.uint8).numpy(), offsets,
                                  weight_quant=quant, rhs_scales=s2.numpy())
    want = reference.combine(ys, rows, weights)
    error = np.abs(got - want).max() / np.abs(want).max()
    # Only the bf16 rounding of the scaled rows, which the oracle leaves out, differs.
    assert error < 1e-2, error
    assert error > 0  # the torch oracle does round where the kernels do
