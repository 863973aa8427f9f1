"""MoE layers compiled by moe-compile as PyTorch custom ops.

    from moe_mlir import aot, torch_op
    layer = aot.compile(config, name="mixtral").load()
    op = torch_op.register(layer, "mixtral")      # torch.ops.moe_mlir.mixtral
    y = op(x, router, w13, w2)                    # CPU tensors

The op is a ``torch.library.custom_op`` with a fake (meta) implementation, so
``torch.compile(fullgraph=True)`` traces through it; the real one calls the
artifact's C ABI on the tensors' memory, without copies for contiguous
inputs. Importing this module needs torch; nothing else in moe_mlir does.
"""

from __future__ import annotations

import ctypes

import torch

from .aot import Layer, MoEError

_TORCH_DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16,
                 "i32": torch.int32}


def register(layer: Layer, name: str):
    """Registers ``torch.ops.moe_mlir.<name>`` for a loaded artifact."""
    inputs = layer.inputs
    out_spec = layer.outputs[0]
    out_dtype = _TORCH_DTYPES[out_spec["dtype"]]
    hidden = out_spec["shape"][1]
    params = ", ".join(f"Tensor {t['name']}" for t in inputs)

    def forward(*tensors):
        if len(tensors) != len(inputs):
            raise ValueError(f"expected {len(inputs)} tensors, got {len(tensors)}")
        args = []
        for spec, tensor in zip(inputs, tensors):
            if tensor.device.type != "cpu":
                raise ValueError(f"'{spec['name']}' must be a CPU tensor for this "
                                 f"artifact, got {tensor.device}")
            want = _TORCH_DTYPES[spec["dtype"]]
            if tensor.dtype != want:
                raise ValueError(f"'{spec['name']}' must be {want}, got {tensor.dtype}")
            args.append(tensor.contiguous())
        tokens = args[0].shape[0]
        for spec, tensor in zip(inputs, args):
            shape = tuple(tokens if s < 0 else s for s in spec["shape"])
            if tuple(tensor.shape) != shape:
                raise ValueError(f"'{spec['name']}' must have shape {shape}, "
                                 f"got {tuple(tensor.shape)}")
        out = torch.empty((tokens, hidden), dtype=out_dtype)
        size = layer._workspace_size(tokens)
        workspace = torch.empty(size, dtype=torch.uint8) if size else None
        status = layer._forward(*[t.data_ptr() for t in args], out.data_ptr(), tokens,
                                None if workspace is None else workspace.data_ptr(),
                                size, None)
        if status != 0:
            raise MoEError(status, layer.status_string(status))
        return out

    op = torch.library.custom_op(f"moe_mlir::{name}", forward, mutates_args=(),
                                 schema=f"({params}) -> Tensor")

    @op.register_fake
    def _(*tensors):
        return tensors[0].new_empty((tensors[0].shape[0], hidden), dtype=out_dtype)

    return getattr(torch.ops.moe_mlir, name)
