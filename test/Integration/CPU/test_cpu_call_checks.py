"""moe_mlir.cpu: CompiledModule.call checks its arguments against the signature
compile_module records from the IR and raises ValueError, where a wrong dtype, shape or
count used to make the compiled code read garbage or write out of bounds."""

import re

import numpy as np
import pytest

from harness import call, spec
from moe_mlir import cpu, irgen
from moe_mlir import reference as ref

T, H, E, I, K = 4, 16, 4, 8, 2


@pytest.fixture(scope="module")
def layer(compile_ir):
    return compile_ir(irgen.layer_ir(None, H, E, I, k=K, renormalize=True))


def inputs(rng):
    return [rng.standard_normal(shape).astype(np.float32) * 0.3
            for shape in [(T, H), (E, H), (E, 2 * I, H), (E, H, I)]]


def test_signature_recorded(layer):
    signature = layer.signatures["layer"]
    assert [str(t) for t in signature.inputs] == [
        "tensor<?x16xf32>", "tensor<4x16xf32>", "tensor<4x16x16xf32>", "tensor<4x16x8xf32>"]
    assert [str(t) for t in signature.results] == ["tensor<?x16xf32>"]


def test_good_call_still_runs(layer, rng):
    args = inputs(rng)
    (y,) = call(layer, "layer", args, [((T, H), "f32")])
    want = ref.layer(*args, k=K, renormalize=True)
    assert np.max(np.abs(y - want)) < 1e-4


@pytest.mark.parametrize("case,message", [
    ("name", "no public function @lyr"),
    ("too few inputs", "takes 4 inputs, got 3"),
    ("too many inputs", "takes 4 inputs, got 5"),
    ("no results", "has 1 results, got 0"),
    ("float64 input", "input 0: numpy dtype float64, tensor<?x16xf32> needs float32"),
    ("int32 weights", "input 2: numpy dtype int32"),
    ("rank", "input 1: shape (4, 16, 1) does not fit tensor<4x16xf32>"),
    ("static size", "input 3: shape (4, 16, 9) does not fit tensor<4x16x8xf32>"),
    ("result shape", "result 0: shape (4, 17) does not fit tensor<?x16xf32>"),
    ("result dtype", "result 0: element type bf16, the function's is f32"),
    ("result not a spec", "result 0: expected a TensorSpec, got tuple"),
    ("result size not an integer", "result 0: shape (4.0, 16) is not a tuple of sizes >= 0"),
    ("negative result size", "result 0: shape (-1, 16) is not a tuple of sizes >= 0"),
])
def test_misuse_raises_value_error(layer, rng, case, message):
    args = inputs(rng)
    name, results = "layer", [spec((T, H), "f32")]
    if case == "name":
        name = "lyr"
    elif case == "too few inputs":
        args = args[:3]
    elif case == "too many inputs":
        args.append(args[0])
    elif case == "no results":
        results = []
    elif case == "float64 input":
        args[0] = args[0].astype(np.float64)
    elif case == "int32 weights":
        args[2] = args[2].astype(np.int32)
    elif case == "rank":
        args[1] = args[1][..., None]
    elif case == "static size":
        args[3] = np.zeros((E, H, I + 1), np.float32)
    elif case == "result shape":
        results = [spec((T, H + 1), "f32")]
    elif case == "result dtype":
        results = [spec((T, H), "bf16")]
    elif case == "result not a spec":
        results = [((T, H), "f32")]
    elif case == "result size not an integer":
        results = [cpu.TensorSpec((float(T), H), "f32")]
    elif case == "negative result size":
        results = [cpu.TensorSpec((-1, H), "f32")]
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.call(name, args, results)


