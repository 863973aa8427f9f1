"""The Hugging Face drop-in (moe_mlir.hf) on the CPU: small random models of
each family (hf_models), built from their transformers config classes, give
the same logits after ``hf.patch`` as before, in f32 and bf16; the weight
mapping, the checks that refuse a block the layer would compute differently,
and artifact reuse."""

import copy
import json

import pytest
import torch
from torch import nn

import hf_models
from moe_mlir import aot, cpu, hf, hf_blocks

#: Families whose blocks the layer computes on main today; gpt-oss below.
EXACT_FAMILIES = [f for f in hf_models.FAMILIES if f != "gpt_oss"]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
#: MoE blocks per model: DeepSeek-V3's first layer is dense.
BLOCKS = {"deepseek_v3": ["model.layers.1.mlp"]}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-artifacts")


def check_logits(family, dtype, artifacts):
    result = hf_models.compare(family, dtype, "cpu", artifacts)
    want_paths = BLOCKS.get(family, ["model.layers.0.mlp", "model.layers.1.mlp"])
    assert result["paths"] == want_paths
    patched = result["patched"]
    for path in want_paths:
        assert isinstance(patched.get_submodule(path), hf.CompiledMoEBlock)
    assert not hf.find_blocks(patched)
    # f32 routing is never unsettled here; in bf16 most positions are checked.
    assert result["checked"] == 1.0 if dtype == torch.float32 else result["checked"] >= 0.5
    assert result["error"] <= hf_models.TOLERANCE[dtype], result["error"]
    return result


@pytest.mark.parametrize("dtype", DTYPES, ids=list(DTYPES))
@pytest.mark.parametrize("family", EXACT_FAMILIES)
def test_patched_logits_match(family, dtype, artifacts):
    check_logits(family, DTYPES[dtype], artifacts)


@pytest.mark.parametrize("family", hf_models.FAMILIES)
def test_patched_block_outputs_match(family, artifacts, tmp_path):
    """Each block alone, on its own inputs: one token, an odd batch, and 9
    copies of one token (all on the same experts, the others empty)."""
    if family == "gpt_oss" and not gpt_oss_biases_supported(tmp_path):
        pytest.skip("the layer does not take gpt-oss's biases (test_gpt_oss checks "
                    "the refusal)")
    original = hf_models.model(family)
    patched = copy.deepcopy(original)
    hf.patch(patched, artifacts=artifacts)
    g = torch.Generator().manual_seed(7)
    one = torch.randn(1, 1, 64, generator=g)
    for x in (one, torch.randn(3, 7, 64, generator=g), one.expand(1, 9, 64).contiguous()):
        for path, block in hf.find_blocks(original):
            with torch.no_grad():
                want, got = block(x), patched.get_submodule(path)(x)
            if family == "gpt_oss":  # (hidden_states, router_scores)
                assert got[1] is None
                want, got = want[0], got[0]
            assert got.shape == want.shape == x.shape
            error = ((got - want).abs().max() / want.abs().max()).item()
            assert error <= 1e-5, (path, tuple(x.shape), error)


def gpt_oss_biases_supported(tmp_path) -> bool:
    """Whether moe-compile's gpt-oss layer takes the router and expert biases."""
    config = json.loads(hf_models.config("gpt_oss").to_json_string(use_diff=False))
    names = {t["name"] for t in aot.compile(config, name="probe", out_dir=tmp_path,
                                            emit=("manifest",)).manifest["tensors"]}
    return {"router_bias", "w13_bias", "w2_bias"} <= names


@pytest.mark.parametrize("dtype", DTYPES, ids=list(DTYPES))
def test_gpt_oss(dtype, artifacts, tmp_path):
    """gpt-oss's logits match where the layer takes its biases; elsewhere
    patching refuses, naming them, and leaves the model as it was."""
    if gpt_oss_biases_supported(tmp_path):
        check_logits("gpt_oss", DTYPES[dtype], artifacts)
        return
    net = hf_models.model("gpt_oss").to(DTYPES[dtype])
    with pytest.raises(hf.PatchError, match=r"router_bias.*router\.bias.*gpt-oss needs"):
        hf.patch(net, artifacts=artifacts)
    assert [type(b).__name__ for _, b in hf.find_blocks(net)] == ["GptOssMLP"] * 2


def test_wrong_mapping_fails_the_check(artifacts):
    """The f32 check sees a mapping mistake: gate and up swapped in one
    block, or one expert's down projection lost, moves the logits far past
    the tolerance."""
    result = check_logits("qwen3_moe", torch.float32, artifacts)
    patched, ids, want = result["patched"], result["ids"], result["want"]
    block = patched.get_submodule("model.layers.1.mlp")
    intermediate = block.w13.shape[1] // 2
    for corrupt in (lambda w13, w2: w13.copy_(w13.roll(intermediate, dims=1)),
                    lambda w13, w2: w2[3].zero_()):
        saved = (block.w13.clone(), block.w2.clone())
        with torch.no_grad():
            corrupt(block.w13, block.w2)
            got = patched(ids).logits.float()
            block.w13.copy_(saved[0]), block.w2.copy_(saved[1])
        error = ((got - want).abs().max() / want.abs().max()).item()
        assert error > 100 * hf_models.TOLERANCE[torch.float32], error


