"""moe.permute, moe.grouped_matmul (unfused and fused), moe.glu and moe.combine on the CPU."""

import math

import numpy as np
import pytest

from harness import (assert_close, assert_equal, call, normal, random_ids, random_offsets,
                     storage)
from moe_mlir import cpu, irgen, pack
from moe_mlir import reference as ref

ACTIVATIONS = ref.ACTIVATIONS
GLU_LAYOUTS = ref.GLU_LAYOUTS


def _routed_rows(rng, T, k, E, capacity=None, drop_fraction=0.1, hot=None):
    """rows [T*k] and offsets [E+1] as moe.dispatch makes them: dropped selections and
    capacity overflow leave -1 padding at the end. With ``hot``, every selection goes
    to expert ``hot`` and the others get no rows."""
    ids = random_ids(rng, T, k, E, drop_fraction)
    if hot is not None:
        ids = np.full((T, k), hot, dtype=np.int32)
    return ref.dispatch(ids, num_experts=E, capacity=capacity)


# ----------------------------------------------------------------------------------------
# permute
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("T,H,k,E,dtype,capacity", [
    (16, 32, 2, 8, "f32", None), (16, 32, 2, 8, "bf16", 3), (13, 13, 3, 5, "f32", 4),
    (1, 8, 1, 4, "f32", None), (1, 16, 4, 8, "bf16", None), (24, 48, 1, 8, "f32", 2)])
def test_permute(compile_ir, rng, T, H, k, E, dtype, capacity):
    rows, _ = _routed_rows(rng, T, k, E, capacity)
    x = normal(rng, (T, H), dtype)
    module = compile_ir(irgen.permute_ir(T, T * k, H, k, dtype=dtype))
    (xs,) = call(module, "permute", [storage(x, dtype), rows], [((T * k, H), dtype)])
    assert_equal(cpu.from_storage(xs, dtype), ref.permute(x, rows, k),
                 f"permute T={T} H={H} k={k} {dtype} rows={rows.tolist()}")


def test_permute_out_of_range_rows_give_zero_rows(compile_ir, rng):
    T, H, k, M = 6, 8, 2, 10
    rows = rng.integers(0, T * k, size=M).astype(np.int32)
    rows[[1, 4, 7]] = [-1, T * k, -100]
    x = normal(rng, (T, H))
    module = compile_ir(irgen.permute_ir(T, M, H, k))
    (xs,) = call(module, "permute", [x, rows], [((M, H), "f32")])
    assert_equal(xs, ref.permute(x, rows, k), f"permute rows={rows.tolist()}")


