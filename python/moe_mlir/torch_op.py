"""MoE layers compiled by moe-compile as PyTorch custom ops.

    from moe_mlir import aot, torch_op
    layer = aot.compile(config, name="mixtral").load()
    op = torch_op.register(layer, "mixtral")      # torch.ops.moe_mlir.mixtral
    y = op(x, router, w13, w2)                    # CPU tensors

    gpu = aot.compile(config, name="mixtral_cuda", target="cuda").load()
    op = torch_op.register(gpu, "mixtral_cuda")   # CUDA tensors
    y = op(x, router, w13, w2)                    # on the current stream

The op is a ``torch.library.custom_op`` with a fake (meta) implementation, so
``torch.compile(fullgraph=True)`` traces through it; the real one calls the
artifact's C ABI on the tensors' memory, without copies for contiguous
inputs. A CUDA artifact's op enqueues on torch's current stream and takes its
workspace from torch's caching allocator, so it can be captured in a CUDA
graph. Importing this module needs torch; nothing else in moe_mlir does.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .aot import Layer

TORCH_DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16,
                "i32": torch.int32}


def check_tensors(layer: Layer, tensors: Sequence[torch.Tensor],
                  device_type: str) -> list:
    """The inputs as contiguous tensors, after checking their device, dtype
    and shape against the artifact's manifest."""
    if len(tensors) != len(layer.inputs):
        raise ValueError(f"expected {len(layer.inputs)} tensors, got {len(tensors)}")
    checked = []
    for spec, tensor in zip(layer.inputs, tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"'{spec['name']}' must be a torch.Tensor, got "
                            f"{type(tensor).__name__}")
        if tensor.device.type != device_type:
            raise ValueError(f"'{spec['name']}' must be a {device_type.upper()} tensor "
                             f"for this {layer.target} artifact, got {tensor.device}")
        want = TORCH_DTYPES[spec["dtype"]]
        if tensor.dtype != want:
            raise ValueError(f"'{spec['name']}' must be {want}, got {tensor.dtype}")
        checked.append(tensor.contiguous())
    tokens = checked[0].shape[0] if checked[0].dim() else 0
    for spec, tensor in zip(layer.inputs, checked):
        shape = layer.shape(spec, tokens)
        if tuple(tensor.shape) != shape:
            raise ValueError(f"'{spec['name']}' must have shape {shape}, "
                             f"got {tuple(tensor.shape)}")
        if tensor.device != checked[0].device:
            raise ValueError(f"'{spec['name']}' is on {tensor.device}, the others on "
                             f"{checked[0].device}")
    return checked


def register(layer: Layer, name: str):
    """Registers ``torch.ops.moe_mlir.<name>`` for a loaded artifact."""
    out_spec = layer.outputs[0]
    out_dtype = TORCH_DTYPES[out_spec["dtype"]]
    hidden = out_spec["shape"][1]
    params = ", ".join(f"Tensor {t['name']}" for t in layer.inputs)
    device_type = "cuda" if layer.target == "cuda" else "cpu"

    def forward(*tensors):
        if device_type == "cuda":
            return layer(*tensors)  # checks, then runs on the current stream
        args = check_tensors(layer, tensors, device_type)
        tokens = args[0].shape[0]
        out = torch.empty((tokens, hidden), dtype=out_dtype)
        size = layer.workspace_size(tokens)
        workspace = torch.empty(size, dtype=torch.uint8) if size else None
        layer.forward_pointers([t.data_ptr() for t in args + [out]], tokens,
                               None if workspace is None else workspace.data_ptr(), size)
        return out

    op = torch.library.custom_op(f"moe_mlir::{name}", forward, mutates_args=(),
                                 device_types=device_type,
                                 schema=f"({params}) -> Tensor")

    @op.register_fake
    def _(*tensors):
        return tensors[0].new_empty((tensors[0].shape[0], hidden), dtype=out_dtype)

    return getattr(torch.ops.moe_mlir, name)