def test_signatures_of_every_public_function():
    ir = irgen.route_ir(None, 8, 2) + irgen.z_loss_ir(None, 8)
    signatures = cpu.function_signatures(ir)
    assert sorted(signatures) == ["route", "z_loss"]
    assert [str(t) for t in signatures["route"].results] == [
        "tensor<?x2xf32>", "tensor<?x2xi32>"]
    assert [str(t) for t in signatures["z_loss"].results] == ["tensor<f32>"]


@pytest.mark.parametrize("rows", [1, T - 1, T + 1, 0])
def test_result_rows_must_be_what_the_function_computes(layer, rng, rows):
    """A result buffer of fewer token rows than the function computes used to be
    written past its end (heap corruption, then an abort); more rows would be left
    partly unwritten. call asks @layer__result_sizes first."""
    with pytest.raises(ValueError, match=re.escape(
            f"result 0: shape ({rows}, {H}), but for these inputs the function "
            f"computes ({T}, {H})")):
        layer.call("layer", inputs(rng), [spec((rows, H), "f32")])


def test_routed_rows_are_checked_against_the_routing(compile_ir, rng):
    """moe.dispatch's rows are T * k, not T: the check follows the function, not a
    guess from the arguments' sizes."""
    module = compile_ir(irgen.dispatch_ir(None, K, E))
    ids = rng.integers(0, E, (T, K)).astype(np.int32)
    rows, offsets = call(module, "dispatch", [ids], [((T * K,), "i32"), ((E + 1,), "i32")])
    want_rows, want_offsets = ref.dispatch(ids, num_experts=E)[:2]
    assert np.array_equal(offsets, want_offsets)
    assert sorted(rows.tolist()) == sorted(np.asarray(want_rows).tolist())
    with pytest.raises(ValueError, match=re.escape(
            f"result 0: shape ({T},), but for these inputs the function computes "
            f"({T * K},)")):
        module.call("dispatch", [ids], [spec((T,), "i32"), spec((E + 1,), "i32")])


@pytest.mark.parametrize("pipeline", ["default", "reference"])
def test_combine_reads_only_the_rows_ys_has(compile_ir, pipeline):
    """ys [M, H] and rows [M] are both dynamic: the verifier cannot tie them, and a
    rows longer than ys used to make the sum read past ys's end (garbage in the
    output). call refuses such inputs; below that check, in the library itself,
    rows past ys's end select nothing, as on the GPU."""
    module = compile_ir(irgen.combine_ir(None, H, None, K), pipeline)
    ys = np.ones((2, H), np.float32)
    rows = np.arange(T * K, dtype=np.int32)  # selection r sits in row r
    weights = np.ones((T, K), np.float32)
    with pytest.raises(ValueError, match="the rows of rows and of ys must be equal"):
        call(module, "combine", [ys, rows, weights], [((T, H), "f32")])
    unchecked = cpu.CompiledModule(module.path, module.signatures)
    (y,) = call(unchecked, "combine", [ys, rows, weights], [((T, H), "f32")])
    want = np.zeros((T, H), np.float32)
    want[0] = 2.0  # token 0's two selections are rows 0 and 1; the rest are past ys
    np.testing.assert_array_equal(y, want)