@pytest.mark.parametrize("layout,dtype", [("kn", "f32"), ("panels", "f32"),
                                          ("panels_vnni", "bf16")])
def test_packed_weight_layouts(layout, dtype, tmp_path):
    """weight_layout packs the mapped weights once, at patch time."""
    original = hf_models.model("mixtral").to(DTYPES[dtype])
    patched = copy.deepcopy(original)
    hf.patch(patched, artifacts=tmp_path, layer={"weight_layout": layout})
    block = patched.get_submodule("model.layers.0.mlp")
    assert block.layer.manifest["layer"]["weight_layout"] == layout
    assert tuple(block.w13.shape) != (8, 96, 64)
    ids = hf_models.tokens()
    with torch.no_grad():
        want, got = original(ids).logits.float(), patched(ids).logits.float()
    checked = ~hf_models.unsettled(original, patched, "mixtral", ids)
    assert checked.float().mean() >= 0.5
    error = ((got - want).abs().amax(-1)[checked].max() / want.abs().max()).item()
    assert error <= hf_models.TOLERANCE[DTYPES[dtype]], error


def test_artifacts_are_reused(tmp_path):
    """A folder's matching artifact is loaded, not compiled again; blocks of
    one model share one op."""
    first = hf_models.model("olmoe")
    hf.patch(first, artifacts=tmp_path)
    libraries = sorted(tmp_path.glob("libmoe_*.so"))
    assert len(libraries) == 1
    second = hf_models.model("olmoe", seed=1)
    hf.patch(second, artifacts=tmp_path)
    assert sorted(tmp_path.glob("libmoe_*.so")) == libraries
    ops = {m.op for net in (first, second) for m in net.modules()
           if isinstance(m, hf.CompiledMoEBlock)}
    assert len(ops) == 1
    # A bf16 model needs a layer of its own.
    hf.patch(hf_models.model("olmoe").to(torch.bfloat16), artifacts=tmp_path)
    assert len(list(tmp_path.glob("libmoe_*.so"))) == 2


def test_prebuilt_artifacts_need_no_compiler(tmp_path, monkeypatch):
    """compile_artifacts writes what patch then finds on a machine without
    moe-compile (the GPU machine's case, here on the CPU)."""
    made = hf.compile_artifacts(hf_models.model("deepseek_v3"), tmp_path, target="cpu")
    assert [a.name for a in made] == ["hf_deepseek_v3_f32_cpu_0"]
    monkeypatch.setenv("MOE_MLIR_BUILD_DIR", str(tmp_path / "no-build"))
    original = hf_models.model("deepseek_v3", seed=3)
    patched = copy.deepcopy(original)
    hf.patch(patched, artifacts=tmp_path)
    ids = hf_models.tokens()
    with torch.no_grad():
        want, got = original(ids).logits, patched(ids).logits
    assert ((got - want).abs().max() / want.abs().max()).item() <= 1e-5
    # A layer the folder lacks needs the compiler, and says so, with why the
    # folder's layers of the family do not compute the block.
    with pytest.raises(hf.PatchError, match=r"hf_deepseek_v3_f32_cpu_0: dtype = f32 "
                       r"\(the block: bf16\)\), and compiling one failed: moe-compile not found"):
        hf.patch(hf_models.model("deepseek_v3").to(torch.bfloat16), artifacts=tmp_path)
    # With no layer of the family there, the compiler's error as it is.
    with pytest.raises(cpu.CompileError, match="moe-compile not found"):
        hf.patch(hf_models.model("olmoe"), artifacts=tmp_path)


def test_compiled_block_traces_in_one_graph(artifacts):
    net = hf_models.model("mixtral")
    hf.patch(net, artifacts=artifacts)
    block = net.get_submodule("model.layers.0.mlp")
    x = torch.randn(2, 5, 64)
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), block(x))


def test_block_the_config_contradicts_is_refused(tmp_path):
    """The compiled layer comes from the config; a block whose modules say
    otherwise (here k) is refused, and the model is left as it was."""
    net = hf_models.model("mixtral")
    net.model.layers[1].mlp.gate.top_k = 3
    with pytest.raises(hf.PatchError, match=r"model\.layers\.1\.mlp: .*k = 2 \(the block: 3\)"):
        hf.patch(net, artifacts=tmp_path)
    assert len(hf.find_blocks(net)) == 2


