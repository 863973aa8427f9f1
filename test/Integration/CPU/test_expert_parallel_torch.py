"""moe_mlir.expert_parallel.ExpertParallelExperts itself, on the CPU: each rank a
process of a gloo group, the all-to-alls real collectives, the expert and combine
kernels compiled for the CPU. gpt-oss's experts (interleaved swiglu_oai, gate/up and
down biases) over 2 and 4 ranks against the oracle, every buffer the kernels write
poisoned with NaN first; and the constructor naming biases of the wrong shape.
"""

import pathlib
import tempfile

import numpy as np
import pytest

from harness import assert_close, normal
from moe_mlir import cpu, irgen
from moe_mlir import expert_parallel as ep
from moe_mlir import reference as ref

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

E, H, I, K = 8, 16, 12, 4


class CpuKernels:
    """A CPU module with the call of moe_mlir.gpu.GpuModule: torch CPU tensors
    in, the output tensors filled."""

    def __init__(self, path, signatures):
        self.module = cpu.CompiledModule(path, signatures)

    def call(self, name, inputs, outputs):
        results = self.module.call(name, [t.contiguous().numpy() for t in inputs],
                                   [cpu.TensorSpec(tuple(o.shape), "f32") for o in outputs])
        for out, result in zip(outputs, results):
            out.copy_(torch.from_numpy(result))


def rank_main(rank, ranks, store, modules, weights, tokens, results):
    """One rank: its experts' weights and biases, its own tokens; saves its output."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=ranks)
    try:
        owned = ep.owned_experts(E, ranks, rank)
        local = {key: torch.from_numpy(np.ascontiguousarray(value[owned]))
                 for key, value in weights.items()}
        layer = ep.ExpertParallelExperts(
            CpuKernels(*modules["experts"]), CpuKernels(*modules["combine"]),
            local["w13"], local["w2"], E, poison=True, w13_bias=local["b13"],
            w2_bias=local["b2"])
        x, ids, w = (torch.from_numpy(a) for a in tokens[rank])
        np.save(pathlib.Path(results) / f"{rank}.npy", layer(x, ids, w).numpy())
    finally:
        dist.destroy_process_group()


def compiled(compile_ir, ir):
    module = compile_ir(ir)
    return str(module.path), module.signatures


@pytest.mark.parametrize("ranks, sizes", [(2, [9, 5]), (4, [3, 0, 7, 1])])
def test_gloo_ranks_gpt_oss_biases(compile_ir, rng, ranks, sizes):
    import torch.multiprocessing as mp

    total = sum(sizes)
    x = normal(rng, (total, H), scale=2.0)
    weights = {"w13": normal(rng, (E, 2 * I, H), scale=0.5),
               "w2": normal(rng, (E, H, I), scale=0.25),
               "b13": normal(rng, (E, 2 * I), scale=0.5),
               "b2": normal(rng, (E, H), scale=0.5)}
    ids = np.stack([rng.permutation(E)[:K] for _ in range(total)]).astype(np.int32)
    ids = ids.reshape(total, K)
    w = rng.random((total, K)).astype(np.float32)
    rows, offsets = ref.dispatch(ids, num_experts=E)
    h = ref.grouped_matmul(ref.permute(x, rows, K), weights["w13"], offsets,
                           bias=weights["b13"])
    ys = ref.grouped_matmul(ref.glu(h, "swiglu_oai", "interleaved"), weights["w2"], offsets,
                            bias=weights["b2"])
    want = ref.combine(ys, rows, w)

    L = ep.local_experts(E, ranks)
    modules = {
        "experts": compiled(compile_ir, irgen.experts_ir(
            None, H, E, I, 1, dtype="f32", num_local_experts=L, activation="swiglu_oai",
            glu_layout="interleaved", expert_bias=True)),
        "combine": compiled(compile_ir, irgen.combine_ir(None, H, None, K, prescaled=True)),
    }
    starts = np.concatenate([[0], np.cumsum(sizes)])
    tokens = [(x[a:b], ids[a:b], w[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    with tempfile.TemporaryDirectory() as scratch:
        store = pathlib.Path(scratch) / "store"
        mp.spawn(rank_main, args=(ranks, str(store), modules, weights, tokens, scratch),
                 nprocs=ranks, join=True)
        outputs = [np.load(pathlib.Path(scratch) / f"{rank}.npy") for rank in range(ranks)]
    assert [len(o) for o in outputs] == sizes
    assert_close(np.concatenate(outputs), want, "f32", f"gpt-oss over {ranks} gloo ranks")


def test_constructor_names_biases_of_the_wrong_shape(tmp_path):
    # One rank holds all E experts: their biases are [E, 2I] and [E, H].
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        w13, w2 = torch.zeros(E, 2 * I, H), torch.zeros(E, H, I)

        def make(b13, b2):
            return ep.ExpertParallelExperts(None, None, w13, w2, E, w13_bias=b13,
                                            w2_bias=b2)

        with pytest.raises(ValueError, match="give both w13_bias and w2_bias"):
            make(torch.zeros(E, 2 * I), None)
        with pytest.raises(ValueError, match=r"w13_bias must be \(8, 24\) \(its 8 experts' "
                                             r"rows\), got \(8, 12\)"):
            make(torch.zeros(E, I), torch.zeros(E, H))
        with pytest.raises(ValueError, match=r"w2_bias must be \(8, 16\) .*got \(4, 16\)"):
            make(torch.zeros(E, 2 * I), torch.zeros(E // 2, H))
        assert len(make(torch.zeros(E, 2 * I), torch.zeros(E, H)).biases) == 2
    finally:
        dist.destroy_process_group()
