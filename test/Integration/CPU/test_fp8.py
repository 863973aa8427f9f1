"""FP8 expert weights (``#moe.weight_quant``) on the CPU, against the fp64 oracle.

The oracle (``moe_mlir.reference_quant``) applies the same activation quantization, in
float32 arithmetic, so a grouped matmul with f32 inputs and outputs matches it to f32
rounding; a whole layer quantizes the GLU output, which the compiled code holds in f32
and the oracle in fp64, so the bound there is the contract's 2e-2. Every result buffer
is poisoned (all bytes 0xFF: NaN) before the call.
"""

import math

import ml_dtypes
import numpy as np
import pytest

from harness import assert_close, random_offsets, relative_error
from moe_mlir import cpu, dtypes, irgen, pack
from moe_mlir import reference as ref
from moe_mlir.reference_quant import quantize_weights, weight_scale_shape

FP8_TOL = 2e-2


def _quant_attr(block, activation):
    return (f"#moe.weight_quant<format = fp8_e4m3, block = [{block[0]}, {block[1]}], "
            f"activation = {activation}>")


def _grouped_matmul_ir(K, N, E, block, activation):
    S = "x".join(str(d) for d in weight_scale_shape((E, N, K), block))
    static = activation == "static"
    return f"""
func.func @gmm(%x: tensor<?x{K}xf32>, %w: tensor<{E}x{N}x{K}xf8E4M3FN>, %o: tensor<{E + 1}xi32>,
               %s: tensor<{S}xf32>{", %si: tensor<1xf32>" if static else ""}) -> tensor<?x{N}xf32> {{
  %c0 = arith.constant 0 : index
  %m = tensor.dim %x, %c0 : tensor<?x{K}xf32>
  %init = tensor.empty(%m) : tensor<?x{N}xf32>
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<?x{K}xf32>, tensor<{E}x{N}x{K}xf8E4M3FN>, tensor<{E + 1}xi32>)
      rhs_scales(%s : tensor<{S}xf32>) {"lhs_scales(%si : tensor<1xf32>) " if static else ""}outs(%init : tensor<?x{N}xf32>)
      {{weight_quant = {_quant_attr(block, activation)}}} -> tensor<?x{N}xf32>
  return %h : tensor<?x{N}xf32>
}}
"""


def _layer_ir(H, I, E, k, block, activation="dynamic"):
    s13 = "x".join(str(d) for d in weight_scale_shape((E, 2 * I, H), block))
    s2 = "x".join(str(d) for d in weight_scale_shape((E, H, I), block))
    static = activation == "static"
    inputs = (f"input_scales(%i13, %i2 : tensor<1xf32>, tensor<1xf32>) " if static else "")
    return f"""
func.func @layer(%x: tensor<?x{H}xbf16>, %router: tensor<{E}x{H}xbf16>,
                 %w13: tensor<{E}x{2 * I}x{H}xf8E4M3FN>, %w2: tensor<{E}x{H}x{I}xf8E4M3FN>,
                 %s13: tensor<{s13}xf32>, %s2: tensor<{s2}xf32>{", %i13: tensor<1xf32>, %i2: tensor<1xf32>" if static else ""}) -> tensor<?x{H}xbf16> {{
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x{H}xbf16>
  %init = tensor.empty(%t) : tensor<?x{H}xbf16>
  %y = moe.layer ins(%x, %router, %w13, %w2 : tensor<?x{H}xbf16>, tensor<{E}x{H}xbf16>,
      tensor<{E}x{2 * I}x{H}xf8E4M3FN>, tensor<{E}x{H}x{I}xf8E4M3FN>)
      scales(%s13, %s2 : tensor<{s13}xf32>, tensor<{s2}xf32>) {inputs}
      outs(%init : tensor<?x{H}xbf16>)
      {{k = {k} : i64, renormalize, weight_quant = {_quant_attr(block, activation)}}} -> tensor<?x{H}xbf16>
  return %y : tensor<?x{H}xbf16>
}}
"""


def _fp8_weights(rng, shape, block, scale=1.0):
    """Random weights quantized as a checkpoint holds them, scales times ``scale``."""
    w = rng.standard_normal(shape) / math.sqrt(shape[2])
    q, s = quantize_weights(w, block)
    return q, (s * np.float32(scale)).astype(np.float32)


# ----------------------------------------------------------------------------------------
# grouped_matmul
# ----------------------------------------------------------------------------------------

