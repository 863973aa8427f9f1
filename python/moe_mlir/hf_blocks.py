"""The sparse MoE blocks of Hugging Face ``transformers`` models, read as the
compiled layer's inputs.

``read_block`` recognizes a block by its class (one per family, below) and
then checks what the module actually holds, since the layout differs between
``transformers`` versions:

- the router: a module with ``weight`` [E, H] (``nn.Linear`` in 4.x, a
  ``...TopKRouter`` in 5.x), gpt-oss's with ``bias`` [E], DeepSeek-V3's with
  the ``e_score_correction_bias`` buffer [E];
- the experts: fused 3-D tensors (5.x, and gpt-oss in every version):
  ``gate_up_proj`` [E, 2I, H] and ``down_proj`` [E, H, I], or transposed
  [E, H, 2I] and [E, I, H], gate and up concatenated or interleaved along 2I
  (the ``is_transposed`` and ``is_concatenated`` attributes that
  ``use_experts_implementation`` sets, when present); or an ``nn.ModuleList``
  of per-expert MLPs with ``gate_proj``/``up_proj``/``down_proj`` (4.x), or
  Mixtral's ``w1``/``w3``/``w2`` (gate, up, down);
- shared experts: DeepSeek-V3's ``shared_experts`` MLP, Qwen2-MoE's
  ``shared_expert`` with its sigmoid ``shared_expert_gate``.

Anything else (an unknown parameter, a Linear bias where the family has
none, a shape that fits neither layout) raises ``HFLayoutError`` naming the
module and what was found: nothing is guessed. The weights are mapped once
into the layer's input names and layouts (``w13`` [E, 2I, H], ``w2``
[E, H, I], the Linear layout) by the pure functions below, which the tests
check on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["FAMILIES", "BlockWeights", "HFLayoutError", "read_block", "w13_from_fused",
           "w2_from_fused", "w13_from_separate", "reorder_glu", "activation_name"]

#: The MoE block class of each family (every transformers version since the
#: family was added), and the config's ``model_type``.
FAMILIES = {
    "MixtralSparseMoeBlock": "mixtral",
    "Qwen3MoeSparseMoeBlock": "qwen3_moe",
    "Qwen2MoeSparseMoeBlock": "qwen2_moe",
    "OlmoeSparseMoeBlock": "olmoe",
    "DeepseekV3MoE": "deepseek_v3",
    "GptOssMLP": "gpt_oss",
}

#: gate/up order along 2I that each family's checkpoints use where the module
#: does not say (``is_concatenated``): gpt-oss interleaves, the others
#: concatenate (``chunk(2)``).
_FAMILY_GLU = {"gpt_oss": "interleaved"}

#: transformers' activation modules, by class name, as the layer's activation.
_ACTIVATIONS = {
    "SiLU": "silu", "SiLUActivation": "silu",
    "GELUActivation": "gelu", "GELU": "gelu",
    "NewGELUActivation": "gelu_tanh", "GELUTanh": "gelu_tanh",
    "PytorchGELUTanh": "gelu_tanh",
    "ReLU": "relu",
}


class HFLayoutError(ValueError):
    """A block whose modules or tensors are not a layout this module knows."""


@dataclass
class BlockWeights:
    """One block's tensors under the compiled layer's input names, and the
    routing facts its modules state (checked against the compiled layer)."""

    family: str
    hidden: int
    experts: int
    intermediate: int
    #: router, w13, w2 and, by family: bias, shared_w13, shared_w2,
    #: shared_gate, router_bias, w13_bias, w2_bias.
    tensors: dict = field(default_factory=dict)
    #: gate/up order of w13 (and w13_bias) along 2I.
    glu_layout: str = "concatenated"
    #: manifest ``layer`` key -> the value the modules hold (k, renormalize, ...).
    facts: dict = field(default_factory=dict)


def _fail(path: str, message: str):
    raise HFLayoutError(f"{path}: {message}")


def _own(module: nn.Module) -> tuple[dict, dict]:
    return (dict(module.named_parameters(recurse=False)),
            dict(module.named_buffers(recurse=False)))


def _child(block: nn.Module, path: str, name: str) -> nn.Module:
    child = getattr(block, name, None)
    if not isinstance(child, nn.Module):
        _fail(path, f"expected a submodule '{name}', found "
                    f"{type(child).__name__ if child is not None else 'none'}")
    return child


def _tensors_of(module: nn.Module, path: str, want: set, optional: set = frozenset()) -> dict:
    """``module``'s own parameters and buffers, which must be ``want`` plus
    some of ``optional`` (a None bias of an nn.Linear counts as absent)."""
    params, buffers = _own(module)
    held = {name: t for name, t in {**params, **buffers}.items() if t is not None}
    names = set(held)
    if not want <= names or not names <= want | optional:
        _fail(path, f"holds {sorted(names)}; a known layout holds {sorted(want)}"
                    + (f" and optionally {sorted(optional)}" if optional else ""))
    return held


def _shape(path: str, name: str, tensor: torch.Tensor, want: tuple) -> None:
    if tuple(tensor.shape) != tuple(want):
        _fail(path, f"'{name}' has shape {tuple(tensor.shape)}, expected {tuple(want)}")


def activation_name(module: nn.Module, path: str) -> str:
    """The layer activation of a transformers activation module."""
    name = type(module).__name__
    if name == "GELUActivation" and getattr(module, "act", None) is not None and \
            getattr(module.act, "__name__", "") == "_gelu_python":
        return "gelu"
    if name not in _ACTIVATIONS:
        _fail(path, f"activation {name} is not one the layer computes "
                    f"({', '.join(sorted(set(_ACTIVATIONS.values())))})")
    return _ACTIVATIONS[name]


# --------------------------------------------------------------------------
# Weight mapping: checkpoint layouts -> w13 [E, 2I, H], w2 [E, H, I]
# --------------------------------------------------------------------------

def w13_from_fused(gate_up: torch.Tensor, transposed: bool) -> torch.Tensor:
    """``gate_up_proj`` as w13 [E, 2I, H]: [E, 2I, H] as stored, or the
    transposed [E, H, 2I] (gpt-oss) swapped; the order along 2I is kept."""
    return (gate_up.transpose(1, 2) if transposed else gate_up).contiguous()


def w2_from_fused(down: torch.Tensor, transposed: bool) -> torch.Tensor:
    """``down_proj`` as w2 [E, H, I]: [E, H, I] as stored, or [E, I, H] swapped."""
    return (down.transpose(1, 2) if transposed else down).contiguous()


def w13_from_separate(gates, ups) -> torch.Tensor:
    """Per-expert Linear weights gate [I, H] and up [I, H] as w13 [E, 2I, H],
    gate rows first (the concatenated GLU layout)."""
    return torch.stack([torch.cat([g, u], dim=0) for g, u in zip(gates, ups)])


def reorder_glu(t: torch.Tensor, source: str, target: str, dim: int) -> torch.Tensor:
    """``t`` with its gate/up halves along ``dim`` (size 2I) moved from
    ``source`` to ``target`` order: concatenated (gate 0..I-1, up 0..I-1) or
    interleaved (gate i at 2i, up i at 2i+1)."""
    if source == target:
        return t
    n = t.shape[dim]
    if source == "interleaved":
        index = torch.cat([torch.arange(0, n, 2), torch.arange(1, n, 2)])
    else:
        half = n // 2
        index = torch.stack([torch.arange(half), torch.arange(half) + half], 1).reshape(-1)
    return t.index_select(dim, index.to(t.device)).contiguous()


# --------------------------------------------------------------------------
# Reading a block
# --------------------------------------------------------------------------

def _read_router(block: nn.Module, path: str, family: str, hidden: int) -> tuple:
    name = "router" if family == "gpt_oss" else "gate"
    router = _child(block, path, name)
    where = f"{path}.{name}"
    if family == "gpt_oss":
        want = {"weight", "bias"}
    elif family == "deepseek_v3":
        want = {"weight", "e_score_correction_bias"}
    else:
        want = {"weight"}
    held = _tensors_of(router, where, want)
    weight = held["weight"]
    if weight.dim() != 2 or weight.shape[1] != hidden:
        _fail(where, f"'weight' has shape {tuple(weight.shape)}, expected [E, {hidden}]")
    experts = weight.shape[0]
    tensors = {"router": weight.detach()}
    if family == "gpt_oss":
        _shape(where, "bias", held["bias"], (experts,))
        tensors["router_bias"] = held["bias"].detach()
    if family == "deepseek_v3":
        _shape(where, "e_score_correction_bias", held["e_score_correction_bias"], (experts,))
        tensors["bias"] = held["e_score_correction_bias"].detach()
    facts = {}
    for attribute, key in (("top_k", "k"), ("norm_topk_prob", "renormalize"),
                           ("routed_scaling_factor", "scale"), ("num_group", "n_group"),
                           ("topk_group", "topk_group")):
        if hasattr(router, attribute):
            facts[key] = getattr(router, attribute)
    # 4.x blocks keep top_k and norm_topk_prob on the block itself.
    for attribute, key in (("top_k", "k"), ("norm_topk_prob", "renormalize")):
        if key not in facts and isinstance(getattr(block, attribute, None), (bool, int)):
            facts[key] = getattr(block, attribute)
    return tensors, experts, facts


def _read_fused_experts(module: nn.Module, path: str, family: str, hidden: int,
                        experts: int) -> tuple:
    biased = family == "gpt_oss"
    want = {"gate_up_proj", "down_proj"} | ({"gate_up_proj_bias", "down_proj_bias"}
                                           if biased else set())
    held = _tensors_of(module, path, want)
    gate_up, down = held["gate_up_proj"], held["down_proj"]
    if gate_up.dim() != 3 or down.dim() != 3 or gate_up.shape[0] != experts \
            or down.shape[0] != experts:
        _fail(path, f"'gate_up_proj' {tuple(gate_up.shape)} and 'down_proj' "
                    f"{tuple(down.shape)} are not [E={experts}, ., .] tensors")
    # [E, 2I, H] + [E, H, I], or transposed [E, H, 2I] + [E, I, H].
    straight = gate_up.shape[2] == hidden and gate_up.shape[1] % 2 == 0 and \
        tuple(down.shape) == (experts, hidden, gate_up.shape[1] // 2)
    swapped = gate_up.shape[1] == hidden and gate_up.shape[2] % 2 == 0 and \
        tuple(down.shape) == (experts, gate_up.shape[2] // 2, hidden)
    stated = getattr(module, "is_transposed", None)
    if stated is not None:
        transposed = bool(stated)
        if not (swapped if transposed else straight):
            _fail(path, f"'gate_up_proj' {tuple(gate_up.shape)} and 'down_proj' "
                        f"{tuple(down.shape)} do not fit is_transposed={transposed} "
                        f"with hidden size {hidden}")
    elif straight != swapped:
        transposed = swapped
    else:
        _fail(path, f"'gate_up_proj' {tuple(gate_up.shape)} and 'down_proj' "
                    f"{tuple(down.shape)}: "
                    + ("both layouts fit and the module has no is_transposed"
                       if straight else f"neither layout fits hidden size {hidden}"))
    stated_glu = getattr(module, "is_concatenated", None)
    glu = (("concatenated" if stated_glu else "interleaved") if stated_glu is not None
           else _FAMILY_GLU.get(family, "concatenated"))
    w13 = w13_from_fused(gate_up.detach(), transposed)
    w2 = w2_from_fused(down.detach(), transposed)
    tensors = {"w13": w13, "w2": w2}
    if biased:
        _shape(path, "gate_up_proj_bias", held["gate_up_proj_bias"], (experts, w13.shape[1]))
        _shape(path, "down_proj_bias", held["down_proj_bias"], (experts, hidden))
        tensors["w13_bias"] = held["gate_up_proj_bias"].detach()
        tensors["w2_bias"] = held["down_proj_bias"].detach()
    return tensors, glu


def _mlp_weights(mlp: nn.Module, path: str) -> tuple:
    """gate [I, H], up [I, H], down [H, I] of a bias-free gated MLP, and its
    activation module."""
    names = (("gate_proj", "up_proj", "down_proj") if hasattr(mlp, "gate_proj")
             else ("w1", "w3", "w2"))
    weights = []
    for name in names:
        linear = getattr(mlp, name, None)
        if not isinstance(linear, nn.Linear):
            _fail(path, "expected nn.Linear submodules gate_proj/up_proj/down_proj "
                        f"(or Mixtral's w1/w3/w2), found {type(mlp).__name__} without "
                        f"'{name}'")
        _tensors_of(linear, f"{path}.{name}", {"weight"})
        weights.append(linear.weight.detach())
    gate, up, down = weights
    if gate.shape != up.shape or down.shape != (gate.shape[1], gate.shape[0]):
        _fail(path, f"gate {tuple(gate.shape)}, up {tuple(up.shape)} and down "
                    f"{tuple(down.shape)} are not [I, H], [I, H], [H, I]")
    act = getattr(mlp, "act_fn", None)
    return gate, up, down, act


def _read_expert_list(module: nn.ModuleList, path: str, hidden: int, experts: int) -> tuple:
    if len(module) != experts:
        _fail(path, f"holds {len(module)} experts, the router {experts}")
    gates, ups, downs, acts = [], [], [], set()
    for e, mlp in enumerate(module):
        gate, up, down, act = _mlp_weights(mlp, f"{path}.{e}")
        if gate.shape[1] != hidden:
            _fail(f"{path}.{e}", f"gate has shape {tuple(gate.shape)}, expected [I, {hidden}]")
        gates.append(gate), ups.append(up), downs.append(down)
        if act is not None:
            acts.add(activation_name(act, f"{path}.{e}.act_fn"))
    if len({g.shape for g in gates}) != 1:
        _fail(path, "the experts have different intermediate sizes")
    if len(acts) > 1:
        _fail(path, f"the experts use different activations {sorted(acts)}")
    return {"w13": w13_from_separate(gates, ups), "w2": torch.stack(downs)}, acts


def read_block(block: nn.Module, path: str, hidden: int) -> BlockWeights:
    """The tensors and routing facts of a sparse MoE block at ``path``; raises
    HFLayoutError for an unknown class or layout."""
    family = FAMILIES.get(type(block).__name__)
    if family is None:
        _fail(path, f"{type(block).__name__} is not a known MoE block "
                    f"({', '.join(FAMILIES)})")
    tensors, experts, facts = _read_router(block, path, family, hidden)
    module = _child(block, path, "experts")
    where = f"{path}.experts"
    if isinstance(module, nn.ModuleList):
        if family == "gpt_oss":
            _fail(where, "gpt-oss experts are fused tensors, found an nn.ModuleList")
        expert_tensors, acts = _read_expert_list(module, where, hidden, experts)
        glu = "concatenated"
        if acts:
            facts["activation"] = acts.pop()
    else:
        expert_tensors, glu = _read_fused_experts(module, where, family, hidden, experts)
        if family == "gpt_oss":
            facts["alpha"], facts["limit"] = module.alpha, module.limit
        else:
            act = getattr(module, "act_fn", None)
            if act is None:
                _fail(where, "has no act_fn")
            facts["activation"] = activation_name(act, f"{where}.act_fn")
    tensors.update(expert_tensors)
    intermediate = tensors["w13"].shape[1] // 2

    if family == "deepseek_v3":
        gate, up, down, _ = _mlp_weights(_child(block, path, "shared_experts"),
                                         f"{path}.shared_experts")
        tensors["shared_w13"] = torch.cat([gate, up], dim=0)
        tensors["shared_w2"] = down
    elif family == "qwen2_moe":
        gate, up, down, _ = _mlp_weights(_child(block, path, "shared_expert"),
                                         f"{path}.shared_expert")
        tensors["shared_w13"] = torch.cat([gate, up], dim=0)
        tensors["shared_w2"] = down
        shared_gate = _child(block, path, "shared_expert_gate")
        held = _tensors_of(shared_gate, f"{path}.shared_expert_gate", {"weight"})
        _shape(f"{path}.shared_expert_gate", "weight", held["weight"], (1, hidden))
        tensors["shared_gate"] = held["weight"].detach()
    if family == "mixtral":
        jitter = getattr(block, "jitter_noise", 0) or 0
        if jitter:
            facts["jitter_noise"] = jitter
    return BlockWeights(family=family, hidden=hidden, experts=experts,
                        intermediate=intermediate, tensors=tensors, glu_layout=glu,
                        facts=facts)
