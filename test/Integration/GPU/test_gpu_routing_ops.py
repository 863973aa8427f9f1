"""The training-side routing ops lowered for the GPU, against the numpy fp64 oracle,
on a GPU machine.

Artifacts come from `bash utils/build-gpu-artifacts.sh` (no GPU needed); the
checks need torch with CUDA and skip cleanly elsewhere. Run them with pytest,
or on a machine without pytest as
`python3 test/Integration/GPU/test_gpu_routing_ops.py`.

- Capacity-limited `moe.dispatch`, both drop policies, a capacity factor, an
  expert map, capacity 1: rows and offsets exactly as `reference.dispatch`,
  on 1 token, a few tokens (one block) and hundreds (the chunked sort), an
  expert over capacity, every token on one expert, dropped (-1) ids, and tied
  weights (the score policy's tie order).
- `moe.expert_choice`: weights, rows and offsets, with T below and above the
  capacity, and identical tokens (ties go to the lower token).
- `moe.aux_loss` and `moe.z_loss`, including ids outside [0, E), every token
  on one expert and large logits.
- Whole bf16 Switch and GShard layers (capacity-limited) against
  `reference.layer`.

Every output is poisoned first (NaN, or -7 for integers), so each element
must be written.
"""


from device_artifacts import entries_of, torch  # noqa: E402
from device_artifacts import load_module as load  # noqa: E402
from standalone import run_tests  # noqa: E402

import numpy as np  # noqa: E402


#: Relative error bound (max |y - ref| / max |ref|) for bf16 layer outputs.
BF16_BOUND = 2e-2
#: Poison for integer outputs: no kernel writes it.
POISON = -7


def cuda(array):
    return torch.from_numpy(np.ascontiguousarray(array)).cuda()


def poisoned(shape, dtype):
    fill = float("nan") if dtype.is_floating_point else POISON
    return torch.full(shape, fill, dtype=dtype, device="cuda")


def call(entry, inputs, outputs):
    load(entry).call(entry["function"], [cuda(a) for a in inputs], outputs)
    torch.cuda.synchronize()
    return [o.cpu().numpy() for o in outputs]


# ----------------------------------------------------------------------------------------
# Capacity-limited dispatch
# ----------------------------------------------------------------------------------------


def _dispatch_cases(k, E, rng):
    """(label, ids [T, k] int32, weights [T, k] float32) per case."""
    def random_ids(T):
        return np.stack([rng.permutation(E)[:k] for _ in range(T)]).astype(np.int32)

    def weights(T, ties=False):
        w = rng.random((T, k))
        if ties:  # few distinct values: the tie order decides
            w = np.round(w * 4) / 4
        return w.astype(np.float32)

    cases = []
    for T in (1, 7, 300, 2000):
        cases.append((f"T={T}", random_ids(T), weights(T)))
    one = np.zeros((300, k), dtype=np.int32)
    one[:, 0] = 5 % E
    if k > 1:
        one[:, 1:] = random_ids(300)[:, 1:]
        one[one[:, 1] == one[:, 0], 1] = (one[one[:, 1] == one[:, 0], 0] + 1) % E
    cases.append(("all tokens on one expert", one, weights(300)))
    dropped = random_ids(200)
    dropped[rng.random(200) < 0.4, k - 1] = -1  # GShard's dropped second choices
    dropped[3, 0] = E + 3                       # and an id outside [0, E)
    cases.append(("dropped ids", dropped, weights(200)))
    cases.append(("tied weights", random_ids(300), weights(300, ties=True)))
    return cases


def test_capacity_dispatch_matches_oracle():
    from moe_mlir import reference

    failures = []
    for entry in entries_of("capacity-dispatch"):
        k, E, attrs = entry["k"], entry["E"], entry["attrs"]
        L = entry.get("L", E)
        score = attrs["drop_policy"] == "score"
        rng = np.random.default_rng(17)
        for label, ids, weights in _dispatch_cases(k, E, rng):
            T = ids.shape[0]
            inputs = [ids] + ([weights] if score else [])
            expert_map = None
            if L != E:
                # Experts 0, 2, 4, ... are local, in reverse order.
                expert_map = np.full(E, -1, dtype=np.int32)
                expert_map[0::2] = np.arange(L)[::-1]
                inputs.append(expert_map)
            rows, offsets = call(entry, inputs, [poisoned((T * k,), torch.int32),
                                                 poisoned((L + 1,), torch.int32)])
            want_rows, want_offsets = reference.dispatch(
                ids, weights, num_experts=E, expert_map=expert_map,
                num_local_experts=L if expert_map is not None else None, **attrs)
            ok = np.array_equal(rows, want_rows) and np.array_equal(offsets, want_offsets)
            kept = int(want_offsets[-1])
            print(f"  {entry['name']:28s} {label:26s} kept {kept:4d} of {T * k:5d} "
                  f"{'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures.append((entry["name"], label, offsets.tolist(),
                                 want_offsets.tolist()))
    assert not failures, failures


