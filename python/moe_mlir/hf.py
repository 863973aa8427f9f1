"""A Hugging Face drop-in: the sparse MoE blocks of a ``transformers`` model
replaced by compiled layers.

    from transformers import AutoModelForCausalLM
    from moe_mlir import hf
    model = AutoModelForCausalLM.from_pretrained("allenai/OLMoE-1B-7B-0924").eval()
    hf.patch(model)                 # every OlmoeSparseMoeBlock -> CompiledMoEBlock
    logits = model(input_ids).logits

``patch`` finds the blocks of Mixtral, Qwen3-MoE, Qwen2-MoE, OLMoE,
DeepSeek-V3 and gpt-oss models (``hf_blocks.FAMILIES``), compiles one layer
per distinct block with ``moe-compile --config`` of the model's own config
(its dtype the weights' dtype, its target the weights' device: ``cpu`` or
``cuda``), checks that the compiled layer computes what the block's modules
say (sizes, k, renormalization, scale, groups, activation, shared expert;
any difference is an error naming it), maps the block's weights to the
layer's inputs once (``w13`` [E, 2I, H], ``w2`` [E, H, I], packed where the
layer's ``weight_layout`` asks), and puts a ``CompiledMoEBlock`` in the
block's place. The block calls the layer's torch op
(``torch.ops.moe_mlir.<name>``), so ``torch.compile(fullgraph=True)`` and,
on CUDA, graph capture see one node.

Artifacts go to ``artifacts`` (a fresh temporary folder by default). A
folder that already holds a matching artifact (same target, entry and
layer) is used as it is, without moe-compile: ``compile_artifacts`` writes
them ahead of time for a machine without the compiler.

The patched model is for inference: the op has no autograd formula, router
logits are not produced (``output_router_logits`` is refused), and the
block's weights live in the compiled block as non-persistent buffers, so
the model's ``state_dict`` no longer holds them (save before patching).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import tempfile
import warnings
from typing import Mapping, Optional

import numpy as np
import torch
from torch import nn

from . import aot, torch_op
from .cpu import CompileError
from .hf_blocks import FAMILIES, BlockWeights, HFLayoutError, read_block, reorder_glu
from .torch_tensors import TORCH_DTYPES

__all__ = ["CompiledMoEBlock", "PatchError", "HFLayoutError", "patch", "compile_artifacts",
           "find_blocks"]

#: torch dtypes of block weights, as the layer's dtype setting.
_LAYER_DTYPES = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}

#: Inputs that may be given in another dtype than the layer's and are
#: converted once: DeepSeek-V3 keeps its router weight and correction bias in
#: f32 whatever the model's dtype (the layer's bias input is f32 anyway).
_CONVERTIBLE = {"router", "bias"}

#: Tensors a block holds that a compiled layer must take, with what they are
#: in the checkpoint: a layer without the input would drop them.
_CHECKPOINT_NAMES = {
    "bias": "gate.e_score_correction_bias",
    "router_bias": "router.bias",
    "w13_bias": "experts.gate_up_proj_bias",
    "w2_bias": "experts.down_proj_bias",
    "shared_w13": "the shared expert's gate_proj/up_proj",
    "shared_w2": "the shared expert's down_proj",
    "shared_gate": "shared_expert_gate.weight",
}


class PatchError(ValueError):
    """A model or a compiled layer that ``patch`` cannot use as asked."""


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (path, module) of each sparse MoE block of a known family."""
    return [(path, module) for path, module in model.named_modules()
            if type(module).__name__ in FAMILIES]


def _layer_dtype(weights: BlockWeights, path: str) -> str:
    dtype = weights.tensors["w13"].dtype
    if dtype not in _LAYER_DTYPES:
        raise PatchError(f"{path}: expert weights of dtype {dtype}; the layer takes "
                         f"{', '.join(str(d) for d in _LAYER_DTYPES)}")
    return _LAYER_DTYPES[dtype]


def _target(weights: BlockWeights, path: str) -> str:
    device = weights.tensors["w13"].device.type
    if device not in ("cpu", "cuda"):
        raise PatchError(f"{path}: weights on {device}; the layer runs on cpu or cuda")
    return device


