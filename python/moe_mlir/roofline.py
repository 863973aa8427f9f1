"""The roofline floor of one MoE layer and the ceilings it is measured against
(BENCHMARKS.md), shared by the CPU and GPU benchmarks.

    floor = max(FLOPs / matmul rate,
                weight bytes / read-only rate + activation bytes / copy rate)

The layers only read their weights, so the weights' bytes go at the best
read-only streaming rate the machine reaches; a copy (which also writes)
understates it. Activations are read and written, and go at the copy rate.
The matmul rate is the one of the layer's weight dtype, measured by a library
that computes in that dtype: for bf16 that is torch's bf16 matmul, never an
fp32 (sgemm) rate, which would overstate bf16 fractions where bf16 runs faster.
A point above 1.0 of its floor means a ceiling is understated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Optional

#: Bytes per stored weight of each weight dtype the benchmarks time.
WEIGHT_BYTES = {"f32": 4, "bf16": 2}


class CeilingError(ValueError):
    """A floor was asked for without the ceiling it needs."""


@dataclass(frozen=True)
class Ceilings:
    """One machine's ceilings, measured in the same run as the points.

    ``matmul`` maps a weight dtype to its matmul rate (FLOP/s); a dtype
    missing from it has no floor (``missing`` says why). ``sources`` names
    what measured each rate."""

    read_bytes_per_s: float
    copy_bytes_per_s: float
    matmul: Mapping[str, float]
    sources: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in [("read_bytes_per_s", self.read_bytes_per_s),
                            ("copy_bytes_per_s", self.copy_bytes_per_s),
                            *[(f"matmul[{d}]", r) for d, r in self.matmul.items()]]:
            if not (isinstance(value, (int, float)) and value > 0):
                raise CeilingError(f"ceiling {name} must be a positive rate, got {value!r}")

    def matmul_rate(self, dtype: str) -> float:
        """The matmul ceiling of ``dtype`` weights; CeilingError when it was
        not measured (no other dtype's rate stands in for it)."""
        if dtype not in self.matmul:
            why = self.missing.get(dtype, "it was not measured")
            raise CeilingError(f"no {dtype} matmul ceiling: {why}")
        return self.matmul[dtype]

    def as_json(self) -> dict:
        return dict(read_bytes_per_s=self.read_bytes_per_s,
                    copy_bytes_per_s=self.copy_bytes_per_s, matmul=dict(self.matmul),
                    sources=dict(self.sources), missing=dict(self.missing))


def cpu_matmul_ceilings(sgemm: float, torch_f32: Optional[float],
                        torch_bf16: Optional[float]) -> tuple[dict, dict, dict]:
    """The CPU's matmul ceilings by dtype, with their sources and the reasons
    for the missing ones: f32 is the faster of OpenBLAS's sgemm and torch's
    f32 matmul; bf16 is torch's bf16 matmul or absent (never the sgemm rate)."""
    rates, sources, missing = {}, {}, {}
    if torch_f32 is not None and torch_f32 > sgemm:
        rates["f32"], sources["f32"] = torch_f32, "torch f32 matmul"
    else:
        rates["f32"], sources["f32"] = sgemm, "numpy sgemm"
    if torch_bf16 is None:
        missing["bf16"] = ("torch is not installed (utils/install-bench-deps.sh); "
                           "the sgemm rate is not a bf16 ceiling")
    else:
        rates["bf16"], sources["bf16"] = torch_bf16, "torch bf16 matmul"
    return rates, sources, missing


def layer_flops(T: int, H: int, I: int, k: int) -> int:
    """Useful work: three H x I matmuls per routed (token, slot) row."""
    return 2 * T * k * 3 * H * I


def layer_weight_bytes(hit: int, H: int, I: int, bytes_per_weight: float) -> float:
    """Every expert hit is read once, however many tokens it serves."""
    return hit * 3 * H * I * bytes_per_weight


@dataclass(frozen=True)
class Floor:
    """A point's floor and which ceiling sets it."""

    seconds: float
    compute_seconds: float
    memory_seconds: float

    @property
    def bound(self) -> str:
        return "compute" if self.compute_seconds >= self.memory_seconds else "memory"


def floor(flops: float, weight_bytes: float, activation_bytes: float,
          ceilings: Ceilings, dtype: str) -> Floor:
    """The roofline floor of a layer with ``dtype`` weights (see the module)."""
    compute = flops / ceilings.matmul_rate(dtype)
    memory = (weight_bytes / ceilings.read_bytes_per_s
              + activation_bytes / ceilings.copy_bytes_per_s)
    return Floor(max(compute, memory), compute, memory)


def fraction(floor_seconds: float, measured_seconds: float) -> float:
    """How close a measured time comes to its floor (1.0 = at the floor)."""
    if not measured_seconds > 0:
        raise ValueError(f"measured time must be positive, got {measured_seconds!r}")
    return floor_seconds / measured_seconds


def above_floor(rows: list[dict], key: str = "fraction", limit: float = 1.0) -> list[dict]:
    """The rows whose fraction exceeds ``limit``: each one shows a ceiling
    that understates the machine."""
    return [r for r in rows if r.get(key) is not None and r[key] > limit]


def parse_stream_bench(text: str) -> dict:
    """The JSON object moe-stream-bench prints, checked: its best read rate
    must be a positive number and the best of its per-stream rates."""
    try:
        result = json.loads(text)
        best = float(result["best_read_bytes_per_s"])
        rates = [float(v) for v in result["read_bytes_per_s"].values()]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CeilingError(f"moe-stream-bench printed no valid result: {text!r}") from exc
    if not (best > 0 and rates and best == max(rates)):
        raise CeilingError(f"moe-stream-bench's best read rate {best} is not the best "
                           f"of its streams' rates {rates}")
    return result
