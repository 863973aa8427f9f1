"""Determinism of CPU layers (docs/testing.md): the output is bitwise the same over 20
calls at 1, 2 and 4 OpenMP threads, and a token's output does not depend on the other
tokens of the call (batch invariance), for routing without a capacity.

Why it holds: no kernel uses atomics or a thread-count-dependent reduction; the grouped
matmul splits work over experts and row blocks, never over K, so each output element is
summed in one fixed order; routing is per token; the combine sums a token's slots in
ascending order. With a capacity (Switch) a token can be dropped because of the tokens
before it, so batch invariance does not hold there by definition.
"""

import ctypes

import numpy as np
import pytest

from moe_mlir import cpu, irgen

H, E, I = 64, 16, 48
T = 45  # not a multiple of the kernels' row blocks (12, 4)
MODELS = [("mixtral", "f32"), ("deepseek_v3", "bf16"), ("gpt_oss", "bf16"), ("qwen3", "f32")]
PIPELINES = ["default", "unfused"]


@pytest.fixture(scope="module")
def omp():
    """libomp, the one the compiled modules load (their rpath), to set its thread
    count between calls."""
    lib = ctypes.CDLL(str(cpu.LLVM_BIN.parent / "lib" / "libomp.so"))
    default = lib.omp_get_max_threads()
    yield lib
    lib.omp_set_num_threads(default)


def layer(compile_ir, model, dtype, pipeline):
    ir = irgen.model_layer_ir(model, None, H, E, I, dtype=dtype, shared_intermediate=32)
    return compile_ir(ir, pipeline)


def draw(module, rng, tokens):
    """Random inputs of the layer's signature; x [tokens, H] first."""
    arrays = []
    for t in module.signatures["layer"].inputs:
        shape = tuple(tokens if d is None else d for d in t.shape)
        scale = 1.0 / np.sqrt(shape[-1])
        arrays.append(cpu.to_storage(rng.standard_normal(shape) * scale, t.element_type))
    return arrays


def run(module, inputs):
    result = module.signatures["layer"].results[0]
    spec = cpu.TensorSpec((inputs[0].shape[0], H), result.element_type)
    (y,) = module.call("layer", inputs, [spec])
    return y


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("model,dtype", MODELS)
def test_bitwise_equal_over_runs_and_threads(compile_ir, omp, rng, model, dtype, pipeline):
    module = layer(compile_ir, model, dtype, pipeline)
    inputs = draw(module, rng, 200)
    first = None
    for threads in (1, 2, 4):
        omp.omp_set_num_threads(threads)
        for run_index in range(20):
            y = run(module, inputs)
            if first is None:
                first = y
                assert np.any(y != 0)
            assert np.array_equal(y.view(np.uint8), first.view(np.uint8)), (
                f"{model} {dtype} {pipeline}: run {run_index} at {threads} threads "
                "differs from the first run")


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("model,dtype", MODELS)
def test_batch_invariance(compile_ir, rng, model, dtype, pipeline):
    """Each token alone, the batch shuffled, and the batch inside a larger one give each
    token bitwise the output it gets in the batch."""
    module = layer(compile_ir, model, dtype, pipeline)
    inputs = draw(module, rng, T)
    x, weights = inputs[0], inputs[1:]
    batch = run(module, inputs)
    alone = np.concatenate([run(module, [x[t:t + 1]] + weights) for t in range(T)])
    order = rng.permutation(T)
    shuffled = run(module, [x[order]] + weights)[np.argsort(order)]
    extra = draw(module, rng, 70)[0]
    larger = run(module, [np.concatenate([extra[:30], x, extra[30:]])] + weights)[30:30 + T]
    for what, y in [("alone", alone), ("shuffled", shuffled), ("in a larger batch", larger)]:
        same = np.all(y.view(np.uint8).reshape(T, -1) == batch.view(np.uint8).reshape(T, -1),
                      axis=1)
        assert same.all(), f"{model} {dtype} {pipeline}: tokens {np.where(~same)[0]} " \
                           f"differ {what}"
