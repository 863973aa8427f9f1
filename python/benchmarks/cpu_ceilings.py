"""The CPU benchmark's ceilings, measured in the same run as its points
(BENCHMARKS.md; the floor itself is moe_mlir.roofline's):

- memory: the best read-only streaming rate of all threads
  (``moe-stream-bench``, built with the project), beside a 1 GiB numpy copy
  (bytes read + written), which is reported but is not the weights' ceiling;
- f32 matmul: the faster of numpy/OpenBLAS's sgemm and torch's f32 matmul;
- bf16 matmul: torch's bf16 matmul, or none without torch.

Each rate is the best of several calls (the ceiling is what the machine can
reach); matmuls are 2048^3 (4096^3 gave the same rates here). A shared
machine's rates move during a run, so the benchmark samples the ceilings
before, between and after its points, and each ceiling is the best sample.
"""

from __future__ import annotations

import subprocess
import time

import numpy as np

from moe_mlir import cpu, roofline

MATMUL_N = 2048
COPY_BYTES = 1 << 30
REPEATS = 7


def best_seconds(fn, repeats: int = REPEATS) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after a warm-up call."""
    fn()
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def read_stream(mib: int = 1024) -> dict:
    """moe-stream-bench's result (all threads, several streams each)."""
    tool = cpu.tool("moe-stream-bench")
    proc = subprocess.run([str(tool), f"--mib={mib}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise roofline.CeilingError(f"{tool} failed ({proc.returncode}): {proc.stderr}")
    return roofline.parse_stream_bench(proc.stdout)


def copy_rate() -> float:
    """Bytes read + written per second by numpy copying 1 GiB."""
    src = np.ones(COPY_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return 2 * src.nbytes / best_seconds(lambda: np.copyto(dst, src))


def sgemm_rate() -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    b = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    return 2 * MATMUL_N**3 / best_seconds(lambda: a @ b)


def torch_matmul_rate(torch, dtype) -> float:
    a = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype)
    b = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype)
    with torch.inference_mode():
        return 2 * MATMUL_N**3 / best_seconds(lambda: a @ b)


def sample(torch) -> dict:
    """One measurement of every rate; ``torch`` is the module or None."""
    stream = read_stream()
    result = dict(read=stream["best_read_bytes_per_s"], stream=stream, copy=copy_rate(),
                  numpy_sgemm=sgemm_rate(), torch_f32_matmul=None, torch_bf16_matmul=None)
    if torch is not None:
        result["torch_f32_matmul"] = torch_matmul_rate(torch, torch.float32)
        result["torch_bf16_matmul"] = torch_matmul_rate(torch, torch.bfloat16)
    return result


def combine(samples: list[dict]) -> tuple[roofline.Ceilings, dict]:
    """The ceilings (each the best of its samples) and the details behind
    them for the run's JSON: the best stream result and every sample."""
    def best(key):
        values = [s[key] for s in samples if s[key] is not None]
        return max(values) if values else None

    rates, sources, missing = roofline.cpu_matmul_ceilings(
        best("numpy_sgemm"), best("torch_f32_matmul"), best("torch_bf16_matmul"))
    ceilings = roofline.Ceilings(read_bytes_per_s=best("read"), copy_bytes_per_s=best("copy"),
                                 matmul=rates, sources=sources, missing=missing)
    details = dict(stream=max(samples, key=lambda s: s["read"])["stream"],
                   numpy_sgemm=best("numpy_sgemm"), torch_f32_matmul=best("torch_f32_matmul"),
                   torch_bf16_matmul=best("torch_bf16_matmul"),
                   samples=[{k: v for k, v in s.items() if k != "stream"} for s in samples])
    return ceilings, details


def spread(details: dict, key: str) -> str:
    """The lowest and highest sample of ``key``, in units of 1e9."""
    values = [s[key] for s in details["samples"] if s[key] is not None]
    return f"{min(values) / 1e9:.0f}-{max(values) / 1e9:.0f}"


def describe(ceilings: roofline.Ceilings, details: dict) -> str:
    """One line per ceiling, for the table's heading."""
    stream = details["stream"]
    n = len(details["samples"])
    lines = [f"ceilings, the best of {n} samples (their range in brackets):",
             f"  memory: read {ceilings.read_bytes_per_s / 1e9:.1f} GB/s "
             f"[{spread(details, 'read')}] (moe-stream-bench, {stream['threads']} threads x "
             f"{stream['best_streams']} streams, {stream['isa']} loads; the weights' "
             f"ceiling), copy {ceilings.copy_bytes_per_s / 1e9:.1f} GB/s "
             f"[{spread(details, 'copy')}] (numpy 1 GiB, read + write; the activations')"]
    torch_f32 = details["torch_f32_matmul"]
    lines.append(f"  f32 matmul: {ceilings.matmul['f32'] / 1e9:.0f} GFLOP/s "
                 f"({ceilings.sources['f32']}; numpy sgemm "
                 f"{details['numpy_sgemm'] / 1e9:.0f} [{spread(details, 'numpy_sgemm')}]"
                 + (f", torch f32 {torch_f32 / 1e9:.0f} [{spread(details, 'torch_f32_matmul')}])"
                    if torch_f32 else ")"))
    if "bf16" in ceilings.matmul:
        lines.append(f"  bf16 matmul: {ceilings.matmul['bf16'] / 1e9:.0f} GFLOP/s "
                     f"[{spread(details, 'torch_bf16_matmul')}] ({ceilings.sources['bf16']})")
    else:
        lines.append(f"  bf16 matmul: none, so no bf16 floor: {ceilings.missing['bf16']}")
    return "\n".join(lines)