def test_input_sizes_the_ops_tie_must_agree(compile_ir, rng):
    """Dynamic input sizes that an op's verifier ties but cannot check (both
    dynamic) are checked before the call by @<name>__check_sizes: moe.dispatch's
    weights shorter than its ids, or a gathering grouped matmul's row_scale shorter
    than its tokens, made the lowering read past the shorter input (a segfault with
    millions of tokens); aux_loss's logits and ids of other token counts gave a
    meaningless loss."""
    dispatch = compile_ir(irgen.dispatch_ir(None, K, E, weights=True, capacity=2,
                                            drop_policy="score"))
    ids = np.zeros((T, K), np.int32)
    ids[:, 1] = 1
    with pytest.raises(ValueError, match=re.escape(
            "@dispatch: input sizes disagree ((4, 2), (1, 2)): moe.dispatch") + ".*" +
            re.escape("the rows of weights and of ids must be equal")):
        dispatch.call("dispatch", [ids, np.ones((1, K), np.float32)],
                      [spec((T * K,), "i32"), spec((E + 1,), "i32")])
    rows, offsets = dispatch.call("dispatch", [ids, np.ones((T, K), np.float32)],
                                  [spec((T * K,), "i32"), spec((E + 1,), "i32")])
    assert offsets.tolist() == [0, 2, 4, 4, 4]

    loss = compile_ir(irgen.aux_loss_ir(None, E, K))
    with pytest.raises(ValueError, match="the rows of ids and of logits must be equal"):
        loss.call("aux_loss", [np.ones((1, E), np.float32), np.zeros((T, K), np.int32)],
                  [spec((), "f32")])

    matmul = compile_ir(irgen.grouped_matmul_ir(None, H, I, E, gather=True, row_scale=True,
                                                T=None, k=K))
    x = rng.standard_normal((T, H)).astype(np.float32)
    w = rng.standard_normal((E, I, H)).astype(np.float32)
    offsets = np.array([0, T * K, T * K, T * K, T * K], np.int32)
    routed = np.arange(T * K, dtype=np.int32)
    with pytest.raises(ValueError, match="the rows of row_scale and of lhs must be equal"):
        matmul.call("grouped_matmul", [x, w, offsets, routed, np.ones((1, K), np.float32)],
                    [spec((T * K, I), "f32")])


def test_input_sizes_tied_in_a_called_function_are_checked(compile_ir):
    """The ops of the functions a public function calls are checked as its own
    (@<name>__check_sizes inlines them): weights shorter than ids given to a
    function whose callee dispatches made the dispatch read past them, with no
    ValueError, since only the caller's own body was looked at."""
    ir = """module {
  func.func private @offsets_of(%ids: tensor<?x2xi32>, %weights: tensor<?x2xf32>) -> tensor<5xi32> {
    %rows, %offsets = moe.dispatch %ids weights(%weights : tensor<?x2xf32>) {num_experts = 4 : i64, capacity = 2 : i64, drop_policy = #moe.drop_policy<score>} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>
    return %offsets : tensor<5xi32>
  }
  func.func @calls(%ids: tensor<?x2xi32>, %weights: tensor<?x2xf32>) -> tensor<5xi32> {
    %offsets = func.call @offsets_of(%ids, %weights) : (tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<5xi32>
    return %offsets : tensor<5xi32>
  }
}
"""
    module = compile_ir(ir)
    ids = np.zeros((T, K), np.int32)
    ids[:, 1] = 1
    with pytest.raises(ValueError, match=re.escape(
            "@calls: input sizes disagree ((4, 2), (1, 2)): moe.dispatch") + ".*" +
            re.escape("the rows of weights and of ids must be equal")):
        module.call("calls", [ids, np.ones((1, K), np.float32)], [spec((E + 1,), "i32")])
    [offsets] = module.call("calls", [ids, np.ones((T, K), np.float32)], [spec((E + 1,), "i32")])
    assert offsets.tolist() == [0, 2, 4, 4, 4]


def test_descriptors_of_views_and_scalars():
    """A memref descriptor carries the array's address, sizes and element strides
    (sliced views included), and one ctypes class serves every descriptor of a rank:
    building a class per argument cost more than a decode step's call."""
    base = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    view = np.ascontiguousarray(base[1:3])
    desc = cpu._descriptor(view)
    assert desc.aligned == desc.allocated == view.ctypes.data
    assert desc.offset == 0
    assert list(desc.sizes) == [2, 6, 8] and list(desc.strides) == [48, 8, 1]
    assert type(desc) is type(cpu._descriptor(np.zeros((1, 1, 1), np.int8)))
    scalar = np.array(2.5, dtype=np.float32)
    assert cpu._descriptor(scalar).aligned == scalar.ctypes.data
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu._descriptor(base[:, ::2])
