"""moe-compile's CUDA artifacts through the C ABI, on a GPU machine.

`bash utils/build-gpu-artifacts.sh` compiles here (no GPU needed) one
config.json per model family (Inputs/configs) with
`moe-compile --target=cuda` into artifacts/gpu/aot. On the GPU machine only
the NVIDIA driver, torch and ctypes are used:

- each family's layer, called from Python and as a torch custom op, against
  the numpy fp64 oracle, with the output poisoned first;
- torch.library.opcheck, torch.compile(fullgraph=True) and CUDA graph replay
  of the op;
- the ABI's argument checks (NULL, misalignment, host memory, token count,
  workspace) return their statuses and leave the context usable;
- many threads making the first call at once load the kernels once.

Run with pytest, or as `python3 test/Integration/GPU/test_aot_cuda.py`.
"""

import ctypes
import json
import pathlib
import shutil
import tempfile
import threading

FAMILIES = ("mixtral", "qwen3_moe", "olmoe", "deepseek_v3", "gpt_oss")

from abi_checks import poisoned_call, relative_error  # noqa: E402
from device_artifacts import AOT, load_layer as load, require_gpu, torch  # noqa: E402
from standalone import run_tests, skip  # noqa: E402


import numpy as np  # noqa: E402

#: Relative error bound (max |y - ref| / max |ref|) for bf16 outputs.
BF16_BOUND = 2e-2

STATUS = {"NULL_POINTER": 1, "MISALIGNED": 2, "BAD_NUM_TOKENS": 3,
          "WORKSPACE_TOO_SMALL": 4, "NOT_DEVICE_MEMORY": 8}


def artifact(family):
    require_gpu()
    if not (AOT / f"libmoe_{family}.so").exists():
        skip("needs artifacts/gpu/aot (bash utils/build-gpu-artifacts.sh)")
    from moe_mlir import aot

    return aot.Artifact(AOT, family)


def draw_inputs(layer, tokens, seed):
    """Random inputs by name, as CPU tensors of the manifest's dtypes."""
    from moe_mlir.torch_op import TORCH_DTYPES

    rng = np.random.default_rng(seed)
    tensors = {}
    for spec in layer.inputs:
        shape = layer.shape(spec, tokens)
        fan_in = shape[-1] if len(shape) > 1 else 1
        scale = 1.0 if spec["name"] == "x" else (0.1 if spec["name"] == "bias"
                                                 else fan_in ** -0.5)
        values = rng.standard_normal(shape).astype(np.float32) * scale
        tensors[spec["name"]] = torch.from_numpy(values).to(TORCH_DTYPES[spec["dtype"]])
    return tensors


def oracle(layer, tensors):
    from moe_mlir import reference

    as64 = {name: t.float().numpy().astype(np.float64) for name, t in tensors.items()}
    spec = layer.manifest["layer"]
    extra = {name: as64[name] for name in ("bias", "router_bias", "w13_bias", "w2_bias",
                                           "shared_w13", "shared_w2", "shared_gate")
             if name in as64}
    return reference.layer(as64["x"], as64["router"], as64["w13"], as64["w2"], **extra,
                           **reference.layer_kwargs(spec))


def test_families_match_oracle():
    failures = []
    for family in FAMILIES:
        layer = load(family)
        for tokens in (1, 7, 300, 2048):
            tensors = draw_inputs(layer, tokens, seed=tokens)
            args = [tensors[s["name"]].cuda() for s in layer.inputs]
            want = oracle(layer, tensors)
            y = poisoned_call(layer, args, tokens)
            error = relative_error(y, want)
            through_call = relative_error(layer(*args), want)
            print(f"  {family:12s} T={tokens:5d} rel err {error:.2e} "
                  f"(Layer.__call__ {through_call:.2e})")
            if not (error <= BF16_BOUND and through_call <= BF16_BOUND):
                failures.append((family, tokens, error, through_call))
    assert not failures, failures