def _expected(weights: BlockWeights, dtype: str) -> dict:
    """What a compiled layer's manifest ``layer`` must say to compute this
    block: the sizes its tensors have, the routing facts its modules hold.
    The rest (scoring, group score, renormalization epsilon) follows from the
    family, which moe-compile maps from the same config."""
    tensors = weights.tensors
    want = {"family": weights.family, "dtype": dtype, "hidden": weights.hidden,
            "experts": weights.experts, "intermediate": weights.intermediate,
            "bias": "bias" in tensors,
            "shared_intermediate": (tensors["shared_w13"].shape[0] // 2
                                    if "shared_w13" in tensors else 0),
            "shared_gate": "shared_gate" in tensors}
    want.update({key: value for key, value in weights.facts.items() if key != "jitter_noise"})
    return want


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=0.0)
    return a == b


def _differences(manifest: Mapping, weights: BlockWeights, dtype: str, target: str,
                 settings: Mapping) -> list[str]:
    """Why an artifact's manifest does not compute the block (empty: it does)."""
    layer = manifest.get("layer", {})
    found = []
    if manifest.get("target", "cpu") != target:
        found.append(f"target {manifest.get('target', 'cpu')} (the weights are on {target})")
    if manifest.get("entry") != "layer":
        found.append(f"entry {manifest.get('entry')} (patching needs the whole layer)")
    # The caller's further settings (weight_layout, ...) must hold too; one
    # that contradicts the block (k, sizes) makes a layer that does not match.
    want = {"weight_layout": "nk", **settings, **_expected(weights, dtype)}
    for key, value in want.items():
        if key not in layer or not _same(layer[key], value):
            found.append(f"{key} = {layer.get(key, 'absent')} (the block: {value})")
    inputs = {t["name"] for t in manifest.get("tensors", []) if t.get("direction") == "in"}
    for name in sorted(set(weights.tensors) - inputs):
        found.append(f"no input '{name}' for the block's {_CHECKPOINT_NAMES.get(name, name)}")
    return found


def _config_dict(model: nn.Module) -> dict:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_json_string"):
        raise PatchError(f"{type(model).__name__} has no transformers config "
                         "(model.config): patch takes a transformers model")
    values = json.loads(config.to_json_string(use_diff=False))
    # transformers may store a value under its attribute's name where the
    # checkpoints' config.json use the alias of ``attribute_map`` (5.x writes
    # Qwen3-MoE's num_experts as num_local_experts); both names are given.
    for alias, attribute in getattr(config, "attribute_map", {}).items():
        if alias not in values and attribute in values:
            values[alias] = values[attribute]
    return values


def _check_model(model: nn.Module) -> None:
    config = model.config
    if getattr(config, "output_router_logits", False):
        raise PatchError("config.output_router_logits is set: the compiled layer does not "
                         "return router logits (nor the auxiliary loss they feed); the "
                         "drop-in is for inference, set it to False")


