"""Whole MoE layers (moe.layer through the CPU pipeline) against reference.layer.

bf16 layers take bf16 activations and weights; the oracle gets the same bf16-rounded
values in fp64, so the bound of 1e-2 covers the kernel's f32 intermediates and the final
rounding of y to bf16, not a difference in inputs.
"""

import math

import numpy as np
import pytest

from harness import assert_close, call, draw_robust, normal, routing_is_robust, storage
from moe_mlir import cpu, irgen, pack
from moe_mlir import reference as ref

DTYPES = ("f32", "bf16")
_ROUTE_KEYS = {"k", *irgen.ROUTING_ATTRS}
_CAPACITY_KEYS = set(irgen.CAPACITY_ATTRS)


class Layer:
    """A layer configuration: sizes, dtype, optional bias/shared expert and attributes."""

    def __init__(self, T, H, E, I, attrs, dtype="f32", bias=False, shared=None,
                 w13_scale=1.0, bias_fn=None, inputs_fn=None, weight_layout=None):
        self.T, self.H, self.E, self.I = T, H, E, I
        self.attrs = dict(attrs)
        self.bias = bias or bias_fn is not None
        self.dtype, self.shared = dtype, shared
        self.w13_scale = w13_scale
        self.bias_fn = bias_fn      # rng, E -> bias, to force a routing pattern
        self.inputs_fn = inputs_fn  # rng, inputs dict -> None, edits inputs in place
        self.weight_layout = weight_layout  # of w13 and w2 in the kernel (moe_mlir.pack)

    def ir(self, dynamic=False):
        return irgen.layer_ir(None if dynamic else self.T, self.H, self.E, self.I,
                              dtype=self.dtype, bias=self.bias, shared=self.shared,
                              weight_layout=self.weight_layout, **self.attrs)

    def draw(self, rng, T):
        """Random inputs (float32 arrays, already rounded to bf16 for bf16 layers)."""
        H, E, I, dt = self.H, self.E, self.I, self.dtype
        inputs = {
            "x": normal(rng, (T, H), dt),
            "router": normal(rng, (E, H), dt, scale=1.0 / math.sqrt(H)),
            "w13": normal(rng, (E, 2 * I, H), dt, scale=self.w13_scale / math.sqrt(H)),
            "w2": normal(rng, (E, H, I), dt, scale=1.0 / math.sqrt(I)),
        }
        if self.bias:
            inputs["bias"] = (self.bias_fn(rng, E) if self.bias_fn
                              else normal(rng, (E,), scale=0.5))
        if self.shared is not None:
            Is, gated = self.shared
            inputs["shared_w13"] = normal(rng, (2 * Is, H), dt,
                                          scale=self.w13_scale / math.sqrt(H))
            inputs["shared_w2"] = normal(rng, (H, Is), dt, scale=1.0 / math.sqrt(Is))
            if gated:
                inputs["shared_gate"] = normal(rng, (1, H), dt, scale=1.0 / math.sqrt(H))
        if self.inputs_fn:
            self.inputs_fn(rng, inputs)
        return inputs

    def route_kw(self):
        return {n: v for n, v in self.attrs.items() if n in _ROUTE_KEYS}

    def capacity_kw(self):
        return {n: v for n, v in self.attrs.items() if n in _CAPACITY_KEYS}

    def logits(self, inputs):
        return inputs["x"].astype(np.float64) @ inputs["router"].astype(np.float64).T

    def robust(self, rng, inputs):
        return routing_is_robust(rng, self.logits(inputs), inputs.get("bias"),
                                 self.route_kw(), self.capacity_kw())

    def reference(self, inputs):
        """(y, weights, ids, rows, offsets) of the oracle."""
        kwargs = {n: inputs[n] for n in ("bias", "shared_w13", "shared_w2", "shared_gate")
                  if n in inputs}
        y, w, ids = ref.layer_with_routing(inputs["x"], inputs["router"], inputs["w13"],
                                           inputs["w2"], **kwargs, **self.attrs)
        rows, offsets = ref.dispatch(ids, w, num_experts=self.E, **self.capacity_kw())
        return y, w, ids, rows, offsets

    def kernel_inputs(self, inputs):
        order = ["x", "router", "w13", "w2", "bias", "shared_w13", "shared_w2", "shared_gate"]
        packed = {n: pack.to_layout(inputs[n], self.weight_layout or "nk")
                  for n in ("w13", "w2")}
        return [inputs[n] if n == "bias" else storage(packed.get(n, inputs[n]), self.dtype)
                for n in order if n in inputs]

    def describe(self, T):
        return (f"layer T={T} H={self.H} E={self.E} I={self.I} {self.dtype} bias={self.bias} "
                f"shared={self.shared} weight_layout={self.weight_layout} {self.attrs}")