def test_torch_op_opcheck_compile_and_graph():
    layer = load("qwen3_moe")
    from moe_mlir import torch_op

    op = torch_op.register(layer, "aot_cuda_qwen3")
    tensors = draw_inputs(layer, 33, seed=5)
    args = [tensors[s["name"]].cuda() for s in layer.inputs]
    want = oracle(layer, tensors)
    assert relative_error(op(*args), want) <= BF16_BOUND

    torch.library.opcheck(op, args)

    compiled = torch.compile(lambda *a: op(*a) * 2.0, fullgraph=True)
    assert relative_error(compiled(*args) / 2.0, want) <= BF16_BOUND

    # Capture after a warm-up call (the kernels load on the first one).
    op(*args)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = op(*args)
    for source, fresh in zip(args, [t.cuda() for t in draw_inputs(layer, 33, seed=6).values()]):
        source.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    replay_want = oracle(layer, {s["name"]: a.cpu() for s, a in zip(layer.inputs, args)})
    assert relative_error(captured, replay_want) <= BF16_BOUND


def test_bad_arguments_return_statuses():
    from moe_mlir.aot import MoEError

    layer = load("mixtral")
    tokens = 16
    tensors = draw_inputs(layer, tokens, seed=1)
    args = [tensors[s["name"]].cuda() for s in layer.inputs]
    y = torch.empty((tokens, layer.outputs[0]["shape"][1]), dtype=torch.bfloat16,
                    device="cuda")
    size = layer.workspace_size(tokens)
    assert size > 0 and layer.workspace_size(0) == 0
    workspace = torch.empty(size + 64, dtype=torch.uint8, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    pointers = [a.data_ptr() for a in args] + [y.data_ptr()]
    host = np.zeros(args[0].numel(), dtype=np.uint16)

    def status_of(pointers=pointers, tokens=tokens, workspace=workspace.data_ptr(),
                  workspace_size=size):
        try:
            layer.forward_pointers(pointers, tokens, workspace, workspace_size, stream)
            return 0
        except MoEError as error:
            assert layer.status_string(error.status)
            return error.status

    assert status_of([None] + pointers[1:]) == STATUS["NULL_POINTER"]
    assert status_of([pointers[0] + 2] + pointers[1:]) == STATUS["MISALIGNED"]
    assert status_of([host.ctypes.data] + pointers[1:]) == STATUS["NOT_DEVICE_MEMORY"]
    assert status_of(tokens=0) == STATUS["BAD_NUM_TOKENS"]
    assert status_of(tokens=layer.manifest["max_tokens"] + 1) == STATUS["BAD_NUM_TOKENS"]
    assert status_of(workspace_size=size - 1) == STATUS["WORKSPACE_TOO_SMALL"]
    assert status_of(workspace=None) == STATUS["NULL_POINTER"]
    assert status_of(workspace=workspace.data_ptr() + 8) == STATUS["MISALIGNED"]
    # None of them touched the device: a good call still works.
    assert status_of() == 0
    torch.cuda.synchronize()
    assert relative_error(y, oracle(layer, tensors)) <= BF16_BOUND
    with_host = torch.zeros_like(args[0], device="cpu")
    try:
        layer(with_host, *args[1:])
        raise AssertionError("a CPU tensor was accepted")
    except ValueError as error:
        assert "must be a CUDA tensor" in str(error)


def test_first_calls_from_many_threads_load_once():
    """A fresh copy of the library (its own lazily loaded module), first
    called from 8 threads at once: every call succeeds with the same result."""
    from moe_mlir import aot

    source = artifact("olmoe")
    with tempfile.TemporaryDirectory() as directory:
        copy = pathlib.Path(directory)
        for name in ("libmoe_olmoe.so", "moe_olmoe.json"):
            shutil.copy(source.directory / name, copy / name)
        # A different file name makes the loader open a second instance.
        (copy / "libmoe_olmoe.so").rename(copy / "libmoe_olmoe_threads.so")
        manifest = json.loads((copy / "moe_olmoe.json").read_text())
        layer = aot.Layer(copy / "libmoe_olmoe_threads.so", manifest)
        tensors = draw_inputs(layer, 64, seed=9)
        args = [tensors[s["name"]].cuda() for s in layer.inputs]
        torch.cuda.synchronize()
        results, errors = [None] * 8, []

        def work(i):
            try:
                stream = torch.cuda.Stream()
                with torch.cuda.stream(stream):
                    results[i] = layer(*args)
                stream.synchronize()
            except Exception as error:  # collected, then asserted below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        want = oracle(layer, tensors)
        for result in results:
            assert torch.equal(result, results[0])
        assert relative_error(results[0], want) <= BF16_BOUND


if __name__ == "__main__":
    run_tests(dict(globals()))
