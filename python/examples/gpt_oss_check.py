"""gpt-oss exact: a gpt-oss config compiled by moe-compile, run on random
checkpoint tensors with non-zero biases, against the transcription of
gpt-oss's own MoE block (moe_mlir.gpt_oss_reference) and the numpy oracle.

    python3 python/examples/gpt_oss_check.py                  # CPU, compiles here
    python3 python/examples/gpt_oss_check.py --artifact DIR/NAME   # a built artifact
                                              # (CPU or CUDA; CUDA needs torch)

Prints, per dtype, weight layout and token count, max |y - ref| / max |ref|
against each reference.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from moe_mlir import aot, dtypes, gpt_oss  # noqa: E402
from moe_mlir import gpt_oss_reference as transcription  # noqa: E402
from moe_mlir import reference as ref  # noqa: E402


def config(H, I, E, k, dtype):
    return {"model_type": "gpt_oss", "hidden_size": H, "intermediate_size": I,
            "num_local_experts": E, "num_experts_per_tok": k, "swiglu_limit": 7.0,
            "torch_dtype": "float32" if dtype == "f32" else "bfloat16"}


def rounded(values, dtype):
    values = values.astype(np.float32)
    return dtypes.round_to_bf16(values) if dtype == "bf16" else values


def draw(rng, H, I, E, tokens, dtype):
    """Checkpoint tensors (Hugging Face names and layouts) and tokens."""
    ckpt = {
        "router.weight": rng.standard_normal((E, H)) * 0.5,
        "router.bias": rng.standard_normal(E) * 0.5,
        "experts.gate_up_proj": rng.standard_normal((E, H, 2 * I)) / np.sqrt(H),
        "experts.gate_up_proj_bias": rng.standard_normal((E, 2 * I)) * 0.5,
        "experts.down_proj": rng.standard_normal((E, I, H)) / np.sqrt(I),
        "experts.down_proj_bias": rng.standard_normal((E, H)) * 0.5,
    }
    ckpt = {key: rounded(value, dtype) for key, value in ckpt.items()}
    return ckpt, rounded(2.0 * rng.standard_normal((tokens, H)), dtype)


def relative_error(got, want):
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def check(layer, rng, tokens):
    spec = layer.manifest["layer"]
    H, I, E, k, dtype = (spec[key] for key in ("hidden", "intermediate", "experts", "k",
                                               "dtype"))
    ckpt, x = draw(rng, H, I, E, tokens, dtype)
    want = transcription.moe_block(
        x, ckpt["router.weight"], ckpt["router.bias"], ckpt["experts.gate_up_proj"],
        ckpt["experts.gate_up_proj_bias"], ckpt["experts.down_proj"],
        ckpt["experts.down_proj_bias"], experts_per_token=k, swiglu_limit=spec["limit"])
    oracle = ref.layer(x, ckpt["router.weight"], np.swapaxes(ckpt["experts.gate_up_proj"], 1, 2),
                       np.swapaxes(ckpt["experts.down_proj"], 1, 2),
                       router_bias=ckpt["router.bias"],
                       w13_bias=ckpt["experts.gate_up_proj_bias"],
                       w2_bias=ckpt["experts.down_proj_bias"], **ref.layer_kwargs(spec))
    if layer.target == "cuda":
        import torch

        torch_dtype = torch.float32 if dtype == "f32" else torch.bfloat16
        tensors = {key: torch.from_numpy(value).to(torch_dtype).cuda()
                   for key, value in ckpt.items()}
        xt = torch.from_numpy(x).to(torch_dtype).cuda()
        y = layer(*gpt_oss.layer_inputs(layer, tensors, x=xt)).float().cpu().numpy()
    else:
        cast = (lambda a: dtypes.as_bfloat16(dtypes.f32_to_bf16_bits(a))) \
            if dtype == "bf16" else (lambda a: a)
        tensors = {key: cast(value) for key, value in ckpt.items()}
        y = np.asarray(layer(*gpt_oss.layer_inputs(layer, tensors, x=cast(x))), np.float32)
    return relative_error(y, want), relative_error(y, oracle), relative_error(oracle, want)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", action="append", default=[],
                        help="DIR/NAME of a built gpt-oss artifact (repeatable)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 7, 33, 300])
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    layers = []
    for path in args.artifact:
        path = pathlib.Path(path)
        layers.append((path.name, aot.Artifact(path.parent, path.name).load()))
    if not layers:
        out = pathlib.Path(tempfile.mkdtemp(prefix="gpt-oss-"))
        # H, I, E not multiples of the tiles.
        for dtype in ("f32", "bf16"):
            for layout in ("nk", "kn"):
                name = f"gpt_oss_{dtype}_{layout}"
                artifact = aot.compile(config(36, 20, 10, 4, dtype), name=name,
                                       layer={"weight_layout": layout}, out_dir=out / name)
                layers.append((name, artifact.load()))
    print(f"{'layer':24s} {'T':>5s}  {'vs gpt-oss':>10s}  {'vs oracle':>10s}  "
          f"{'oracle vs gpt-oss':>17s}")
    for name, layer in layers:
        for tokens in args.tokens:
            e_gpt, e_oracle, e_ref = check(layer, rng, tokens)
            print(f"{name:24s} {tokens:5d}  {e_gpt:10.2e}  {e_oracle:10.2e}  {e_ref:17.2e}")


if __name__ == "__main__":
    main()
