"""Quantized checkpoint tensors, as Hugging Face checkpoints store them, in the layout
the weight-only kernels take (docs/quantization.md, "Weight-only formats").

The kernel layout of E experts' [N, K] weights (``nk``):

- int4: ``weights`` int8 [E, N, K / 2], two codes q in [0, 15] per byte along K (the
  low nibble holds the even k); ``scales`` float32 [E, N, ceil(K / g)]; ``zero_points``
  int8 of the same shape, or none for the symmetric form (z = 8);
- mxfp4: gpt-oss's ``*_blocks`` [E, N, K / 32, 16] uint8 and ``*_scales`` [E, N, K / 32]
  uint8 are that layout already (:func:`gpt_oss_mxfp4` checks them);
- int8: ``weights`` int8 [E, N, K], ``scales`` float32 [E, N, 1].

The int4 checkpoints pack eight 4-bit values per int32 word (the low bits first):

- GPTQ (AutoGPTQ, GPTQModel): ``qweight`` [K / 8, N] packs along K (word i, nibble j
  holds k = 8 i + j); ``qzeros`` [G, N / 8] packs along N (nibble j of word i holds
  column 8 i + j); ``scales`` [G, N]. ``checkpoint_format`` ``"gptq"`` (the default,
  and what older checkpoints are) stores each zero point minus one, so z = stored + 1;
  ``"gptq_v2"`` stores z itself. A v1 nibble of 15 (z = 16) has no int4 zero point and
  is refused.
- AWQ (AutoAWQ, version gemm): ``qweight`` [K, N / 8] and ``qzeros`` [G, N / 8] both
  pack along N, nibble j of word i holding column 8 i + ORDER[j] with ORDER = [0, 2, 4,
  6, 1, 3, 5, 7]; ``scales`` [G, N]; zero points as stored.

compressed-tensors int8 (``format`` int-quantized or naive-quantized): ``weight`` int8
[N, K] and ``weight_scale`` [N, 1] (in the model's dtype; float32 holds it exactly).

Each function takes one Linear's tensors (torch tensors or numpy arrays); the experts
are stacked with :func:`stack_experts`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["AWQ_ORDER", "gptq_to_int4", "awq_to_int4", "compressed_tensors_to_int8",
           "gpt_oss_mxfp4", "stack_experts", "concat_gate_up"]

#: The column of each nibble (0..7) of an AWQ int32 word, relative to 8 i.
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
_INT4_GROUPS = (32, 64, 128)


def _numpy(a, name):
    """A numpy array of a torch tensor (on the CPU) or array-like."""
    if hasattr(a, "detach"):
        a = a.detach().cpu()
        if str(a.dtype) in ("torch.bfloat16",):
            a = a.float()
        a = a.numpy()
    a = np.asarray(a)
    if a.dtype == object:
        raise ValueError(f"'{name}' must be a numeric array, got objects")
    return a


def _int32(a, name, ndim=2):
    a = _numpy(a, name)
    if a.dtype not in (np.int32, np.uint32) or a.ndim != ndim:
        raise ValueError(f"'{name}' must be a {ndim}-D int32 tensor (eight 4-bit values per "
                         f"word), got {a.dtype} {a.shape}")
    return a.view(np.uint32)


def _nibbles(words):
    """uint32 [..., W] -> uint8 [..., W, 8], nibble j of each word (bits 4j..4j+3)."""
    shifts = np.arange(8, dtype=np.uint32) * 4
    return ((words[..., None] >> shifts) & 0xF).astype(np.uint8)


def _pack_k(codes):
    """Codes uint8 [N, K] -> the kernel's bytes int8 [N, K / 2] (low nibble: even k)."""
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8).view(np.int8)


def _scales(scales, name, groups, N):
    s = _numpy(scales, name)
    if s.shape != (groups, N) or s.dtype.kind != "f":
        raise ValueError(f"'{name}' must be a float tensor [G, N] = [{groups}, {N}], got "
                         f"{s.dtype} {s.shape}")
    return np.ascontiguousarray(s.astype(np.float32).T)


