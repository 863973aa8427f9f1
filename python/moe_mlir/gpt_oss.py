"""gpt-oss checkpoints and moe-compile's layers: which tensor goes where.

A gpt-oss config (``model_type: gpt_oss``) compiles to a layer whose inputs
are, in order, ``x, router, w13, w2, router_bias, w13_bias, w2_bias`` (the
experts entry: ``x, topk_ids, topk_weights, w13, w2, w13_bias, w2_bias``).
In a Hugging Face checkpoint (``model.layers.<i>.mlp.`` + the keys below):

==============  ==============================  ===========================
input           checkpoint tensor               as stored
==============  ==============================  ===========================
router          ``router.weight``               [E, H]
router_bias     ``router.bias``                 [E]
w13             ``experts.gate_up_proj``        [E, H, 2I]: the ``kn`` layout
w13_bias        ``experts.gate_up_proj_bias``   [E, 2I]
w2              ``experts.down_proj``           [E, I, H]: the ``kn`` layout
w2_bias         ``experts.down_proj_bias``      [E, H]
==============  ==============================  ===========================

Gate and up are interleaved along 2I (gate at even columns) in the weights
and their bias alike; the layer's ``glu_layout`` is ``interleaved``, so both
go in as stored. Compiled with ``weight_layout=kn`` the layer takes the two
projections as stored too; with the default ``nk`` (the Linear layout
[E, N, K]) they are transposed first, which :func:`layer_inputs` does.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["CHECKPOINT_KEYS", "layer_inputs"]

#: The checkpoint key of each layer input (after the layer's prefix).
CHECKPOINT_KEYS = {
    "router": "router.weight",
    "router_bias": "router.bias",
    "w13": "experts.gate_up_proj",
    "w13_bias": "experts.gate_up_proj_bias",
    "w2": "experts.down_proj",
    "w2_bias": "experts.down_proj_bias",
}


def _transposed(tensor: Any) -> Any:
    """[E, K, N] as [E, N, K], contiguous (numpy arrays or torch tensors)."""
    if hasattr(tensor, "permute"):
        return tensor.transpose(-1, -2).contiguous()
    import numpy as np

    return np.ascontiguousarray(np.swapaxes(tensor, -1, -2))


def layer_inputs(layer: Any, checkpoint: Mapping[str, Any], prefix: str = "",
                 **given: Any) -> Sequence[Any]:
    """The inputs of ``layer`` (an ``aot.Layer`` of a gpt-oss layer or experts
    entry) in its order: each from ``checkpoint[prefix + key]`` (keys as in
    :data:`CHECKPOINT_KEYS`), the projections transposed unless the layer
    was compiled with ``weight_layout=kn``; the per-token inputs (``x``, and
    ``topk_ids``, ``topk_weights`` of an experts entry) from ``given``."""
    kn = layer.manifest.get("layer", {}).get("weight_layout") == "kn"
    inputs = []
    for spec in layer.inputs:
        name = spec["name"]
        if name in given:
            inputs.append(given[name])
            continue
        if name not in CHECKPOINT_KEYS:
            raise ValueError(f"input '{name}' is per token: pass it as {name}=...")
        key = prefix + CHECKPOINT_KEYS[name]
        if key not in checkpoint:
            raise KeyError(f"the checkpoint has no '{key}' (the layer's '{name}')")
        tensor = checkpoint[key]
        inputs.append(tensor if kn or name not in ("w13", "w2") else _transposed(tensor))
    return inputs