def run_layer(compile_ir, rng, pipeline, layer, tokens=None, dynamic=False, check=None):
    """Compiles ``layer`` with ``pipeline`` (a PIPELINES name) and compares y with the
    oracle for each token count.

    ``check(reference_results)`` may assert that the drawn inputs give the routing
    pattern a test is about (so a test bug cannot pass silently).
    """
    module = compile_ir(layer.ir(dynamic), pipeline)
    for T in tokens or [layer.T]:
        inputs = draw_robust(rng, lambda: layer.draw(rng, T), lambda i: layer.robust(rng, i),
                             layer.describe(T))
        want = layer.reference(inputs)
        if check is not None:
            check(want)
        (y,) = call(module, "layer", layer.kernel_inputs(inputs), [((T, layer.H), layer.dtype)])
        _, _, ids, _, offsets = want
        assert_close(cpu.from_storage(y, layer.dtype), want[0], layer.dtype,
                     f"{layer.describe(T)} pipeline={pipeline}\n"
                     f"reference ids={ids.tolist()}\n"
                     f"reference offsets={offsets.tolist()}")


# ----------------------------------------------------------------------------------------
# Model recipes
# ----------------------------------------------------------------------------------------

# Small shapes for each recipe; E is large enough for the recipe's k and groups.
RECIPE_SIZES = {
    "mixtral": dict(T=32, H=32, E=8, I=16),
    "qwen3": dict(T=32, H=32, E=16, I=8),
    "olmoe": dict(T=32, H=32, E=16, I=8),
    "deepseek_v3": dict(T=32, H=32, E=32, I=8, shared=(16, False)),
    # w13_scale 4 drives gate and up projections past swiglu_oai's clamp of 7.
    "gpt_oss": dict(T=32, H=32, E=16, I=8, w13_scale=4.0),
    "switch": dict(T=32, H=32, E=8, I=16),
}


def recipe(model, dtype="f32", **changes):
    sizes = {**RECIPE_SIZES[model], **changes}
    attrs = dict(irgen.MODEL_LAYERS[model])
    bias = attrs.pop("bias", False)
    attrs.update(sizes.pop("attrs", {}))
    return Layer(attrs=attrs, dtype=dtype, bias=bias, **sizes)


def test_model_layers_match_reference_recipes():
    """MODEL_LAYERS is the reference recipes plus FFN settings (and Switch's extras)."""
    for model, routing in ref.MODEL_RECIPES.items():
        layer = irgen.MODEL_LAYERS[model]
        assert {n: layer[n] for n in routing} == routing, model
        for name, value in ref.MODEL_FFN.get(model, {}).items():
            assert layer[name] == value, (model, name)
        assert layer.get("bias", False) == (model in ref.MODEL_REQUIRES_BIAS), model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", sorted(RECIPE_SIZES))
def test_model_recipe(compile_ir, rng, pipeline, model, dtype):
    run_layer(compile_ir, rng, pipeline, recipe(model, dtype))


@pytest.mark.parametrize("weight_layout,dtype",
                         [("kn", "f32"), ("panels", "f32"), ("panels", "bf16"),
                          ("panels_vnni", "bf16")])
