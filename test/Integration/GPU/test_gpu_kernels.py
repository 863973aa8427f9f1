"""The lowered GPU kernels against the references, on a GPU machine.

Artifacts come from `bash utils/build-gpu-artifacts.sh` (no GPU needed); the
checks need torch with CUDA and skip cleanly elsewhere. Run them with pytest,
or on a machine without pytest as `python3 test/Integration/GPU/test_gpu_kernels.py`.

- The expert half of a layer (dispatch, gathered gate/up GEMM with the GLU
  epilogue, down GEMM with the routing weights, combine) at every
  BENCHMARKS.md shape and token count, against a torch fp32 reference, with
  the output poisoned with NaN first so every element must be written.
- f16 layers at every BENCHMARKS.md shape.
- Edge cases: T = 1, experts with no tokens, every token on the same experts,
  every selection on one expert, and sizes that are not multiples of the
  tiles (a K tail, and K not a multiple of 8, which takes the plain kernel).
  At decode sizes (T in {1, 7, 32}, at most 256 selections) the dispatch's
  one block writes the row tiles too; the larger T take the chunked sort
  and the schedule kernel (test_gpu_decode_dispatch.py compares the two
  schedules).
- Routing per model recipe against the numpy fp64 oracle (ids exactly).
- Whole bf16 layers per recipe against the oracle.
"""


from device_artifacts import artifact_index as artifacts, torch  # noqa: E402
from device_artifacts import load_module as load  # noqa: E402
from standalone import run_tests, skip  # noqa: E402

from moe_mlir import torch_reference  # noqa: E402


import numpy as np  # noqa: E402

#: Relative error bound (max |y - ref| / max |ref|) for bf16 outputs.
BF16_BOUND = 2e-2
TOKENS = (1, 32, 512, 4096, 16384)


def run_experts(entry, x, w13, w2, ids, weights, misaligned=False):
    module = load(entry)
    y = torch.full_like(x, float("nan"))
    if misaligned:
        # One element into a buffer: the output is not 16-byte aligned, which
        # the wide combine needs, so the one-column-per-thread kernel runs.
        y = torch.full((x.numel() + 1,), float("nan"), dtype=x.dtype,
                       device=x.device)[1:].view_as(x)
    module.call("experts", [x, w13, w2, ids, weights], [y])
    torch.cuda.synchronize()
    return y


def experts_case(entry, T, seed, ids_fn=None, misaligned=False):
    H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[entry.get("dtype", "bf16")]
    inputs = torch_reference.make_inputs(T, H, I, E, k, seed, dtype=dtype)
    if ids_fn is not None:
        inputs["ids"] = ids_fn(T, E, k).to(torch.int32).cuda().contiguous()
    y = run_experts(entry, inputs["x"], inputs["w13"], inputs["w2"], inputs["ids"],
                    inputs["weights"], misaligned)
    ref = torch_reference.reference_fp32(inputs["x"], inputs["w13"], inputs["w2"],
                                   inputs["ids"], inputs["weights"])
    return torch_reference.relative_error(y, ref)


def test_experts_every_shape_and_token_count():
    entries = artifacts()
    failures = []
    for name in ("mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3"):
        for T in TOKENS:
            error = experts_case(entries[name], T, seed=1000 + T)
            print(f"  experts {name:14s} T={T:5d} rel err {error:.2e}", flush=True)
            if not error <= BF16_BOUND:
                failures.append((name, T, error))
        torch.cuda.empty_cache()
    assert not failures, failures


