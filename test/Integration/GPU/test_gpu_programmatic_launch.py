"""Programmatic dependent launch (pdl, sm_90) on a GPU machine.

The `<shape>@pdl=true` artifacts launch every kernel of a call programmatically: a
kernel may start while the one before it runs and waits for it with
griddepcontrol.wait before it touches memory. The default artifacts
are the same kernels launched in stream order. Both come from
`bash utils/build-gpu-artifacts.sh` (no GPU needed); the checks skip cleanly
without a GPU. Run them with pytest, or as
`python3 test/Integration/GPU/test_gpu_programmatic_launch.py`.

- Each benchmark shape, T in {1, 7, 32, 333}: the programmatic call gives
  bitwise the output of the stream-ordered one, and both are within the bf16
  bound of torch fp32.
- Calls issued back to back on one stream, sharing one workspace, each into
  its own poisoned output without a synchronization between them: a kernel
  that started early and touched the workspace before the call ahead had
  finished would corrupt a result.
- The same calls captured in one CUDA graph and replayed several times.
"""


from device_artifacts import artifact_index as artifacts, torch  # noqa: E402
from device_artifacts import load_module as load  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

from moe_mlir import torch_reference  # noqa: E402

BF16_BOUND = 2e-2
SHAPES = ("mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3")
TOKENS = (1, 7, 32, 333)
#: Calls issued back to back in the chained checks.
CHAIN = 4


def _pair(name):
    """The pdl=true (programmatic) entry of a shape and its default one."""
    entries = artifacts()
    programmatic = entries.get(f"{name}@pdl=true")
    if programmatic is None:
        skip(f"no {name}@pdl=true artifact (rebuild artifacts/gpu)")
    return programmatic, entries[name]


def _inputs(entry, T, seed):
    inputs = torch_reference.make_inputs(T, entry["H"], entry["I"], entry["E"],
                                         entry["k"], seed)
    return torch_reference.experts_operands(inputs)


def _call(module, operands, stream=None):
    y = torch.full_like(operands[0], float("nan"))
    module.call("experts", operands, [y], stream=stream)
    return y


def test_programmatic_matches_stream_order():
    failures = []
    for name in SHAPES:
        programmatic, plain = _pair(name)
        for T in TOKENS:
            operands = _inputs(programmatic, T, seed=900 + T)
            y = _call(load(programmatic), operands)
            y_plain = _call(load(plain), operands)
            torch.cuda.synchronize()
            ref = torch_reference.reference_fp32(*operands)
            error = torch_reference.relative_error(y, ref)
            same = bool(torch.equal(y, y_plain))
            print(f"  {name:16s} T={T:4d} rel err {error:.2e} bitwise as stream order: {same}",
                  flush=True)
            if not (same and error <= BF16_BOUND):
                failures.append((name, T, error, same))
        torch.cuda.empty_cache()
    assert not failures, failures


def _chained_case(entry, T, seed):
    """CHAIN calls' operands (tokens and routing of their own, the weights
    shared: four copies of DeepSeek-V3's would not fit on an 80 GB card),
    their references, and the calls enqueued on a fresh stream (one shared
    workspace) into poisoned outputs."""
    module = load(entry)
    weights = torch_reference.make_weights(entry["H"], entry["I"], entry["E"], seed)
    calls = [torch_reference.experts_operands(
                 {**weights, **torch_reference.make_tokens(T, entry["H"], entry["E"],
                                                           entry["k"], seed + 1 + i)})
             for i in range(CHAIN)]
    refs = [torch_reference.reference_fp32(*operands) for operands in calls]
    workspace = module.workspace("experts", calls[0])
    outputs = [torch.full_like(operands[0], float("nan")) for operands in calls]
    return module, calls, refs, workspace, outputs


def test_back_to_back_calls_share_a_workspace():
    failures = []
    for name in SHAPES:
        entry, _ = _pair(name)
        for T in (1, 32):
            module, calls, refs, workspace, outputs = _chained_case(entry, T, 1000 + T)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for operands, y in zip(calls, outputs):
                    module.call("experts", operands, [y], stream=stream,
                                workspace=workspace)
            torch.cuda.synchronize()
            for i, (y, ref) in enumerate(zip(outputs, refs)):
                error = torch_reference.relative_error(y, ref)
                print(f"  {name:16s} T={T:3d} call {i} rel err {error:.2e}", flush=True)
                if not error <= BF16_BOUND:
                    failures.append((name, T, i, error))
        torch.cuda.empty_cache()
    assert not failures, failures


def test_chained_calls_in_a_graph():
    failures = []
    for name in SHAPES:
        entry, _ = _pair(name)
        T = 1
        module, calls, refs, workspace, outputs = _chained_case(entry, T, 1100)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(stream):
            module.call("experts", calls[0], [outputs[0]], stream=stream,
                        workspace=workspace)  # warm-up
            stream.synchronize()
            with torch.cuda.graph(graph, stream=stream):
                for operands, y in zip(calls, outputs):
                    module.call("experts", operands, [y], stream=stream,
                                workspace=workspace)
        for replay in range(3):
            for y in outputs:
                y.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            for i, (y, ref) in enumerate(zip(outputs, refs)):
                error = torch_reference.relative_error(y, ref)
                if not error <= BF16_BOUND:
                    failures.append((name, replay, i, error))
        print(f"  {name:16s} graph of {CHAIN} calls, 3 replays: "
              f"{'ok' if not failures else failures}", flush=True)
        del graph
        torch.cuda.empty_cache()
    assert not failures, failures


if __name__ == "__main__":
    run_tests(globals())
