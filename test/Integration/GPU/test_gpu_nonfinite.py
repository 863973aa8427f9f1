"""Non-finite values on the GPU, as test/Integration/CPU/test_nonfinite.py checks them
on the CPU: where the exact result overflows f32, a row reads +-inf as IEEE arithmetic
on the exact intermediate values would, never NaN (docs/testing.md, "Non-finite
values").

Two steps used to turn an overflow into NaN: a softmax over logits of which the largest
is +inf (exp(inf - inf)), and a selection whose routing weight underflowed to 0 times an
expert output that overflowed (0 * inf), in the combine (unfused layers) or in the
grouped matmul's row-scale epilogue (fused layers, every tensor-core and SIMT kernel).
The oracle computes in fp64, where neither overflows, so its result rounded to f32 is
the exact one.

Artifacts come from `bash utils/build-gpu-artifacts.sh` (kinds "nonfinite-layer" and
"nonfinite-route"; no GPU needed to build them); the checks need torch with CUDA and
skip cleanly elsewhere. Run them with pytest, or on a machine without pytest as
`python3 test/Integration/GPU/test_gpu_nonfinite.py`.
"""


from device_artifacts import entries_of, torch  # noqa: E402
from device_artifacts import load_module as load  # noqa: E402
from standalone import run_tests  # noqa: E402

import numpy as np  # noqa: E402


#: Relative error bound on the finite row (max |y - ref| / max |ref|).
BOUND = {"f32": 1e-4, "bf16": 2e-2}


def overflowing_inputs(H, E, I, T=2):
    """Token 0: its logits for experts 0 and 2 overflow f32 (+-inf), and so do its
    expert outputs (about 1e41); token 1 is ordinary. As in the CPU test."""
    x = np.full((T, H), 1e20, np.float32)
    x[1:] = 1.0
    router = np.stack([np.full(H, v, np.float32) for v in (1e20, 1.0, -1e20, 2.0)][:E])
    w13 = np.full((E, 2 * I, H), 0.1, np.float32)
    w2 = np.full((E, H, I), 1.0, np.float32)
    return x, router, w13, w2


def test_layer_overflow_reads_inf():
    """Token 0's row reads +inf (the exact y rounded to f32), token 1's is finite and
    matches the oracle; with k = 2 the second expert's weight underflows to 0 and must
    add nothing, fused or not, f32 and bf16."""
    from moe_mlir import reference

    failures = []
    for entry in entries_of("nonfinite-layer"):
        H, E, I, attrs = entry["H"], entry["E"], entry["I"], entry["attrs"]
        dtype = torch.float32 if entry["dtype"] == "f32" else torch.bfloat16
        arrays = overflowing_inputs(H, E, I)
        tensors = [torch.from_numpy(a).to(dtype) for a in arrays]
        y = torch.full((arrays[0].shape[0], H), float("nan"), dtype=dtype, device="cuda")
        load(entry).call("layer", [t.cuda().contiguous() for t in tensors], [y])
        torch.cuda.synchronize()
        got = y.float().cpu().numpy()
        with np.errstate(over="ignore"):
            want = reference.layer(*[t.double().numpy() for t in tensors],
                                   **attrs).astype(np.float32)
        assert np.all(np.isposinf(want[0])) and np.all(np.isfinite(want[1])), want
        finite_error = float(np.abs(got[1] - want[1]).max() / np.abs(want[1]).max())
        ok = (not np.isnan(got).any() and np.all(np.isposinf(got[0]))
              and finite_error <= BOUND[entry["dtype"]])
        print(f"  {entry['name']:40s} NaN {int(np.isnan(got).sum()):3d} "
              f"row 0 +inf {int(np.isposinf(got[0]).sum()):3d}/{H} "
              f"row 1 rel err {finite_error:.1e} {'ok' if ok else 'WRONG'}")
        if not ok:
            failures.append((entry["name"], got[0][:4].tolist(), finite_error))
    assert not failures, failures


def test_route_infinite_logits():
    """A +inf logit takes all the weight (the limit of the exact softmax), a -inf logit
    none; a row of -inf logits is uniform, ties going to the lower expert."""
    failures = []
    for entry in entries_of("nonfinite-route"):
        logits = np.array([[1.0, np.inf, 2.0, -np.inf],
                           [-np.inf, -np.inf, -np.inf, -np.inf]], np.float32)
        k = entry["k"]
        weights = torch.full((2, k), float("nan"), device="cuda")
        ids = torch.full((2, k), -7, dtype=torch.int32, device="cuda")
        load(entry).call("route", [torch.from_numpy(logits).cuda()], [weights, ids])
        torch.cuda.synchronize()
        if entry["scoring"] == "softmax":
            # Selected by probability: the others' are all 0, a tie won by expert 0.
            want_ids, want = [[1, 0], [0, 1]], [[1.0, 0.0], [0.25, 0.25]]
        else:
            # Selected by logit, then a softmax over the two picks.
            want_ids, want = [[1, 2], [0, 1]], [[1.0, 0.0], [0.5, 0.5]]
        got_ids, got = ids.cpu().numpy().tolist(), weights.cpu().numpy()
        ok = got_ids == want_ids and np.array_equal(got, np.array(want, np.float32))
        print(f"  {entry['name']:28s} ids {got_ids} weights {got.tolist()} "
              f"{'ok' if ok else 'WRONG'}")
        if not ok:
            failures.append((entry["name"], got_ids, got.tolist()))
    assert not failures, failures


if __name__ == "__main__":
    run_tests(globals())
