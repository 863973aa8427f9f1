"""Portable CPU artifacts (moe-compile --chip=portable): one library with the
kernel compiled per CPU level, the best one this CPU runs picked at the first
call. Each variant this machine can run is forced (MOE_MLIR_CPU_VARIANT) and
checked against the numpy oracle; the baseline's machine code is checked to
hold no instruction of a later level; a variant this CPU lacks, or a name the
library does not have, is a status, never SIGILL."""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from harness import (CPUINFO_FLAGS, assert_close, cpu_flags, draw_robust, normal,
                     routing_is_robust)
from moe_mlir import aot, cpu
from moe_mlir import reference as ref

REPO = pathlib.Path(__file__).resolve().parents[3]
LLVM_OBJDUMP = cpu.LLVM_BIN / "llvm-objdump"

# Not multiples of the kernel's tiles (16 lanes, 12-row blocks).
LAYER = dict(hidden=48, intermediate=24, experts=8, k=2, renormalize=True)
ROUTE = ref.MODEL_RECIPES["mixtral"]
def runs_here(variant, flags):
    return all(CPUINFO_FLAGS.get(f, f) in flags for f in variant["cpu_features"])


@pytest.fixture(scope="module", params=[("f32", "nk"), ("bf16", "panels_vnni")],
                ids=["f32", "bf16_vnni"])
def portable(request, tmp_path_factory):
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    dtype, layout = request.param
    name = f"portable_{dtype}"
    out = tmp_path_factory.mktemp(name)
    artifact = aot.compile(layer=dict(LAYER, dtype=dtype, weight_layout=layout), name=name,
                           chip="portable", emit=("so", "obj", "header", "manifest"),
                           out_dir=out)
    return artifact, dtype


def test_manifest_lists_the_variants(portable):
    artifact, _ = portable
    manifest = artifact.manifest
    assert manifest["chip"] == "portable"
    chips = [v["chip"] for v in manifest["cpu_variants"]]
    # Tried in this order: most features first.
    assert chips == ["cooperlake", "x86-64-v4", "x86-64-v3", "x86-64-v2"]
    features = {v["chip"]: v["cpu_features"] for v in manifest["cpu_variants"]}
    assert "avx2" not in features["x86-64-v2"] and "avx2" in features["x86-64-v3"]
    assert "avx512f" not in features["x86-64-v3"] and "avx512f" in features["x86-64-v4"]
    assert "avx512bf16" in features["cooperlake"]
    # What the library needs at all is what its baseline needs.
    assert manifest["cpu_features"] == features["x86-64-v2"]
    assert f"{manifest['prefix']}_cpu_variant" in manifest["symbols"]


def disassembly(path):
    if not LLVM_OBJDUMP.exists():
        pytest.skip(f"{LLVM_OBJDUMP} not found")
    return subprocess.run([str(LLVM_OBJDUMP), "-d", "--no-show-raw-insn", str(path)],
                          capture_output=True, text=True, check=True).stdout


def test_each_variant_uses_only_its_level(portable):
    # The per-variant objects (--emit=obj) are what the library links.
    artifact, dtype = portable
    code = {}
    for variant in artifact.manifest["cpu_variants"]:
        suffix = variant["chip"].replace("-", "_")
        code[variant["chip"]] = disassembly(
            artifact.directory / f"{artifact.manifest['prefix']}_{suffix}.o")
    # SSE4.2 is xmm only; AVX2 adds ymm and VEX; AVX-512 adds zmm.
    assert "ymm" not in code["x86-64-v2"] and "zmm" not in code["x86-64-v2"]
    assert "zmm" not in code["x86-64-v3"] and "ymm" in code["x86-64-v3"]
    assert "zmm" in code["x86-64-v4"] and "zmm" in code["cooperlake"]
    # vdpbf16ps only where AVX512_BF16 is, and there for bf16 panels_vnni.
    for chip, text in code.items():
        assert ("vdpbf16ps" in text) == (chip == "cooperlake" and dtype == "bf16"), chip


def draw_inputs(rng, dtype, tokens, concentrated):
    H, I, E = LAYER["hidden"], LAYER["intermediate"], LAYER["experts"]

    def draw():
        x = normal(rng, (tokens, H), dtype)
        router = normal(rng, (E, H), dtype, scale=0.5)
        if concentrated:
            # Every token on experts 0 and 1, none on the others.
            x = np.abs(x) + np.float32(0.5)
            router[:2] = np.float32(1.0) + np.arange(2, dtype=np.float32)[::-1, None]
            router[2:] *= np.float32(0.01)
            x, router = (normal_round(v, dtype) for v in (x, router))
        return {"x": x, "router": router}

    inputs = draw_robust(rng, draw, lambda d: routing_is_robust(
        rng, d["x"].astype(np.float64) @ d["router"].T.astype(np.float64), None, ROUTE),
        f"portable {dtype} T={tokens}")
    inputs["w13"] = normal(rng, (E, 2 * I, H), dtype, scale=0.2)
    inputs["w2"] = normal(rng, (E, H, I), dtype, scale=0.2)
    return inputs


def normal_round(values, dtype):
    return cpu.from_storage(cpu.to_storage(values, dtype), dtype)


