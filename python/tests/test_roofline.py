"""Tests of the benchmarks' roofline floor (moe_mlir.roofline): which ceiling
bounds which bytes and which math, without running a benchmark."""

import json

import pytest

from moe_mlir import roofline

GB, GFLOP = 1e9, 1e9


def _cpu_ceilings(torch_bf16=400 * GFLOP, sgemm=200 * GFLOP, torch_f32=None):
    rates, sources, missing = roofline.cpu_matmul_ceilings(sgemm, torch_f32, torch_bf16)
    return roofline.Ceilings(read_bytes_per_s=50 * GB, copy_bytes_per_s=25 * GB,
                             matmul=rates, sources=sources, missing=missing)


def test_weights_go_at_the_read_rate_and_activations_at_the_copy_rate():
    ceilings = _cpu_ceilings()
    floor = roofline.floor(flops=1e6, weight_bytes=1 * GB, activation_bytes=0.1 * GB,
                           ceilings=ceilings, dtype="bf16")
    # 1 GB at 50 GB/s read + 0.1 GB at 25 GB/s copy; the copy rate for the
    # weights would give 0.044 s.
    assert floor.memory_seconds == pytest.approx(1 / 50 + 0.1 / 25)
    assert floor.seconds == floor.memory_seconds
    assert floor.bound == "memory"


def test_bf16_math_goes_at_torchs_bf16_rate_not_sgemm():
    ceilings = _cpu_ceilings(torch_bf16=400 * GFLOP, sgemm=200 * GFLOP)
    floor = roofline.floor(flops=400 * GFLOP, weight_bytes=0, activation_bytes=0,
                           ceilings=ceilings, dtype="bf16")
    assert floor.compute_seconds == pytest.approx(1.0)  # not 2.0 (sgemm)
    assert floor.bound == "compute"
    f32 = roofline.floor(400 * GFLOP, 0, 0, ceilings, "f32")
    assert f32.compute_seconds == pytest.approx(2.0)


def test_no_bf16_floor_without_torch_and_no_sgemm_stand_in():
    rates, sources, missing = roofline.cpu_matmul_ceilings(200 * GFLOP, None, None)
    assert "bf16" not in rates and "torch" in missing["bf16"]
    ceilings = _cpu_ceilings(torch_bf16=None)
    with pytest.raises(roofline.CeilingError, match="no bf16 matmul ceiling: torch"):
        roofline.floor(1e9, 1e6, 0, ceilings, "bf16")
    # f32 still has its floor.
    assert roofline.floor(1e9, 0, 0, ceilings, "f32").compute_seconds == pytest.approx(5e-3)


def test_f32_ceiling_is_the_faster_f32_library():
    rates, sources, _ = roofline.cpu_matmul_ceilings(200 * GFLOP, 250 * GFLOP, 400 * GFLOP)
    assert rates["f32"] == 250 * GFLOP and sources["f32"] == "torch f32 matmul"
    rates, sources, _ = roofline.cpu_matmul_ceilings(200 * GFLOP, 150 * GFLOP, 400 * GFLOP)
    assert rates["f32"] == 200 * GFLOP and sources["f32"] == "numpy sgemm"
    assert rates["bf16"] == 400 * GFLOP


@pytest.mark.parametrize("bad", [0, -1.0, None, float("nan")])
def test_ceilings_must_be_positive_rates(bad):
    with pytest.raises(roofline.CeilingError, match="positive rate"):
        roofline.Ceilings(read_bytes_per_s=bad, copy_bytes_per_s=1.0, matmul={"f32": 1.0})
    with pytest.raises(roofline.CeilingError, match=r"matmul\[bf16\]"):
        roofline.Ceilings(read_bytes_per_s=1.0, copy_bytes_per_s=1.0, matmul={"bf16": bad})


def test_layer_counts():
    # Qwen3-30B-A3B at T = 1: 8 experts hit, bf16.
    assert roofline.layer_flops(1, 2048, 768, 8) == 2 * 8 * 3 * 2048 * 768
    assert roofline.layer_weight_bytes(8, 2048, 768, 2) == 8 * 3 * 2048 * 768 * 2


def test_fraction_and_points_above_the_floor():
    assert roofline.fraction(2.0, 4.0) == 0.5
    with pytest.raises(ValueError):
        roofline.fraction(1.0, 0.0)
    rows = [dict(fraction=0.9), dict(fraction=1.02), dict(fraction=None)]
    assert roofline.above_floor(rows) == [rows[1]]


def test_stream_bench_output_is_checked():
    good = {"isa": "avx512", "threads": 2, "read_bytes_per_s": {"1": 4e10, "2": 5e10},
            "best_read_bytes_per_s": 5e10, "best_streams": 2}
    assert roofline.parse_stream_bench(json.dumps(good))["best_streams"] == 2
    with pytest.raises(roofline.CeilingError, match="no valid result"):
        roofline.parse_stream_bench("error: cannot allocate")
    with pytest.raises(roofline.CeilingError, match="not the best"):
        roofline.parse_stream_bench(json.dumps(dict(good, best_read_bytes_per_s=4e10)))