def test_permute_dynamic(compile_ir, rng):
    H, k, E = 12, 2, 4
    module = compile_ir(irgen.permute_ir(None, None, H, k, dtype="bf16"))
    for T in (1, 5, 31):
        rows, _ = _routed_rows(rng, T, k, E, capacity=T // 2 + 1)
        x = normal(rng, (T, H), "bf16")
        (xs,) = call(module, "permute", [storage(x, "bf16"), rows], [((T * k, H), "bf16")])
        assert_equal(cpu.from_storage(xs, "bf16"), ref.permute(x, rows, k),
                     f"permute dynamic T={T}")


# ----------------------------------------------------------------------------------------
# grouped_matmul
# ----------------------------------------------------------------------------------------


def _run_grouped_matmul(compile_ir, rng, pipeline, *, T, k, E, K, N, dtype="f32",
                        rhs_dtype=None, out_dtype="f32", rhs_layout=None, gather=False, row_scale=False, epilogue=None,
                        capacity=None, rhs_scale=1.0, dynamic=False, tokens=None,
                        hot=None, bias=None, **glu_attrs):
    M_static = None if dynamic else T * k
    module = compile_ir(irgen.grouped_matmul_ir(
        M_static, K, N, E, dtype=dtype, rhs_dtype=rhs_dtype, out_dtype=out_dtype,
        rhs_layout=rhs_layout,
        gather=gather, row_scale=row_scale, T=None if dynamic else T,
        k=k if (gather or row_scale) else None, epilogue=epilogue, bias=bias, **glu_attrs),
        pipeline)
    for t in tokens or [T]:
        M = t * k
        if gather or row_scale:
            rows, offsets = _routed_rows(rng, t, k, E, capacity, hot=hot)
        elif hot is not None:
            rows = None
            offsets = np.array([0] * (hot + 1) + [M] * (E - hot), dtype=np.int32)
        else:
            rows = None
            offsets = random_offsets(rng, E, M, used=max(0, M - 3))
        lhs = normal(rng, (t if gather else M, K), dtype)
        rhs = pack.to_layout(normal(rng, (E, N, K), rhs_dtype or dtype,
                                    scale=rhs_scale / math.sqrt(K)), rhs_layout or "nk")
        scales = rng.uniform(0.1, 1.0, size=(t, k)).astype(np.float32)
        inputs = [storage(lhs, dtype), storage(rhs, rhs_dtype or dtype), offsets]
        if rows is not None:
            inputs.append(rows)
        if row_scale:
            inputs.append(scales)
        biases = None
        if bias is not None:
            biases = normal(rng, (E, N), bias, scale=rhs_scale)
            if bias == "f16":
                biases = biases.astype(np.float16).astype(np.float32)
            inputs.append(storage(biases, bias))
        width = N // 2 if epilogue else N
        (out,) = call(module, "grouped_matmul", inputs, [((M, width), out_dtype)])
        want = ref.grouped_matmul(
            lhs, rhs, offsets, rhs_layout=rhs_layout or "nk", rows=rows, gather=gather, k=k,
            row_scale=scales if row_scale else None, bias=biases, epilogue=epilogue,
            **glu_attrs)
        what = (f"grouped_matmul T={t} k={k} E={E} K={K} N={N} {dtype}({rhs_dtype})->{out_dtype} "
                f"rhs_layout={rhs_layout} gather={gather} row_scale={row_scale} "
                f"epilogue={epilogue} bias={bias} {glu_attrs} pipeline={pipeline} offsets={offsets.tolist()}")
        assert_close(cpu.from_storage(out, out_dtype), want,
                     "bf16" if "bf16" in (dtype, rhs_dtype, out_dtype) else "f32", what)


GMM_CASES = [
    ("plain", dict(T=16, k=2, E=8, K=32, N=24)),
    ("plain_odd_sizes", dict(T=11, k=1, E=5, K=13, N=7)),
    ("plain_one_row", dict(T=1, k=1, E=4, K=16, N=8)),
    ("plain_many_experts", dict(T=32, k=2, E=16, K=48, N=20)),
    ("bf16_in_f32_out", dict(T=16, k=2, E=8, K=32, N=24, dtype="bf16")),
    ("bf16_in_bf16_out", dict(T=16, k=2, E=8, K=32, N=24, dtype="bf16", out_dtype="bf16")),
    ("f32_in_bf16_out", dict(T=16, k=2, E=8, K=32, N=24, out_dtype="bf16")),
    ("kn", dict(T=16, k=2, E=8, K=32, N=24, rhs_layout="kn")),
    ("kn_odd_sizes_bf16", dict(T=7, k=3, E=5, K=13, N=9, rhs_layout="kn", dtype="bf16")),
    # kn weights: whole panels, several column tiles, register blocks of 6 rows and
    # a last block of fewer rows, and partial panels.
    ("kn_tiles_plain", dict(T=45, k=1, E=2, K=24, N=300, rhs_layout="kn")),
    ("kn_glu_panels", dict(T=40, k=2, E=3, K=37, N=160, rhs_layout="kn", gather=True,
                           row_scale=True, epilogue="silu", rhs_scale=2.0)),
    ("kn_glu_interleaved_bf16", dict(T=20, k=2, E=4, K=19, N=80, rhs_layout="kn",
                                     dtype="bf16", out_dtype="bf16", epilogue="swiglu_oai",
                                     glu_layout="interleaved", rhs_scale=4.0)),
    ("kn_all_rows_on_one_expert", dict(T=50, k=1, E=6, K=33, N=64, rhs_layout="kn", hot=4,
                                       gather=True, row_scale=True, epilogue="silu")),
    ("nk_all_rows_on_one_expert", dict(T=50, k=1, E=6, K=33, N=64, hot=1)),
    ("kn_one_token", dict(T=1, k=4, E=8, K=64, N=96, rhs_layout="kn", gather=True,
                          row_scale=True, epilogue="gelu_tanh")),
    # panels (P = 16): whole and partial 32-column panels of a plain projection, GLU
    # panels of both layouts, rows in blocks of 6 and a last block of every size from
    # 5 to 1 (T = 5, 10, 15, 20, 19 on one hot expert).
    ("panels_plain", dict(T=45, k=1, E=2, K=24, N=304, rhs_layout="panels")),
    ("panels_glu_bf16", dict(T=40, k=2, E=3, K=37, N=160, rhs_layout="panels", dtype="bf16",
                             gather=True, row_scale=True, epilogue="silu", rhs_scale=2.0)),
    ("panels_interleaved", dict(T=20, k=2, E=4, K=19, N=96, rhs_layout="panels",
                                epilogue="swiglu_oai", glu_layout="interleaved",
                                rhs_scale=4.0)),
    ("panels_all_rows_on_one_expert", dict(T=50, k=1, E=6, K=33, N=64, hot=2,
                                           rhs_layout="panels", gather=True, row_scale=True,
                                           epilogue="silu")),
    ("panels_every_row_block", dict(T=20, k=1, E=3, K=20, N=64, hot=0, dynamic=True,
                                    tokens=[5, 10, 15, 20, 19],
                                    rhs_layout="panels", gather=True, row_scale=True,
                                    epilogue="silu")),
    ("panels_one_token", dict(T=1, k=4, E=8, K=64, N=96, rhs_layout="panels", gather=True,
                              row_scale=True, epilogue="gelu")),
    ("panels_unaligned_glu", dict(T=12, k=2, E=4, K=16, N=48, rhs_layout="panels",
                                  epilogue="silu")),
    # panels_vnni (bf16 k-pairs, P = 16): the same shapes as panels with K even, and
    # f32 activations against bf16 weights (rounded to bf16 for vdpbf16ps).
    ("vnni_plain", dict(T=45, k=1, E=2, K=24, N=304, rhs_layout="panels_vnni",
                        dtype="bf16")),
    ("vnni_glu_f32_lhs", dict(T=40, k=2, E=3, K=38, N=160, rhs_layout="panels_vnni",
                              rhs_dtype="bf16", gather=True, row_scale=True,
                              epilogue="silu", rhs_scale=2.0)),
    ("vnni_interleaved", dict(T=20, k=2, E=4, K=20, N=96, rhs_layout="panels_vnni",
                              dtype="bf16", out_dtype="bf16", epilogue="swiglu_oai",
                              glu_layout="interleaved", rhs_scale=4.0)),
    ("vnni_all_rows_on_one_expert", dict(T=50, k=1, E=6, K=34, N=64, hot=2,
                                         rhs_layout="panels_vnni", dtype="bf16",
                                         gather=True, row_scale=True, epilogue="silu")),
    ("vnni_every_row_block", dict(T=20, k=1, E=3, K=20, N=64, hot=0, dynamic=True,
                                  tokens=[5, 10, 15, 20, 19],
                                  rhs_layout="panels_vnni", dtype="bf16", gather=True,
                                  row_scale=True, epilogue="silu")),
    ("vnni_one_token", dict(T=1, k=4, E=8, K=64, N=96, rhs_layout="panels_vnni",
                            dtype="bf16", gather=True, row_scale=True, epilogue="gelu")),
    ("vnni_unaligned_glu", dict(T=12, k=2, E=4, K=16, N=48, rhs_layout="panels_vnni",
                                dtype="bf16", epilogue="silu")),
    ("vnni_f32_weights", dict(T=9, k=2, E=3, K=18, N=32, rhs_layout="panels_vnni")),
    ("gather", dict(T=16, k=2, E=8, K=32, N=24, gather=True)),
    ("gather_capacity", dict(T=16, k=2, E=8, K=32, N=24, gather=True, capacity=3)),
    ("gather_kn_k3", dict(T=9, k=3, E=4, K=13, N=10, gather=True, rhs_layout="kn")),
    ("gather_one_token", dict(T=1, k=2, E=8, K=16, N=8, gather=True)),
    ("row_scale", dict(T=16, k=2, E=8, K=32, N=24, row_scale=True)),
    ("row_scale_capacity", dict(T=16, k=2, E=8, K=32, N=24, row_scale=True, capacity=3)),
    ("gather_row_scale", dict(T=16, k=2, E=8, K=32, N=24, gather=True, row_scale=True)),
    ("fused_all_bf16", dict(T=16, k=2, E=8, K=32, N=32, dtype="bf16", rhs_layout="kn",
                            gather=True, row_scale=True, epilogue="swiglu_oai",
                            glu_layout="interleaved", rhs_scale=4.0)),
    ("fused_all_f32_capacity", dict(T=16, k=2, E=8, K=24, N=14, gather=True, row_scale=True,
                                    epilogue="silu", capacity=3, rhs_scale=2.0)),
    ("epilogue_custom_swiglu_oai", dict(T=16, k=2, E=8, K=24, N=16, epilogue="swiglu_oai",
                                        alpha=1.25, limit=2.0, rhs_scale=3.0)),
    ("epilogue_bf16_out", dict(T=16, k=2, E=8, K=24, N=16, epilogue="gelu", dtype="bf16",
                               out_dtype="bf16", rhs_scale=2.0)),
    # A bias [E, N] (gpt-oss's gate_up_proj_bias and down_proj_bias) in every kernel:
    # before the GLU (in the weight columns' order) and before the row scale.
    ("bias_nk_plain_odd_sizes", dict(T=11, k=1, E=5, K=13, N=7, bias="f32")),
    ("bias_nk_gpt_oss_gate_up", dict(T=13, k=4, E=8, K=24, N=30, gather=True,
                                     epilogue="swiglu_oai", glu_layout="interleaved",
                                     rhs_scale=4.0, bias="bf16", dtype="bf16")),
    ("bias_nk_down_row_scale", dict(T=13, k=4, E=8, K=15, N=24, gather=True, row_scale=True,
                                    capacity=5, bias="f16")),
    ("bias_nk_one_token", dict(T=1, k=4, E=8, K=16, N=12, gather=True, row_scale=True,
                               epilogue="swiglu_oai", glu_layout="interleaved", bias="f32")),
    ("bias_nk_all_rows_on_one_expert", dict(T=50, k=1, E=6, K=33, N=64, hot=1, bias="f32")),
    ("bias_kn_partial_panels", dict(T=45, k=1, E=2, K=24, N=300, rhs_layout="kn",
                                    bias="f32")),
    ("bias_kn_interleaved", dict(T=20, k=2, E=4, K=19, N=80, rhs_layout="kn", dtype="bf16",
                                 gather=True, row_scale=True, epilogue="swiglu_oai",
                                 glu_layout="interleaved", rhs_scale=4.0, bias="bf16")),
    ("bias_kn_concatenated", dict(T=40, k=2, E=3, K=37, N=160, rhs_layout="kn", gather=True,
                                  row_scale=True, epilogue="silu", rhs_scale=2.0,
                                  bias="f32")),
    ("bias_kn_all_rows_on_one_expert", dict(T=50, k=1, E=6, K=33, N=64, rhs_layout="kn",
                                            hot=4, gather=True, row_scale=True,
                                            epilogue="swiglu_oai",
                                            glu_layout="interleaved", bias="f32")),
    ("bias_panels_interleaved", dict(T=20, k=2, E=4, K=19, N=96, rhs_layout="panels",
                                     epilogue="swiglu_oai", glu_layout="interleaved",
                                     rhs_scale=4.0, bias="f32")),
    ("bias_panels_one_token", dict(T=1, k=4, E=8, K=64, N=96, rhs_layout="panels",
                                   gather=True, row_scale=True, epilogue="gelu",
                                   bias="bf16")),
    ("bias_vnni_interleaved", dict(T=20, k=2, E=4, K=20, N=96, rhs_layout="panels_vnni",
                                   dtype="bf16", out_dtype="bf16", epilogue="swiglu_oai",
                                   glu_layout="interleaved", rhs_scale=4.0, bias="bf16")),
    ("bias_vnni_plain", dict(T=45, k=1, E=2, K=24, N=304, rhs_layout="panels_vnni",
                             dtype="bf16", bias="f32")),
]


@pytest.mark.parametrize("case", GMM_CASES, ids=[c[0] for c in GMM_CASES])
def test_grouped_matmul(compile_ir, rng, matmul_pipeline, case):
    _run_grouped_matmul(compile_ir, rng, matmul_pipeline, **case[1])


BIAS_CASES = [case for case in GMM_CASES if case[0].startswith("bias_")]

#: The cases of the kernel over panels, panels_vnni and kn weights.
PANEL_CASES = [case for case in GMM_CASES
               if case[1].get("rhs_layout") in ("panels", "panels_vnni", "kn")]


@pytest.mark.parametrize("case", PANEL_CASES, ids=[c[0] for c in PANEL_CASES])
def test_grouped_matmul_register_blocks(compile_ir, rng, case):
    """Register blocks of 5 rows and 3 panels (panel-column-block=3): the columns of a
    tile in blocks of 3 panels, then single whole panels, then the partial panel, and
    rows in blocks of 5 and a last one of 4 to 1 rows."""
    _run_grouped_matmul(compile_ir, rng, "register_blocks", **case[1])


@pytest.mark.parametrize("case", BIAS_CASES, ids=[c[0] for c in BIAS_CASES])
def test_grouped_matmul_bias_vector_width_1(compile_ir, rng, case):
    """vector-width=1: the biases go into one-lane accumulators (kn and panel
    weights) as vector<1xf32>, where a scalar used to fail the lowering
    (test/Pipelines/cpu-pipeline-width1-bias.mlir)."""
    _run_grouped_matmul(compile_ir, rng, "width1", **case[1])


@pytest.mark.parametrize("rhs_layout", ["nk", "kn"])
@pytest.mark.parametrize("layout", GLU_LAYOUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_grouped_matmul_glu_epilogue(compile_ir, rng, matmul_pipeline, activation,
                                     layout, rhs_layout):
    """rhs_scale 4 puts many pre-activations beyond swiglu_oai's limit of 7. N = 2 * 21
    is one whole 16-column panel and a partial one at vector width 16."""
    _run_grouped_matmul(compile_ir, rng, matmul_pipeline, T=12, k=2, E=6, K=20, N=42,
                        epilogue=activation, glu_layout=layout, rhs_scale=4.0,
                        rhs_layout=rhs_layout)


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "gather_row_scale"])
def test_grouped_matmul_dynamic_rows(compile_ir, rng, matmul_pipeline, fused):
    _run_grouped_matmul(compile_ir, rng, matmul_pipeline, T=None, k=2, E=6, K=16, N=12,
                        gather=fused, row_scale=fused, dynamic=True, tokens=[1, 4, 19])


