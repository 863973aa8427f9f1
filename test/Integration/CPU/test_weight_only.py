"""Weight-only MXFP4, int4 and int8 experts (``#moe.weight_quant``) on the CPU, against
the fp64 oracle (``moe_mlir.reference_lowbit``).

The weights are fresh random codes and scales as a checkpoint stores them; the compiled
code dequantizes them in f32 and accumulates in f32, so the bound is f32's. Every result
buffer is poisoned (all bytes 0xFF: NaN) before the call.

The kernel pipelines (KERNEL_PIPELINES) run the vector kernel's decodings: on this
AVX-512 host the default pipeline looks the 4-bit codes up in a table (permutes),
``width8`` and ``avx2`` decode them with integer ops; ``reference`` is the reference
lowering. ``test_avx2_build`` compiles for an AVX2 CPU (x86-64-v3) end to end.
"""

import math
import pathlib

import ml_dtypes
import numpy as np
import pytest

from harness import assert_close, random_offsets
from moe_mlir import cpu
from moe_mlir import reference as ref
from moe_mlir import reference_lowbit as lb

#: The pipelines whose vector kernels decode the weight-only formats (conftest.PIPELINES).
KERNEL_PIPELINES = ["default", "width8", "avx2"]


def _dims(shape):
    return "x".join(str(d) for d in shape)


