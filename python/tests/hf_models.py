"""Small randomly initialized transformers models of each MoE family, built
from their config classes (nothing is downloaded), and the logits check of
the Hugging Face drop-in (``moe_mlir.hf``), shared by its CPU and GPU tests.

    python3 python/tests/hf_models.py --artifacts artifacts/gpu/hf --target cuda
    python3 python/tests/hf_models.py --measure cpu --seeds 5

The first compiles the layers the tests' models need for ``--target`` into
``--artifacts`` (utils/build-gpu-artifacts.sh does so for the GPU machine,
which has no compiler); the second prints each family's logits error.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys

import torch
import transformers

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from moe_mlir import hf  # noqa: E402

#: Sizes shared by every family: small, but each MoE size differs from the
#: others (and from the tile sizes), so a transposed or misplaced tensor
#: cannot pass for the right one.
_COMMON = dict(vocab_size=96, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1,
               eos_token_id=2, pad_token_id=0)

FAMILIES = ("mixtral", "qwen3_moe", "qwen2_moe", "olmoe", "deepseek_v3", "gpt_oss")


def config(family: str):
    """The config of a two-layer model of ``family``."""
    if family == "mixtral":
        return transformers.MixtralConfig(**_COMMON, intermediate_size=48,
                                          num_local_experts=8, num_experts_per_tok=2)
    if family == "qwen3_moe":
        return transformers.Qwen3MoeConfig(**_COMMON, head_dim=16, intermediate_size=96,
                                           moe_intermediate_size=40, num_experts=8,
                                           num_experts_per_tok=3, norm_topk_prob=True)
    if family == "qwen2_moe":
        return transformers.Qwen2MoeConfig(**_COMMON, intermediate_size=96,
                                           moe_intermediate_size=40,
                                           shared_expert_intermediate_size=56, num_experts=8,
                                           num_experts_per_tok=2, norm_topk_prob=False)
    if family == "olmoe":
        return transformers.OlmoeConfig(**_COMMON, intermediate_size=40, num_experts=8,
                                        num_experts_per_tok=2, norm_topk_prob=False)
    if family == "deepseek_v3":
        # Layer 0 dense (first_k_dense_replace), layer 1 MoE: 4 groups of 4
        # experts, 2 groups kept, a shared expert of 2 x 24.
        return transformers.DeepseekV3Config(
            **_COMMON, intermediate_size=96, moe_intermediate_size=24, n_routed_experts=16,
            n_group=4, topk_group=2, num_experts_per_tok=4, n_shared_experts=2,
            first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8,
            qk_nope_head_dim=8, v_head_dim=16, routed_scaling_factor=2.5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    if family == "gpt_oss":
        return transformers.GptOssConfig(**_COMMON, head_dim=16, intermediate_size=40,
                                         num_local_experts=8, num_experts_per_tok=2,
                                         sliding_window=8, swiglu_limit=1.0)
    raise ValueError(f"unknown family {family!r}")


def _fan_in(name: str, tensor: torch.Tensor, family: str) -> int:
    # gpt-oss stores its projections transposed: [E, K, N].
    if family == "gpt_oss" and name.startswith("experts.") and tensor.dim() == 3:
        return tensor.shape[1]
    return tensor.shape[-1]


def model(family: str, seed: int = 0):
    """A model of ``family`` in eval mode, f32. Its MoE blocks are drawn
    again at unit scale (transformers initializes at std 0.02, where the
    blocks would barely move the logits): weights at fan_in^-1/2, biases
    and DeepSeek-V3's correction bias at 0.3, so that each block's output
    and its routing decide the logits."""
    torch.manual_seed(seed)
    built = getattr(transformers, type(config(family)).__name__.replace("Config", "ForCausalLM"))
    net = built(config(family)).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, block in hf.find_blocks(net):
            for name, tensor in list(block.named_parameters()) + list(block.named_buffers()):
                std = _fan_in(name, tensor, family) ** -0.5 if tensor.dim() >= 2 else 0.3
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)
    if family == "gpt_oss":
        # Some transformers versions fix the experts' clamp at 7.0 whatever
        # config.swiglu_limit says; the artifacts compiled from the config
        # (moe-compile reads swiglu_limit) must see the same limit.
        for module in net.modules():
            if hasattr(module, "limit") and hasattr(module, "alpha"):
                module.limit = net.config.swiglu_limit
    return net


def tokens(seed: int = 0, batch: int = 4, length: int = 12) -> torch.Tensor:
    return torch.randint(3, _COMMON["vocab_size"], (batch, length),
                         generator=torch.Generator().manual_seed(seed))


def _router(block, family: str):
    return block.router if family == "gpt_oss" else block.gate


def _choice(router, x: torch.Tensor) -> tuple:
    """transformers' own routing of ``x``: the chosen experts (sorted) and
    whether its logits tie at the k-th place (in the model's dtype: the
    logits of a bf16 model are rounded to bf16 before its top-k)."""
    with torch.no_grad():
        logits, _, chosen = router(x.reshape(-1, x.shape[-1]))
    top = logits.topk(router.top_k + 1, dim=-1).values
    return chosen.sort(dim=-1).values, top[:, -2] == top[:, -1]


def unsettled(original, patched, family: str, ids: torch.Tensor) -> torch.Tensor:
    """[batch, length] booleans: the positions where the routing of some MoE
    layer is not settled, and every later position of the same sequence
    (attention carries a different choice forward). A routing is not settled
    where transformers' router, run on the patched model's input of that
    layer, chooses other experts than on the original's (the inputs differ
    by rounding, in bf16), or where its logits tie at the k-th place on
    either: transformers breaks a tie of rounded logits by expert index,
    the compiled layer by its f32 logits."""
    inputs = {}
    hooks = []
    for path, block in hf.find_blocks(original):
        hooks.append(block.register_forward_pre_hook(
            lambda _, args, key=("original", path): inputs.__setitem__(key, args[0])))
        hooks.append(patched.get_submodule(path).register_forward_pre_hook(
            lambda _, args, key=("patched", path): inputs.__setitem__(key, args[0])))
    try:
        with torch.no_grad():
            original(ids), patched(ids)
    finally:
        for hook in hooks:
            hook.remove()
    flagged = torch.zeros(ids.numel(), dtype=torch.bool, device=ids.device)
    for path, block in hf.find_blocks(original):
        router = _router(block, family)
        chosen, tie = _choice(router, inputs[("original", path)])
        chosen_patched, tie_patched = _choice(router, inputs[("patched", path)])
        flagged |= (chosen != chosen_patched).any(dim=-1) | tie | tie_patched
    return flagged.reshape(ids.shape).cumsum(dim=1) > 0


#: Per dtype: the largest relative difference of the logits (max |patched -
#: original| / max |original| over the settled positions).
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 3e-2}


def compare(family: str, dtype: torch.dtype, device: str, artifacts, seed: int = 0) -> dict:
    """Patches a copy of the model of ``family`` in ``dtype`` on ``device``
    and compares its logits with the original's on the positions whose
    routing is settled (``unsettled``); returns the measures (and both
    models)."""
    original = model(family, seed).to(device=device, dtype=dtype)
    patched = copy.deepcopy(original)
    paths = hf.patch(patched, artifacts=artifacts)
    ids = tokens(seed).to(device)
    with torch.no_grad():
        want = original(ids).logits.float()
        got = patched(ids).logits.float()
    checked = ~unsettled(original, patched, family, ids)
    error = ((got - want).abs().amax(-1)[checked].max() / want.abs().max()).item()
    return {"paths": paths, "error": error, "checked": checked.float().mean().item(),
            "original": original, "patched": patched, "ids": ids, "want": want}


def measure(device: str, seeds: int, artifacts) -> None:
    """Prints each family's logits error and checked share, per dtype and seed."""
    for family in FAMILIES:
        for dtype in TOLERANCE:
            for seed in range(seeds):
                try:
                    result = compare(family, dtype, device, artifacts, seed)
                except hf.PatchError as error:
                    print(f"{family} {dtype}: refused: {error}")
                    break
                print(f"{family} {str(dtype).removeprefix('torch.')} seed {seed}: "
                      f"error {result['error']:.2e}, checked {result['checked']:.0%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", help="the folder of compiled layers")
    parser.add_argument("--target", default="cuda", choices=("cpu", "cuda"),
                        help="compile the layers for this target into --artifacts")
    parser.add_argument("--chip")
    parser.add_argument("--measure", metavar="DEVICE", choices=("cpu", "cuda"),
                        help="instead, print the logits error of each family on DEVICE")
    parser.add_argument("--seeds", type=int, default=1, help="models per family (--measure)")
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.seeds, args.artifacts)
        return 0
    if not args.artifacts:
        parser.error("--artifacts is needed to compile")
    for family in FAMILIES:
        for dtype in TOLERANCE:
            net = model(family).to(dtype)
            try:
                made = hf.compile_artifacts(net, args.artifacts, target=args.target,
                                            chip=args.chip)
            except hf.PatchError as error:
                print(f"{family} {dtype}: not compiled: {error}")
                continue
            print(f"{family} {dtype}: {', '.join(a.name for a in made)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
