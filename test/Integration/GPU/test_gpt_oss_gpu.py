"""gpt-oss exact on the GPU: moe-compile's CUDA artifacts of gpt-oss configs
(utils/build-gpu-artifacts.sh: gpt_oss, gpt_oss_kn with the checkpoint's own
weight layout, gpt_oss_odd with sizes no tile divides: H = 200, I = 70, whose
down projection (K = 70) takes the one-thread-per-element kernel, their
experts entries, and gpt_oss_wide with H = 1024, whose decode calls split K
over the warps before the bias), called through the C ABI and the torch op
with bf16 checkpoint tensors and non-zero router and expert biases, against
the transcription of gpt-oss's own MoE block (moe_mlir.gpt_oss_reference) and
the numpy oracle: 1 to 2048 tokens, experts without tokens, all tokens on one
expert, and the output poisoned with NaN first. The expert half alone
(gpt-oss-experts in artifacts/gpu) under every tensor-core kernel: decode,
wgmma and its variants, the staged mma.sync tile (wgmma=false), against the
fp32 oracle with biases. Skips without a GPU or the artifacts.

Run with pytest, or as `python3 test/Integration/GPU/test_gpt_oss_gpu.py`.
"""


from abi_checks import poisoned_call, relative_error  # noqa: E402
from device_artifacts import ARTIFACTS, artifact_index, load_layer as load, torch  # noqa: E402
from standalone import run_tests  # noqa: E402


import numpy as np  # noqa: E402

#: max |y - ref| / max |ref| for bf16 outputs.
BF16_BOUND = 2e-2
#: Tokens whose k-th and (k+1)-th router logits are closer than this (float64)
#: have no routing the f32 router must reproduce; they are left out.
TIE_GAP = 1e-3

def bf16(values):
    """float64 values rounded to bf16, as float64 (what the kernels see)."""
    return torch.from_numpy(np.asarray(values, np.float32)).bfloat16().double().numpy()


def draw(layer, tokens, seed):
    """bf16 checkpoint tensors (Hugging Face names and layouts) and tokens."""
    spec = layer.manifest["layer"]
    H, I, E = spec["hidden"], spec["intermediate"], spec["experts"]
    rng = np.random.default_rng(seed)
    ckpt = {
        "router.weight": bf16(rng.standard_normal((E, H)) * H ** -0.5),
        "router.bias": bf16(rng.standard_normal(E) * 0.5),
        "experts.gate_up_proj": bf16(rng.standard_normal((E, H, 2 * I)) * H ** -0.5),
        "experts.gate_up_proj_bias": bf16(rng.standard_normal((E, 2 * I)) * 0.5),
        "experts.down_proj": bf16(rng.standard_normal((E, I, H)) * I ** -0.5),
        "experts.down_proj_bias": bf16(rng.standard_normal((E, H)) * 0.5),
    }
    return ckpt, bf16(2.0 * rng.standard_normal((tokens, H)))


def on_gpu(ckpt):
    return {key: torch.from_numpy(value).bfloat16().cuda() for key, value in ckpt.items()}


def transcribed(x, ckpt, k):
    from moe_mlir import gpt_oss_reference

    return gpt_oss_reference.moe_block(
        x, ckpt["router.weight"], ckpt["router.bias"], ckpt["experts.gate_up_proj"],
        ckpt["experts.gate_up_proj_bias"], ckpt["experts.down_proj"],
        ckpt["experts.down_proj_bias"], experts_per_token=k)


def decided(x, ckpt, k):
    """The tokens whose top k no near-tie decides."""
    logits = np.sort(x @ ckpt["router.weight"].T + ckpt["router.bias"], axis=1)[:, ::-1]
    if k == logits.shape[1]:
        return np.ones(len(x), dtype=bool)
    return logits[:, k - 1] - logits[:, k] > TIE_GAP


def check_layer(name, tokens, seed, boost=()):
    """The layer `name` on `tokens` tokens against the transcription; `boost`
    experts get +50 router bias (every token goes to them)."""
    from moe_mlir import gpt_oss

    layer = load(name)
    k = layer.manifest["layer"]["k"]
    ckpt, x = draw(layer, tokens, seed)
    bias = ckpt["router.bias"].copy()
    bias[list(boost)] += 50.0
    ckpt["router.bias"] = bf16(bias)  # what the kernel sees
    rows = decided(x, ckpt, k)
    assert rows.mean() > 0.95, f"{name}: too many near-ties ({(~rows).sum()} tokens)"
    want = transcribed(x, ckpt, k)
    args = gpt_oss.layer_inputs(layer, on_gpu(ckpt),
                                x=torch.from_numpy(x).bfloat16().cuda())
    error = relative_error(poisoned_call(layer, args, tokens), want, rows)
    through_call = relative_error(layer(*args), want, rows)
    print(f"  {name:20s} T={tokens:5d} boost={list(boost)} rel err vs gpt-oss "
          f"{error:.2e} (Layer.__call__ {through_call:.2e})")
    return error <= BF16_BOUND and through_call <= BF16_BOUND, (name, tokens, error)


