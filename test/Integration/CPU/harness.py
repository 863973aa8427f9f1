"""Shared helpers of the CPU integration tests: inputs, calls and comparisons.

Error metric for floating-point results: ``max |got - ref| / max |ref|`` over the whole
tensor (the absolute error when the reference is all zeros), with ``ref`` from the fp64
oracle in ``moe_mlir.reference``. Bounds: 1e-5 when the compiled code stores f32, 1e-2
when it stores bf16. Integer results (expert ids, rows, offsets) must match exactly.

Routing is discontinuous: a token whose k-th and (k+1)-th scores differ by less than
the f32 rounding of the compiled code may legitimately pick another expert than the fp64
oracle. Tests that route draw their inputs again (:func:`draw_robust`) when a tiny
perturbation of the logits changes the oracle's decision, so a failure is never such a
near-tie.
"""

import pathlib

import numpy as np
import pytest

from moe_mlir import cpu, dtypes
from moe_mlir import reference as ref

TOL = {"f32": 1e-5, "bf16": 1e-2}


def spec(shape, element_type):
    return cpu.TensorSpec(tuple(int(d) for d in shape), element_type)


def normal(rng, shape, dtype="f32", scale=1.0):
    """Standard normal values times ``scale`` as float32, rounded to bf16 for "bf16".

    The values are what both the kernel (after :func:`storage`) and the oracle see.
    """
    values = (rng.standard_normal(shape) * scale).astype(np.float32)
    return dtypes.round_to_bf16(values) if dtype == "bf16" else values


def storage(values, dtype):
    return cpu.to_storage(values, dtype)


def call(module, name, inputs, results):
    """Calls ``name``; ``results`` is a list of (shape, element type)."""
    return module.call(name, inputs, [spec(s, t) for s, t in results])


def relative_error(got, want):
    """max |got - want| / max |want| (absolute when want is all zeros); NaN must match NaN."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != reference shape {want.shape}")
    if want.size == 0:
        return 0.0
    nan = np.isnan(want)
    if np.any(np.isnan(got) != nan):
        return np.inf
    finite = ~nan
    same_inf = np.isinf(want) & (got == want)
    with np.errstate(invalid="ignore"):
        diff = np.where(finite & ~same_inf, np.abs(got - want), 0.0)
    if np.any(np.isinf(diff)) or np.any(np.isnan(diff)):
        return np.inf
    scale = np.max(np.abs(np.where(finite & np.isfinite(want), want, 0.0)))
    err = np.max(diff)
    return err / scale if scale > 0 else err


def assert_close(got, want, dtype, what):
    """Floating-point comparison with the bound of ``dtype`` ("f32" or "bf16")."""
    tol = TOL[dtype]
    err = relative_error(got, want)
    if err <= tol:
        return
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    where = np.unravel_index(np.argmax(np.nan_to_num(np.abs(got - want), nan=np.inf)),
                             want.shape) if want.ndim else ()
    raise AssertionError(
        f"{what}: relative error {err:.3g} > {tol:g} (max |got - ref| / max |ref|); "
        f"worst at {tuple(int(i) for i in where)}: got {got[where]!r}, ref {want[where]!r}\n"
        f"got:\n{np.array2string(got, precision=6, threshold=200)}\n"
        f"ref:\n{np.array2string(want, precision=6, threshold=200)}")


def assert_equal(got, want, what):
    """Exact comparison of integer results (ids, rows, offsets)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape == want.shape and np.array_equal(got, want):
        return
    detail = ""
    if got.shape == want.shape:
        bad = np.argwhere(got != want)
        detail = f"; {len(bad)} mismatches, first at {tuple(int(i) for i in bad[0])}"
    raise AssertionError(f"{what} differ{detail}\ngot: {got.tolist()}\nref: {want.tolist()}")


# ----------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------


def random_ids(rng, T, k, E, drop_fraction=0.0):
    """[T, k] int32: k distinct experts per token (as routing gives), some set to -1."""
    ids = np.stack([rng.permutation(E)[:k] for _ in range(T)]).astype(np.int32).reshape(T, k)
    if drop_fraction:
        ids[rng.random((T, k)) < drop_fraction] = -1
    return ids


def random_offsets(rng, E, M, used=None, empty_fraction=0.3):
    """[E + 1] int32 non-decreasing offsets covering ``used`` <= M rows, with some empty
    experts."""
    used = M if used is None else used
    sizes = rng.random(E) * (rng.random(E) >= empty_fraction)
    if sizes.sum() == 0:
        sizes[rng.integers(E)] = 1.0
    cuts = np.floor(np.cumsum(sizes) / sizes.sum() * used + 1e-9).astype(np.int32)
    cuts[-1] = used
    return np.concatenate([[0], cuts]).astype(np.int32)


def routing_decision(logits, bias, route_kw, capacity_kw, num_experts):
    """The oracle's (ids, rows) for ``logits``: what must match exactly."""
    weights, ids = ref.route(logits, bias, **route_kw)
    rows, _ = ref.dispatch(ids, weights, num_experts=num_experts, **capacity_kw)
    return ids, rows


def routing_is_robust(rng, logits, bias=None, route_kw=None, capacity_kw=None,
                      relative=1e-5, trials=3):
    """True when perturbing the logits by ``relative`` (of their largest magnitude) leaves
    the oracle's ids and dispatch rows unchanged: no near-tie decides the routing."""
    route_kw = route_kw or {}
    capacity_kw = capacity_kw or {}
    logits = np.asarray(logits, dtype=np.float64)
    E = logits.shape[1]
    base = routing_decision(logits, bias, route_kw, capacity_kw, E)
    delta = relative * max(1.0, float(np.max(np.abs(logits), initial=0.0)))
    for _ in range(trials):
        noisy = logits + rng.uniform(-delta, delta, logits.shape)
        other = routing_decision(noisy, bias, route_kw, capacity_kw, E)
        if any(not np.array_equal(a, b) for a, b in zip(base, other)):
            return False
    return True


def draw_robust(rng, draw, is_robust, what, tries=25):
    """Calls ``draw()`` until ``is_robust(inputs)``; fails after ``tries`` draws."""
    for _ in range(tries):
        inputs = draw()
        if is_robust(inputs):
            return inputs
    raise AssertionError(f"{what}: no input draw without a routing near-tie in {tries} tries")


#: /proc/cpuinfo's names of the CPU features whose __builtin_cpu_supports name
#: (a CPU artifact manifest's) differs.
CPUINFO_FLAGS = {"sse3": "pni", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "sahf": "lahf_lm",
                 "prfchw": "3dnowprefetch", "bmi": "bmi1", "lzcnt": "abm",
                 "pclmul": "pclmulqdq", "sha": "sha_ni", "avxvnni": "avx_vnni",
                 "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16",
                 "avx512fp16": "avx512_fp16", "avx512vbmi2": "avx512_vbmi2",
                 "avx512bitalg": "avx512_bitalg", "avx512vpopcntdq": "avx512_vpopcntdq",
                 "avx512vp2intersect": "avx512_vp2intersect", "amx-tile": "amx_tile",
                 "amx-bf16": "amx_bf16", "amx-int8": "amx_int8"}


def cpu_flags():
    """The feature flags /proc/cpuinfo lists; skips the test without it."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("needs /proc/cpuinfo to know what the CPU has")
    return set(next(line for line in cpuinfo.read_text().splitlines()
                    if line.startswith("flags")).split(":")[1].split())
