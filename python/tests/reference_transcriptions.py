"""What the oracle's tests compute independently of moe_mlir.reference: a seeded
generator, softmax, sigmoid and torch.topk in plain numpy, and the routing of
Hugging Face models transcribed from transformers."""

import numpy as np


def seeded(seed):
    return np.random.default_rng(seed)


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def topk(x, k):
    """torch.topk(x, k, dim=-1) (sorted) for inputs without ties."""
    idx = np.argsort(-x, axis=-1)[..., :k]
    return np.take_along_axis(x, idx, axis=-1), idx


def hf_deepseek_v3_route(logits, bias, top_k, n_group, topk_group, scale):
    """transformers DeepseekV3TopkRouter.get_topk_indices + DeepseekV3MoE.route_tokens_to_experts.

    HF masks the dropped groups with 0.0; the contract says -inf. The two agree whenever the
    kept scores are positive, which the test data guarantees, but -inf is used here as well.
    """
    T, E = logits.shape
    scores = np_sigmoid(logits)
    scores_for_choice = scores + bias[None, :]
    group_scores = topk(scores_for_choice.reshape(T, n_group, E // n_group), 2)[0].sum(axis=-1)
    group_idx = topk(group_scores, topk_group)[1]
    group_mask = np.zeros_like(group_scores)
    np.put_along_axis(group_mask, group_idx, 1.0, axis=1)
    score_mask = np.repeat(group_mask[:, :, None], E // n_group, axis=2).reshape(T, E)
    tmp_scores = np.where(score_mask.astype(bool), scores_for_choice, -np.inf)
    topk_indices = topk(tmp_scores, top_k)[1]
    topk_weights = np.take_along_axis(scores, topk_indices, axis=1)
    topk_weights = topk_weights / (topk_weights.sum(axis=-1, keepdims=True) + 1e-20)
    return topk_weights * scale, topk_indices