def test_layers_match_transcription():
    failures = []
    # The transcription gathers each selection's weights in float64 ([T, k, 2I, H]),
    # so the wide layer stays at fewer tokens.
    for name, token_counts in (("gpt_oss", (1, 7, 300, 2048)),
                               ("gpt_oss_kn", (1, 7, 300, 2048)),
                               ("gpt_oss_odd", (1, 7, 300, 2048)),
                               ("gpt_oss_wide", (1, 7, 64))):
        for tokens in token_counts:
            ok, what = check_layer(name, tokens, seed=tokens)
            if not ok:
                failures.append(what)
        # Four experts take every token; the others get none.
        ok, what = check_layer(name, 257, seed=3, boost=(1, 2, 5, 7))
        if not ok:
            failures.append(what)
    assert not failures, failures


def experts_call(name, x, ckpt, ids, weights):
    from moe_mlir import gpt_oss

    layer = load(name)
    args = gpt_oss.layer_inputs(layer, on_gpu(ckpt), x=torch.from_numpy(x).bfloat16().cuda(),
                                topk_ids=torch.from_numpy(ids).cuda(),
                                topk_weights=torch.from_numpy(weights).cuda())
    return layer, poisoned_call(layer, args, len(x))


def test_experts_entries():
    from moe_mlir import reference as ref

    failures = []
    for name in ("gpt_oss_experts", "gpt_oss_odd_experts"):
        layer = load(name)
        spec = layer.manifest["layer"]
        k, E = spec["k"], spec["experts"]
        for tokens in (1, 33, 1024):
            ckpt, x = draw(layer, tokens, seed=100 + tokens)
            # gpt-oss's own routing, given: the transcription's output.
            logits = x @ ckpt["router.weight"].T + ckpt["router.bias"]
            weights, ids = ref.route(logits, **ref.MODEL_RECIPES["gpt_oss"])
            _, y = experts_call(name, x, ckpt, ids, weights.astype(np.float32))
            rows = np.ones(tokens, dtype=bool)
            error = relative_error(y, transcribed(x, ckpt, k), rows)
            # Every selection on expert E - 1: one expert takes all rows.
            hot = np.full((tokens, k), E - 1, dtype=np.int32)
            _, y_hot = experts_call(name, x, ckpt, hot, weights.astype(np.float32))
            rows_of, offsets = ref.dispatch(hot, weights, num_experts=E)
            h = ref.grouped_matmul(ref.permute(x, rows_of, k),
                                   np.swapaxes(ckpt["experts.gate_up_proj"], 1, 2), offsets,
                                   bias=ckpt["experts.gate_up_proj_bias"])
            ys = ref.grouped_matmul(ref.glu(h, "swiglu_oai", "interleaved"),
                                    np.swapaxes(ckpt["experts.down_proj"], 1, 2), offsets,
                                    bias=ckpt["experts.down_proj_bias"])
            hot_error = relative_error(y_hot, ref.combine(ys, rows_of, weights), rows)
            print(f"  {name:20s} T={tokens:5d} rel err vs gpt-oss {error:.2e}, "
                  f"all on one expert vs oracle {hot_error:.2e}")
            if not (error <= BF16_BOUND and hot_error <= BF16_BOUND):
                failures.append((name, tokens, error, hot_error))
    assert not failures, failures


def test_experts_kernels_under_each_pipeline_option():
    from moe_mlir import torch_reference
    from moe_mlir.gpu import GpuModule

    entries = [e for e in artifact_index().values()
               if e["kind"] == "experts-gpt-oss"]
    assert entries, "artifacts/gpu has no gpt-oss-experts kernels"
    failures = []
    for entry in entries:
        H, I, E, k = entry["H"], entry["I"], entry["E"], entry["k"]
        module = GpuModule(ARTIFACTS / entry["library"])
        for T in (1, 7, 333, 4096):
            inputs = torch_reference.make_inputs(T, H, I, E, k, seed=700 + T)
            gen = torch.Generator(device="cuda")
            gen.manual_seed(T)
            biases = {name: (0.5 * torch.randn(E, n, generator=gen, device="cuda")).bfloat16()
                      for name, n in (("w13_bias", 2 * I), ("w2_bias", H))}
            y = torch.full_like(inputs["x"], float("nan"))
            module.call("experts", [inputs["x"], inputs["w13"], inputs["w2"],
                                    biases["w13_bias"], biases["w2_bias"], inputs["ids"],
                                    inputs["weights"]], [y])
            torch.cuda.synchronize()
            ref = torch_reference.reference_fp32(
                inputs["x"], inputs["w13"], inputs["w2"], inputs["ids"], inputs["weights"],
                activation="swiglu_oai", **biases)
            error = torch_reference.relative_error(y, ref)
            print(f"  {entry['name']:44s} T={T:5d} rel err {error:.2e}", flush=True)
            if not error <= BF16_BOUND:
                failures.append((entry["name"], T, error))
    assert not failures, failures


def test_torch_op():
    from moe_mlir import gpt_oss, torch_op

    layer = load("gpt_oss_kn")
    op = torch_op.register(layer, "gpt_oss_kn_cuda_test")
    ckpt, x = draw(layer, 24, seed=7)
    H = x.shape[1]
    xt = torch.from_numpy(x).bfloat16().cuda().reshape(2, 12, H)
    y = op(*gpt_oss.layer_inputs(layer, on_gpu(ckpt), x=xt))
    assert y.shape == (2, 12, H) and y.dtype == torch.bfloat16
    k = layer.manifest["layer"]["k"]
    rows = decided(x, ckpt, k)
    error = relative_error(y.reshape(24, H), transcribed(x, ckpt, k), rows)
    print(f"  torch op rel err vs gpt-oss {error:.2e}")
    assert error <= BF16_BOUND


if __name__ == "__main__":
    run_tests(dict(globals()))