def _check_group(group_size, K):
    if group_size not in _INT4_GROUPS:
        raise ValueError(f"group_size must be one of {_INT4_GROUPS}, got {group_size}")
    return -(-K // group_size)


def _symmetric(zeros, what):
    """None after checking that every zero point is 8, the symmetric form's."""
    if zeros.size and np.any(zeros != 8):
        bad = tuple(int(i) for i in np.argwhere(zeros != 8)[0])
        raise ValueError(f"{what}: a symmetric checkpoint's zero points are all 8, got "
                         f"{int(zeros[bad])} at (n, group) = {bad}")
    return None


def gptq_to_int4(qweight, qzeros, scales, *, group_size: int, sym: bool,
                 checkpoint_format: str = "gptq", g_idx=None):
    """One GPTQ Linear (``bits`` 4, ``desc_act`` false) in the kernel's int4 layout:
    (weights int8 [N, K / 2], scales float32 [N, G], zero_points int8 [N, G] or None when
    ``sym``). ``g_idx``, if the checkpoint has one, must be the trivial k // group_size
    (activation order permutes K and is not supported)."""
    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise ValueError(f"checkpoint_format must be 'gptq' or 'gptq_v2', got "
                         f"{checkpoint_format!r}")
    qw = _int32(qweight, "qweight")
    K, N = qw.shape[0] * 8, qw.shape[1]
    groups = _check_group(group_size, K)
    qz = _int32(qzeros, "qzeros")
    if qz.shape != (groups, -(-N // 8)):
        raise ValueError(f"'qzeros' must be [G, N / 8] = [{groups}, {-(-N // 8)}], got "
                         f"{qz.shape}")
    if g_idx is not None:
        g = _numpy(g_idx, "g_idx")
        if g.shape != (K,) or np.any(g != np.arange(K) // group_size):
            raise ValueError("'g_idx' is not k // group_size: activation order (desc_act) "
                             "is not supported")
    # qweight [K / 8, N]: nibble j of word (i, n) is k = 8 i + j.
    codes = _nibbles(qw).transpose(1, 0, 2).reshape(N, K)
    zeros = _nibbles(qz).reshape(groups, -1)[:, :N].T.astype(np.int16)
    if checkpoint_format == "gptq":
        if np.any(zeros == 15):
            bad = tuple(int(i) for i in np.argwhere(zeros == 15)[0])
            raise ValueError(f"'qzeros': a gptq (v1) zero point of 15 is z = 16, outside "
                             f"int4's [0, 15], at (n, group) = {bad}")
        zeros = zeros + 1
    s = _scales(scales, "scales", groups, N)
    z = _symmetric(zeros, "GPTQ sym") if sym else zeros.astype(np.int8)
    return _pack_k(codes), s, z


def awq_to_int4(qweight, qzeros, scales, *, group_size: int, zero_point: bool = True):
    """One AWQ (gemm) Linear in the kernel's int4 layout: (weights int8 [N, K / 2],
    scales float32 [N, G], zero_points int8 [N, G]); without ``zero_point`` the
    checkpoint has no qzeros (pass None) and the form is the symmetric one (z = 8)."""
    qw = _int32(qweight, "qweight")
    K, N = qw.shape[0], qw.shape[1] * 8
    groups = _check_group(group_size, K)
    reorder = np.argsort(AWQ_ORDER)  # column c of a word is nibble reorder[c]
    codes = _nibbles(qw)[:, :, reorder].reshape(K, N).T
    s = _scales(scales, "scales", groups, N)
    if not zero_point:
        if qzeros is not None:
            raise ValueError("zero_point is false: the checkpoint has no qzeros")
        return _pack_k(np.ascontiguousarray(codes)), s, None
    qz = _int32(qzeros, "qzeros")
    if qz.shape != (groups, N // 8):
        raise ValueError(f"'qzeros' must be [G, N / 8] = [{groups}, {N // 8}], got "
                         f"{qz.shape}")
    zeros = _nibbles(qz)[:, :, reorder].reshape(groups, N).T
    return _pack_k(np.ascontiguousarray(codes)), s, np.ascontiguousarray(zeros).astype(np.int8)


def compressed_tensors_to_int8(weight, weight_scale):
    """One compressed-tensors int8 channel-wise Linear: (weights int8 [N, K], scales
    float32 [N, 1])."""
    w = _numpy(weight, "weight")
    if w.dtype != np.int8 or w.ndim != 2:
        raise ValueError(f"'weight' must be an int8 [N, K] tensor, got {w.dtype} {w.shape}")
    s = _numpy(weight_scale, "weight_scale")
    if s.shape != (w.shape[0], 1) or s.dtype.kind != "f":
        raise ValueError(f"'weight_scale' must be a float tensor [N, 1] = [{w.shape[0]}, 1], "
                         f"got {s.dtype} {s.shape}")
    return np.ascontiguousarray(w), s.astype(np.float32)


def gpt_oss_mxfp4(blocks, scales):
    """gpt-oss's ``*_blocks`` [E, N, K / 32, 16] and ``*_scales`` [E, N, K / 32] (uint8)
    checked and returned as the kernel takes them (the same bytes)."""
    b, s = _numpy(blocks, "blocks"), _numpy(scales, "scales")
    if b.dtype not in (np.uint8, np.int8) or b.ndim != 4 or b.shape[3] != 16:
        raise ValueError(f"'blocks' must be uint8 [E, N, K / 32, 16], got {b.dtype} {b.shape}")
    if s.dtype != np.uint8 or s.shape != b.shape[:3]:
        raise ValueError(f"'scales' must be uint8 {b.shape[:3]}, got {s.dtype} {s.shape}")
    return np.ascontiguousarray(b.view(np.uint8)), np.ascontiguousarray(s)


def stack_experts(linears: Sequence[tuple]) -> tuple:
    """Stacks per-expert results of the functions above along a new leading axis E
    (None stays None)."""
    if not linears:
        raise ValueError("no experts to stack")
    parts = list(zip(*linears))
    return tuple(None if part[0] is None else np.stack(part) for part in parts)


def concat_gate_up(gate: tuple, up: tuple) -> tuple:
    """w13 of a concatenated-GLU layer from its gate and up projections' [E, I, ...]
    tensors: each of (weights, scales, zero_points) joined along N."""
    return tuple(None if g is None else np.concatenate([g, u], axis=1)
                 for g, u in zip(gate, up))
