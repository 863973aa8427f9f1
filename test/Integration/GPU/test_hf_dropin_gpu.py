"""The Hugging Face drop-in (moe_mlir.hf) on a GPU: the small random models
of each family (python/tests/hf_models.py) on CUDA, patched with the CUDA
layers that `bash utils/build-gpu-artifacts.sh` compiled here into
artifacts/gpu/hf, give the same logits as before, in f32 and bf16. On the
GPU machine only the NVIDIA driver, torch and transformers are used: patch
finds each layer in that folder instead of compiling it.

Run with pytest, or as `python3 test/Integration/GPU/test_hf_dropin_gpu.py`.
"""

import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "tests"))
ARTIFACTS = pathlib.Path(os.environ.get("MOE_GPU_ARTIFACTS", ROOT / "artifacts" / "gpu")) / "hf"

from standalone import run_tests, skip  # noqa: E402

#: CUDA's f32 layer and transformers' f32 CUDA matmuls sum in other orders
#: than the CPU's; bf16 as on the CPU.
GPU_TOLERANCE = {"f32": 1e-4, "bf16": 3e-2}
FAMILIES = ("mixtral", "qwen3_moe", "qwen2_moe", "olmoe", "deepseek_v3", "gpt_oss")


def ready():
    try:
        import torch
    except ImportError:
        skip("needs torch with a CUDA GPU")
    if not torch.cuda.is_available():
        skip("needs torch with a CUDA GPU")
    try:
        import transformers  # noqa: F401
    except ImportError:
        skip("needs transformers (utils/install-deps.sh)")
    if not any(ARTIFACTS.glob("moe_*.json")):
        skip(f"needs {ARTIFACTS} (bash utils/build-gpu-artifacts.sh)")


def gpt_oss_biases_built():
    """Whether artifacts/gpu/hf holds a gpt-oss layer with its biases (one
    is compiled only where moe-compile's gpt-oss layer takes them)."""
    for path in ARTIFACTS.glob("moe_hf_gpt_oss_*.json"):
        names = {t["name"] for t in json.loads(path.read_text())["tensors"]}
        if "router_bias" in names:
            return True
    return False


def check(family, dtype_name):
    ready()
    import torch
    import hf_models

    if family == "gpt_oss" and not gpt_oss_biases_built():
        skip("moe-compile's gpt-oss layer does not take the biases: patching refuses "
             "gpt-oss (python/tests/test_hf_dropin.py checks that)")
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    result = hf_models.compare(family, dtype, "cuda", ARTIFACTS)
    blocks = [b for _, b in result["patched"].named_modules()
              if type(b).__name__ == "CompiledMoEBlock"]
    assert blocks and all(b.layer.target == "cuda" for b in blocks)
    print(f"{family} {dtype_name}: max |patched - original| / max |original| = "
          f"{result['error']:.3e} over {result['checked']:.0%} of the positions")
    assert result["checked"] >= (1.0 if dtype_name == "f32" else 0.5), result["checked"]
    assert result["error"] <= GPU_TOLERANCE[dtype_name], result["error"]


def _define(family, dtype_name):
    def test():
        check(family, dtype_name)

    test.__name__ = f"test_{family}_{dtype_name}"
    return test


for _family in FAMILIES:
    for _dtype in GPU_TOLERANCE:
        globals()[f"test_{_family}_{_dtype}"] = _define(_family, _dtype)


if __name__ == "__main__":
    run_tests(dict(globals()))
