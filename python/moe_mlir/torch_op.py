"""MoE layers compiled by moe-compile as PyTorch custom ops.

    from moe_mlir import aot, torch_op
    layer = aot.compile(config, name="mixtral").load()
    op = torch_op.register(layer, "mixtral")      # torch.ops.moe_mlir.mixtral
    y = op(x, router, w13, w2)                    # CPU tensors, x [*, H] -> y [*, H]

    gpu = aot.compile(config, name="mixtral_cuda", target="cuda").load()
    op = torch_op.register(gpu, "mixtral_cuda")   # CUDA tensors
    y = op(x, router, w13, w2)                    # on the current stream

    experts = aot.compile(config, name="mixtral_experts", entry="experts").load()
    op = torch_op.register(experts, "mixtral_experts")   # the routing given:
    y = op(x, topk_ids, topk_weights, w13, w2)    # int32 [*, k], float32 [*, k]

The op is a ``torch.library.custom_op`` with a fake (meta) implementation, so
``torch.compile(fullgraph=True)`` traces through it; the real one calls the
artifact's C ABI on the tensors' memory, without copies for contiguous
inputs. A CUDA artifact's op enqueues on torch's current stream and takes its
workspace from torch's caching allocator, so it can be captured in a CUDA
graph. Importing this module needs torch; nothing else in moe_mlir does.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .aot import Layer
# Also what aot's CUDA calls use; kept in a module of their own so that aot
# does not import this one, which imports aot.
from .torch_tensors import TORCH_DTYPES, check_tensors  # noqa: F401

def register(layer: Layer, name: str):
    """Registers ``torch.ops.moe_mlir.<name>`` for a loaded artifact, with
    the artifact's inputs in the manifest's order (an experts entry's:
    x, topk_ids, topk_weights, w13, w2). Its ``x`` may have any leading
    dimensions, ``[*, H]`` (``topk_ids`` and ``topk_weights`` then
    ``[*, k]``); the result has the same, ``[*, H]``. Without tokens the result is empty and the library is
    not called."""
    out_spec = layer.outputs[0]
    out_dtype = TORCH_DTYPES[out_spec["dtype"]]
    params = ", ".join(f"Tensor {t['name']}" for t in layer.inputs)
    device_type = "cuda" if layer.target == "cuda" else "cpu"

    def forward(*tensors):
        if device_type == "cuda":
            return layer(*tensors)  # checks, then runs on the current stream
        args, lead = check_tensors(layer, tensors, device_type)
        tokens = math.prod(lead)
        out = torch.empty(layer.shape(out_spec, tokens), dtype=out_dtype)
        if tokens:
            size = layer.workspace_size(tokens)
            workspace = torch.empty(size, dtype=torch.uint8) if size else None
            layer.forward_pointers([t.data_ptr() for t in args + [out]], tokens,
                                   None if workspace is None else workspace.data_ptr(),
                                   size)
        return out.reshape(layer.output_shape(out_spec, lead))

    op = torch.library.custom_op(f"moe_mlir::{name}", forward, mutates_args=(),
                                 device_types=device_type,
                                 schema=f"({params}) -> Tensor")

    @op.register_fake
    def _(*tensors):
        lead = tuple(tensors[0].shape[:-1])
        return tensors[0].new_empty(layer.output_shape(out_spec, lead), dtype=out_dtype)

    return getattr(torch.ops.moe_mlir, name)