def _half_experts(T, E, k):
    # Only the lower half of the experts gets tokens.
    return torch.stack([torch.randperm(E // 2)[:k] for _ in range(T)])


def _same_experts(T, E, k):
    # Every token picks experts 0..k-1: those get all tokens, the rest none.
    return torch.arange(k).repeat(T, 1)


def _one_expert(T, E, k):
    # Every selection on expert 0: it holds all T * k rows, the rest none.
    return torch.zeros(T, k, dtype=torch.int64)


def test_experts_edge_cases():
    entries = artifacts()
    failures = []
    for name in ("edge-tail", "edge-plain", "edge-experts", "qwen3-30b-a3b"):
        for label, T, ids_fn, misaligned in (
                ("T=1", 1, None, False), ("T=7", 7, None, False),
                ("T=32", 32, None, False), ("T=333", 333, None, False),
                ("empty experts, T=1", 1, _half_experts, False),
                ("empty experts, T=7", 7, _half_experts, False),
                ("empty experts, T=32", 32, _half_experts, False),
                ("empty experts", 257, _half_experts, False),
                ("all on one expert, T=1", 1, _one_expert, False),
                ("all on one expert, T=7", 7, _one_expert, False),
                ("all on one expert, T=32", 32, _one_expert, False),
                ("all on the same experts, T=32", 32, _same_experts, False),
                ("all on the same experts", 300, _same_experts, False),
                ("misaligned output", 333, None, True)):
            error = experts_case(entries[name], T, seed=77 + T, ids_fn=ids_fn,
                                 misaligned=misaligned)
            print(f"  experts {name:14s} {label:24s} rel err {error:.2e}", flush=True)
            if not error <= BF16_BOUND:
                failures.append((name, label, error))
    assert not failures, failures


def test_experts_f16_every_shape():
    """f16 layers take the bf16 layers' tensor-core kernels (mma.sync and
    wgmma have f16 forms): every benchmark shape at decode and prefill sizes,
    with an expert-less and a one-expert routing."""
    entries = artifacts()
    failures = []
    f16 = [e for e in entries.values() if e["kind"] == "experts-f16"]
    if not f16:
        skip("no f16 artifacts")
    for entry in f16:
        for label, T, ids_fn in (("T=1", 1, None), ("T=32", 32, None), ("T=512", 512, None),
                                 ("T=4096", 4096, None),
                                 ("empty experts", 333, _half_experts),
                                 ("all on the same experts", 300, _same_experts)):
            error = experts_case(entry, T, seed=900 + T, ids_fn=ids_fn)
            print(f"  experts {entry['name']:24s} {label:24s} rel err {error:.2e}", flush=True)
            if not error <= BF16_BOUND:
                failures.append((entry["name"], label, error))
        torch.cuda.empty_cache()
    assert not failures, failures


def test_experts_under_other_pipeline_options():
    """The kernels of non-default options (wgmma on sm_90a, ...) on the
    benchmark shapes and the K-tail edge, decode and prefill sizes."""
    entries = artifacts()
    failures = []
    variants = [e for e in entries.values() if e["kind"] == "experts-variant"]
    if not variants:
        skip("no variant artifacts")
    for entry in variants:
        for T in (1, 333, 4096):
            error = experts_case(entry, T, seed=500 + T)
            print(f"  experts {entry['name']:28s} T={T:5d} rel err {error:.2e}", flush=True)
            if not error <= BF16_BOUND:
                failures.append((entry["name"], T, error))
        torch.cuda.empty_cache()
    assert not failures, failures


def test_routing_matches_oracle():
    from moe_mlir import reference

    entries = artifacts()
    failures = []
    for name, entry in entries.items():
        if entry["kind"] != "route":
            continue
        module = load(entry)
        rng = np.random.default_rng(5)
        for T in (1, 333):
            E, k = entry["E"], entry["k"]
            logits = rng.standard_normal((T, E)).astype(np.float32)
            args = [torch.from_numpy(logits).cuda()]
            bias = None
            if entry["bias"]:
                bias = (rng.standard_normal(E) * 0.1).astype(np.float32)
                args.append(torch.from_numpy(bias).cuda())
            weights = torch.full((T, k), float("nan"), device="cuda")
            ids = torch.full((T, k), -7, dtype=torch.int32, device="cuda")
            module.call("route", args, [weights, ids])
            torch.cuda.synchronize()
            want_w, want_ids = reference.route(logits, bias, k=k, **entry["recipe"])
            same = float((ids.cpu().numpy() == want_ids).mean())
            werr = float(np.abs(weights.cpu().numpy() - want_w).max())
            print(f"  {name:20s} T={T:4d} ids agree {same:.4f} weight err {werr:.1e}")
            if same != 1.0 or not werr <= 1e-5:
                failures.append((name, T, same, werr))
    assert not failures, failures


def _bf16(rng, shape, scale):
    values = torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32))
    return values.to(torch.bfloat16)


def test_layers_match_oracle():
    from moe_mlir import irgen, reference

    entries = artifacts()
    failures = []
    for name, entry in entries.items():
        if entry["kind"] != "layer":
            continue
        module = load(entry)
        model, H, E, I = entry["model"], entry["H"], entry["E"], entry["I"]
        attrs = dict(irgen.MODEL_LAYERS[model])
        has_bias = attrs.pop("bias", False)
        rng = np.random.default_rng(11)
        for T in (1, 77, 300):
            x = _bf16(rng, (T, H), 1.0)
            tensors = {"router": _bf16(rng, (E, H), H ** -0.5),
                       "w13": _bf16(rng, (E, 2 * I, H), H ** -0.5),
                       "w2": _bf16(rng, (E, H, I), I ** -0.5)}
            args = [x, tensors["router"], tensors["w13"], tensors["w2"]]
            kwargs = {}
            if has_bias:
                kwargs["bias"] = torch.from_numpy(
                    (rng.standard_normal(E) * 0.1).astype(np.float32))
                args.append(kwargs["bias"])
            if entry["shared_intermediate"]:
                S = entry["shared_intermediate"]
                kwargs["shared_w13"] = _bf16(rng, (2 * S, H), H ** -0.5)
                kwargs["shared_w2"] = _bf16(rng, (H, S), S ** -0.5)
                args += [kwargs["shared_w13"], kwargs["shared_w2"]]
            y = torch.full((T, H), float("nan"), dtype=torch.bfloat16, device="cuda")
            module.call("layer", [a.cuda().contiguous() for a in args], [y])
            torch.cuda.synchronize()
            as64 = {key: value.float().numpy().astype(np.float64)
                    for key, value in kwargs.items()}
            want = reference.layer(x.float().numpy().astype(np.float64),
                                   tensors["router"].float().numpy().astype(np.float64),
                                   tensors["w13"].float().numpy().astype(np.float64),
                                   tensors["w2"].float().numpy().astype(np.float64),
                                   **as64, **attrs)
            error = torch_reference.relative_error(y.cpu(), torch.from_numpy(want))
            print(f"  {name:20s} T={T:4d} rel err {error:.2e}")
            if not error <= BF16_BOUND:
                failures.append((name, T, error))
    assert not failures, failures


def test_graph_capture_and_caller_stream():
    """Decode (T = 1) and prefill (T = 512: the prefill kernel, whose TMA
    descriptor the runtime must hand out again without allocating) calls
    captured after a warm-up call, replayed into a poisoned output."""
    entries = artifacts()
    entry = entries["qwen3-30b-a3b"]
    module = load(entry)
    failures = []
    for T in (1, 512):
        inputs = torch_reference.make_inputs(T, entry["H"], entry["I"], entry["E"], entry["k"], 3)
        args = torch_reference.experts_operands(inputs)
        y = torch.empty_like(inputs["x"])
        workspace = module.workspace("experts", args)
        stream = torch.cuda.Stream()
        # The inputs were made on the current stream.
        stream.wait_stream(torch.cuda.current_stream())
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(stream):
            module.call("experts", args, [y], workspace=workspace)  # warm-up
            stream.synchronize()
            with torch.cuda.graph(graph, stream=stream):
                module.call("experts", args, [y], workspace=workspace)
        y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        ref = torch_reference.reference_fp32(*args)
        error = torch_reference.relative_error(y, ref)
        print(f"  graph replay T={T} rel err {error:.2e}")
        if not error <= BF16_BOUND:
            failures.append((T, error))
    assert not failures, failures


if __name__ == "__main__":
    run_tests(globals())