def _ir(fmt, M, K, N, E, group, zero_points, activation_type="f32"):
    """One grouped matmul in ``fmt``; M dynamic when None."""
    packed = fmt in ("mxfp4", "int4")
    w_shape = (E, N, K // 2 if packed else K)
    s_shape = (E, N, -(-K // group))
    s_type = "f8E8M0FNU" if fmt == "mxfp4" else "f32"
    x_type = f"tensor<?x{K}x{activation_type}>"
    w_type = f"tensor<{_dims(w_shape)}xi8>"
    s_ttype = f"tensor<{_dims(s_shape)}x{s_type}>"
    z_arg = f", %z: tensor<{_dims(s_shape)}xi8>" if zero_points else ""
    z_op = f"rhs_zero_points(%z : tensor<{_dims(s_shape)}xi8>) " if zero_points else ""
    return f"""
func.func @gmm(%x: {x_type}, %w: {w_type}, %o: tensor<{E + 1}xi32>, %s: {s_ttype}{z_arg}) -> tensor<?x{N}xf32> {{
  %c0 = arith.constant 0 : index
  %m = tensor.dim %x, %c0 : {x_type}
  %init = tensor.empty(%m) : tensor<?x{N}xf32>
  %h = moe.grouped_matmul ins(%x, %w, %o : {x_type}, {w_type}, tensor<{E + 1}xi32>)
      rhs_scales(%s : {s_ttype}) {z_op}outs(%init : tensor<?x{N}xf32>)
      {{weight_quant = #moe.weight_quant<format = {fmt}, block = [1, {group}], activation = none>}} -> tensor<?x{N}xf32>
  return %h : tensor<?x{N}xf32>
}}
"""


def _random_weights(rng, fmt, K, N, E, group, zero_points):
    """(inputs after the weights, fp64 weights [E, N, K]) for fresh random codes."""
    groups = -(-K // group)
    if fmt == "mxfp4":
        blocks = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        scales = rng.integers(120, 130, size=(E, N, groups)).astype(np.uint8)
        return [blocks.view(np.int8), scales], lb.dequantize_mxfp4(blocks, scales)
    if fmt == "int4":
        packed = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        scales = (rng.random((E, N, groups)) * 0.1 + 0.01).astype(np.float32)
        scales[0, 0, 0] = 0.0  # a zero scale: the whole group is zero
        zeros = rng.integers(0, 16, size=(E, N, groups)).astype(np.int8) if zero_points else None
        inputs = [packed.view(np.int8), scales] + ([zeros] if zero_points else [])
        return inputs, lb.dequantize_int4(packed, scales, zeros, group)
    q = rng.integers(-127, 128, size=(E, N, K)).astype(np.int8)
    scales = (rng.random((E, N, 1)) * 0.01 + 1e-3).astype(np.float32)
    return [q, scales], lb.dequantize_int8(q, scales)


def _offsets(rng, layout, E, M):
    if layout == "one_expert":  # all rows on one expert, the others empty
        e = int(rng.integers(E))
        return np.array([0] * (e + 1) + [M] * (E - e), dtype=np.int32)
    return random_offsets(rng, E, M)  # some experts get no rows


CASES = [
    # (id, format, M, K, N, E, group, zero points, offsets)
    ("mxfp4", "mxfp4", 37, 64, 24, 5, 32, False, "random"),
    ("mxfp4_one_token", "mxfp4", 1, 96, 16, 4, 32, False, "random"),
    ("mxfp4_one_expert", "mxfp4", 19, 32, 40, 4, 32, False, "one_expert"),
    ("int4_g32_asym_k_not_group_multiple", "int4", 23, 80, 24, 3, 32, True, "random"),
    ("int4_g64_symmetric", "int4", 17, 128, 20, 4, 64, False, "random"),
    ("int4_g128_one_token", "int4", 1, 256, 16, 3, 128, True, "random"),
    ("int4_g128_k_one_group", "int4", 9, 128, 8, 2, 128, True, "one_expert"),
    ("int8", "int8", 29, 40, 24, 4, 40, False, "random"),
    ("int8_one_expert", "int8", 12, 72, 16, 3, 4096, False, "one_expert"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("pipeline", KERNEL_PIPELINES + ["reference"])
def test_grouped_matmul_weight_only(compile_ir, rng, pipeline, case):
    _, fmt, M, K, N, E, group, zero_points, layout = case
    module = compile_ir(_ir(fmt, M, K, N, E, group, zero_points), pipeline)
    x = rng.standard_normal((M, K)).astype(np.float32)
    weights, W = _random_weights(rng, fmt, K, N, E, group, zero_points)
    offsets = _offsets(rng, layout, E, M)
    inputs = [x, weights[0], offsets] + weights[1:]
    (out,) = module.call("gmm", inputs, [cpu.TensorSpec((M, N), "f32")], poison=True)
    want = ref.grouped_matmul(x.astype(np.float64), W, offsets)
    assert_close(out, want, "f32", f"{fmt} grouped_matmul {case[0]} {pipeline}")


#: (id, format, K, N, E, group, zero points): N and K not multiples of the vector width
#: where the format allows (mxfp4's K is whole blocks of 32).
TOKEN_CASES = [
    ("mxfp4", "mxfp4", 96, 24, 5, 32, False),
    ("int4_g32_asym", "int4", 80, 20, 5, 32, True),
    ("int4_g128_symmetric_partial_group", "int4", 200, 12, 4, 128, False),
    ("int8", "int8", 40, 24, 5, 40, False),
]


@pytest.mark.parametrize("T", [1, 7, 300])
@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
@pytest.mark.parametrize("pipeline", KERNEL_PIPELINES)
def test_weight_only_tokens(compile_ir, rng, pipeline, case, T):
    """T = 1, 7 and 300 rows, some experts with none; at T = 300 also every row on one
    expert."""
    _, fmt, K, N, E, group, zero_points = case
    module = compile_ir(_ir(fmt, None, K, N, E, group, zero_points), pipeline)
    weights, W = _random_weights(rng, fmt, K, N, E, group, zero_points)
    for layout in ("random", "one_expert") if T == 300 else ("random",):
        x = rng.standard_normal((T, K)).astype(np.float32)
        offsets = _offsets(rng, layout, E, T)
        (out,) = module.call("gmm", [x, weights[0], offsets] + weights[1:],
                             [cpu.TensorSpec((T, N), "f32")], poison=True)
        want = ref.grouped_matmul(x.astype(np.float64), W, offsets)
        assert_close(out, want, "f32", f"{fmt} T={T} {layout} {pipeline}")


@pytest.mark.parametrize("pipeline", KERNEL_PIPELINES)
def test_mxfp4_bf16_activations(compile_ir, rng, pipeline):
    """bf16 activations (gpt-oss's) with MXFP4 weights."""
    M, K, N, E = 13, 64, 32, 3
    module = compile_ir(_ir("mxfp4", M, K, N, E, 32, False, "bf16"), pipeline)
    x = rng.standard_normal((M, K)).astype(ml_dtypes.bfloat16)
    weights, W = _random_weights(rng, "mxfp4", K, N, E, 32, False)
    offsets = random_offsets(rng, E, M)
    (out,) = module.call("gmm", [x, weights[0], offsets, weights[1]],
                         [cpu.TensorSpec((M, N), "f32")], poison=True)
    want = ref.grouped_matmul(x.astype(np.float64), W, offsets)
    assert_close(out, want, "f32", "mxfp4 bf16 grouped_matmul")


@pytest.mark.parametrize("pipeline", KERNEL_PIPELINES)
def test_mxfp4_extreme_scales(compile_ir, rng, pipeline):
    """e8m0 scales 0 (2^-127) and 254 (2^127): codes of magnitude <= 1 keep every weight
    in the f32 range, activations of 2^-120 keep the products there."""
    M, K, N, E = 5, 64, 8, 2
    module = compile_ir(_ir("mxfp4", M, K, N, E, 32, False), pipeline)
    small_codes = np.array([0, 1, 2, 8, 9, 10])  # 0, 0.5, 1 and their negatives
    codes = rng.choice(small_codes, size=(E, N, K))
    codes[0, 0, 32] = 2  # 1.0 in the block of scale 254: the weight 2^127
    blocks = lb.pack_nibbles(codes)
    scales = rng.choice(np.array([0, 254], dtype=np.uint8), size=(E, N, K // 32))
    scales[0, 0] = [0, 254]
    W = lb.dequantize_mxfp4(blocks, scales)
    assert W.max() == math.ldexp(1.0, 127)
    x = (rng.standard_normal((M, K)) * 2.0**-120).astype(np.float32)
    offsets = np.array([0, 2, 5], dtype=np.int32)
    (out,) = module.call("gmm", [x, blocks.view(np.int8), offsets, scales],
                         [cpu.TensorSpec((M, N), "f32")], poison=True)
    want = ref.grouped_matmul(x.astype(np.float64), W, offsets)
    assert np.isfinite(out).all()
    assert_close(out, want, "f32", "mxfp4 extreme scales")


@pytest.mark.parametrize("pipeline", KERNEL_PIPELINES)
def test_e2m1_decode_every_code(compile_ir, pipeline):
    """All 16 e2m1 codes in both nibbles decode to their exact values: A = e_k picks
    weight k of each row, scale byte 127 (2^0)."""
    K, N = 32, 16
    module = compile_ir(_ir("mxfp4", 1, K, N, 1, 32, False), pipeline)
    codes = np.zeros((1, N, K), dtype=np.int64)
    codes[0, :, 0] = np.arange(16)  # even k: low nibble
    codes[0, :, 1] = np.arange(16)[::-1]  # odd k: high nibble
    blocks = lb.pack_nibbles(codes)
    scales = np.full((1, N, 1), 127, dtype=np.uint8)
    offsets = np.array([0, 1], dtype=np.int32)
    for k, want_codes in ((0, np.arange(16)), (1, np.arange(16)[::-1])):
        x = np.zeros((1, K), dtype=np.float32)
        x[0, k] = 1.0
        (out,) = module.call("gmm", [x, blocks.view(np.int8), offsets, scales],
                             [cpu.TensorSpec((1, N), "f32")], poison=True)
        assert np.array_equal(out[0], lb.E2M1_VALUES[want_codes].astype(np.float32)), (k, out)


@pytest.mark.parametrize("pipeline", KERNEL_PIPELINES)
def test_int4_decode_every_code(compile_ir, pipeline):
    """All 16 int4 codes in both nibbles, against zero points 0 and 15 and a scale of 0:
    A = e_k picks weight k of each row, whose value (q - z) * s is exact in f32."""
    K, N = 64, 16
    module = compile_ir(_ir("int4", 1, K, N, 1, 32, True), pipeline)
    codes = np.zeros((1, N, K), dtype=np.int64)
    codes[0, :, 0] = np.arange(16)  # even k: low nibble
    codes[0, :, 33] = np.arange(16)[::-1]  # odd k of the second group: high nibble
    packed = lb.pack_nibbles(codes)
    scales = np.full((1, N, 2), 0.25, dtype=np.float32)
    scales[0, 3, 0] = 0.0  # a zero scale: the row's weights of the group are 0
    zeros = np.zeros((1, N, 2), dtype=np.int8)
    zeros[0, :, 1] = 15
    offsets = np.array([0, 1], dtype=np.int32)
    W = lb.dequantize_int4(packed, scales, zeros, 32)
    for k in (0, 33):
        x = np.zeros((1, K), dtype=np.float32)
        x[0, k] = 1.0
        (out,) = module.call("gmm", [x, packed.view(np.int8), offsets, scales, zeros],
                             [cpu.TensorSpec((1, N), "f32")], poison=True)
        assert np.array_equal(out[0], W[0, :, k].astype(np.float32)), (k, out)


def _avx2_host() -> bool:
    flags = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
    return all(f" {flag}" in flags for flag in ("avx2", "fma", "bmi2", "f16c", "movbe"))


@pytest.mark.skipif(not _avx2_host(), reason="the host cannot run x86-64-v3 code")
@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_avx2_build(rng, tmp_path, monkeypatch, case):
    """Compiled end to end for an AVX2 CPU (x86-64-v3: the kernel's integer-op decoding,
    clang -march=x86-64-v3), at T = 7 and 300."""
    _, fmt, K, N, E, group, zero_points = case
    monkeypatch.setenv("MOE_MLIR_CPU", "x86-64-v3")
    ir = _ir(fmt, None, K, N, E, group, zero_points)
    kernel = cpu._run([cpu.moe_opt(), "--convert-moe-to-vector=target-cpu=x86-64-v3"],
                      stdin=ir)
    assert f'moe.weight_decode = "{fmt}_' in kernel
    assert "table_permute" not in kernel
    module = cpu.compile_module(ir, tmp_path)
    weights, W = _random_weights(rng, fmt, K, N, E, group, zero_points)
    for T in (7, 300):
        x = rng.standard_normal((T, K)).astype(np.float32)
        offsets = random_offsets(rng, E, T)
        (out,) = module.call("gmm", [x, weights[0], offsets] + weights[1:],
                             [cpu.TensorSpec((T, N), "f32")], poison=True)
        want = ref.grouped_matmul(x.astype(np.float64), W, offsets)
        assert_close(out, want, "f32", f"{fmt} x86-64-v3 T={T}")
