"""Builds the GPU artifacts the device-side checks and benchmark load.

Runs here (no GPU needed): every module goes through
``moe-opt --moe-lower-to-nvvm-pipeline`` into ``artifacts/gpu/lib<name>.so``
(host code plus an sm_90a fatbin with PTX), next to one copy of
``libmoe_cuda_runtime.so``. ``index.json`` describes each artifact (its
function, sizes and routing keywords) so the device side needs no MLIR, and
``resources.txt`` holds ptxas's register and spill report per kernel.

    python3 python/benchmarks/gpu_artifacts.py [--out artifacts/gpu]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from moe_mlir import gpu, irgen, reference  # noqa: E402
from moe_mlir.benchmark_shapes import BENCHMARK_SHAPES  # noqa: E402

#: Shapes that exercise the kernels' edges: K and I not multiples of the
#: tiles (tensor-core path with K tails), and K not a multiple of 8 (the
#: plain kernel).
EDGE_SHAPES = {
    "edge-tail": (72, 40, 8, 2),
    "edge-plain": (100, 36, 4, 2),
    # More experts than a block has threads: the dispatch and the row-tile
    # schedule scan the experts' counts in runs of two per thread.
    "edge-experts": (64, 32, 300, 4),
}

#: Kernel choices (moe-gpu-select-kernel-config options, which the pipeline
#: takes as its kernel-config) whose kernels are built and checked beside the
#: default:
#: the staged mma.sync prefill kernel (the default on chips without wgmma),
#: the wgmma kernel without its producer warpgroup, and with its A tile
#: unswizzled.
#: pdl=true (a moe-lower-to-nvvm-pipeline option, off by default) launches every kernel
#: programmatically (programmatic dependent launch).
#: dispatch-row-tiles=false (a pipeline option, on by default) schedules the row tiles
#: in a kernel of their own after the dispatch, also at decode sizes, where the default
#: lets the one-block dispatch write them (test_gpu_decode_dispatch.py compares the two).
ALWAYS_VARIANTS = ["wgmma=false", "wgmma-producer=false",
                   "wgmma-swizzled-a=false", "pdl=true", "dispatch-row-tiles=false"]

#: The options a variant may give that are moe-lower-to-nvvm-pipeline's own;
#: every other one goes to its kernel-config (moe-gpu-select-kernel-config).
PIPELINE_VARIANT_OPTIONS = ("pdl", "fuse-routing", "dispatch-row-tiles")

#: Shapes built with dispatch-row-tiles=false as well, beyond the benchmark shapes and
#: edge-tail that every variant gets: more experts (300) than the dispatch block has
#: threads, so its tile counts are scanned in runs of two per thread.
SEPARATE_SCHEDULE_EDGES = ("edge-experts",)


def variant_pipeline_extra(options: str) -> str:
    """The pipeline options of a variant (``"pdl=true small-unroll=4"``):
    its pipeline options as they are, the others as its kernel-config."""
    own, kernel_config = [], []
    for option in options.split():
        name = option.split("=", 1)[0]
        (own if name in PIPELINE_VARIANT_OPTIONS else kernel_config).append(option)
    if kernel_config:
        own.append("kernel-config={" + " ".join(kernel_config) + "}")
    return " ".join(own)

#: FP8 expert halves of the benchmark shapes (gpu.py --fp8): the checkpoints' blocks
#: of DeepSeek-V3 and Qwen3-FP8, dynamic activations. The e4m3 MMA needs PTX ISA 8.4.
FP8_QUANT = dict(block=(128, 128), activation="dynamic")
#: Their IR: the GLU output in f32, quantized from its f32 value (docs/quantization.md),
#: as moe-compile's FP8 layers have it.
FP8_IR = dict(weight_quant=FP8_QUANT, intermediate_dtype="f32")
FP8_FEATURES = "+ptx84"
#: Kernel options the FP8 halves are built under as well ("<shape>@fp8@<options>",
#: timed by `gpu.py --fp8 --shapes '<shape>@<options>'`, checked by
#: test_fp8_variants_gpu.py): the mma_sync_fp8 prefill kernel in place of the default
#: wgmma_fp8; the prefill tile from 8 rows per expert (bf16's threshold) rather than
#: 32; and around the default decode loop (Fp8StagedDecodeMainloop.cpp: 16-byte steps,
#: two register stages), the first one (8-byte steps, one stage), 8-byte steps with
#: two stages, three register stages, and split-K on top of the default.
FP8_VARIANTS = ("wgmma-fp8=false", "large-rows-per-expert=8",
                "fp8-small-k=32 fp8-small-stages=1", "fp8-small-k=32",
                "fp8-small-stages=3", "fp8-small-split-k=4")
#: FP8 expert halves at edge shapes, under the default and every FP8 variant, and
#: with split-K from small K too (so the edges' few K blocks leave parts empty):
#: name -> (H, I, E, k). fp8-edge-tail: K = 208 (two blocks, the second partial;
#: 16-byte steps) and 80 (one block over K, its second 64-wide step half past K),
#: N = 160 and 208, no multiples of the tiles' columns. fp8-edge-narrow: K = 200
#: and 72, no multiples of 16 (8-byte steps where k = 64 is asked for).
FP8_EDGES = {"fp8-edge-tail": (208, 80, 8, 2), "fp8-edge-narrow": (200, 72, 8, 2)}
#: Chips whose FP8 kernels are built too ("<shape>@fp8@chip=<chip>", Qwen3 and the
#: FP8 edge shapes): sm_80, where the e4m3 fragments are widened to f16.
FP8_OTHER_CHIPS = ("sm_80",)
FP8_EDGE_VARIANTS = ("fp8-small-split-k=4 small-split-k-from=64",
                     "fp8-small-k=32 fp8-small-stages=1 fp8-small-split-k=4 "
                     "small-split-k-from=64")

#: Weight-only expert halves (gpu.py --weight-only, test_weight_only_gpu.py): each
#: format with its checkpoints' group (gpt-oss's mxfp4 blocks of 32, AWQ/GPTQ's int4
#: groups of 128 with zero points, per-channel int8), at the benchmark shapes and at
#: edge shapes: K and N not multiples of the tiles (the K tail's element-wise loads),
#: and K of one group.
WEIGHT_ONLY_QUANT = {
    "mxfp4": dict(format="mxfp4", group=32),
    "int4": dict(format="int4", group=128, zero_points=True),
    "int8": dict(format="int8"),
}
#: Per format: name -> (H, I, E, k). mxfp4's K is whole blocks of 32, int4's even.
WEIGHT_ONLY_EDGES = {
    "mxfp4": {"wonly-mxfp4-tail": (224, 96, 8, 2), "wonly-mxfp4-group": (32, 32, 4, 2)},
    "int4": {"wonly-int4-tail": (200, 136, 8, 2), "wonly-int4-group": (128, 128, 4, 2)},
    "int8": {"wonly-int8-tail": (200, 72, 8, 2)},
}
#: f16 activations (AWQ's and GPTQ's checkpoints) with int4 and int8 weights: the
#: f16 MMA. name -> (format, H, I, E, k).
WEIGHT_ONLY_F16 = {"wonly-int4-f16-tail": ("int4", 200, 136, 8, 2),
                   "wonly-int8-f16-tail": ("int8", 200, 72, 8, 2)}

#: Whole layers per model recipe (bf16, small sizes): H, E, I.
LAYER_MODELS = {
    "mixtral": (128, 8, 96),
    "qwen3": (128, 32, 64),
    "olmoe": (96, 16, 40),
    "deepseek_v3": (128, 32, 48),
    "gpt_oss": (96, 16, 64),
}
SHARED_INTERMEDIATE = 64

#: Expert parallelism (moe_mlir.expert_parallel): per shape, the rank counts whose
#: local-expert kernels are built, beside the shape's compiled combine. "small"
#: (H, I, E, k below) is the checks' shape; its unpartitioned kernel is "ep-small".
EP_RANKS = {"deepseek-v3": (2,), "small": (2, 4)}
EP_SMALL = (256, 96, 16, 4)
#: gpt-oss's experts (interleaved swiglu_oai, gate/up and down biases) at the "small"
#: shape, split over these rank counts ("ep-gpt-oss-of<P>", with "ep-small-combine").
EP_GPT_OSS_RANKS = (2, 4)
#: gpt-oss's experts alone (H, I, E, k of its test config), with their biases, under
#: the default kernels and each of ALWAYS_VARIANTS ("gpt-oss-experts[@<options>]"), so
#: every tensor-core epilogue adds the bias; checked by test_gpt_oss_gpu.py.
GPT_OSS_EXPERTS = (192, 64, 32, 4)

#: Capacity-limited dispatch (T dynamic): k, E and the dispatch attributes. Checked
#: against the oracle by test/Integration/GPU/test_gpu_routing_ops.py.
CAPACITY_DISPATCHES = {
    "position": (2, 8, dict(capacity=3, drop_policy="position")),
    "score": (2, 8, dict(capacity=3, drop_policy="score")),
    "factor": (2, 8, dict(capacity_factor=1.0, drop_policy="position")),
    "one-score": (2, 8, dict(capacity=1, drop_policy="score")),
    "one-position": (1, 4, dict(capacity=1, drop_policy="position")),
}
#: The same under expert parallelism: E global experts, L local ones.
CAPACITY_DISPATCH_MAP = (2, 8, 4, dict(capacity=2, drop_policy="score"))
#: Expert-choice routing: E, capacity.
EXPERT_CHOICES = {"c4": (8, 4), "c1": (8, 1)}
#: The router losses: E, k.
LOSS_SHAPE = (8, 2)
#: Whole capacity-limited bf16 layers: H, E, I, and the moe.layer / reference.layer
#: keywords. Switch (top-1, position drop, its capacity factor) and GShard (top-2,
#: renormalized, random second expert, capacity factor 2).
CAPACITY_LAYERS = {
    "switch": (128, 8, 96, dict(irgen.MODEL_LAYERS["switch"])),
    "gshard": (128, 8, 96, dict(k=2, scoring="softmax", renormalize=True,
                                second_expert_policy="random", seed=7,
                                capacity_factor=2.0, drop_policy="position",
                                activation="silu", glu_layout="concatenated")),
}

#: Layers whose exact result overflows f32 (test_gpu_nonfinite.py, as
#: test/Integration/CPU/test_nonfinite.py on the CPU): H, E, I; each dtype,
#: scoring and k, fused (the routing weight in the grouped matmul's epilogue)
#: and, with fuse-routing=false, unfused (the weight in moe.combine).
NONFINITE_LAYER = (64, 4, 32)
NONFINITE_CASES = [(dtype, scoring, k) for dtype in ("f32", "bf16")
                   for scoring in ("softmax", "softmax_topk", "sigmoid") for k in (1, 2)]
#: Routing with infinite logits (test_gpu_nonfinite.py): E, k.
NONFINITE_ROUTE = (4, 2)

#: Routing alone, per recipe: E (k comes from the recipe).
ROUTE_MODELS = {"mixtral": 8, "qwen3": 128, "olmoe": 64, "deepseek_v3": 256,
                "gpt_oss": 32}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def build(out: pathlib.Path, variants: list[str]) -> list[dict]:
    entries = []

    def add(name: str, ir: str, function: str, pipeline_extra: str = "",
            features: str = gpu.DEFAULT_FEATURES, chip: str = gpu.DEFAULT_CHIP, **info):
        start = time.perf_counter()
        library = gpu.compile_shared_object(ir, out, name=slug(name), chip=chip,
                                            features=features, pipeline_extra=pipeline_extra)
        seconds = time.perf_counter() - start
        entries.append(dict(name=name, library=library.name, function=function,
                            compile_s=round(seconds, 2), **info))
        print(f"{name:24s} {seconds:6.2f} s", flush=True)

    for name, (H, I, E, k) in {**BENCHMARK_SHAPES, **EDGE_SHAPES}.items():
        add(name, irgen.experts_ir(None, H, E, I, k, name="experts"), "experts",
            kind="experts", H=H, I=I, E=E, k=k)
    # f16 layers take the same tensor-core kernels as bf16 ones.
    for name, (H, I, E, k) in BENCHMARK_SHAPES.items():
        add(f"{name}@f16", irgen.experts_ir(None, H, E, I, k, name="experts", dtype="f16"),
            "experts", kind="experts-f16", dtype="f16", H=H, I=I, E=E, k=k)
    def add_fp8(name: str, dims: tuple, kind: str, options: str = "",
                chip: str = gpu.DEFAULT_CHIP):
        """The FP8 expert half of dims (H, I, E, k) as artifact `name`, built
        under the variant `options` (none: the defaults) for `chip`."""
        H, I, E, k = dims
        add(name, irgen.experts_ir(None, H, E, I, k, name="experts", **FP8_IR), "experts",
            features=FP8_FEATURES, chip=chip,
            pipeline_extra=variant_pipeline_extra(options) if options else "",
            kind=kind, H=H, I=I, E=E, k=k,
            block=list(FP8_QUANT["block"]), activation=FP8_QUANT["activation"])

    for name, dims in BENCHMARK_SHAPES.items():
        add_fp8(f"{name}@fp8", dims, "experts-fp8")
        for options in FP8_VARIANTS:
            add_fp8(f"{name}@fp8@{options}", dims, "experts-fp8-variant", options)
    for name, dims in FP8_EDGES.items():
        for options in ("",) + FP8_VARIANTS + FP8_EDGE_VARIANTS:
            add_fp8(f"{name}@fp8" + (f"@{options}" if options else ""), dims,
                    "experts-fp8-edge", options)
    # The FP8 kernels of an older chip, whose fatbins' PTX the driver
    # compiles for the GPU at hand: sm_80's f16-widening mma_sync_fp8_f16.
    for chip in FP8_OTHER_CHIPS:
        for name, dims in {"qwen3-30b-a3b": BENCHMARK_SHAPES["qwen3-30b-a3b"],
                           **FP8_EDGES}.items():
            add_fp8(f"{name}@fp8@chip={chip}", dims,
                    "experts-fp8-edge" if name in FP8_EDGES else "experts-fp8-variant",
                    chip=chip)
    for fmt, quant in WEIGHT_ONLY_QUANT.items():
        shapes = {f"{name}@{fmt}": dims for name, dims in BENCHMARK_SHAPES.items()}
        shapes.update(WEIGHT_ONLY_EDGES[fmt])
        for name, (H, I, E, k) in shapes.items():
            add(name, irgen.experts_ir(None, H, E, I, k, name="experts", weight_quant=quant),
                "experts", kind="experts-weight-only", H=H, I=I, E=E, k=k, **quant)
    for name, (fmt, H, I, E, k) in WEIGHT_ONLY_F16.items():
        quant = WEIGHT_ONLY_QUANT[fmt]
        add(name, irgen.experts_ir(None, H, E, I, k, name="experts", dtype="f16",
                                   weight_quant=quant),
            "experts", kind="experts-weight-only", dtype="f16", H=H, I=I, E=E, k=k, **quant)
    # The benchmark shapes (and the K-tail edge) again under other pipeline
    # options: the kernels that are not the default are checked too, and
    # timed beside it (`gpu.py --shapes 'mixtral-8x7b@wgmma=false'`).
    # The down projection's input kept in f32 rather than bf16.
    for name, (H, I, E, k) in BENCHMARK_SHAPES.items():
        add(f"{name}@f32-intermediate",
            irgen.experts_ir(None, H, E, I, k, name="experts", intermediate_dtype="f32"),
            "experts", kind="experts-variant", H=H, I=I, E=E, k=k)
    for options in dict.fromkeys(ALWAYS_VARIANTS + variants):
        shapes = dict(BENCHMARK_SHAPES, **{"edge-tail": EDGE_SHAPES["edge-tail"]})
        for name, (H, I, E, k) in shapes.items():
            add(f"{name}@{options}", irgen.experts_ir(None, H, E, I, k, name="experts"),
                "experts", pipeline_extra=variant_pipeline_extra(options),
                kind="experts-variant", H=H, I=I, E=E, k=k)
    for name in SEPARATE_SCHEDULE_EDGES:
        H, I, E, k = EDGE_SHAPES[name]
        add(f"{name}@dispatch-row-tiles=false",
            irgen.experts_ir(None, H, E, I, k, name="experts"), "experts",
            pipeline_extra=variant_pipeline_extra("dispatch-row-tiles=false"),
            kind="experts-variant", H=H, I=I, E=E, k=k)
    H, I, E, k = GPT_OSS_EXPERTS
    for options in [None] + list(dict.fromkeys(ALWAYS_VARIANTS + variants)):
        add("gpt-oss-experts" + (f"@{options}" if options else ""),
            irgen.experts_ir(None, H, E, I, k, name="experts", activation="swiglu_oai",
                             glu_layout="interleaved", expert_bias=True),
            "experts", pipeline_extra=variant_pipeline_extra(options) if options else "",
            kind="experts-gpt-oss", H=H, I=I, E=E, k=k)
    H, I, E, k = EP_SMALL
    add("ep-small", irgen.experts_ir(None, H, E, I, k, name="experts"), "experts",
        kind="experts-ep-reference", H=H, I=I, E=E, k=k)
    for shape, rank_counts in EP_RANKS.items():
        H, I, E, k = EP_SMALL if shape == "small" else BENCHMARK_SHAPES[shape]
        unpartitioned = "ep-small" if shape == "small" else shape
        for ranks in rank_counts:
            L = E // ranks
            add(f"ep-{shape}-of{ranks}",
                irgen.experts_ir(None, H, E, I, 1, name="experts", num_local_experts=L),
                "experts", kind="ep-experts", shape=shape, ranks=ranks, H=H, I=I, E=E, k=k,
                unpartitioned=unpartitioned)
        add(f"ep-{shape}-combine",
            irgen.combine_ir(None, H, None, k, dtype="bf16", prescaled=True),
            "combine", kind="ep-combine", shape=shape, H=H, k=k)
    H, I, E, k = EP_SMALL
    for ranks in EP_GPT_OSS_RANKS:
        L = E // ranks
        add(f"ep-gpt-oss-of{ranks}",
            irgen.experts_ir(None, H, E, I, 1, name="experts", num_local_experts=L,
                             activation="swiglu_oai", glu_layout="interleaved",
                             expert_bias=True),
            "experts", kind="ep-experts-gpt-oss", ranks=ranks, H=H, I=I, E=E, k=k)
    for model, E in ROUTE_MODELS.items():
        recipe = dict(reference.MODEL_RECIPES[model])
        k = recipe.pop("k")
        bias = model in reference.MODEL_REQUIRES_BIAS
        add(f"route-{model}", irgen.route_ir(None, E, k, bias=bias, name="route", **recipe),
            "route", kind="route", model=model, E=E, k=k, bias=bias, recipe=recipe)
    for label, (k, E, attrs) in CAPACITY_DISPATCHES.items():
        add(f"dispatch-capacity-{label}",
            irgen.dispatch_ir(None, k, E, weights=attrs["drop_policy"] == "score",
                              name="dispatch", **attrs),
            "dispatch", kind="capacity-dispatch", k=k, E=E, attrs=attrs)
    k, E, L, attrs = CAPACITY_DISPATCH_MAP
    add("dispatch-capacity-map",
        irgen.dispatch_ir(None, k, E, weights=True, expert_map=True, num_local_experts=L,
                          name="dispatch", **attrs),
        "dispatch", kind="capacity-dispatch", k=k, E=E, L=L, attrs=attrs)
    for label, (E, capacity) in EXPERT_CHOICES.items():
        add(f"expert-choice-{label}", irgen.expert_choice_ir(None, E, capacity),
            "expert_choice", kind="expert-choice", E=E, capacity=capacity)
    E, k = LOSS_SHAPE
    add("aux-loss", irgen.aux_loss_ir(None, E, k), "aux_loss", kind="aux-loss", E=E, k=k)
    add("z-loss", irgen.z_loss_ir(None, E), "z_loss", kind="z-loss", E=E)
    for model, (H, E, I, attrs) in CAPACITY_LAYERS.items():
        layer_attrs = dict(attrs)
        k = layer_attrs.pop("k")
        add(f"layer-capacity-{model}",
            irgen.layer_ir(None, H, E, I, k, dtype="bf16", name="layer", **layer_attrs),
            "layer", kind="capacity-layer", model=model, H=H, E=E, I=I, attrs=attrs)
    H, E, I = NONFINITE_LAYER
    for dtype, scoring, k in NONFINITE_CASES:
        attrs = dict(k=k, scoring=scoring, renormalize=True)
        ir = irgen.layer_ir(None, H, E, I, dtype=dtype, name="layer", **attrs)
        for fused in (True, False):
            add(f"nonfinite-{dtype}-{scoring}-k{k}" + ("" if fused else "-unfused"), ir,
                "layer", pipeline_extra="" if fused else "fuse-routing=false",
                kind="nonfinite-layer", dtype=dtype, H=H, E=E, I=I, attrs=attrs)
    E, k = NONFINITE_ROUTE
    for scoring in ("softmax", "softmax_topk"):
        add(f"nonfinite-route-{scoring}",
            irgen.route_ir(None, E, k, scoring=scoring, name="route"), "route",
            kind="nonfinite-route", E=E, k=k, scoring=scoring)
    for model, (H, E, I) in LAYER_MODELS.items():
        shared = SHARED_INTERMEDIATE if model in irgen.MODEL_SHARED_EXPERT else None
        ir = irgen.model_layer_ir(model, None, H, E, I, dtype="bf16",
                                  shared_intermediate=shared, name="layer")
        add(f"layer-{model}", ir, "layer", kind="layer", model=model, H=H, E=E, I=I,
            shared_intermediate=shared)
    return entries


def resource_report(out: pathlib.Path) -> str:
    """ptxas -v over the PTX of one benchmark module's kernels, then over the FP8
    half of each benchmark shape under the default and each FP8 variant (the
    registers and spills of the FP8 decode loops)."""
    H, I, E, k = BENCHMARK_SHAPES["qwen3-30b-a3b"]
    ptx = gpu.lower_to_ptx(irgen.experts_ir(None, H, E, I, k, name="experts"))
    (out / "experts.ptx").write_text(ptx)
    reports = [gpu.ptxas_report(ptx)]
    for name, (H, I, E, k) in BENCHMARK_SHAPES.items():
        ir = irgen.experts_ir(None, H, E, I, k, name="experts", **FP8_IR)
        for options in ("",) + FP8_VARIANTS:
            ptx = gpu.lower_to_ptx(ir, features=FP8_FEATURES,
                                   extra=variant_pipeline_extra(options) if options else "")
            reports.append(f"== {name}@fp8" + (f"@{options}" if options else "") + "\n" +
                           gpu.ptxas_report(ptx))
    return "\n".join(reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "gpu"))
    parser.add_argument("--variant", action="append", default=[],
                        help="moe-gpu-select-kernel-config options (e.g. small-split-k=1), "
                             "or the pipeline's own (pdl=true), to build the benchmark "
                             "shapes with as well")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = build(out, args.variant)
    (out / "index.json").write_text(json.dumps(entries, indent=1))
    (out / "resources.txt").write_text(resource_report(out))
    print(f"{len(entries)} artifacts in {out}")


if __name__ == "__main__":
    main()