# ----------------------------------------------------------------------------------------
# glu
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", GLU_LAYOUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype,out_dtype", [("f32", "f32"), ("bf16", "bf16"), ("bf16", "f32")])
def test_glu(compile_ir, rng, activation, layout, dtype, out_dtype):
    M, I = 19, 13
    h = normal(rng, (M, 2 * I), dtype, scale=4.0)
    module = compile_ir(irgen.glu_ir(M, I, dtype=dtype, out_dtype=out_dtype,
                                     activation=activation, glu_layout=layout))
    (out,) = call(module, "glu", [storage(h, dtype)], [((M, I), out_dtype)])
    assert_close(cpu.from_storage(out, out_dtype), ref.glu(h, activation, layout),
                 "bf16" if "bf16" in (dtype, out_dtype) else "f32",
                 f"glu {activation} {layout} {dtype}->{out_dtype}")


@pytest.mark.parametrize("layout", GLU_LAYOUTS)
@pytest.mark.parametrize("alpha,limit", [(1.0, 1.5), (2.5, 10.0)])
def test_glu_swiglu_oai_attributes(compile_ir, rng, layout, alpha, limit):
    M, I = 8, 16
    h = normal(rng, (M, 2 * I), scale=4.0)
    module = compile_ir(irgen.glu_ir(M, I, activation="swiglu_oai", glu_layout=layout,
                                     alpha=alpha, limit=limit))
    (out,) = call(module, "glu", [h], [((M, I), "f32")])
    assert_close(out, ref.glu(h, "swiglu_oai", layout, alpha, limit), "f32",
                 f"glu swiglu_oai alpha={alpha} limit={limit} {layout}")