def test_unknown_layout_is_refused(tmp_path):
    net = hf_models.model("olmoe")
    experts = net.model.layers[0].mlp.experts
    experts.gate_up_proj_bias = nn.Parameter(torch.zeros(8, 80))
    with pytest.raises(hf.HFLayoutError, match=r"model\.layers\.0\.mlp\.experts: holds "
                                               r"\['down_proj', 'gate_up_proj', "
                                               r"'gate_up_proj_bias'\]"):
        hf.patch(net, artifacts=tmp_path)


def test_refusals(tmp_path):
    net = hf_models.model("mixtral")
    net.config.output_router_logits = True
    with pytest.raises(hf.PatchError, match="output_router_logits"):
        hf.patch(net, artifacts=tmp_path)
    net.config.output_router_logits = False
    with pytest.raises(hf.PatchError, match="'dtype' is the weights' dtype"):
        hf.patch(net, artifacts=tmp_path, layer={"dtype": "bf16"})
    with pytest.raises(hf.PatchError, match=r"k = 3 \(the block: 2\)"):
        hf.patch(net, artifacts=tmp_path, layer={"k": 3})
    with pytest.raises(hf.PatchError, match="has no transformers config"):
        hf.patch(nn.Sequential(nn.Linear(4, 4)), artifacts=tmp_path)
    with pytest.raises(hf.PatchError, match="no sparse MoE block"):
        hf.patch(transformers_dense_model(), artifacts=tmp_path)
    with pytest.raises(hf.PatchError, match="expert weights of dtype torch.float64"):
        hf.patch(hf_models.model("olmoe").double(), artifacts=tmp_path)


def transformers_dense_model():
    import transformers

    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2))


def test_jitter_in_training_is_refused(tmp_path):
    """Mixtral's router jitter multiplies the inputs by noise in training."""
    cfg = hf_models.config("mixtral")
    cfg.router_jitter_noise = 0.1
    import transformers

    net = transformers.MixtralForCausalLM(cfg).eval()
    hf.patch(net, artifacts=tmp_path)
    ids = hf_models.tokens()
    with torch.no_grad():
        net(ids)
        net.train()
        with pytest.raises(hf.PatchError, match="router jitter.*model.eval"):
            net(ids)


# The mapping functions on their own.

def test_fused_and_transposed_layouts():
    g = torch.Generator().manual_seed(0)
    gate_up = torch.randn(3, 10, 4, generator=g)       # [E, 2I, H]
    down = torch.randn(3, 4, 5, generator=g)           # [E, H, I]
    assert torch.equal(hf_blocks.w13_from_fused(gate_up, False), gate_up)
    assert torch.equal(hf_blocks.w13_from_fused(gate_up.transpose(1, 2), True), gate_up)
    assert torch.equal(hf_blocks.w2_from_fused(down.transpose(1, 2), True), down)


def test_glu_orders():
    """gpt-oss interleaves gate and up along 2I (gate at even columns)."""
    gate, up = torch.arange(4.0), 10 + torch.arange(4.0)
    interleaved = torch.stack([gate, up], dim=1).reshape(1, 8)
    concatenated = torch.cat([gate, up]).reshape(1, 8)
    assert torch.equal(hf_blocks.reorder_glu(interleaved, "interleaved", "concatenated", 1),
                       concatenated)
    assert torch.equal(hf_blocks.reorder_glu(concatenated, "concatenated", "interleaved", 1),
                       interleaved)


class MixtralSparseMoeBlock(nn.Module):
    """transformers 4.x's layout: a Linear router and per-expert MLPs named
    w1 (gate), w3 (up), w2 (down)."""

    def __init__(self, hidden=8, intermediate=6, experts=4):
        super().__init__()
        self.top_k = 2
        self.gate = nn.Linear(hidden, experts, bias=False)

        class Expert(nn.Module):
            def __init__(self):
                super().__init__()
                self.w1 = nn.Linear(hidden, intermediate, bias=False)
                self.w3 = nn.Linear(hidden, intermediate, bias=False)
                self.w2 = nn.Linear(intermediate, hidden, bias=False)
                self.act_fn = nn.SiLU()

        self.experts = nn.ModuleList(Expert() for _ in range(experts))


def test_per_expert_modules():
    block = MixtralSparseMoeBlock()
    weights = hf_blocks.read_block(block, "mlp", hidden=8)
    assert (weights.family, weights.experts, weights.intermediate) == ("mixtral", 4, 6)
    assert weights.facts == {"k": 2, "activation": "silu"}
    for e, expert in enumerate(block.experts):
        assert torch.equal(weights.tensors["w13"][e],
                           torch.cat([expert.w1.weight, expert.w3.weight]))
        assert torch.equal(weights.tensors["w2"][e], expert.w2.weight)
    block.experts[2].w3 = nn.Linear(8, 5, bias=False)
    with pytest.raises(hf.HFLayoutError, match=r"mlp\.experts\.2: gate \(6, 8\), up \(5, 8\)"):
        hf_blocks.read_block(block, "mlp", hidden=8)