GMM_CASES = [
    # block [16, 16] with N = 40 and K = 40: a ragged last block on both sides.
    ("block_ragged", dict(M=37, K=40, N=40, E=5, block=(16, 16))),
    ("block_128", dict(M=20, K=256, N=160, E=3, block=(128, 128))),
    ("per_channel", dict(M=17, K=44, N=24, E=4, block=(1, 4096))),
    ("per_tensor", dict(M=9, K=48, N=30, E=4, block=(4096, 4096))),
    ("one_row", dict(M=1, K=64, N=32, E=4, block=(16, 32))),
    ("static", dict(M=21, K=40, N=24, E=3, block=(8, 16), activation="static")),
    # bk = 12 splits the kernel's vectors: the reference lowering computes it.
    ("block_k_12", dict(M=15, K=40, N=24, E=3, block=(8, 12))),
]


@pytest.mark.parametrize("case", GMM_CASES, ids=[c[0] for c in GMM_CASES])
@pytest.mark.parametrize("pipeline", ["default", "reference", "width8"])
def test_grouped_matmul_fp8(compile_ir, rng, pipeline, case):
    c = dict(case[1])
    M, K, N, E, block = c["M"], c["K"], c["N"], c["E"], c["block"]
    activation = c.get("activation", "dynamic")
    module = compile_ir(_grouped_matmul_ir(K, N, E, block, activation), pipeline)
    x = (rng.standard_normal((M, K)) * 3).astype(np.float32)
    x[M // 2] = 0.0  # an all-zero row: its groups get scale 1
    w, s = _fp8_weights(rng, (E, N, K), block)
    offsets = random_offsets(rng, E, M)
    inputs = [x, w, offsets, s]
    static = None
    if activation == "static":
        static = np.array([np.abs(x).max() / 300.0], dtype=np.float32)
        inputs.append(static)
    (out,) = module.call("gmm", inputs, [cpu.TensorSpec((M, N), "f32")], poison=True)
    want = ref.grouped_matmul(x, w, offsets, weight_quant=dict(block=block, activation=activation),
                             rhs_scales=s, lhs_scales=static)
    # The same quantization in the same f32 arithmetic: only the sums' rounding differs.
    assert_close(out, want, "f32", f"fp8 grouped_matmul {case[0]} {pipeline}")


def test_e4m3_decode_every_byte(compile_ir):
    """All 256 e4m3 bytes (NaNs included) decode to their exact values: one expert whose
    one weight row holds the byte and zeros, A = e_0, scale 1, no activation quant."""
    K = 16
    ir = f"""
func.func @decode(%x: tensor<1x{K}xf32>, %w: tensor<1x1x{K}xf8E4M3FN>, %o: tensor<2xi32>,
                  %s: tensor<1x1x1xf32>) -> tensor<1x1xf32> {{
  %init = tensor.empty() : tensor<1x1xf32>
  %h = moe.grouped_matmul ins(%x, %w, %o : tensor<1x{K}xf32>, tensor<1x1x{K}xf8E4M3FN>, tensor<2xi32>)
      rhs_scales(%s : tensor<1x1x1xf32>) outs(%init : tensor<1x1xf32>)
      {{weight_quant = {_quant_attr((1, K), "none")}}} -> tensor<1x1xf32>
  return %h : tensor<1x1xf32>
}}
"""
    module = compile_ir(ir, "default")
    codes = np.arange(256, dtype=np.uint8)
    values = codes.view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    one = np.float32(1.0)
    x = np.zeros((1, K), np.float32)
    x[0, 0] = one
    for code in range(256):
        w = np.zeros((1, 1, K), np.uint8)
        w[0, 0, 0] = codes[code]
        (out,) = module.call("decode", [x, w, np.array([0, 1], np.int32),
                                        np.ones((1, 1, 1), np.float32)],
                             [cpu.TensorSpec((1, 1), "f32")], poison=True)
        got = float(out[0, 0])
        if math.isnan(values[code]):
            assert math.isnan(got), f"byte {code:#04x}: got {got}, want NaN"
        else:
            assert got == values[code], f"byte {code:#04x}: got {got}, want {values[code]}"


# ----------------------------------------------------------------------------------------
# whole layer
# ----------------------------------------------------------------------------------------

LAYER_CASES = [
    ("one_token", dict(T=1, H=64, I=32, E=4, k=2, block=(16, 16))),
    ("ragged_blocks", dict(T=13, H=40, I=24, E=6, k=2, block=(16, 16))),
    ("block_128", dict(T=9, H=256, I=128, E=4, k=2, block=(128, 128))),
    ("per_channel", dict(T=11, H=48, I=40, E=4, k=2, block=(1, 4096))),
    ("per_tensor", dict(T=10, H=48, I=32, E=4, k=2, block=(4096, 4096))),
    ("zero_token_row", dict(T=7, H=64, I=32, E=8, k=2, block=(16, 32), zero_row=3)),
    ("all_on_one_expert", dict(T=12, H=64, I=32, E=6, k=1, block=(16, 16), hot=4)),
    ("scales_2e-20", dict(T=8, H=64, I=32, E=4, k=2, block=(16, 16), scale=2.0 ** -20)),
    ("scales_2e+20", dict(T=8, H=64, I=32, E=4, k=2, block=(16, 16), scale=2.0 ** 20)),
    ("static", dict(T=9, H=64, I=32, E=4, k=2, block=(16, 16), activation="static")),
]


def _layer_inputs(rng, c):
    T, H, I, E = c["T"], c["H"], c["I"], c["E"]
    x = dtypes.round_to_bf16(rng.standard_normal((T, H)).astype(np.float32))
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    if "hot" in c:
        # Every token's logits favour one expert: positive x, router +1 there, -1 elsewhere.
        x = np.abs(x)
        router = -np.ones((E, H), np.float32)
        router[c["hot"]] = 1.0
    if "zero_row" in c:
        x[c["zero_row"]] = 0.0
    scale = c.get("scale", 1.0)
    w13, s13 = _fp8_weights(rng, (E, 2 * I, H), c["block"], scale)
    w2, s2 = _fp8_weights(rng, (E, H, I), c["block"], scale)
    return x, router, w13, s13, w2, s2


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
@pytest.mark.parametrize("pipeline", ["default", "reference"])
def test_layer_fp8(compile_ir, rng, pipeline, case):
    c = case[1]
    T, H, I, E, k, block = c["T"], c["H"], c["I"], c["E"], c["k"], c["block"]
    activation = c.get("activation", "dynamic")
    module = compile_ir(_layer_ir(H, I, E, k, block, activation), pipeline)
    x, router, w13, s13, w2, s2 = _layer_inputs(rng, c)
    inputs = [cpu.to_storage(x, "bf16"), cpu.to_storage(router, "bf16"), w13, w2, s13, s2]
    i13 = i2 = None
    if activation == "static":
        i13 = np.array([np.abs(x).max() / 400.0], np.float32)
        i2 = np.array([0.05 * float(c.get("scale", 1.0))], np.float32)
        inputs += [i13, i2]
    (out,) = module.call("layer", inputs, [cpu.TensorSpec((T, H), "bf16")], poison=True)
    got = cpu.from_storage(out, "bf16")
    want, _, ids = ref.layer_with_routing(
        x, router, w13, w2, k=k, renormalize=True,
        weight_quant=dict(block=block, activation=activation), w13_scales=s13, w2_scales=s2,
        w13_input_scale=i13, w2_input_scale=i2)
    if "hot" in c:
        assert np.all(ids == c["hot"]), "the inputs must send every token to one expert"
    if "zero_row" in c:
        assert np.all(got[c["zero_row"]] == 0.0), "an all-zero token gives an all-zero row"
    err = relative_error(got, want)
    assert err <= FP8_TOL, f"fp8 layer {case[0]} {pipeline}: relative error {err:.3g}"


def test_layer_fp8_error_against_bf16(compile_ir, rng):
    """The FP8 layer against the unquantized layer it was quantized from (bf16 weights,
    fp64 oracle): the quantization error itself, printed, and bounded loosely (e4m3 has
    3 mantissa bits: a few percent)."""
    T, H, I, E, k, block = 32, 256, 128, 8, 2, (128, 128)
    module = compile_ir(_layer_ir(H, I, E, k, block), "default")
    x = dtypes.round_to_bf16(rng.standard_normal((T, H)).astype(np.float32))
    router = dtypes.round_to_bf16((rng.standard_normal((E, H)) / math.sqrt(H)).astype(np.float32))
    w13 = dtypes.round_to_bf16((rng.standard_normal((E, 2 * I, H)) / math.sqrt(H)).astype(np.float32))
    w2 = dtypes.round_to_bf16((rng.standard_normal((E, H, I)) / math.sqrt(I)).astype(np.float32))
    q13, s13 = quantize_weights(w13, block)
    q2, s2 = quantize_weights(w2, block)
    (out,) = module.call("layer", [cpu.to_storage(x, "bf16"), cpu.to_storage(router, "bf16"),
                                   q13, q2, s13, s2], [cpu.TensorSpec((T, H), "bf16")], poison=True)
    got = cpu.from_storage(out, "bf16")
    unquantized = ref.layer(x, router, w13, w2, k=k, renormalize=True)
    err = relative_error(got, unquantized)
    print(f"fp8 layer vs unquantized bf16 layer (T={T} H={H} I={I} E={E} k={k}, "
          f"block {list(block)}): relative error {err:.3g}")
    assert err <= 0.15, f"fp8 layer far from the unquantized layer: {err:.3g}"


# ----------------------------------------------------------------------------------------
# expert parallelism
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ranks,sizes", [(2, [13, 9]), (4, [5, 1, 8, 6])])
def test_expert_parallel_fp8(compile_ir, rng, ranks, sizes):
    """The all-to-all expert-parallel path (moe_mlir.expert_parallel) with FP8 experts:
    each rank holds its local experts' weights and scales; the result equals the
    unpartitioned FP8 layer's."""
    from harness import random_ids
    from moe_mlir import expert_parallel as ep
    from moe_mlir import irgen

    E, H, I, k, block = 8, 48, 40, 2, (16, 16)
    quant = dict(block=block, activation="dynamic")
    L = ep.local_experts(E, ranks)
    local = compile_ir(irgen.experts_ir(None, H, E, I, 1, dtype="f32", num_local_experts=L,
                                        weight_quant=quant))
    combine = compile_ir(irgen.combine_ir(None, H, None, k, prescaled=True))
    total = sum(sizes)
    x = rng.standard_normal((total, H)).astype(np.float32)
    q13, s13 = _fp8_weights(rng, (E, 2 * I, H), block)
    q2, s2 = _fp8_weights(rng, (E, H, I), block)
    ids = random_ids(rng, total, k, E)
    weights = rng.random((total, k)).astype(np.float32)

    rows, offsets = ref.dispatch(ids, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, k), q13, offsets, weight_quant=quant,
                           rhs_scales=s13)
    ys = ref.grouped_matmul(ref.glu(h), q2, offsets, weight_quant=quant, rhs_scales=s2)
    want = ref.combine(ys, rows, weights)

    def experts(rank, xs, row_ids, row_weights):
        owned = ep.owned_experts(E, ranks, rank)
        if len(xs) == 0:
            return np.zeros((0, H), dtype=np.float32)
        return local.call("experts", [xs, q13[owned], q2[owned], row_ids, row_weights,
                                      ep.expert_map(E, ranks, rank), s13[owned], s2[owned]],
                          [cpu.TensorSpec((len(xs), H), "f32")], poison=True)[0]

    def combined(ys, order, w):
        return combine.call("combine", [ys, order, w], [cpu.TensorSpec((len(w), H), "f32")],
                            poison=True)[0]

    starts = np.concatenate([[0], np.cumsum(sizes)])
    inputs = [(x[a:b], ids[a:b], weights[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    got = np.concatenate(ep.run_ranks_in_sequence(inputs, E, experts, combined))
    err = relative_error(got, want)
    assert err <= FP8_TOL, f"fp8 expert parallel over {ranks} ranks: relative error {err:.3g}"


@pytest.mark.parametrize("case", [LAYER_CASES[2], LAYER_CASES[5], LAYER_CASES[6], LAYER_CASES[7]],
                         ids=["block_128", "zero_token_row", "all_on_one_expert", "scales_2e-20"])
def test_layer_fp8_panels(compile_ir, rng, case):
    """The layer with its FP8 weights packed into panels (``pack.quantized_to_panels``,
    the block scales as stored): the panels kernel after moe-quantize-activations, at
    T = 1, 7 and 300 as well as the case's T."""
    c = dict(case[1])
    H, I, E, k, block = c["H"], c["I"], c["E"], c["k"], c["block"]
    P = min(pack.quantized_panel_width(2 * I), pack.quantized_panel_width(H))
    ir = irgen.layer_ir(None, H, E, I, k, dtype="bf16", weight_layout="panels", panel_width=P,
                        scoring="softmax", renormalize=True,
                        weight_quant=dict(block=block, activation="dynamic"))
    module = compile_ir(ir)
    for T in sorted({1, 7, 300, c["T"]}):
        if T <= c.get("zero_row", -1):
            continue  # too few tokens for the case's all-zero row
        x, router, w13, s13, w2, s2 = _layer_inputs(rng, dict(c, T=T))
        packed = [pack.quantized_to_panels("fp8_e4m3", w, s, panel_width=P)[0]
                  for w, s in ((w13, s13), (w2, s2))]
        (out,) = module.call("layer", [cpu.to_storage(x, "bf16"), cpu.to_storage(router, "bf16"),
                                       *packed, s13, s2], [cpu.TensorSpec((T, H), "bf16")],
                             poison=True)
        got = cpu.from_storage(out, "bf16")
        want, _, ids = ref.layer_with_routing(
            x, router, w13, w2, k=k, renormalize=True,
            weight_quant=dict(block=block, activation="dynamic"), w13_scales=s13, w2_scales=s2)
        if "hot" in c:
            assert np.all(ids == c["hot"]), "the inputs must send every token to one expert"
        err = relative_error(got, want)
        assert err <= FP8_TOL, f"fp8 panels layer {case[0]} T={T}: relative error {err:.3g}"
