"""The benchmark shapes' expert halves (bf16 and FP8) built by another tree's
compiler, so that a change's before and after are timed in the same run on
the same card.

Run it with a tree's own Python: its moe_mlir uses that tree's build (moe-opt)
and its gpu_artifacts.py names the shapes and the FP8 form. The index it
writes has the entries gpu_kernel_times.py and gpu.py look up
(`<shape>`, `<shape>@fp8`), about 2 MB where the whole artifact set is 50:
both fit what travels to the device machine.

    bash utils/build-gpu-baseline-artifacts.sh <commit>   # does all of it
    python3 <tree>/python/benchmarks/gpu_baseline_artifacts.py --out DIR
"""

import argparse
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import gpu_artifacts as ga  # noqa: E402
from moe_mlir import gpu, irgen  # noqa: E402


def build(out: pathlib.Path) -> list[dict]:
    entries = []
    for name, (H, I, E, k) in ga.BENCHMARK_SHAPES.items():
        dims = dict(H=H, I=I, E=E, k=k)
        library = gpu.compile_shared_object(
            irgen.experts_ir(None, H, E, I, k, name="experts"), out, name=ga.slug(name))
        entries.append(dict(name=name, library=library.name, function="experts",
                            kind="experts", **dims))
        library = gpu.compile_shared_object(
            irgen.experts_ir(None, H, E, I, k, name="experts", **ga.FP8_IR), out,
            name=ga.slug(f"{name}@fp8"), features=ga.FP8_FEATURES)
        entries.append(dict(name=f"{name}@fp8", library=library.name, function="experts",
                            kind="experts-fp8", block=list(ga.FP8_QUANT["block"]),
                            activation=ga.FP8_QUANT["activation"], **dims))
        print(f"{name}: bf16 and FP8", flush=True)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").write_text(json.dumps(build(out), indent=1))
    print(f"baseline artifacts in {out}")


if __name__ == "__main__":
    main()
