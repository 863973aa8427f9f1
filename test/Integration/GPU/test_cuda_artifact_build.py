"""moe-compile --target=cuda where the artifacts are built (no GPU needed):
every model family's config.json becomes a library exporting only the C ABI
and needing neither LLVM nor libcuda at link time; its header compiles as
strict C99; the bytes are deterministic; argument checks answer before any
device work, and without a driver a call returns a device-error status that
names the missing driver; at the benchmark shapes the kernels assemble
without spills or ptxas performance warnings. Needs moe-compile and ptxas;
skips elsewhere.
"""

import hashlib
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "python"))
CONFIGS = sorted((ROOT / "test" / "Integration" / "GPU" / "Inputs" / "configs").glob("*.json"))
LLVM_BIN = pathlib.Path("/usr/lib/llvm-22/bin")

from standalone import has_driver, skip  # noqa: E402


def compiled(tmp, emit=("so", "header", "manifest", "ptx", "fatbin")):
    """Compiles every family config into tmp/<family>; returns the artifacts."""
    from moe_mlir import aot, cpu, gpu

    if not (cpu.build_dir() / "bin" / "moe-compile").exists():
        skip("moe-compile is not built")
    if not gpu.ptxas_path().exists():
        skip("no ptxas (CUDA toolkit) to build fatbins")
    return {config.stem: aot.compile(config, name=config.stem, target="cuda", emit=emit,
                                     out_dir=tmp / config.stem)
            for config in CONFIGS}


def test_family_configs_build_strict_abi_libraries(tmp_path):
    artifacts = compiled(tmp_path)
    assert sorted(artifacts) == ["deepseek_v3", "gpt_oss", "mixtral", "olmoe", "qwen3_moe"]
    compiler = shutil.which("cc") or str(LLVM_BIN / "clang")
    for family, artifact in artifacts.items():
        prefix = f"moe_{family}"
        nm = subprocess.run([str(LLVM_BIN / "llvm-nm"), "-D", "--defined-only",
                             str(artifact.library)], capture_output=True, text=True,
                            check=True)
        exported = sorted(line.split()[-1] for line in nm.stdout.splitlines() if line.strip())
        assert exported == sorted(f"{prefix}_{s}" for s in
                                  ("forward", "status_string", "workspace_size")), exported
        needed = subprocess.run([str(LLVM_BIN / "llvm-readelf"), "-d", str(artifact.library)],
                                capture_output=True, text=True, check=True).stdout
        for forbidden in ("libLLVM", "libMLIR", "libcuda", "libmoe_cuda_runtime", "libomp"):
            assert forbidden not in needed, (family, forbidden)
        manifest = artifact.manifest
        assert manifest["target"] == "cuda" and manifest["chip"] == "sm_90a"
        assert manifest["abi_version"] == "1.1"
        ptx = (artifact.directory / f"{prefix}.ptx").read_text()
        assert ".target sm_90a" in ptx and "mma.sync.aligned.m16n8k16" in ptx
        assert (artifact.directory / f"{prefix}.fatbin").stat().st_size > 0
        user = tmp_path / f"{family}_user.c"
        user.write_text(f'#include "{prefix}.h"\n'
                        f"size_t probe(void) {{ return {prefix}_workspace_size(1); }}\n")
        subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                        f"-I{artifact.directory}", "-c", str(user), "-o",
                        str(tmp_path / f"{family}_user.o")], check=True)


def test_output_is_deterministic(tmp_path):
    from moe_mlir import aot

    first = compiled(tmp_path / "a")["deepseek_v3"]
    second = aot.compile(CONFIGS[0].parent / "deepseek_v3.json", name="deepseek_v3",
                         target="cuda", emit=("so", "header", "manifest", "ptx", "fatbin"),
                         out_dir=tmp_path / "b")
    for name in ("libmoe_deepseek_v3.so", "moe_deepseek_v3.h", "moe_deepseek_v3.json",
                 "moe_deepseek_v3.ptx", "moe_deepseek_v3.fatbin"):
        digests = {hashlib.sha256((d / name).read_bytes()).hexdigest()
                   for d in (first.directory, second.directory)}
        assert len(digests) == 1, name


def test_checks_answer_before_the_device(tmp_path):
    from moe_mlir.aot import MoEError

    layer = compiled(tmp_path, emit=("so", "manifest"))["mixtral"].load()
    tokens = 4
    size = layer.workspace_size(tokens)
    assert layer.workspace_size(0) == 0
    assert 0 < size < layer.workspace_size(64) < layer.workspace_size(4096)
    # Aligned stand-ins for device pointers: the checks must not touch them.
    good = [0x10000 * (i + 1) for i in range(len(layer.inputs) + len(layer.outputs))]
    workspace = 0x900000

    def status(pointers=good, tokens=tokens, workspace=workspace, size=size):
        try:
            layer.forward_pointers(pointers, tokens, workspace, size, None)
            return 0
        except MoEError as error:
            return error.status

    assert status([None] + good[1:]) == 1
    assert status([good[0] + 2] + good[1:]) == 2
    assert status(tokens=0) == 3
    assert status(size=size - 1) == 4
    assert status(workspace=None) == 1
    if has_driver():
        return
    # No driver: the call fails as a status naming it, with no crash.
    assert status() == 6
    assert "libcuda.so.1" in layer.status_string(6)


def test_prefill_kernels_assemble_without_spills_or_serialized_wgmma():
    """ptxas's report on each benchmark shape's kernels: no "Potential
    Performance Loss" (wgmma serialized on a divergent path or for want of
    registers, a register-budget hint dropped, ...), and no spills in the
    prefill kernels, whose consumer threads hold 128 accumulators each."""
    import re

    from moe_mlir import cpu, gpu, irgen
    from moe_mlir.benchmark_shapes import BENCHMARK_SHAPES

    if not (cpu.build_dir() / "bin" / "moe-opt").exists():
        skip("moe-opt is not built")
    if not gpu.ptxas_path().exists():
        skip("no ptxas (CUDA toolkit)")
    for shape, (H, I, E, k) in BENCHMARK_SHAPES.items():
        ptx = gpu.lower_to_ptx(irgen.experts_ir(None, H, E, I, k, name="experts"))
        assert "wgmma.mma_async" in ptx, shape
        report = gpu.ptxas_report(ptx)
        warnings = re.findall(r".*Potential Performance Loss.*", report)
        assert not warnings, (shape, warnings)
        prefill = re.findall(r"Compiling entry function '(moe_grouped_matmul_large\w*)'"
                             r"[^\n]*\n[^\n]*\n\s*(\d+) bytes stack frame, (\d+) bytes spill stores",
                             report)
        assert len(prefill) == 2, (shape, report)
        assert all(int(frame) == 0 and int(spill) == 0 for _, frame, spill in prefill), \
            (shape, prefill)
