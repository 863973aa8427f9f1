"""torch tensors against a compiled layer's manifest: the dtype map and the
argument checks shared by the torch op (``torch_op``) and the CUDA calls of
``aot.Layer``. Importing it needs torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch

if TYPE_CHECKING:
    from .aot import Layer

TORCH_DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16,
                "i32": torch.int32, "f8E4M3FN": torch.float8_e4m3fn, "i8": torch.int8,
                "f8E8M0FNU": torch.uint8}

#: The torch dtypes each manifest dtype takes: its own, and for the one-byte
#: tensors the dtypes checkpoints store them in (gpt-oss's blocks and scales
#: are uint8).
ACCEPTED_DTYPES = {name: (dtype,) for name, dtype in TORCH_DTYPES.items()}
ACCEPTED_DTYPES["i8"] = (torch.int8, torch.uint8)
ACCEPTED_DTYPES["f8E8M0FNU"] = tuple(
    d for d in (torch.uint8, getattr(torch, "float8_e8m0fnu", None)) if d is not None)


def check_tensors(layer: Layer, tensors: Sequence[torch.Tensor],
                  device_type: str) -> tuple:
    """The inputs as contiguous tensors, the per-token ones flattened from
    ``[*, ...]`` to ``[T, ...]``, after checking their device, dtype and
    shape against the artifact's manifest; and the leading dimensions
    ``[*]``."""
    if len(tensors) != len(layer.inputs):
        raise ValueError(f"expected {len(layer.inputs)} tensors, got {len(tensors)}")
    for spec, tensor in zip(layer.inputs, tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"'{spec['name']}' must be a torch.Tensor, got "
                            f"{type(tensor).__name__}")
        if tensor.device.type != device_type:
            raise ValueError(f"'{spec['name']}' must be a {device_type.upper()} tensor "
                             f"for this {layer.target} artifact, got {tensor.device}")
        want = ACCEPTED_DTYPES[spec["dtype"]]
        if tensor.dtype not in want:
            raise ValueError(f"'{spec['name']}' must be "
                             f"{' or '.join(str(d) for d in want)}, got {tensor.dtype}")
        if tensor.device != tensors[0].device:
            raise ValueError(f"'{spec['name']}' is on {tensor.device}, the others on "
                             f"{tensors[0].device}")
    lead = layer.leading_shape([tuple(t.shape) for t in tensors])
    tokens = math.prod(lead)
    checked = []
    for spec, tensor in zip(layer.inputs, tensors):
        if layer.per_token(spec):
            tensor = tensor.reshape((tokens,) + tuple(spec["shape"][1:]))
        shape = layer.shape(spec, tokens)
        if tuple(tensor.shape) != shape:
            raise ValueError(f"'{spec['name']}' must have shape {shape}, "
                             f"got {tuple(tensor.shape)}")
        checked.append(tensor.contiguous())
    return checked, lead
