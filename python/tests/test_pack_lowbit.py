"""moe_mlir.pack_lowbit against independent, element-by-element packers and unpackers
of the GPTQ and AWQ int32 layouts (written from the layouts' definitions, one value at a
time, sharing nothing with the module): checkpoints packed here load into the kernel
layout with the same codes, zero points and scales, and dequantize to the same weights.
"""

import numpy as np
import pytest

from moe_mlir import pack_lowbit
from moe_mlir import reference_lowbit as lb

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def _word_loop(values):
    """Eight 4-bit values -> one int32 word, value j in bits 4j..4j+3."""
    word = 0
    for j, v in enumerate(values):
        word |= (int(v) & 0xF) << (4 * j)
    return np.uint32(word).view(np.int32)


def gptq_pack(codes, zeros, scales, v1):
    """GPTQ tensors of codes [N, K], zero points [N, G], scales [N, G]: qweight
    [K / 8, N] (along K), qzeros [G, N / 8] (along N, z - 1 for v1), scales [G, N]."""
    N, K = codes.shape
    G = zeros.shape[1]
    qweight = np.zeros((K // 8, N), np.int32)
    for i in range(K // 8):
        for n in range(N):
            qweight[i, n] = _word_loop([codes[n, 8 * i + j] for j in range(8)])
    qzeros = np.zeros((G, N // 8), np.int32)
    for g in range(G):
        for i in range(N // 8):
            qzeros[g, i] = _word_loop([zeros[8 * i + j, g] - (1 if v1 else 0) for j in range(8)])
    return qweight, qzeros, scales.T.astype(np.float16)


def awq_pack(codes, zeros, scales):
    """AWQ (gemm) tensors: qweight [K, N / 8] and qzeros [G, N / 8], nibble j of word i
    holding column 8 i + AWQ_ORDER[j]; scales [G, N]."""
    N, K = codes.shape
    G = zeros.shape[1]
    qweight = np.zeros((K, N // 8), np.int32)
    for k in range(K):
        for i in range(N // 8):
            qweight[k, i] = _word_loop([codes[8 * i + AWQ_ORDER[j], k] for j in range(8)])
    qzeros = np.zeros((G, N // 8), np.int32)
    for g in range(G):
        for i in range(N // 8):
            qzeros[g, i] = _word_loop([zeros[8 * i + AWQ_ORDER[j], g] for j in range(8)])
    return qweight, qzeros, scales.T.astype(np.float16)


def unpack_kernel_bytes(packed):
    """The kernel's int4 bytes [N, K / 2] -> codes [N, K], byte by byte."""
    packed = np.asarray(packed).view(np.uint8)
    N, half = packed.shape
    codes = np.zeros((N, 2 * half), np.int64)
    for n in range(N):
        for b in range(half):
            codes[n, 2 * b] = int(packed[n, b]) & 0xF
            codes[n, 2 * b + 1] = int(packed[n, b]) >> 4
    return codes


def _draw(rng, N, K, group, zero_low=0, zero_high=16):
    G = -(-K // group)
    codes = rng.integers(0, 16, size=(N, K))
    zeros = rng.integers(zero_low, zero_high, size=(N, G))
    scales = (rng.random((N, G)) * 0.1).astype(np.float16).astype(np.float32)
    scales[0, 0] = 0.0
    return codes, zeros, scales


def _dequant_loop(codes, zeros, scales, group):
    N, K = codes.shape
    W = np.zeros((N, K))
    for n in range(N):
        for k in range(K):
            W[n, k] = (codes[n, k] - zeros[n, k // group]) * float(scales[n, k // group])
    return W


@pytest.mark.parametrize("fmt,group", [("gptq", 32), ("gptq_v2", 64), ("awq", 128), ("awq", 32)])
def test_int4_checkpoints_round_trip(fmt, group):
    rng = np.random.default_rng(1234 + group)
    N, K = 24, 160  # K ends in a partial group for 64 and 128
    # GPTQ v1 stores z - 1 in a nibble: z = 0 has no encoding there.
    codes, zeros, scales = _draw(rng, N, K, group, zero_low=1 if fmt == "gptq" else 0)
    zeros[1, 0], zeros[2, -1] = 15, (1 if fmt == "gptq" else 0)
    if fmt == "awq":
        qweight, qzeros, s = awq_pack(codes, zeros, scales)
        weights, got_scales, got_zeros = pack_lowbit.awq_to_int4(qweight, qzeros, s,
                                                                 group_size=group)
    else:
        qweight, qzeros, s = gptq_pack(codes, zeros, scales, v1=fmt == "gptq")
        weights, got_scales, got_zeros = pack_lowbit.gptq_to_int4(
            qweight, qzeros, s, group_size=group, sym=False, checkpoint_format=fmt)
    assert weights.dtype == np.int8 and weights.shape == (N, K // 2)
    assert np.array_equal(unpack_kernel_bytes(weights), codes)
    assert got_zeros.dtype == np.int8 and np.array_equal(got_zeros, zeros)
    assert got_scales.dtype == np.float32 and np.array_equal(got_scales, scales)
    W = lb.dequantize_int4(weights[None], got_scales[None], got_zeros[None], group)[0]
    assert np.array_equal(W, _dequant_loop(codes, zeros, scales, group))


def test_awq_nibble_order():
    """One AWQ word whose nibble j holds the value j: columns 0..7 read the nibbles
    0 4 1 5 2 6 3 7 (nibble j is column AWQ_ORDER[j])."""
    word = _word_loop(range(8))
    qweight = np.full((32, 1), word, np.int32)
    weights, _, _ = pack_lowbit.awq_to_int4(qweight, np.full((1, 1), word, np.int32),
                                            np.ones((1, 8), np.float16), group_size=32)
    assert unpack_kernel_bytes(weights)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_gptq_symmetric():
    rng = np.random.default_rng(7)
    codes, _, scales = _draw(rng, 16, 64, 32)
    zeros = np.full((16, 2), 8)
    for v1 in (True, False):
        qweight, qzeros, s = gptq_pack(codes, zeros, scales, v1=v1)
        fmt = "gptq" if v1 else "gptq_v2"
        weights, _, z = pack_lowbit.gptq_to_int4(qweight, qzeros, s, group_size=32, sym=True,
                                                 checkpoint_format=fmt)
        assert z is None and np.array_equal(unpack_kernel_bytes(weights), codes)
    zeros[3, 1] = 9
    qweight, qzeros, s = gptq_pack(codes, zeros, scales, v1=False)
    with pytest.raises(ValueError, match=r"symmetric checkpoint's zero points are all 8, got 9"):
        pack_lowbit.gptq_to_int4(qweight, qzeros, s, group_size=32, sym=True,
                                 checkpoint_format="gptq_v2")


def test_gptq_errors():
    rng = np.random.default_rng(3)
    codes, zeros, scales = _draw(rng, 8, 32, 32)
    zeros[:] = 0  # stored as -1 in v1: nibble 15, z = 16
    qweight, qzeros, s = gptq_pack(codes, zeros, scales, v1=True)
    with pytest.raises(ValueError, match="a gptq \\(v1\\) zero point of 15 is z = 16"):
        pack_lowbit.gptq_to_int4(qweight, qzeros, s, group_size=32, sym=False)
    with pytest.raises(ValueError, match="'qweight' must be a 2-D int32 tensor"):
        pack_lowbit.gptq_to_int4(qweight.astype(np.float32), qzeros, s, group_size=32,
                                 sym=False, checkpoint_format="gptq_v2")
    with pytest.raises(ValueError, match="group_size must be one of"):
        pack_lowbit.gptq_to_int4(qweight, qzeros, s, group_size=-1, sym=False)
    with pytest.raises(ValueError, match="'scales' must be a float tensor"):
        pack_lowbit.gptq_to_int4(qweight, qzeros, s.T, group_size=32, sym=False,
                                 checkpoint_format="gptq_v2")
    with pytest.raises(ValueError, match="activation order"):
        pack_lowbit.gptq_to_int4(qweight, qzeros, s, group_size=32, sym=False,
                                 checkpoint_format="gptq_v2", g_idx=np.ones(32, np.int32))
    with pytest.raises(ValueError, match="checkpoint_format must be"):
        pack_lowbit.gptq_to_int4(qweight, qzeros, s, group_size=32, sym=False,
                                 checkpoint_format="marlin")


def test_compressed_tensors_int8():
    torch = pytest.importorskip("torch")
    w = torch.randint(-127, 128, (12, 40), dtype=torch.int8)
    s = (torch.rand(12, 1) / 100).to(torch.bfloat16)
    q, scales = pack_lowbit.compressed_tensors_to_int8(w, s)
    assert q.dtype == np.int8 and np.array_equal(q, w.numpy())
    assert scales.dtype == np.float32 and np.array_equal(scales, s.float().numpy())
    with pytest.raises(ValueError, match="'weight' must be an int8"):
        pack_lowbit.compressed_tensors_to_int8(w.float(), s)


def test_gpt_oss_blocks_and_stacking():
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 256, size=(2, 4, 3, 16)).astype(np.uint8)
    scales = rng.integers(0, 255, size=(2, 4, 3)).astype(np.uint8)
    b, s = pack_lowbit.gpt_oss_mxfp4(blocks, scales)
    assert np.array_equal(b, blocks) and np.array_equal(s, scales)
    with pytest.raises(ValueError, match=r"'scales' must be uint8 \(2, 4, 3\)"):
        pack_lowbit.gpt_oss_mxfp4(blocks, scales[:, :, :2])
    parts = [(np.zeros((2, 3)), np.ones((2, 1)), None), (np.ones((2, 3)), np.ones((2, 1)), None)]
    w, sc, z = pack_lowbit.stack_experts(parts)
    assert w.shape == (2, 2, 3) and sc.shape == (2, 2, 1) and z is None