# ----------------------------------------------------------------------------------------
# Expert-choice routing
# ----------------------------------------------------------------------------------------


def test_expert_choice_matches_oracle():
    from moe_mlir import reference

    failures = []
    for entry in entries_of("expert-choice"):
        E, capacity = entry["E"], entry["capacity"]
        rng = np.random.default_rng(23)
        cases = [(f"T={T}", rng.standard_normal((T, E)).astype(np.float32))
                 for T in (1, 3, 300)]
        same = np.repeat(rng.standard_normal((1, E)), 50, axis=0).astype(np.float32)
        cases.append(("identical tokens", same))
        for label, logits in cases:
            T = logits.shape[0]
            C = min(capacity, T)
            weights, rows, offsets = call(entry, [logits], [
                poisoned((T, E), torch.float32), poisoned((E * C,), torch.int32),
                poisoned((E + 1,), torch.int32)])
            want_w, want_rows, want_offsets = reference.expert_choice(logits,
                                                                      capacity=capacity)
            werr = float(np.abs(weights - want_w).max())
            ok = (np.array_equal(rows, want_rows) and np.array_equal(offsets, want_offsets)
                  and werr <= 1e-6)
            print(f"  {entry['name']:20s} {label:18s} weight err {werr:.1e} "
                  f"{'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures.append((entry["name"], label, werr))
    assert not failures, failures


# ----------------------------------------------------------------------------------------
# Router losses
# ----------------------------------------------------------------------------------------


def _close(value, want, bound=1e-5):
    if np.isinf(want):
        return value == want
    return abs(value - want) <= bound * max(1.0, abs(want))


def test_router_losses_match_oracle():
    from moe_mlir import reference

    (aux,) = entries_of("aux-loss")
    (z,) = entries_of("z-loss")
    E, k = aux["E"], aux["k"]
    rng = np.random.default_rng(29)
    failures = []
    cases = []
    for T in (1, 7, 300, 5000):
        logits = rng.standard_normal((T, E)).astype(np.float32)
        ids = np.stack([rng.permutation(E)[:k] for _ in range(T)]).astype(np.int32)
        cases.append((f"T={T}", logits, ids))
    logits = rng.standard_normal((300, E)).astype(np.float32)
    cases.append(("all on one expert", logits, np.full((300, k), 3, dtype=np.int32)))
    ids = np.stack([rng.permutation(E)[:k] for _ in range(300)]).astype(np.int32)
    ids[::3, k - 1] = -1
    ids[1, 0] = E
    cases.append(("ids outside [0, E)", logits, ids))
    cases.append(("large logits", (logits * 40).astype(np.float32), ids))
    for label, logits, ids in cases:
        T = logits.shape[0]
        (got_aux,) = call(aux, [logits, ids], [poisoned((), torch.float32)])
        (got_z,) = call(z, [logits], [poisoned((), torch.float32)])
        want_aux = reference.aux_loss(logits, ids)
        want_z = reference.z_loss(logits)
        ok = _close(float(got_aux), want_aux) and _close(float(got_z), want_z)
        print(f"  {label:20s} aux {float(got_aux):.6g} ({want_aux:.6g})  "
              f"z {float(got_z):.6g} ({want_z:.6g}) {'ok' if ok else 'MISMATCH'}")
        if not ok:
            failures.append((label, float(got_aux), want_aux, float(got_z), want_z))
    # An infinite logit: logsumexp is +inf (a row with +inf) or -inf (a row of -inf),
    # so the z-loss is +inf, not NaN.
    for row in ([1.0, np.inf] + [0.0] * (E - 2), [-np.inf] * E):
        logits = np.array([row, [0.5] * E], dtype=np.float32)
        (got_z,) = call(z, [logits], [poisoned((), torch.float32)])
        want_z = reference.z_loss(logits)
        print(f"  z of {row[:2]}...: {float(got_z)} ({want_z})")
        if not (np.isposinf(want_z) and np.isposinf(float(got_z))):
            failures.append(("infinite logit", row[:2], float(got_z), want_z))
    assert not failures, failures


# ----------------------------------------------------------------------------------------
# Whole capacity-limited layers
# ----------------------------------------------------------------------------------------


def _bf16(rng, shape, scale):
    values = torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32))
    return values.to(torch.bfloat16)