def test_glu_dynamic_rows(compile_ir, rng):
    I = 7
    module = compile_ir(irgen.glu_ir(None, I, activation="gelu_tanh"))
    for M in (1, 2, 40):
        h = normal(rng, (M, 2 * I), scale=3.0)
        (out,) = call(module, "glu", [h], [((M, I), "f32")])
        assert_close(out, ref.glu(h, "gelu_tanh"), "f32", f"glu dynamic M={M}")


# ----------------------------------------------------------------------------------------
# combine
# ----------------------------------------------------------------------------------------


def _run_combine(compile_ir, rng, T, H, k, E, dtype, out_dtype, capacity=None, drop=0.1,
                 dynamic=False, tokens=None):
    module = compile_ir(irgen.combine_ir(None if dynamic else T * k, H, None if dynamic else T,
                                         k, dtype=dtype, out_dtype=out_dtype))
    for t in tokens or [T]:
        rows, _ = _routed_rows(rng, t, k, E, capacity, drop)
        ys = normal(rng, (t * k, H), dtype)
        weights = rng.uniform(-1.0, 1.0, size=(t, k)).astype(np.float32)
        (out,) = call(module, "combine", [storage(ys, dtype), rows, weights],
                      [((t, H), out_dtype)])
        assert_close(cpu.from_storage(out, out_dtype), ref.combine(ys, rows, weights),
                     "bf16" if "bf16" in (dtype, out_dtype) else "f32",
                     f"combine T={t} H={H} k={k} {dtype}->{out_dtype} rows={rows.tolist()}")


@pytest.mark.parametrize("T,H,k,E,dtype,out_dtype,capacity", [
    (16, 32, 2, 8, "f32", "f32", None),
    (16, 32, 2, 8, "f32", "f32", 3),
    (16, 32, 2, 8, "f32", "bf16", 3),
    (16, 32, 4, 8, "bf16", "bf16", None),
    (16, 32, 4, 8, "bf16", "f32", 5),
    (13, 13, 3, 5, "f32", "f32", 4),
    (1, 16, 1, 4, "f32", "f32", None),
    (1, 8, 4, 4, "bf16", "bf16", None),
    (32, 48, 8, 16, "f32", "f32", 12),
])
def test_combine(compile_ir, rng, T, H, k, E, dtype, out_dtype, capacity):
    _run_combine(compile_ir, rng, T, H, k, E, dtype, out_dtype, capacity)


def test_combine_dynamic_tokens(compile_ir, rng):
    _run_combine(compile_ir, rng, None, 12, 2, 6, "f32", "f32", capacity=None, dynamic=True,
                 tokens=[1, 3, 26])