@pytest.mark.parametrize("model", sorted(RECIPE_SIZES))
def test_model_recipe_packed_weights(compile_ir, rng, pipeline, model, weight_layout, dtype):
    """The routed experts' weights in the kn, panels and panels_vnni layouts (I = 16:
    whole panels), for 1 token, the recipe's 32 and 45 (rows in blocks of 12, 4 and 1)."""
    layer = recipe(model, dtype, I=16, weight_layout=weight_layout)
    run_layer(compile_ir, rng, pipeline, layer, tokens=[1, 32, 45], dynamic=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shared_expert_with_gate(compile_ir, rng, pipeline, dtype):
    """Qwen2-MoE style: softmax top-4 without renormalization plus a gated shared expert."""
    layer = Layer(32, 32, 16, 8, dict(k=4, scoring="softmax"), dtype=dtype, shared=(24, True))
    run_layer(compile_ir, rng, pipeline, layer)


@pytest.mark.parametrize("dtype", DTYPES)
def test_switch_capacity_drops_tokens(compile_ir, rng, pipeline, dtype):
    """A tight capacity (C = 2 for 32 tokens over 8 experts) drops most tokens."""
    layer = recipe("switch", dtype, attrs=dict(capacity_factor=0.5))

    def check(want):
        assert int(want[4][-1]) < 32, "the capacity should have dropped tokens"

    run_layer(compile_ir, rng, pipeline, layer, check=check)


@pytest.mark.parametrize("policy", ["position", "score"])
def test_capacity_drop_policy(compile_ir, rng, pipeline, policy):
    layer = recipe("mixtral", attrs=dict(capacity=5, drop_policy=policy))
    run_layer(compile_ir, rng, pipeline, layer)


def test_gshard_random_second_expert(compile_ir, rng, pipeline):
    layer = Layer(32, 32, 8, 16, dict(k=2, renormalize=True, second_expert_policy="random",
                                      seed=12345))

    def check(want):
        assert np.any(want[2][:, 1] < 0), "some second choices should be dropped"

    run_layer(compile_ir, rng, pipeline, layer, check=check)


@pytest.mark.parametrize("layout", ref.GLU_LAYOUTS)
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_layer_activation(compile_ir, rng, pipeline, activation, layout):
    layer = Layer(16, 24, 8, 12, dict(k=2, renormalize=True, activation=activation,
                                      glu_layout=layout), w13_scale=3.0)
    run_layer(compile_ir, rng, pipeline, layer)


def test_layer_swiglu_oai_attributes(compile_ir, rng, pipeline):
    layer = Layer(16, 24, 8, 12, dict(ref.MODEL_RECIPES["gpt_oss"], activation="swiglu_oai",
                                      glu_layout="interleaved", alpha=1.25, limit=2.0),
                  shared=(6, True), w13_scale=3.0)
    run_layer(compile_ir, rng, pipeline, layer)


# ----------------------------------------------------------------------------------------
# Edge cases
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", ["mixtral", "deepseek_v3", "switch", "gpt_oss"])
def test_one_token(compile_ir, rng, pipeline, model, dtype):
    run_layer(compile_ir, rng, pipeline, recipe(model, dtype, T=1))


def _expert_counts(want, E):
    offsets = want[4]
    return np.diff(offsets)[:E]


@pytest.mark.parametrize("dtype", DTYPES)
def test_experts_with_zero_tokens(compile_ir, rng, pipeline, dtype):
    """A strongly negative bias keeps experts 1, 4, 5 and 6 from being chosen."""
    starved = [1, 4, 5, 6]

    def bias_fn(rng, E):
        bias = np.zeros(E, dtype=np.float32)
        bias[starved] = -20.0
        return bias

    layer = Layer(24, 32, 8, 16, dict(k=2, renormalize=True), dtype=dtype, bias_fn=bias_fn)

    def check(want):
        counts = _expert_counts(want, 8)
        assert np.all(counts[starved] == 0) and np.all(np.delete(counts, starved) > 0), counts

    run_layer(compile_ir, rng, pipeline, layer, check=check)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2])