def _f64(tensor):
    return tensor.float().numpy().astype(np.float64)


def _routing_is_clear(x, router, attrs):
    """Whether f32 rounding cannot change the oracle's routing: the chosen experts'
    probabilities lead the next by a margin, and GShard's draws are not at their
    threshold."""
    from moe_mlir import reference

    logits = _f64(x) @ _f64(router).T
    k = attrs["k"]
    p = np.sort(np.exp(logits - logits.max(1, keepdims=True)), axis=1)[:, ::-1]
    p /= p.sum(1, keepdims=True)
    # The order of the chosen experts matters too: it is the slot order, which the
    # position policy and GShard's second choice follow.
    last = min(k + 1, p.shape[1])
    if last > 1 and np.min(p[:, :last - 1] - p[:, 1:last]) < 1e-5:
        return False
    if attrs.get("second_expert_policy") == "random":
        w2 = p[:, 1] / (p[:, 0] + p[:, 1])
        u = np.array([reference.gshard_uniform(attrs.get("seed", 0), t)
                      for t in range(len(p))])
        if np.min(np.abs(u - 2 * w2)) < 1e-5:
            return False
    return True


def _dropped(x, router, attrs):
    """Selections the oracle's capacity drops (dropped GShard choices not counted)."""
    from moe_mlir import reference

    E = router.shape[0]
    route = {key: value for key, value in attrs.items()
             if key not in ("capacity", "capacity_factor", "drop_policy", "activation",
                            "glu_layout", "alpha", "limit")}
    weights, ids = reference.route(_f64(x) @ _f64(router).T, **route)
    capacity = {key: attrs[key] for key in ("capacity", "capacity_factor", "drop_policy")
                if key in attrs}
    _, offsets = reference.dispatch(ids, weights, num_experts=E, **capacity)
    return int(np.sum((ids >= 0) & (ids < E))) - int(offsets[-1])


def test_capacity_layers_match_oracle():
    from moe_mlir import reference

    failures = []
    for entry in entries_of("capacity-layer"):
        module = load(entry)
        H, E, I, attrs = entry["H"], entry["E"], entry["I"], dict(entry["attrs"])
        rng = np.random.default_rng(31)
        for label, T, spread in (("T=1", 1, 1.0), ("T=7", 7, 1.0), ("T=77", 77, 1.0),
                                 ("T=300", 300, 1.0),
                                 ("tokens alike, over capacity", 120, 0.1)):
            # Inputs whose routing no rounding can flip: a flipped choice would
            # move a token, and under a capacity other tokens' drops with it.
            for _ in range(50):
                base = rng.standard_normal((1, H)) if spread < 1.0 else 0.0
                x = torch.from_numpy((base + spread * rng.standard_normal((T, H)))
                                     .astype(np.float32)).to(torch.bfloat16)
                router = _bf16(rng, (E, H), H ** -0.5)
                if _routing_is_clear(x, router, attrs):
                    break
            else:
                failures.append((entry["name"], label, "no clear routing drawn"))
                continue
            w13 = _bf16(rng, (E, 2 * I, H), H ** -0.5)
            w2 = _bf16(rng, (E, H, I), I ** -0.5)
            y = poisoned((T, H), torch.bfloat16)
            module.call("layer", [a.cuda().contiguous() for a in (x, router, w13, w2)], [y])
            torch.cuda.synchronize()
            want = reference.layer(_f64(x), _f64(router), _f64(w13), _f64(w2), **attrs)
            ref = torch.from_numpy(want)
            error = float((y.cpu().double() - ref).abs().max() / ref.abs().max())
            dropped = _dropped(x, router, attrs)
            print(f"  {entry['name']:24s} {label:28s} dropped {dropped:3d} "
                  f"rel err {error:.2e}")
            if not error <= BF16_BOUND:
                failures.append((entry["name"], label, error))
            if spread < 1.0 and dropped == 0:
                failures.append((entry["name"], label, "the capacity dropped nothing"))
    assert not failures, failures


if __name__ == "__main__":
    run_tests(globals())