def _manifests(folder: pathlib.Path):
    for path in sorted(folder.glob("moe_*.json")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        name = path.stem[len("moe_"):]
        if (folder / f"libmoe_{name}.so").exists() and "layer" in manifest:
            yield name, manifest


def _artifact_name(weights: BlockWeights, dtype: str, target: str,
                   folder: pathlib.Path) -> str:
    stem = f"hf_{weights.family}_{dtype}_{target}"
    taken = {path.stem for path in folder.glob(f"moe_{stem}*.json")}
    index = 0
    while f"moe_{stem}_{index}" in taken:
        index += 1
    return f"{stem}_{index}"


def _artifact(weights: BlockWeights, path: str, config: dict, folder: pathlib.Path,
              target: str, settings: Mapping, chip: Optional[str]) -> aot.Artifact:
    """A matching artifact of ``folder``, or a new one compiled there from
    the model's config; a new one that does not match is an error."""
    dtype = _layer_dtype(weights, path)
    # The folder's artifacts of the block's family and target, and why each
    # does not compute it: told where no new one can be compiled.
    near = []
    for name, manifest in _manifests(folder):
        found = _differences(manifest, weights, dtype, target, settings)
        if not found:
            return aot.Artifact(folder, name)
        if (manifest.get("layer", {}).get("family") == weights.family
                and manifest.get("target", "cpu") == target):
            near.append(f"{name}: {', '.join(found)}")
    name = _artifact_name(weights, dtype, target, folder)
    try:
        artifact = aot.compile(config, layer={**settings, "dtype": dtype}, name=name,
                               out_dir=folder, chip=chip, target=target)
    except CompileError as err:
        if not near:
            raise
        raise PatchError(f"{path}: no artifact in {folder} computes this block "
                         f"({'; '.join(near)}), and compiling one failed: {err}") from err
    found = _differences(artifact.manifest, weights, dtype, target, settings)
    if found:
        # Not left behind, where a later patch would look for a match.
        for leftover in folder.glob(f"*{name}.*"):
            if leftover.name.split(".")[0] in (f"moe_{name}", f"libmoe_{name}", name):
                leftover.unlink()
        raise PatchError(f"{path}: the layer moe-compile made from the model's config "
                         f"differs from the block's modules: {'; '.join(found)}; the "
                         f"patched model would give different logits"
                         + (". gpt-oss needs a layer that takes its router and expert "
                            "biases (router_bias, expert_bias)"
                            if weights.family == "gpt_oss" else ""))
    return artifact


#: Loaded layers and their torch ops, by artifact library path: an op name
#: is registered once per process.
_LOADED: dict[str, tuple] = {}


def _load(artifact: aot.Artifact) -> tuple:
    key = str(artifact.library.resolve())
    if key not in _LOADED:
        layer = artifact.load()
        op_name = re.sub(r"\W", "_", f"{artifact.name}_{len(_LOADED)}_{os.getpid()}")
        _LOADED[key] = (layer, torch_op.register(layer, op_name))
    return _LOADED[key]


def _packed(layer: aot.Layer, name: str, linear: torch.Tensor, layout: str,
            path: str) -> torch.Tensor:
    """Linear-layout [E, N, K] weights in the layer's ``weight_layout``."""
    if layout == "nk":
        return linear
    if layout == "kn":
        return linear.transpose(1, 2).contiguous()
    if linear.device.type != "cpu":
        raise PatchError(f"{path}: weight_layout {layout} is packed on the CPU, the "
                         f"weights are on {linear.device}")
    # The library's own pack step, on numpy arrays; bf16 travels as its bits.
    bf16 = linear.dtype == torch.bfloat16
    array = linear.view(torch.int16).numpy().view(np.uint16) if bf16 else linear.numpy()
    packed = layer.pack(name, array)
    return torch.from_numpy(packed.view(np.int16)).view(torch.bfloat16) if bf16 \
        else torch.from_numpy(packed)


def _inputs(layer: aot.Layer, weights: BlockWeights, path: str) -> list:
    """The layer's inputs after ``x``, from the block's tensors, each in the
    manifest's dtype, GLU order and weight layout (``_differences`` has
    checked that the layer takes every tensor of the block)."""
    names = [spec["name"] for spec in layer.inputs]
    if names[:1] != ["x"]:
        raise PatchError(f"{path}: the artifact's first input is {names[:1]}, not x")
    tensors = dict(weights.tensors)
    settings = layer.manifest["layer"]
    glu = settings.get("glu_layout", "concatenated")
    for name in ("w13", "w13_bias"):
        if name in tensors:
            tensors[name] = reorder_glu(tensors[name], weights.glu_layout, glu, dim=1)
    layout = settings.get("weight_layout", "nk")
    for name in ("w13", "w2"):
        tensors[name] = _packed(layer, name, tensors[name], layout, path)
    inputs = []
    for spec in layer.inputs[1:]:
        name = spec["name"]
        if name not in tensors:
            raise PatchError(f"{path}: the compiled layer takes '{name}', which the "
                             f"{weights.family} block does not hold")
        tensor, want = tensors[name], TORCH_DTYPES[spec["dtype"]]
        if tensor.dtype != want:
            if name not in _CONVERTIBLE:
                raise PatchError(f"{path}: '{name}' is {tensor.dtype}, the layer takes "
                                 f"{want} (the experts' dtype)")
            if name == "router" and tensor.dtype.itemsize > want.itemsize:
                warnings.warn(f"{path}: the router weight is {tensor.dtype} and the layer "
                              f"takes it as {want}: a token whose experts are a near tie "
                              f"may be routed otherwise than by the model", stacklevel=3)
            tensor = tensor.to(want)
        shape = layer.shape(spec, 0)
        if tuple(tensor.shape) != shape:
            raise PatchError(f"{path}: '{name}' has shape {tuple(tensor.shape)}, the "
                             f"layer takes {shape}")
        inputs.append(tensor.contiguous())
    return inputs


class CompiledMoEBlock(nn.Module):
    """A sparse MoE block computed by a compiled layer: ``forward`` takes the
    block's hidden states ``[*, H]`` and returns what the block returned
    (gpt-oss's ``(hidden_states, router_scores)`` with the scores None)."""

    def __init__(self, op, layer: aot.Layer, artifact: aot.Artifact, weights: BlockWeights,
                 inputs: list, path: str):
        super().__init__()
        self.op = op
        self.layer = layer
        self.artifact = artifact
        self.family = weights.family
        self.path = path
        self.input_names = [spec["name"] for spec in layer.inputs[1:]]
        # Mixtral's router jitter multiplies the inputs by noise in training.
        self.jitter_noise = weights.facts.get("jitter_noise", 0)
        self.returns_router_scores = weights.family == "gpt_oss"
        for name, tensor in zip(self.input_names, inputs):
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, hidden_states: torch.Tensor):
        if self.training and self.jitter_noise:
            raise PatchError(f"{self.path}: Mixtral's router jitter (router_jitter_noise="
                             f"{self.jitter_noise}) applies in training; the compiled layer "
                             "is for inference: call model.eval()")
        y = self.op(hidden_states, *(getattr(self, name) for name in self.input_names))
        return (y, None) if self.returns_router_scores else y

    def extra_repr(self) -> str:
        layer = self.layer.manifest["layer"]
        return (f"{self.family}, {self.artifact.name} ({self.layer.target}), "
                f"hidden={layer['hidden']}, experts={layer['experts']}, k={layer['k']}, "
                f"dtype={layer['dtype']}")