def test_all_tokens_on_one_expert_by_bias(compile_ir, rng, pipeline, k, dtype):
    def bias_fn(rng, E):
        bias = normal(rng, (E,), scale=0.1)
        bias[5] = 20.0
        return bias

    layer = Layer(24, 32, 8, 16, dict(k=k, renormalize=True), dtype=dtype, bias_fn=bias_fn)

    def check(want):
        assert np.all(want[2][:, 0] == 5), want[2]

    run_layer(compile_ir, rng, pipeline, layer, check=check)


def _favour_expert_3(rng, inputs):
    """x[:, 0] = 4 and router[:, 0] = 0 except router[3, 0] = 3: expert 3's logit is about
    12 above the others for every token (values exact in bf16)."""
    inputs["x"][:, 0] = 4.0
    inputs["router"][:, 0] = 0.0
    inputs["router"][3, 0] = 3.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("capacity_factor", [None, 1.25], ids=["no_capacity", "capacity"])
def test_all_tokens_on_one_expert_by_router(compile_ir, rng, pipeline, capacity_factor,
                                            dtype):
    """Switch routing where every token prefers expert 3; with a capacity it overflows and
    all but the first C tokens are dropped."""
    attrs = dict(k=1, scoring="softmax", activation="relu")
    if capacity_factor:
        attrs.update(capacity_factor=capacity_factor, drop_policy="position")
    layer = Layer(32, 32, 8, 16, attrs, dtype=dtype, inputs_fn=_favour_expert_3)

    def check(want):
        counts = _expert_counts(want, 8)
        expected = math.ceil(1.25 * 32 / 8) if capacity_factor else 32
        assert counts[3] == expected and counts.sum() == expected, counts

    run_layer(compile_ir, rng, pipeline, layer, check=check)


@pytest.mark.parametrize("scoring,renormalize", [("softmax", True), ("sigmoid", False),
                                                 ("softmax_topk", False)])
def test_k_equals_num_experts(compile_ir, rng, pipeline, scoring, renormalize):
    layer = Layer(16, 16, 4, 8, dict(k=4, scoring=scoring, renormalize=renormalize))
    run_layer(compile_ir, rng, pipeline, layer)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sizes_not_multiple_of_tiles(compile_ir, rng, pipeline, dtype):
    layer = Layer(11, 13, 5, 7, dict(k=2, scoring="sigmoid", renormalize=True), dtype=dtype,
                  bias=True, shared=(5, True))
    run_layer(compile_ir, rng, pipeline, layer)


def test_sizes_not_multiple_of_tiles_groups(compile_ir, rng, pipeline):
    layer = Layer(17, 13, 12, 7, dict(k=3, scoring="sigmoid", n_group=3, topk_group=2,
                                      group_score="max", renormalize=True, scale=1.5),
                  bias=True, shared=(3, False))
    run_layer(compile_ir, rng, pipeline, layer)


DYNAMIC_CASES = [
    ("mixtral_f32", lambda: recipe("mixtral")),
    ("deepseek_v3_bf16", lambda: recipe("deepseek_v3", "bf16")),
    ("switch_capacity_factor_f32", lambda: recipe("switch")),
    ("gpt_oss_bf16", lambda: recipe("gpt_oss", "bf16")),
]


@pytest.mark.parametrize("make", [c[1] for c in DYNAMIC_CASES], ids=[c[0] for c in DYNAMIC_CASES])
def test_dynamic_token_dimension(compile_ir, rng, pipeline, make):
    """One module with x: tensor<?xHx...>, run with several T (capacity_factor makes the
    capacity depend on the runtime T)."""
    run_layer(compile_ir, rng, pipeline, make(), tokens=[1, 7, 33, 64], dynamic=True)
