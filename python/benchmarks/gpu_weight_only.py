"""The weight-only rows of the GPU benchmark (``gpu.py --weight-only``): the expert
half with MXFP4, int4 (groups of 128, zero points) or int8 (per channel) weights (the
``<shape>@<format>`` artifacts, the mma_sync_wonly kernel), beside its peers in the
same run.

Each point: fresh bf16 tokens and routing (gpu_peers.make_inputs) and fresh
quantized weights as a checkpoint stores them (torch_reference_lowbit); our layer
into a NaN-poisoned output, checked against the torch fp32 reference on the weights
dequantized to bf16 (test_weight_only_gpu.py checks the exact fp64 oracle), then
timed; then the peers:

- ``bf16 ms``: our own bf16 layer (random bf16 weights of the same shape);
- ``dequant+grouped_mm ms``: each call dequantizes the weights to bf16, then runs
  gpu_peers.grouped_mm_pipeline.

The floor counts the quantized bytes of each expert hit (codes at 0.5 or 1 byte,
e8m0 scales at 1 byte, f32 scales at 4, int4 zero points at 1) and the activations
against the read-only and copy rates, and the FLOPs against the bf16 matmul rate
(the kernel multiplies in bf16), all measured in the same run.
"""

from __future__ import annotations

import time
from typing import Any

import gpu_peers
from moe_mlir import roofline
from moe_mlir import torch_reference_lowbit as lowbit

#: max |y - ref| / max |ref| against the reference that a point must meet.
BOUND = 2e-2
FORMATS = ("mxfp4", "int4", "int8")


def projection_bytes(entry: dict, N: int, K: int) -> int:
    """The stored bytes of one expert's [N, K] projection."""
    fmt = entry["format"]
    codes = N * K if fmt == "int8" else N * K // 2
    G = lowbit.groups(fmt, K, entry.get("group", 1))
    per_scale = 1 if fmt == "mxfp4" else 4
    per_zero = 1 if entry.get("zero_points") else 0
    return codes + N * G * (per_scale + per_zero)


def weight_bytes(hit: int, entry: dict) -> int:
    """Each expert hit reads its quantized weights, scales and zero points once."""
    H, I = entry["H"], entry["I"]
    return hit * (projection_bytes(entry, 2 * I, H) + projection_bytes(entry, H, I))


def floor_ms(T: int, hit: int, entry: dict, ceilings: dict) -> float:
    H, I, k = entry["H"], entry["I"], entry["k"]
    return roofline.floor(gpu_peers.flops(T, H, I, k), weight_bytes(hit, entry),
                          gpu_peers.activation_bytes(T, H),
                          gpu_peers.gpu_ceilings(ceilings), "bf16").seconds * 1e3


def operands(x: Any, ids: Any, weights: Any, w13: dict, w2: dict) -> list:
    """The artifact's arguments: x, the codes, the routing, then the scales and
    zero points."""
    args = [x, w13["w"], w2["w"], ids, weights, w13["scales"], w2["scales"]]
    if "zero_points" in w13:
        args += [w13["zero_points"], w2["zero_points"]]
    return args


def dequantized(entry: dict, w13: dict, w2: dict) -> tuple:
    """Both projections' weights dequantized to bf16 (the dequantizing peer's
    first step)."""
    import torch

    fmt, group = entry["format"], entry.get("group", 1)
    return (lowbit.dequantize(fmt, w13, group, entry["H"], torch.bfloat16),
            lowbit.dequantize(fmt, w2, group, entry["I"], torch.bfloat16))


def point(shape: str, T: int, entry: dict, module: Any, bf16_module: Any,
          ceilings: dict) -> dict:
    """One weight-only row: ours checked and timed, then the peers."""
    import torch

    H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
    fmt, group = entry["format"], entry.get("group", 1)
    seed = int(time.time()) % 100000
    inputs = gpu_peers.make_inputs(T, H, I, E, k, seed=seed)
    x, ids, weights = inputs["x"], inputs["ids"], inputs["weights"]
    bf16_operands = gpu_peers.experts_operands(inputs)
    y16 = torch.empty_like(x)
    bf16_workspace = bf16_module.workspace("experts", bf16_operands)
    bf16 = gpu_peers.time_ms(lambda: bf16_module.call("experts", bf16_operands, [y16],
                                                      workspace=bf16_workspace))
    # The bf16 weights are no longer needed: room for the quantized ones and the
    # peer's dequantized copies.
    del bf16_operands, y16, inputs
    torch.cuda.empty_cache()
    gen = torch.Generator(device="cuda").manual_seed(seed)
    w13 = lowbit.random_weights(fmt, E, 2 * I, H, group, entry.get("zero_points", False), gen)
    w2 = lowbit.random_weights(fmt, E, H, I, group, entry.get("zero_points", False), gen)
    args = operands(x, ids, weights, w13, w2)
    y = torch.full_like(x, float("nan"))
    workspace = module.workspace("experts", args)
    module.call("experts", args, [y], workspace=workspace)
    torch.cuda.synchronize()
    ref = gpu_peers.reference_fp32(x, lowbit.dequantize(fmt, w13, group, H, torch.bfloat16),
                                   lowbit.dequantize(fmt, w2, group, I, torch.bfloat16),
                                   ids, weights)
    error = gpu_peers.relative_error(y, ref)
    del ref
    torch.cuda.empty_cache()
    ours = gpu_peers.time_ms(lambda: module.call("experts", args, [y], workspace=workspace))
    dequant = None

    def peer():
        return gpu_peers.dequant_grouped_mm_pipeline(
            x, lambda: dequantized(entry, w13, w2), ids, weights)

    if peer() is not None:
        dequant = gpu_peers.time_ms(peer)
    hit = gpu_peers.experts_hit(ids)
    floor = floor_ms(T, hit, entry, ceilings)
    peers = [t for t in (bf16, dequant) if t is not None]
    return dict(shape=f"{shape}@{fmt}", T=T, hit=hit, floor=floor, ours=ours,
                fraction=floor / ours, bf16=bf16, vs_bf16=bf16 / ours,
                dequant_grouped_mm=dequant, vs_best_peer=min(peers) / ours,
                rel_err=error)


COLUMNS = [("shape", "shape"), ("T", "T"), ("hit", "hit"), ("floor", "floor ms"),
           ("ours", "ours ms"), ("fraction", "of floor"), ("bf16", "our bf16 ms"),
           ("vs_bf16", "x vs bf16"), ("dequant_grouped_mm", "dequant+grouped_mm ms"),
           ("vs_best_peer", "x vs best peer"), ("rel_err", "rel err")]
