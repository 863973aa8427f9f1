"""gpt-oss's MoE block in numpy float64: an independent check of the oracle.

A transcription of the mixture-of-experts part of ``MLPBlock.forward`` in the
openai/gpt-oss torch reference (``gpt_oss/torch/model.py``), which
transformers' ``GptOssMLP`` computes alike:

    g = gate(t)                                   # Linear with a bias
    experts = topk(g, k, sorted=True)
    expert_weights = softmax(experts.values)      # over the k chosen logits
    t = einsum("beck,bk->bec", mlp1_weight[indices], t) + mlp1_bias[indices]
    t = swiglu(t, limit)                          # interleaved gate/up, clamped
    t = einsum("beck,bek->bec", mlp2_weight[indices], t) + mlp2_bias[indices]
    t = einsum("bec,be->bc", t, expert_weights)

It is written from that code, not from :mod:`moe_mlir.reference`: it gathers
each token's experts' weights and never dispatches, so it shares no step with
the oracle. The RMSNorm before the block and the residual after it are not
part of a MoE layer and are left out.

The tensors have the Hugging Face checkpoint's names and layouts:

    router.weight [E, H]            router.bias [E]
    experts.gate_up_proj [E, H, 2I] experts.gate_up_proj_bias [E, 2I]
    experts.down_proj [E, I, H]     experts.down_proj_bias [E, H]

with gate and up interleaved along 2I (gate at even columns). openai's own
checkpoint names them ``gate.weight``/``gate.bias``, ``mlp1_weight`` [E, 2I, H]
(``gate_up_proj`` transposed), ``mlp1_bias``, ``mlp2_weight`` [E, H, I]
(``down_proj`` transposed) and ``mlp2_bias``.
"""

import numpy as np

__all__ = ["swiglu", "moe_block"]


def _sigmoid(z):
    # The tanh form neither overflows nor loses the small values.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def swiglu(x, alpha=1.702, limit=7.0):
    """gpt-oss's ``swiglu``: x [..., 2I] with gate x[..., ::2] clamped above at
    ``limit`` and up x[..., 1::2] clamped to [-limit, limit];
    gate * sigmoid(alpha * gate) * (up + 1)."""
    x_glu = np.minimum(x[..., ::2], limit)
    x_linear = np.clip(x[..., 1::2], -limit, limit)
    out_glu = x_glu * _sigmoid(alpha * x_glu)
    # The up projection gets an extra bias of 1.
    return out_glu * (x_linear + 1.0)


def moe_block(x, router_weight, router_bias, gate_up_proj, gate_up_proj_bias, down_proj,
              down_proj_bias, *, experts_per_token=4, swiglu_limit=7.0, alpha=1.702):
    """The MoE block on tokens x [T, H] (already normalized), in float64, from the
    checkpoint's tensors (see the module docstring). Returns [T, H]."""
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    x, router_weight, router_bias = f64(x), f64(router_weight), f64(router_bias)
    gate_up_proj, gate_up_proj_bias = f64(gate_up_proj), f64(gate_up_proj_bias)
    down_proj, down_proj_bias = f64(down_proj), f64(down_proj_bias)
    T = x.shape[0]
    H = x.shape[1]
    k = experts_per_token

    g = x @ router_weight.T + router_bias
    # torch.topk(sorted=True): the k largest logits, largest first (a stable
    # sort puts the lower expert first on a tie).
    indices = np.argsort(-g, axis=-1, kind="stable")[:, :k]
    values = np.take_along_axis(g, indices, axis=-1)
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    expert_weights = shifted / shifted.sum(axis=1, keepdims=True)

    # MLP #1, with mlp1_weight = gate_up_proj transposed: [T, k, 2I, H].
    mlp1_weight = np.transpose(gate_up_proj, (0, 2, 1))[indices]
    mlp1_bias = gate_up_proj_bias[indices]
    t = np.einsum("beck,bk->bec", mlp1_weight, x) + mlp1_bias
    t = swiglu(t, alpha=alpha, limit=swiglu_limit)

    # MLP #2, with mlp2_weight = down_proj transposed: [T, k, H, I].
    mlp2_weight = np.transpose(down_proj, (0, 2, 1))[indices]
    mlp2_bias = down_proj_bias[indices]
    t = np.einsum("beck,bek->bec", mlp2_weight, t)
    t = t + mlp2_bias

    # Weighted sum of experts.
    out = np.einsum("bec,be->bc", t, expert_weights)
    return out.reshape(T, H)
