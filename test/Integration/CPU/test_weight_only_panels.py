"""Quantized expert weights (MXFP4, int4, int8, FP8) in the panels layout on the CPU,
against the fp64 oracle.

The weights are fresh random codes and scales in the nk layout as a checkpoint stores
them, packed by ``moe_mlir.pack.quantized_to_panels`` (docs/quantization.md, "Panels").
The vector kernel of the layout (``LowBitPanelKernel``) decodes each weight vector once
per stored row and block of routed rows and multiplies the scales into partial sums per
group; the pipelines select its decodings (``moe.weight_decode``):

- ``default`` on this AVX-512 host: 4-bit codes through a bf16 table into ``vdpbf16ps``
  with bf16 activations (where the host has AVX512_BF16), through an f32 table into FMAs
  with f32 activations;
- ``no_bf16_dot`` (skylake-avx512): the f32 tables for every activation dtype;
- ``width8`` and ``avx2`` (x86-64-v3): integer ops;
- ``reference``: the reference lowering unpacks the panels.

Every result buffer is poisoned (all bytes 0xFF: NaN) before the call. Results match
the oracle to f32 rounding: the bf16 activations and the decoded weights are exact in the
products, and only the order of the f32 sums differs.
"""

import math

import ml_dtypes
import numpy as np
import pytest

from harness import assert_close, random_offsets
from moe_mlir import cpu, pack
from moe_mlir import reference as ref
from moe_mlir import reference_lowbit as lb
from moe_mlir.reference_quant import quantize_weights, weight_scale_shape

PIPELINES = ["default", "no_bf16_dot", "width8", "avx2", "reference"]


def _dims(shape):
    return "x".join(str(d) for d in shape)