def load_forced(artifact, chip, directory, monkeypatch):
    """The library loaded afresh (its own copy: the choice is made once per
    loaded library) with MOE_MLIR_CPU_VARIANT=chip."""
    directory.mkdir()
    library = directory / artifact.library.name
    shutil.copy(artifact.library, library)
    monkeypatch.setenv("MOE_MLIR_CPU_VARIANT", chip)
    return aot.Layer(library, artifact.manifest)


def test_each_variant_matches_oracle(portable, rng, tmp_path, monkeypatch):
    artifact, dtype = portable
    monkeypatch.delenv("MOE_MLIR_CPU_VARIANT", raising=False)
    flags = cpu_flags()
    variants = artifact.manifest["cpu_variants"]
    runnable = [v for v in variants if runs_here(v, flags)]
    assert runnable, "this x86-64 CPU runs none of the portable variants"
    # Unforced, the library runs the first variant this CPU has.
    assert aot.Layer(artifact.library, artifact.manifest).cpu_variant == runnable[0]["chip"]
    cases = [(1, False), (7, True), (33, False)]
    inputs = [draw_inputs(rng, dtype, tokens, concentrated) for tokens, concentrated in cases]
    wants = [ref.layer(i["x"], i["router"], i["w13"], i["w2"], **ROUTE) for i in inputs]
    if artifact.manifest["layer"]["weight_layout"] == "panels_vnni":
        packer = aot.Layer(artifact.library, artifact.manifest)
    for variant in runnable:
        chip = variant["chip"]
        layer = load_forced(artifact, chip, tmp_path / chip, monkeypatch)
        assert layer.cpu_variant == chip
        for (tokens, _), drawn, want in zip(cases, inputs, wants):
            weights = [cpu.to_storage(drawn[n], dtype) for n in ("w13", "w2")]
            if artifact.manifest["layer"]["weight_layout"] == "panels_vnni":
                weights = [packer.pack(n, w) for n, w in zip(("w13", "w2"), weights)]
            args = [cpu.to_storage(drawn["x"], dtype), cpu.to_storage(drawn["router"], dtype),
                    *weights]
            y = cpu.from_storage(layer(*args), dtype)
            assert_close(y, want, dtype, f"{chip} {dtype} T={tokens}")


CALL_FORCED = """
import pathlib, sys
import numpy as np
from moe_mlir import aot
layer = aot.Artifact(pathlib.Path(sys.argv[1]), sys.argv[2]).load()
x = np.zeros((3, 48), np.float32)
router = np.zeros((8, 48), np.float32)
w13 = np.zeros((8, 48, 48), np.float32)
w2 = np.zeros((8, 48, 24), np.float32)
print("variant", layer.cpu_variant)
try:
    print("ok", layer(x, router, w13, w2).shape)
except aot.MoEError as error:
    print(error)
"""


def call_forced(artifact, chip):
    # A subprocess: without the check, the kernel would die of SIGILL.
    run = subprocess.run([sys.executable, "-c", CALL_FORCED, str(artifact.directory),
                          artifact.manifest["name"]], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO / "python"),
                                  MOE_MLIR_CPU_VARIANT=chip))
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_forcing_a_variant_this_cpu_lacks_is_a_status(portable):
    artifact, dtype = portable
    if dtype != "f32":
        pytest.skip("the f32 artifact covers the dispatcher")
    flags = cpu_flags()
    lacking = [v for v in artifact.manifest["cpu_variants"] if not runs_here(v, flags)]
    for variant in lacking:
        missing = next(f for f in variant["cpu_features"]
                       if CPUINFO_FLAGS.get(f, f) not in flags)
        assert call_forced(artifact, variant["chip"]) == (
            f"variant None\nstatus 5: this CPU lacks {missing}, which the kernel variant "
            f"{variant['chip']} was compiled for (MOE_MLIR_CPU_VARIANT)")
    # A name the library does not have is refused, not ignored.
    assert call_forced(artifact, "znver9") == (
        "variant None\nstatus 5: MOE_MLIR_CPU_VARIANT=znver9 names no kernel variant of "
        "this library (cooperlake, x86-64-v4, x86-64-v3, x86-64-v2)")


def test_a_cpu_that_runs_no_variant_gets_a_status(tmp_path):
    # Two CPUs with AVX512-FP16 (Sapphire Rapids and Granite Rapids): on a
    # CPU without it neither runs, and the message says what each needs.
    flags = cpu_flags()
    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        pytest.skip("moe-compile is not built")
    artifact = aot.compile(layer=dict(hidden=48, intermediate=24, experts=8, k=2),
                           name="fp16_cpus", chip="sapphirerapids,graniterapids",
                           out_dir=tmp_path)
    variants = artifact.manifest["cpu_variants"]
    assert [v["chip"] for v in variants] == ["graniterapids", "sapphirerapids"]
    if all(runs_here(v, flags) for v in variants):
        pytest.skip("this CPU runs both variants")
    lacks = []
    for variant in variants:
        missing = [f for f in variant["cpu_features"] if CPUINFO_FLAGS.get(f, f) not in flags]
        if missing:
            lacks.append(f"{variant['chip']} needs {missing[0]}")
    if len(lacks) < len(variants):
        pytest.skip("this CPU runs one of the variants")
    assert call_forced(artifact, "") == (
        "variant None\nstatus 5: this CPU runs none of the kernel's variants "
        f"(--chip=sapphirerapids,graniterapids): {', '.join(lacks)}")