def _folder(artifacts) -> pathlib.Path:
    folder = pathlib.Path(artifacts) if artifacts is not None else \
        pathlib.Path(tempfile.mkdtemp(prefix="moe-hf-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _settings(layer: Optional[Mapping]) -> dict:
    settings = dict(layer or {})
    if "dtype" in settings:
        raise PatchError("layer setting 'dtype' is the weights' dtype: convert the model "
                         "(model.to(torch.bfloat16)) instead")
    return settings


def _read_all(model: nn.Module) -> list[tuple[str, nn.Module, BlockWeights]]:
    _check_model(model)
    blocks = find_blocks(model)
    if not blocks:
        raise PatchError(f"{type(model).__name__} has no sparse MoE block of a known family "
                         f"({', '.join(FAMILIES)})")
    hidden = model.config.get_text_config().hidden_size
    return [(path, block, read_block(block, path, hidden)) for path, block in blocks]


def patch(model: nn.Module, *, artifacts=None, layer: Optional[Mapping] = None,
          chip: Optional[str] = None) -> list[str]:
    """Replaces every sparse MoE block of ``model`` by a ``CompiledMoEBlock``
    and returns the blocks' paths. ``artifacts``: the folder of compiled
    layers (matching ones there are reused; new ones compiled into it);
    ``layer``: further moe-compile settings (``weight_layout``); ``chip``:
    moe-compile's ``--chip``. Raises ``HFLayoutError`` for a block whose
    modules are not a known layout and ``PatchError`` for one the compiled
    layer would compute differently; the model is unchanged then."""
    folder, settings = _folder(artifacts), _settings(layer)
    config = _config_dict(model)
    replacements = []
    for path, block, weights in _read_all(model):
        artifact = _artifact(weights, path, config, folder, _target(weights, path),
                             settings, chip)
        compiled, op = _load(artifact)
        inputs = _inputs(compiled, weights, path)
        replacement = CompiledMoEBlock(op, compiled, artifact, weights, inputs, path)
        replacements.append((path, replacement.train(block.training)))
    for path, block in replacements:
        parent, _, name = path.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, name, block)
    return [path for path, _ in replacements]


def compile_artifacts(model: nn.Module, artifacts, *, target: str = "cuda",
                      layer: Optional[Mapping] = None,
                      chip: Optional[str] = None) -> list[aot.Artifact]:
    """Compiles into ``artifacts`` the layers that ``patch`` will look for
    there when the model's weights are on ``target`` (a machine with a GPU
    but no compiler gets them so); the model is left as it is."""
    if target not in ("cpu", "cuda"):
        raise PatchError(f"target must be 'cpu' or 'cuda', got {target!r}")
    folder, settings = _folder(artifacts), _settings(layer)
    config = _config_dict(model)
    made = {}
    for path, _, weights in _read_all(model):
        artifact = _artifact(weights, path, config, folder, target, settings, chip)
        made[artifact.name] = artifact
    return list(made.values())