def _ir(fmt, K, N, E, group, zero_points, P, x_type="f32", block_n=None):
    """One grouped matmul over panels of width P; M dynamic."""
    if fmt == "fp8_e4m3":
        w_shape = (E, N // P, K, P)
        s_shape = weight_scale_shape((E, N, K), (block_n, group))
        w_elem, s_elem = "f8E4M3FN", "f32"
        quant = f"format = fp8_e4m3, block = [{block_n}, {group}], activation = none"
    else:
        per_byte = 2 if fmt in ("mxfp4", "int4") else 1
        w_shape = (E, N // P, K // per_byte, P)
        s_shape = (E, N // P, -(-K // group), P)
        w_elem = "i8"
        s_elem = "f8E8M0FNU" if fmt == "mxfp4" else "f32"
        quant = f"format = {fmt}, block = [1, {group}], activation = none"
    x_t = f"tensor<?x{K}x{x_type}>"
    w_t = f"tensor<{_dims(w_shape)}x{w_elem}>"
    s_t = f"tensor<{_dims(s_shape)}x{s_elem}>"
    z_t = f"tensor<{_dims(s_shape)}xi8>"
    z_arg = f", %z: {z_t}" if zero_points else ""
    z_op = f"rhs_zero_points(%z : {z_t}) " if zero_points else ""
    return f"""
func.func @gmm(%x: {x_t}, %w: {w_t}, %o: tensor<{E + 1}xi32>, %s: {s_t}{z_arg}) -> tensor<?x{N}xf32> {{
  %c0 = arith.constant 0 : index
  %m = tensor.dim %x, %c0 : {x_t}
  %init = tensor.empty(%m) : tensor<?x{N}xf32>
  %h = moe.grouped_matmul ins(%x, %w, %o : {x_t}, {w_t}, tensor<{E + 1}xi32>)
      rhs_scales(%s : {s_t}) {z_op}outs(%init : tensor<?x{N}xf32>)
      {{rhs_layout = #moe.rhs_layout<panels>, weight_quant = #moe.weight_quant<{quant}>}} -> tensor<?x{N}xf32>
  return %h : tensor<?x{N}xf32>
}}
"""


def _weights(rng, fmt, K, N, E, group, zero_points, P, block_n=None, scales=None):
    """(kernel inputs after the offsets, in panels; fp64 weights [E, N, K])."""
    groups = -(-K // group)
    zeros = None
    if fmt == "fp8_e4m3":
        w = rng.standard_normal((E, N, K)) / math.sqrt(K)
        q, s = quantize_weights(w, (block_n, group))
        W = q.astype(np.float64) * np.repeat(np.repeat(s, block_n, 1)[:, :N], group, 2)[:, :, :K]
        wp, sp, _ = pack.quantized_to_panels(fmt, q, s, panel_width=P)
        return [wp, sp], W
    if fmt == "mxfp4":
        codes = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        s = scales if scales is not None else rng.integers(120, 130, size=(E, N, groups)).astype(np.uint8)
        W = lb.dequantize_mxfp4(codes, s)
        stored = codes.view(np.int8)
    elif fmt == "int4":
        codes = lb.pack_nibbles(rng.integers(0, 16, size=(E, N, K)))
        s = (rng.random((E, N, groups)) * 0.1 + 0.01).astype(np.float32)
        s[0, 0, 0] = 0.0  # a zero scale: the whole group is zero
        if zero_points:
            zeros = rng.integers(0, 16, size=(E, N, groups)).astype(np.int8)
        W = lb.dequantize_int4(codes, s, zeros, group)
        stored = codes.view(np.int8)
    else:
        stored = rng.integers(-127, 128, size=(E, N, K)).astype(np.int8)
        s = (rng.random((E, N, 1)) * 0.01 + 1e-3).astype(np.float32)
        W = lb.dequantize_int8(stored, s)
    wp, sp, zp = pack.quantized_to_panels(fmt, stored, s, zeros, panel_width=P)
    return [wp, sp] + ([zp] if zeros is not None else []), W


def _offsets(rng, layout, E, M):
    if layout == "one_expert":  # all rows on one expert, the others empty
        e = int(rng.integers(E))
        return np.array([0] * (e + 1) + [M] * (E - e), dtype=np.int32)
    return random_offsets(rng, E, M)  # some experts get no rows


#: (id, format, K, N, E, group (K block for FP8), zero points, panel width, FP8 bn).
#: N = 48 and 80 are not multiples of the kernel's 64 columns per step; K = 200 is not a
#: multiple of the int4 group, K = 128 is one group. int4 with zero points in 64-wide
#: panels folds them out of the decoding (the groups' activation sums).
CASES = [
    ("mxfp4_p16_n48", "mxfp4", 96, 48, 5, 32, False, 16, None),
    ("mxfp4_p64", "mxfp4", 64, 128, 4, 32, False, 64, None),
    ("mxfp4_p64_three_panels", "mxfp4", 160, 192, 3, 32, False, 64, None),
    ("int4_g32_sym_p64", "int4", 96, 192, 3, 32, False, 64, None),
    ("int4_g32_asym_p16_n80", "int4", 80, 80, 5, 32, True, 16, None),
    ("int4_g128_sym_partial_group", "int4", 200, 96, 4, 128, False, 32, None),
    ("int4_g128_asym_k_one_group", "int4", 128, 64, 3, 128, True, 64, None),
    ("int4_g32_asym_p64_partial_group", "int4", 200, 128, 3, 32, True, 64, None),
    ("int8_p32", "int8", 40, 96, 5, 40, False, 32, None),
    ("fp8_block_16", "fp8_e4m3", 40, 48, 5, 16, False, 16, 16),
    ("fp8_block_128", "fp8_e4m3", 256, 128, 3, 128, False, 64, 128),
]


@pytest.mark.parametrize("x_type", ["f32", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_panels_tokens(compile_ir, rng, pipeline, case, x_type):
    """T = 1, 7 and 300 rows, some experts with none; at T = 300 also every row on one
    expert."""
    _, fmt, K, N, E, group, zero_points, P, block_n = case
    module = compile_ir(_ir(fmt, K, N, E, group, zero_points, P, x_type, block_n), pipeline)
    inputs, W = _weights(rng, fmt, K, N, E, group, zero_points, P, block_n)
    for T in (1, 7, 300):
        for layout in ("random", "one_expert") if T == 300 else ("random",):
            x = rng.standard_normal((T, K)).astype(np.float32)
            if x_type == "bf16":
                x = x.astype(ml_dtypes.bfloat16)
            offsets = _offsets(rng, layout, E, T)
            (out,) = module.call("gmm", [x, inputs[0], offsets] + inputs[1:],
                                 [cpu.TensorSpec((T, N), "f32")], poison=True)
            want = ref.grouped_matmul(x.astype(np.float64), W, offsets)
            assert_close(out, want, "f32", f"{case[0]} {x_type} T={T} {layout} {pipeline}")


@pytest.mark.parametrize("P", [16, 64])
@pytest.mark.parametrize("x_type", ["f32", "bf16"])
@pytest.mark.parametrize("pipeline", PIPELINES[:-1])
def test_panels_mxfp4_extreme_scales(compile_ir, rng, pipeline, x_type, P):
    """e8m0 scales 0 (2^-127) and 254 (2^127) in panels: codes of magnitude <= 1 keep
    every weight in the f32 range, activations of 2^-120 keep the products there. bf16
    activations are 2^-100 in magnitude: vdpbf16ps flushes subnormal inputs, products
    and sums (below 2^-126) to zero, which a partial sum times 2^127 would show; bf16
    sums of such activations are multiples of 2^-108 and never get there."""
    M, K, N, E = 5, 64, P, 2
    module = compile_ir(_ir("mxfp4", K, N, E, 32, False, P, x_type), pipeline)
    codes = rng.choice(np.array([0, 1, 2, 8, 9, 10]), size=(E, N, K))
    codes[0, 0, 32] = 2  # 1.0 in the block of scale 254: the weight 2^127
    blocks = lb.pack_nibbles(codes)
    scales = rng.choice(np.array([0, 254], dtype=np.uint8), size=(E, N, K // 32))
    scales[0, 0] = [0, 254]
    W = lb.dequantize_mxfp4(blocks, scales)
    assert W.max() == math.ldexp(1.0, 127)
    x = (rng.standard_normal((M, K)) * 2.0**-120).astype(np.float32)
    if x_type == "bf16":
        sign = rng.choice(np.array([-1.0, 1.0]), size=(M, K))
        x = (sign * (1 + rng.random((M, K))) * 2.0**-100).astype(ml_dtypes.bfloat16)
    offsets = np.array([0, 2, 5], dtype=np.int32)
    wp, sp, _ = pack.quantized_to_panels("mxfp4", blocks.view(np.int8), scales, panel_width=P)
    (out,) = module.call("gmm", [x, wp, offsets, sp], [cpu.TensorSpec((M, N), "f32")],
                         poison=True)
    want = ref.grouped_matmul(x.astype(np.float64), W, offsets)
    assert np.isfinite(out).all()
    assert_close(out, want, "f32", f"mxfp4 panels extreme scales {x_type} {pipeline}")


@pytest.mark.parametrize("P", [16, 64])
@pytest.mark.parametrize("x_type", ["f32", "bf16"])
@pytest.mark.parametrize("fmt", ["mxfp4", "int4", "int4_symmetric"])
@pytest.mark.parametrize("pipeline", PIPELINES[:-1])
def test_panels_decode_every_code(compile_ir, pipeline, fmt, x_type, P):
    """All 16 codes in both nibbles decode to their exact values (int4 against zero
    points 0 and 15, or symmetric): A = e_k picks weight k of each column. In 64-wide
    panels (the word order) the codes of each column block of 16 sit in their own
    nibble of the row's words."""
    K, N = 64, P
    zero_points = fmt == "int4"
    fmt = fmt.removesuffix("_symmetric")
    module = compile_ir(_ir(fmt, K, N, 1, 32, zero_points, P, x_type), pipeline)
    codes = np.zeros((1, N, K), dtype=np.int64)
    codes[0, :, 0] = np.arange(N) % 16  # even k: low nibble
    codes[0, :, 33] = (np.arange(N) * 7 + 3) % 16  # odd k of the second group: high nibble
    packed = lb.pack_nibbles(codes)
    if fmt == "mxfp4":
        scales, zeros = np.full((1, N, 2), 127, dtype=np.uint8), None
        W = lb.dequantize_mxfp4(packed, scales)
    else:
        scales = np.full((1, N, 2), 0.25, dtype=np.float32)
        zeros = None
        if zero_points:
            zeros = np.zeros((1, N, 2), dtype=np.int8)
            zeros[0, :, 1] = 15
        W = lb.dequantize_int4(packed, scales, zeros, 32)
    wp, sp, zp = pack.quantized_to_panels(fmt, packed.view(np.int8), scales, zeros,
                                          panel_width=P)
    offsets = np.array([0, 1], dtype=np.int32)
    for k in (0, 33):
        x = np.zeros((1, K), dtype=np.float32)
        x[0, k] = 1.0
        if x_type == "bf16":
            x = x.astype(ml_dtypes.bfloat16)
        inputs = [x, wp, offsets, sp] + ([zp] if zp is not None else [])
        (out,) = module.call("gmm", inputs, [cpu.TensorSpec((1, N), "f32")], poison=True)
        assert np.array_equal(out[0], W[0, :, k].astype(np.float32)), (k, out)


def test_panels_decode_attributes():
    """The kernel's decodings as the scf.forall records them, per target and
    activation dtype."""
    for P, target, want in ((64, "sapphirerapids", "mxfp4_panel_bf16_word_table_dot"),
                            (32, "sapphirerapids", "mxfp4_panel_bf16_table_dot"),
                            (64, "skylake-avx512", "mxfp4_panel_table_permute"),
                            (64, "x86-64-v3", "mxfp4_panel_integer_ops")):
        ir = _ir("mxfp4", 64, 64, 2, 32, False, P, "bf16")
        out = cpu._run([cpu.moe_opt(), f"--convert-moe-to-vector=target-cpu={target}"],
                       stdin=ir)
        assert f'moe.weight_decode = "{want}"' in out, (target, out[-2000:])
    for zero_points, want in ((True, "int4_panel_bf16_word_table_dot_zero_sums"),
                              (False, "int4_panel_bf16_word_table_dot")):
        ir = _ir("int4", 64, 64, 2, 32, zero_points, 64, "bf16")
        out = cpu._run([cpu.moe_opt(), "--convert-moe-to-vector=target-cpu=sapphirerapids"],
                       stdin=ir)
        assert f'moe.weight_decode = "{want}"' in out, (zero_points, out[-2000:])
