"""Optimizers: N-step agreement with torch.optim on every backend, state, state_dict, validation.

The oracle runs torch.optim on CPU tensors that start from the same weights and receive,
at every step, exactly the gradients our model computed (copied through the host), so a
difference can only come from the update arithmetic.
"""

from __future__ import annotations

import copy
import inspect
import json
import re

import numpy as np
import optim_reference
import pytest
from optim_cases import CATALOG_CASES

import xpnet
from xpnet import _backend, optim
from xpnet.optim import functional as F
from xpnet.optim.functional import supports_out
from xpnet.testing import get_backend

# float64: the updates perform the same operations as torch's single-tensor kernels, in
# nearly the same order; after 10 steps the trajectories agree to ~1e-15 relative
# (measured 3.6e-16); 1e-9 leaves room for backend BLAS differences in the gradients.
RTOL64 = 1e-9
# float32: one rounding (u = 6e-8) per operation and a different operation order in a
# few places (torch fuses addcmul/addcdiv): measured worst case over these cases and the
# CPU backends 1.7e-7 relative to the largest weight after 10 steps. 1e-5 leaves room for
# GPU FMA contraction, while a wrong formula is off by O(lr) = 1e-2.
RTOL32 = 1e-5
N_STEPS = 10

OPT_CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.9}),  # high lr
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 1e-2}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-2}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.5, "lr_decay": 0.05, "weight_decay": 1e-2, "initial_accumulator_value": 0.1}),
    ("RMSprop", {"lr": 1e-2}),
    ("RMSprop", {"lr": 1e-2, "momentum": 0.9, "centered": True, "weight_decay": 1e-2}),
    ("RMSprop", {"lr": 0.05, "alpha": 0.9, "centered": True, "maximize": True}),
    ("Adam", {"lr": 1e-2}),
    ("Adam", {"lr": 0.1, "weight_decay": 1e-2, "amsgrad": True}),
    ("Adam", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    ("AdamW", {"lr": 1e-2}),
    ("AdamW", {"lr": 0.1, "weight_decay": 0.1, "amsgrad": True}),
]
CASE_IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw in OPT_CASES]


# ---------------------------------------------------------------------------- helpers


def _make_layers(dtype: str = "float64", seed: int = 0) -> tuple[xpnet.Linear, xpnet.Linear]:
    g = np.random.default_rng(seed)
    return xpnet.Linear(5, 7, dtype=dtype, generator=g), xpnet.Linear(7, 3, dtype=dtype, generator=g)


def _data(dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(123)
    return g.standard_normal((16, 5)).astype(dtype), g.standard_normal((16, 3)).astype(dtype)


def _forward_backward(l1, l2, x, t):
    """A 5-7-3 tanh MLP with an MSE loss; gradients accumulate into the parameters."""
    xp = _backend.namespace_of(x)
    a = xp.tanh(l1(x))
    y = l2(a)
    dy = (y - t) * (2.0 / (y.shape[0] * y.shape[1]))
    da = l2.backward(dy)
    l1.backward(da * (1.0 - a * a))


def _params(l1, l2) -> list[xpnet.Parameter]:
    return [l1.weight, l1.bias, l2.weight, l2.bias]


def _torch_params(params):
    torch = pytest.importorskip("torch")
    return [torch.tensor(_backend.to_numpy(p.data).copy(), requires_grad=True) for p in params]


def _assert_close(actual, expected, rtol, what=""):
    a = np.asarray(_backend.to_numpy(actual), dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, what
    scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
    err = float(np.max(np.abs(a - e))) if e.size else 0.0
    assert err <= rtol * scale, f"{what}: max abs error {err:.3e} > {rtol:.1e} x {scale:.3g}"


def _run(backend, dtype, cls, kw, steps, *, opt_factory=None):
    layers = _make_layers(dtype)
    for layer in layers:
        backend.move(layer)
    x, t = (backend.asarray(a) for a in _data(dtype))
    params = _params(*layers)
    opt = (opt_factory or cls)(params, **kw)
    for _ in range(steps):
        opt.zero_grad()
        _forward_backward(*layers, x, t)
        opt.step()
    return params, opt


class _ForceRebind:
    """Mixin: take the rebinding (immutable-backend) path even where in-place would work."""

    def _inplace(self, p):
        return False


def _rebind_class(cls):
    return type(f"Rebind{cls.__name__}", (_ForceRebind, cls), {})


class _NoScratch:
    """Mixin: skip the NumPy/CuPy fast paths (``out=`` scratch and the flat multi-tensor
    update): the portable in-place path only."""

    flat_max_size = -1

    def _scratch(self, p):
        return None


class _PerParam:
    """Mixin: no flat multi-tensor update (every parameter on its own)."""

    flat_max_size = -1


def _portable_class(cls):
    return type(f"Portable{cls.__name__}", (_NoScratch, cls), {})


# ---------------------------------------------------------------------------- torch parity


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "kw"), OPT_CASES, ids=CASE_IDS)
def test_matches_torch_optim(backend, dtype, name, kw):
    torch = pytest.importorskip("torch")
    layers = _make_layers(dtype)
    for layer in layers:
        backend.move(layer)
    x, t = (backend.asarray(a) for a in _data(dtype))
    params = _params(*layers)
    tparams = _torch_params(params)
    opt = getattr(optim, name)(params, **kw)
    topt = getattr(torch.optim, name)(tparams, **kw)
    for _ in range(N_STEPS):
        opt.zero_grad()
        _forward_backward(*layers, x, t)
        for p, tp in zip(params, tparams):
            tp.grad = torch.from_numpy(_backend.to_numpy(p.grad).copy())
        opt.step()
        topt.step()
    rtol = RTOL64 if dtype == "float64" else RTOL32
    for i, (p, tp) in enumerate(zip(params, tparams)):
        backend.check(p.data, dtype=dtype, shape=tuple(tp.shape))
        _assert_close(p.data, tp.detach().numpy(), rtol, f"param {i} after {N_STEPS} steps")
    # The optimizer state matches torch's too (same names, same values).
    for p, tp in zip(params, tparams):
        state, tstate = opt.state[p], topt.state[tp]
        for key, value in tstate.items():
            if key == "step":
                assert state["step"] == int(value)
            elif value is not None:
                backend.check(state[key], dtype=dtype, shape=p.shape)
                _assert_close(state[key], value.numpy(), rtol, key)


@pytest.mark.parametrize(("name", "kw"), OPT_CASES, ids=CASE_IDS)
def test_matches_plain_numpy_reference(backend, name, kw):
    """Torch-free oracle (tests/optim_reference.py): the documented update rules in plain
    NumPy float64, fed the same gradients, for N_STEPS steps on every backend."""
    layers = [backend.move(m) for m in _make_layers("float64")]
    x, t = (backend.asarray(a) for a in _data("float64"))
    params = _params(*layers)
    ref = [np.array(backend.to_numpy(p.data)) for p in params]
    ref_state = [{} for _ in params]
    opt = getattr(optim, name)(params, **kw)
    rule = optim_reference.RULES[name]
    for step in range(1, N_STEPS + 1):
        opt.zero_grad()
        _forward_backward(*layers, x, t)
        grads = [np.array(backend.to_numpy(p.grad)) for p in params]
        opt.step()
        ref = [rule(r, g, st, step, **kw) for r, g, st in zip(ref, grads, ref_state)]
    for i, (p, r) in enumerate(zip(params, ref)):
        backend.check(p.data, dtype="float64", shape=r.shape)
        _assert_close(p.data, r, RTOL64, f"param {i} after {N_STEPS} steps")
        for key, value in ref_state[i].items():
            _assert_close(opt.state[p][key], value, RTOL64, f"state {key!r} of param {i}")


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_defaults_match_torch(name):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(optim, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    for arg, param in ours.items():
        if arg == "params":
            continue
        assert arg in theirs, f"{name}: torch has no argument {arg!r}"
        assert param.default == theirs[arg].default, f"{name}.{arg}"
    # Every torch hyperparameter that changes the arithmetic exists here.
    implementation_only = {"foreach", "fused", "capturable", "differentiable", "params"}
    assert set(theirs) - implementation_only <= set(ours)


def test_param_groups_with_different_lr(backend):
    torch = pytest.importorskip("torch")
    l1, l2 = (backend.move(m) for m in _make_layers())
    x, t = (backend.asarray(a) for a in _data())
    groups = [{"params": [l1.weight, l1.bias], "lr": 0.5, "momentum": 0.0}, {"params": [l2.weight, l2.bias]}]
    opt = optim.SGD(groups, lr=0.05, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.05]
    assert [g["momentum"] for g in opt.param_groups] == [0.0, 0.9]
    params = _params(l1, l2)
    tparams = _torch_params(params)
    topt = torch.optim.SGD(
        [{"params": tparams[:2], "lr": 0.5, "momentum": 0.0}, {"params": tparams[2:]}], lr=0.05, momentum=0.9
    )
    for _ in range(5):
        opt.zero_grad()
        _forward_backward(l1, l2, x, t)
        for p, tp in zip(params, tparams):
            tp.grad = torch.from_numpy(_backend.to_numpy(p.grad).copy())
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        _assert_close(p.data, tp.detach().numpy(), RTOL64, "param")
    # Only the momentum group keeps buffers.
    assert all("momentum_buffer" not in opt.state.get(p, {}) for p in params[:2])
    assert all("momentum_buffer" in opt.state[p] for p in params[2:])


def test_add_param_group(backend):
    l1, l2 = (backend.move(m) for m in _make_layers())
    opt = optim.Adam([l1.weight, l1.bias], lr=1e-3)
    opt.add_param_group({"params": [l2.weight, l2.bias], "lr": 1e-2})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [l1.weight]})


# ---------------------------------------------------------------------------- in place vs rebind


@pytest.mark.parametrize(("name", "kw"), OPT_CASES, ids=CASE_IDS)
@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_inplace_and_rebind_paths_are_identical(backend_name, name, kw):
    if backend_name == "torch":
        pytest.importorskip("torch")
    backend = get_backend(backend_name)
    cls = getattr(optim, name)
    params_a, opt_a = _run(backend, "float32", cls, kw, 6)
    params_b, opt_b = _run(backend, "float32", cls, kw, 6, opt_factory=_rebind_class(cls))
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(_backend.to_numpy(pa.data), _backend.to_numpy(pb.data))
        for key, value in opt_a.state[pa].items():
            if key == "step":
                assert opt_b.state[pb]["step"] == value
            else:
                np.testing.assert_array_equal(_backend.to_numpy(value), _backend.to_numpy(opt_b.state[pb][key]))


@pytest.mark.parametrize(("name", "kw"), OPT_CASES, ids=CASE_IDS)
def test_out_fast_path_matches_portable_path(backend, name, kw):
    """The no-allocation ``out=`` path (DESIGN 2.6; NumPy and CuPy) gives the portable
    path's numbers exactly, and is taken exactly where the backend supports ``out=``."""
    cls = getattr(optim, name)
    fast = type(f"Fast{name}", (cls,), {"scratch_min_size": 0, "flat_max_size": -1})  # per-parameter scratch, any size
    params_a, opt_a = _run(backend, "float32", fast, kw, 6)
    params_b, _ = _run(backend, "float32", cls, kw, 6, opt_factory=_portable_class(cls))
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(backend.to_numpy(pa.data), backend.to_numpy(pb.data))
    has_scratch_path = name in ("SGD", "Adam", "AdamW")
    taken = bool(opt_a._work) and all(buf is not None for _, buf in opt_a._work.values())
    assert taken == (has_scratch_path and supports_out(backend.xp))


def test_scratch_only_for_large_parameters():
    """The ``out=`` scratch is kept only for parameters of >= scratch_min_size elements."""
    small = xpnet.Parameter(np.zeros((4, 3), "float32"))
    big = xpnet.Parameter(np.zeros((optim.Adam.scratch_min_size,), "float32"))
    opt = optim.Adam([small, big], lr=0.1)
    small.grad, big.grad = np.ones((4, 3), "float32"), np.ones(big.shape, "float32")
    opt.step()
    assert opt._work[big][1] is not None and opt._work[small][1] is None


# The rest of torch.optim (tests/optim_cases.py, checked against torch in
# tests/test_optim_catalog.py; not in OPT_CASES, whose tests include the plain NumPy
# oracle of tests/optim_reference.py that covers only the five above). They reach every
# branch of the flat updates within FLAT_STEPS (test_flat_cases_reach_both_radam_
# branches checks RAdam's rectification).
# Every optimizer has a flat multi-tensor path (test_every_optimizer_has_a_flat_path):
# all of OPT_CASES and CATALOG_CASES.
FLAT_CASES = OPT_CASES + CATALOG_CASES
FLAT_IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw in FLAT_CASES]
# Steps of the flat-path runs: the first is per-parameter (the state is created), the
# plan is built at the second and takes the other five.
FLAT_STEPS = 6


def test_every_optimizer_has_a_flat_path():
    """Every optimizer declares flat state keys and implements the flat update, and
    FLAT_CASES covers each of them."""
    names = [
        n for n in optim.__all__
        if isinstance(getattr(optim, n), type) and issubclass(getattr(optim, n), optim.Optimizer)
        and getattr(optim, n) is not optim.Optimizer
    ]
    assert set(names) == {n for n, _ in FLAT_CASES}
    for name in names:
        cls = getattr(optim, name)
        assert cls._flat_keys is not optim.Optimizer._flat_keys, name
        assert cls._flat_update is not optim.Optimizer._flat_update, name


def test_flat_cases_reach_both_radam_branches():
    """Each RAdam case takes the unrectified step (ρt <= 5) and the rectified one within
    the flat steps 2..FLAT_STEPS (β2 = 0.999 and 0.9 both cross ρt = 5 at step 6)."""
    for name, kw in FLAT_CASES:
        if name != "RAdam":
            continue
        beta2 = kw.get("betas", (0.9, 0.999))[1]
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho = [rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t) for t in range(2, FLAT_STEPS + 1)]
        assert min(rho) <= 5.0 < max(rho), (kw, rho)


def _assert_same_run(params_a, opt_a, params_b, opt_b):
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(_backend.to_numpy(pa.data), _backend.to_numpy(pb.data))
        assert opt_a.state[pa].keys() == opt_b.state[pb].keys()
        for key, value in opt_a.state[pa].items():
            if key == "step":
                assert opt_b.state[pb]["step"] == value
            else:
                np.testing.assert_array_equal(_backend.to_numpy(value), _backend.to_numpy(opt_b.state[pb][key]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "kw"), FLAT_CASES, ids=FLAT_IDS)
def test_flat_path_is_bitwise_identical_to_per_parameter_path(backend, name, kw, dtype):
    """The flat storage update gives the per-parameter path's numbers exactly, on every
    backend (NumPy and CuPy through ``out=``, the others through the portable in-place
    operations on the flat buffers)."""
    cls = getattr(optim, name)
    params_a, opt_a = _run(backend, dtype, cls, kw, FLAT_STEPS)
    params_b, opt_b = _run(backend, dtype, type(f"PerParam{name}", (_PerParam, cls), {}), kw, FLAT_STEPS)
    plan = opt_a._plans.get(0)
    # The flat storage is taken wherever slices are views: every backend here (not JAX).
    assert (plan is not None) == _backend.views_alias(backend.xp, backend.device)
    assert plan is not None and plan.covers
    assert not any(opt_b._plans.values())
    _assert_same_run(params_a, opt_a, params_b, opt_b)
    # torch's per-parameter layout: one array per parameter, of the parameter's shape.
    sd = opt_a.state_dict()
    for i, p in enumerate(params_a):
        for key, value in sd["state"][i].items():
            if key not in ("step", "mu_product"):  # the host scalars
                assert tuple(value.shape) == p.shape


@pytest.mark.parametrize(("name", "kw"), FLAT_CASES, ids=FLAT_IDS)
def test_flat_path_matches_strict_backend(name, kw):
    """NumPy with the flat path and array-api-strict (per-parameter) agree to rounding."""
    cls = getattr(optim, name)
    params_a, opt_a = _run(get_backend("numpy"), "float64", cls, kw, FLAT_STEPS)
    strict = get_backend("array_api_strict")
    params_b, opt_b = _run(strict, "float64", cls, kw, FLAT_STEPS)
    assert any(plan is not None for plan in opt_a._plans.values())
    for pa, pb in zip(params_a, params_b):
        _assert_close(pb.data, pa.data, RTOL64, "param")
        for key, value in opt_a.state[pa].items():
            if key != "step":
                _assert_close(opt_b.state[pb][key], value, RTOL64, key)


@pytest.mark.parametrize(("name", "kw"), FLAT_CASES, ids=FLAT_IDS)
def test_flat_path_survives_missing_grads_and_reloads(name, kw):
    """A step where one parameter has no gradient, and a state_dict round trip mid-run,
    give the per-parameter path's numbers (the plan is dropped and rebuilt)."""
    backend = get_backend("numpy")
    cls = getattr(optim, name)
    x, t = _data("float32")
    runs = []
    for factory in (cls, type(f"PerParam{name}", (_PerParam, cls), {})):
        l1, l2 = _make_layers("float32")
        params = _params(l1, l2)
        opt = factory(params, **kw)
        for step in range(8):
            opt.zero_grad()
            _forward_backward(l1, l2, x, t)
            if step == 3:
                l2.bias.grad = None  # skipped this step
            if step == 5:
                sd = copy.deepcopy(opt.state_dict())
                opt = factory(params, **kw)
                opt.load_state_dict(sd)
            opt.step()
        runs.append((params, opt))
    (params_a, opt_a), (params_b, opt_b) = runs
    assert any(plan is not None for plan in opt_a._plans.values())
    _assert_same_run(params_a, opt_a, params_b, opt_b)
    backend.check(params_a[0].data, dtype="float32", shape=(7, 5))


def _nadam_mu_product(steps, beta1=0.9, momentum_decay=4e-3):
    """``Π_{t≤steps} μ_t``, multiplied up in nadam_step's order (so bit for bit its value)."""
    mu_product = 1.0
    for t in range(1, steps + 1):
        mu_product = mu_product * (beta1 * (1.0 - 0.5 * (0.96 ** (t * momentum_decay))))
    return mu_product


@pytest.mark.parametrize("kw", [{"lr": 1e-2}, {"lr": 2e-2, "betas": (0.8, 0.99), "momentum_decay": 1e-2}])
def test_flat_path_keeps_nadam_per_parameter_scalars(backend, kw):
    """After flat steps every parameter's own state holds the right ``step`` and
    ``mu_product`` (a host float advanced once per plan and written back to each)."""
    params, opt = _run(backend, "float32", optim.NAdam, kw, FLAT_STEPS)
    plan = opt._plans.get(0)
    assert plan is not None and plan.covers
    expected = _nadam_mu_product(FLAT_STEPS, kw.get("betas", (0.9, 0.999))[0], kw.get("momentum_decay", 4e-3))
    for p in params:
        state = opt.state[p]
        assert state["step"] == FLAT_STEPS
        assert type(state["mu_product"]) is float and state["mu_product"] == expected
    assert plan.flat["mu_product"] == expected


def test_flat_path_groups_only_parameters_with_the_same_nadam_mu_product():
    """A parameter whose mu_product differs from the others' at the same step (edited
    here; a loaded state can do it) leaves the plan, and the run still equals the
    per-parameter one bit for bit, its own mu_product included."""
    x, t = _data("float32")
    runs = []
    for factory in (optim.NAdam, type("PerParamNAdam", (_PerParam, optim.NAdam), {})):
        l1, l2 = _make_layers("float32")
        params = _params(l1, l2)
        opt = factory(params, lr=1e-2)
        for step in range(FLAT_STEPS):
            if step == 3:
                opt.state[l2.bias]["mu_product"] *= 0.5
            opt.zero_grad()
            _forward_backward(l1, l2, x, t)
            opt.step()
        runs.append((params, opt))
    (params_a, opt_a), (params_b, opt_b) = runs
    plan = opt_a._plans.get(0)
    assert plan is not None and not plan.covers and params_a[3] not in plan.members
    assert len(plan.members) == 3
    _assert_same_run(params_a, opt_a, params_b, opt_b)
    assert opt_a.state[params_a[3]]["mu_product"] != opt_a.state[params_a[0]]["mu_product"]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_flat_path_copied_optimizer_keeps_stepping_correctly(how):
    """A copied optimizer (its state arrays no longer views of the flat buffers) gives the
    numbers of an uncopied one."""
    import pickle

    x, t = _data("float32")
    runs = []
    for copy_it in (True, False):
        l1, l2 = _make_layers("float32")
        params = _params(l1, l2)
        opt = optim.Adam(params, lr=1e-2)
        for step in range(6):
            opt.zero_grad()
            _forward_backward(l1, l2, x, t)
            if copy_it and step == 3:
                params, opt = (copy.deepcopy if how == "deepcopy" else lambda o: pickle.loads(pickle.dumps(o)))(
                    (params, opt)
                )
                l1.weight, l1.bias, l2.weight, l2.bias = params
            opt.step()
        runs.append((params, opt))
    (params_a, opt_a), (params_b, opt_b) = runs
    assert any(plan is not None for plan in opt_a._plans.values())
    _assert_same_run(params_a, opt_a, params_b, opt_b)


ADAM_KW = [
    {},
    {"weight_decay": 0.1, "amsgrad": True},
    {"maximize": True, "decoupled_weight_decay": True, "weight_decay": 0.1},
]


@pytest.mark.parametrize("kw", ADAM_KW, ids=["plain", "l2-amsgrad", "maximize-adamw"])
def test_adam_step_scratch_is_bitwise_identical(kw):
    rng = np.random.default_rng(7)
    p, g = (rng.standard_normal((5, 4)).astype("float32") for _ in range(2))
    m, v, vmax = (np.abs(rng.standard_normal((5, 4))).astype("float32") for _ in range(3))
    a = [x.copy() for x in (p, g, m, v, vmax)]
    b = [x.copy() for x in (p, g, m, v, vmax)]
    out_a = F.adam_step(*a, step=2, lr=0.05, inplace=True, **kw)
    out_b = F.adam_step(*b, step=2, lr=0.05, inplace=True, scratch=np.empty((5, 4), "float32"), **kw)
    for x, y in zip(out_a, out_b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(out_b[0], p)
    np.testing.assert_array_equal(b[1], g)  # the gradient is untouched
    assert F.supports_out(_backend.namespace_of(p))
    assert not F.supports_out(get_backend("array_api_strict").xp)


@pytest.mark.parametrize(("name", "kw"), OPT_CASES, ids=CASE_IDS)
def test_inplace_path_updates_in_place_and_rebind_path_does_not_mutate(name, kw):
    backend = get_backend("numpy")
    cls = getattr(optim, name)
    params, opt = _run(backend, "float64", cls, kw, 2)
    ids = [id(p.data) for p in params]
    state_ids = {(i, k): id(v) for i, p in enumerate(params) for k, v in opt.state[p].items() if k != "step"}
    grads = [p.grad.copy() for p in params]
    opt.step()
    assert [id(p.data) for p in params] == ids
    changed = [k for (i, k), v in state_ids.items() if id(opt.state[params[i]][k]) != v]
    # amsgrad's running maximum is rebound by design (xp.maximum allocates anyway).
    assert set(changed) <= {"max_exp_avg_sq"}
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)  # the gradient is never modified

    # Rebind path: the old arrays keep their values.
    params, opt = _run(backend, "float64", _rebind_class(cls), kw, 2)
    before = [(p.data, p.data.copy()) for p in params]
    old_state = [(v, v.copy()) for p in params for k, v in opt.state[p].items() if k != "step"]
    opt.step()
    for old, snapshot in before + old_state:
        np.testing.assert_array_equal(old, snapshot)


def test_read_only_parameters_take_the_rebind_path():
    l1, l2 = _make_layers()
    x, t = _data()
    _forward_backward(l1, l2, x, t)
    for p in _params(l1, l2):
        p.data.setflags(write=False)
    ref = [p.data.copy() for p in _params(l1, l2)]
    opt = optim.Adam(_params(l1, l2), lr=0.1)
    opt.step()
    for p, r in zip(_params(l1, l2), ref):
        assert not np.array_equal(p.data, r)
    assert all(not np.shares_memory(p.data, r) for p, r in zip(_params(l1, l2), ref))


def test_functional_rebind_does_not_modify_inputs():
    rng = np.random.default_rng(5)
    p, g, m, v, vmax = (rng.standard_normal((4, 3)) ** 2 for _ in range(5))
    copies = [a.copy() for a in (p, g, m, v, vmax)]
    out = F.adam_step(p, g, m, v, vmax, step=3, lr=0.1, weight_decay=0.1, amsgrad=True, inplace=False)
    for a, c in zip((p, g, m, v, vmax), copies):
        np.testing.assert_array_equal(a, c)
    out_inplace = F.adam_step(p, g, m, v, vmax, step=3, lr=0.1, weight_decay=0.1, amsgrad=True, inplace=True)
    for a, b in zip(out, out_inplace):
        np.testing.assert_array_equal(a, b)
    assert out_inplace[0] is p and out_inplace[1] is m and out_inplace[2] is v
    np.testing.assert_array_equal(g, copies[1])  # the gradient is never written


def test_sgd_step_first_step_copies_the_gradient():
    g = np.array([1.0, -2.0])
    p, buf = F.sgd_step(np.zeros(2), g, None, lr=0.1, momentum=0.9, inplace=True)
    assert buf is not g
    buf += 1.0
    np.testing.assert_array_equal(g, [1.0, -2.0])


# ---------------------------------------------------------------------------- lazy state


def test_state_is_lazy_and_on_the_parameter_backend(backend):
    l1, l2 = (backend.move(m, dtype="float32") for m in _make_layers())
    x, t = (backend.asarray(a) for a in _data("float32"))
    opt = optim.Adam(_params(l1, l2), lr=1e-2, amsgrad=True)
    assert opt.state == {}
    l2.bias.requires_grad = False
    _forward_backward(l1, l2, x, t)
    l1.bias.grad = None  # a parameter without gradient is skipped
    before = _backend.to_numpy(l1.bias.data).copy()
    frozen = _backend.to_numpy(l2.bias.data).copy()
    opt.step()
    assert set(opt.state) == {l1.weight, l2.weight}
    for p in (l1.weight, l2.weight):
        s = opt.state[p]
        assert s["step"] == 1 and type(s["step"]) is int
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            backend.check(s[key], dtype="float32", shape=p.shape)
        backend.check(p.data, dtype="float32", shape=p.shape)
    np.testing.assert_array_equal(_backend.to_numpy(l1.bias.data), before)
    np.testing.assert_array_equal(_backend.to_numpy(l2.bias.data), frozen)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_step_without_gradients_changes_nothing(name):
    l1, l2 = _make_layers()
    ref = [p.data.copy() for p in _params(l1, l2)]
    opt = getattr(optim, name)(_params(l1, l2), lr=0.1)
    opt.step()
    assert opt.state == {}
    for p, r in zip(_params(l1, l2), ref):
        np.testing.assert_array_equal(p.data, r)


def test_zero_grad_and_closure(backend):
    l1, l2 = (backend.move(m) for m in _make_layers())
    x, t = (backend.asarray(a) for a in _data())
    opt = optim.SGD(_params(l1, l2), lr=0.1)
    _forward_backward(l1, l2, x, t)
    opt.zero_grad(set_to_none=False)
    for p in _params(l1, l2):
        backend.check(p.grad, shape=p.shape)
        assert not np.any(_backend.to_numpy(p.grad))
    opt.zero_grad()
    assert all(p.grad is None for p in _params(l1, l2))

    calls = []

    def closure():
        opt.zero_grad()
        _forward_backward(l1, l2, x, t)
        calls.append(1)
        return "loss"

    assert opt.step(closure) == "loss"
    assert calls == [1]
    assert opt.step() is None


def test_l2_regularisation_maps_to_weight_decay_2_lambda():
    """The lecture's λ‖W‖² has gradient 2λW: SGD(weight_decay=2λ) is that penalty."""
    lam = 0.03
    l1, l2 = _make_layers()
    a1, a2 = _make_layers()
    x, t = _data()
    opt_wd = optim.SGD(_params(l1, l2), lr=0.1, weight_decay=2 * lam)
    opt_l2 = optim.SGD(_params(a1, a2), lr=0.1)
    for _ in range(3):
        for opt, layers in ((opt_wd, (l1, l2)), (opt_l2, (a1, a2))):
            opt.zero_grad()
            _forward_backward(*layers, x, t)
        for p in _params(a1, a2):
            p.grad = p.grad + 2 * lam * p.data
        opt_wd.step()
        opt_l2.step()
    for p, q in zip(_params(l1, l2), _params(a1, a2)):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-14, atol=1e-15)


def test_hyperparameters_are_python_floats():
    p = xpnet.Parameter(np.ones(3, dtype="float32"))
    opt = optim.Adam([p], lr=np.float64(0.1), betas=(np.float64(0.9), 0.99))
    g = opt.param_groups[0]
    assert type(g["lr"]) is float and all(type(b) is float for b in g["betas"])
    p.grad = np.ones(3, dtype="float32")
    opt.step()
    assert p.data.dtype == np.float32  # a NumPy float64 scalar would have promoted it


def test_grad_mismatch_errors():
    p = xpnet.Parameter(np.ones((2, 3)))
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"gradient shape \(3, 2\) does not match parameter shape \(2, 3\)"):
        opt.step()
    p.grad = np.ones((2, 3), dtype="float32")
    with pytest.raises(TypeError, match="gradient dtype float32 does not match parameter dtype float64"):
        opt.step()
    torch = pytest.importorskip("torch")
    p.grad = torch.ones((2, 3), dtype=torch.float64)
    with pytest.raises(TypeError, match="gradient is a torch.Tensor but the parameter is a numpy.ndarray"):
        opt.step()


def test_grad_dtype_error_points_at_the_upstream_gradient():
    """The usual cause: a float64 ``dy`` (from a loss on float64 targets) into a float32 model."""
    l1, l2 = _make_layers("float32")
    x, t = _data("float32")
    opt = optim.SGD(_params(l1, l2), lr=0.1)
    y = l2(l1(x))
    l1.backward(l2.backward(y - t))
    # Linear.backward now rejects such a dy itself; a gradient set by hand (or by a
    # custom module) still reaches the optimizer's own check.
    l2.weight.grad = l2.weight.grad.astype("float64")
    with pytest.raises(TypeError, match=re.escape(
        "gradient dtype float64 does not match parameter dtype float32. Hint: the upstream "
        "gradient dy passed to model.backward probably had another dtype; cast it"
    )):
        opt.step()


# ---------------------------------------------------------------------------- state follows the parameter

# Optimizers with array state, for the backend round trips.
FOLLOW_CASES = [
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("Adam", {"lr": 1e-2, "amsgrad": True}),
]


@pytest.mark.parametrize("path", ["inplace", "rebind"])
@pytest.mark.parametrize("target", ["torch", "array_api_strict:device1"])
@pytest.mark.parametrize(("name", "kw"), FOLLOW_CASES, ids=[c[0] for c in FOLLOW_CASES])
def test_state_follows_parameters_across_backends(name, kw, target, path):
    """model.to(other) then model.to("numpy") mid-training: same trajectory as staying on NumPy."""
    if target == "torch":
        pytest.importorskip("torch")
    other, home = get_backend(target), get_backend("numpy")
    cls = getattr(optim, name) if path == "inplace" else _rebind_class(getattr(optim, name))
    ref_params, ref_opt = _run(home, "float64", cls, kw, 9)

    layers = _make_layers()
    params = _params(*layers)
    opt = cls(params, **kw)
    x, t = _data()

    def steps(backend, n):
        bx, bt = backend.asarray(x), backend.asarray(t)
        for _ in range(n):
            opt.zero_grad()
            _forward_backward(*layers, bx, bt)
            opt.step()

    steps(home, 3)
    for layer in layers:
        other.move(layer)
    steps(other, 3)
    for p in params:
        for key, value in opt.state[p].items():
            if key != "step":
                other.check(value, dtype="float64", shape=p.shape)
    for layer in layers:
        home.move(layer)
    steps(home, 3)
    for p, r in zip(params, ref_params):
        home.check(p.data, dtype="float64", shape=r.shape)
        # Values cross backends exactly; what remains is rounding in the 3 steps on the
        # other backend (its BLAS), far inside the float64 tolerance of the torch parity test.
        _assert_close(p.data, r.data, RTOL64, "round trip vs uninterrupted")
        for key, value in opt.state[p].items():
            if key == "step":
                assert value == ref_opt.state[r]["step"] == 9
            else:
                home.check(value, dtype="float64", shape=p.shape)
                _assert_close(value, ref_opt.state[r][key], RTOL64, key)


def test_state_follows_a_dtype_change_like_load_state_dict():
    """model.to(dtype=...) casts the state float->float: the same as reloading the state dict."""
    layers, copies = _make_layers(), _make_layers()
    x, t = _data()
    opt = optim.Adam(_params(*layers), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        _forward_backward(*layers, x, t)
        opt.step()
    saved = _host_copy(opt.state_dict())
    old_state = {k: v for k, v in opt.state[layers[0].weight].items()}
    old_values = {k: np.array(v) for k, v in old_state.items() if k != "step"}
    for layer, c in zip(layers, copies):
        layer.to(dtype="float32")
        c.to(dtype="float32").load_state_dict(layer.state_dict())
    reloaded = optim.Adam(_params(*copies), lr=1e-2)
    reloaded.load_state_dict(saved)
    x32, t32 = _data("float32")
    for o, ls in ((opt, layers), (reloaded, copies)):
        o.zero_grad()
        _forward_backward(*ls, x32, t32)
        o.step()
    for p, q in zip(_params(*layers), _params(*copies)):
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data)
        for key, value in opt.state[p].items():
            if key != "step":
                assert value.dtype == np.float32
                np.testing.assert_array_equal(value, reloaded.state[q][key])
    # The moved state is new arrays: the float64 ones (still referenced here) are untouched.
    for key, value in old_values.items():
        assert old_state[key].dtype == np.float64
        np.testing.assert_array_equal(old_state[key], value)


def test_moved_state_does_not_alias_the_old_state():
    torch = pytest.importorskip("torch")
    layer = xpnet.Linear(3, 2, dtype="float64", generator=np.random.default_rng(0))
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    x = np.ones((4, 3))
    layer.backward(layer(x))
    opt.step()
    old = opt.state_dict()["state"][0]["momentum_buffer"]
    before = old.copy()
    layer.to("torch")
    for _ in range(2):
        opt.zero_grad()
        y = layer(torch.ones((4, 3), dtype=torch.float64))
        layer.backward(y)
        opt.step()
    assert isinstance(opt.state[layer.weight]["momentum_buffer"], torch.Tensor)
    np.testing.assert_array_equal(old, before)  # torch.asarray would have shared its memory


def test_state_follow_rejects_non_float_casts():
    p = xpnet.Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(3)
    opt.step()
    opt.state[p]["momentum_buffer"] = np.ones(3, dtype=np.int64)
    p.data = np.ones(3)  # a "moved" parameter: the state is checked again
    p.grad = np.ones(3)
    with pytest.raises(TypeError, match="momentum_buffer.*dtype int64.*float-to-float"):
        opt.step()
    sd = {"state": {0: {"momentum_buffer": np.ones(3, dtype=np.int64)}}, "param_groups": opt.state_dict()["param_groups"]}
    with pytest.raises(TypeError, match="only float-to-float casts"):
        opt.load_state_dict(sd)


# ---------------------------------------------------------------------------- validation

VALIDATION_CASES = [
    ("SGD", {"lr": -1}, "Invalid learning rate: -1"),
    ("SGD", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -1e-4}, "Invalid weight_decay value: -0.0001"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov momentum requires a momentum and zero dampening"),
    ("Adagrad", {"lr": -0.1}, "Invalid learning rate: -0.1"),
    ("Adagrad", {"lr_decay": -1}, "Invalid lr_decay value: -1"),
    ("Adagrad", {"initial_accumulator_value": -1}, "Invalid initial_accumulator_value value: -1"),
    ("Adagrad", {"eps": -1}, "Invalid epsilon value: -1"),
    ("RMSprop", {"alpha": -0.1}, "Invalid alpha value: -0.1"),
    ("RMSprop", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("RMSprop", {"momentum": -1}, "Invalid momentum value: -1"),
    ("Adam", {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("AdamW", {"lr": float("nan")}, "Invalid learning rate: nan"),
    ("AdamW", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
]


@pytest.mark.parametrize(("name", "kw", "message"), VALIDATION_CASES)
def test_constructor_validation_matches_torch(name, kw, message):
    p = xpnet.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(optim, name)([p], **kw)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw)


def test_group_hyperparameters_are_validated():
    p, q = xpnet.Parameter(np.zeros(2)), xpnet.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="Invalid learning rate: -2"):
        optim.Adam([{"params": [p]}, {"params": [q], "lr": -2}])


def test_params_argument_errors():
    p = xpnet.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="iterable of Parameters"):
        optim.SGD(p)
    with pytest.raises(TypeError, match=r"model.parameters\(\)"):
        optim.SGD(xpnet.Linear(2, 2))
    with pytest.raises(TypeError, match="xpnet.Parameter"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="same parameter twice"):
        optim.SGD([p, p])
    with pytest.raises(TypeError, match="real number"):
        optim.SGD([p], lr="0.1")
    # A generator (model.parameters()) is consumed once and kept as a list.
    opt = optim.SGD(xpnet.Linear(2, 2).parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 2
    assert "SGD" in repr(opt) and "lr: 0.1" in repr(opt)


SET_MESSAGE = (
    "optimizer parameters need to be organized in ordered collections, but the ordering of "
    "tensors in sets will change between runs. Please use a list instead."
)


@pytest.mark.parametrize("kind", [set, frozenset])
def test_sets_of_parameters_are_rejected_everywhere(kind):
    """A set's order varies between runs, so state_dict indices could land on other parameters."""
    p, q = xpnet.Parameter(np.zeros(2)), xpnet.Parameter(np.zeros(3))
    attempts = [
        lambda: optim.SGD(kind([p, q]), lr=0.1),
        lambda: optim.Adam([{"params": kind([p, q])}]),
        lambda: optim.Adam([{"params": [p]}, {"params": kind([q])}]),
        lambda: optim.SGD([p], lr=0.1).add_param_group({"params": kind([q])}),
    ]
    for attempt in attempts:
        with pytest.raises(TypeError, match=re.escape(SET_MESSAGE)):
            attempt()


def test_set_message_is_torchs():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=re.escape(SET_MESSAGE)):
        torch.optim.SGD([{"params": {torch.zeros(2, requires_grad=True)}}], lr=0.1)


# ---------------------------------------------------------------------------- state_dict

STATE_CASES = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.1}),
    ("RMSprop", {"lr": 1e-2, "momentum": 0.5, "centered": True}),
    ("Adam", {"lr": 1e-2, "amsgrad": True}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
]


def _host_copy(sd):
    """What a checkpoint file gives back: NumPy arrays, JSON-typed groups and keys."""
    return {
        "state": {str(k): {n: np.array(_backend.to_numpy(v)) if _backend.is_array(v) else v for n, v in s.items()}
                  for k, s in sd["state"].items()},
        "param_groups": json.loads(json.dumps(sd["param_groups"])),
    }


@pytest.mark.parametrize(("name", "kw"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_state_dict_roundtrip_across_backends(backend, name, kw):
    cls = getattr(optim, name)
    numpy_backend = get_backend("numpy")
    # Uninterrupted reference: 8 steps on NumPy.
    ref_params, _ = _run(numpy_backend, "float64", cls, kw, 8)
    # 4 steps on NumPy, save, then 4 more on `backend` from the saved weights and state.
    layers = _make_layers()
    x, t = _data()
    params = _params(*layers)
    opt = cls(params, **kw)
    for _ in range(4):
        opt.zero_grad()
        _forward_backward(*layers, x, t)
        opt.step()
    saved = _host_copy(opt.state_dict())
    assert sorted(saved["state"]) == ["0", "1", "2", "3"]
    for layer in layers:
        backend.move(layer)
    opt2 = cls(params, **kw)
    opt2.load_state_dict(saved)
    for p in params:
        for key, value in opt2.state[p].items():
            if key == "step":
                assert value == 4 and type(value) is int
            else:
                backend.check(value, dtype="float64", shape=p.shape)
    bx, bt = backend.asarray(x), backend.asarray(t)
    for _ in range(4):
        opt2.zero_grad()
        _forward_backward(*layers, bx, bt)
        opt2.step()
    for p, r in zip(params, ref_params):
        backend.check(p.data, dtype="float64", shape=r.shape)
        _assert_close(p.data, r.data, RTOL64, "resumed vs uninterrupted")


def test_state_dict_layout_matches_torch():
    torch = pytest.importorskip("torch")
    l1, l2 = _make_layers()
    x, t = _data()
    opt = optim.Adam([{"params": [l1.weight, l1.bias]}, {"params": [l2.weight, l2.bias], "lr": 0.1}])
    params = _params(l1, l2)
    tparams = _torch_params(params)
    topt = torch.optim.Adam([{"params": tparams[:2]}, {"params": tparams[2:], "lr": 0.1}])
    _forward_backward(l1, l2, x, t)
    for p, tp in zip(params, tparams):
        tp.grad = torch.from_numpy(p.grad.copy())
    opt.step()
    topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["state"].keys() == tsd["state"].keys()
    for k in sd["state"]:
        assert sd["state"][k].keys() == tsd["state"][k].keys()
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"):
            assert g[key] == tg[key], key


def test_load_state_dict_casts_and_copies():
    p = xpnet.Parameter(np.ones(3, dtype="float32"))
    opt = optim.Adam([p], lr=0.1)
    saved = {
        "state": {0: {"step": np.array(2), "exp_avg": np.full(3, 0.5), "exp_avg_sq": np.full(3, 0.25)}},
        "param_groups": [{"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0,
                          "amsgrad": False, "maximize": False, "decoupled_weight_decay": False, "params": [0]}],
    }
    source = copy.deepcopy(saved)
    opt.load_state_dict(saved)
    s = opt.state[p]
    assert s["step"] == 2 and type(s["step"]) is int
    assert s["exp_avg"].dtype == np.float32 and s["exp_avg_sq"].dtype == np.float32
    assert opt.param_groups[0]["betas"] == (0.8, 0.9) and opt.param_groups[0]["lr"] == 0.01
    assert opt.param_groups[0]["params"] == [p]
    p.grad = np.ones(3, dtype="float32")
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], source["state"][0]["exp_avg"])
    # Same backend and dtype: still a copy, so stepping never writes into the caller's dict.
    q = xpnet.Parameter(np.ones(3))
    opt2 = optim.SGD([q], lr=0.1, momentum=0.9)
    buf = np.full(3, 2.0)
    opt2.load_state_dict({"state": {0: {"momentum_buffer": buf}}, "param_groups": [dict(opt2.state_dict()["param_groups"][0])]})
    q.grad = np.ones(3)
    opt2.step()
    np.testing.assert_array_equal(buf, [2.0, 2.0, 2.0])


def test_adamw_load_keeps_decoupled_decay():
    p = xpnet.Parameter(np.ones(3))
    opt = optim.AdamW([p])
    sd = opt.state_dict()
    sd["param_groups"][0]["decoupled_weight_decay"] = False
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


def test_load_state_dict_validation_changes_nothing_on_error():
    l1, l2 = _make_layers()
    x, t = _data()
    opt = optim.Adam([{"params": [l1.weight, l1.bias]}, {"params": [l2.weight, l2.bias]}], lr=0.1)
    _forward_backward(l1, l2, x, t)
    opt.step()
    good = opt.state_dict()
    state_before = {p: dict(s) for p, s in opt.state.items()}

    def variant(mutate):
        sd = copy.deepcopy(good)
        mutate(sd)
        return sd

    bad = [
        (variant(lambda sd: sd["param_groups"].pop()), "different number of parameter groups"),
        (variant(lambda sd: sd["param_groups"][0]["params"].pop()), "doesn't match the size"),
        (variant(lambda sd: sd["state"][0].update(exp_avg=np.zeros((2, 2)))), r"has shape \(2, 2\)"),
        (variant(lambda sd: sd["state"][1].pop("exp_avg_sq")), "lacks"),
        (variant(lambda sd: sd["state"].update({9: sd["state"][0]})), "parameter index 9"),
        (variant(lambda sd: sd["param_groups"][1].update(lr=-1.0)), "Invalid learning rate"),
        ({"param_groups": []}, "expected a dict with 'state' and 'param_groups'"),
    ]
    for sd, message in bad:
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict(sd)
        assert opt.state.keys() == state_before.keys()
        assert all(opt.state[p][k] is v for p, s in state_before.items() for k, v in s.items())
        assert opt.param_groups[1]["lr"] == 0.1


def test_scalar_parameter_state_roundtrip(backend):
    """0-d parameters (a learnable temperature) keep 0-d state through a host round trip."""
    xp = backend.xp

    def scalar(v):
        return xp.reshape(backend.asarray(np.array([v])), ())

    p = xpnet.Parameter(scalar(1.5))
    opt = optim.Adam([p], lr=0.1)
    p.grad = scalar(1.0)
    opt.step()
    saved = _host_copy(opt.state_dict())
    q = xpnet.Parameter(scalar(float(_backend.to_numpy(p.data))))
    opt2 = optim.Adam([q], lr=0.1)
    opt2.load_state_dict(saved)
    for key in ("exp_avg", "exp_avg_sq"):
        backend.check(opt2.state[q][key], dtype="float64", shape=())
    p.grad, q.grad = scalar(-0.5), scalar(-0.5)
    opt.step()
    opt2.step()
    assert float(_backend.to_numpy(p.data)) == float(_backend.to_numpy(q.data))


# ---------------------------------------------------------------------------- flat storage


def _flat_mlp(backend, dtype="float32"):
    model = xpnet.Sequential(*_make_layers(dtype)[:1], xpnet.Tanh(), _make_layers(dtype)[1])
    backend.move(model)
    x, t = (backend.asarray(a) for a in _data(dtype))
    return model, x, t


def _train_step(model, opt, x, t, loss_fn=None):
    loss_fn = loss_fn or xpnet.MSELoss()
    opt.zero_grad()
    _, dy = loss_fn(model(x), t)
    model.backward_params(dy)
    opt.step()


def test_flat_storage_parameters_and_gradients_are_views_of_one_buffer(backend):
    """After the second step each parameter and gradient is a view of the group's flat
    buffer (writes show through both ways) and the Linear layers write their gradient
    products into those views (no gather), on NumPy through ``out=``."""
    model, x, t = _flat_mlp(backend)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        _train_step(model, opt, x, t)
    plan = opt._plans[0]
    params = list(model.parameters())
    assert plan.covers and plan.params == params
    # p.data is a view of the flat buffer: the update of the buffer is the update of p.
    before = _backend.to_numpy(params[0].data).copy()
    plan.pflat[0] = plan.pflat[0] + 1.0
    after = _backend.to_numpy(params[0].data)
    assert after.reshape(-1)[0] == pytest.approx(before.reshape(-1)[0] + 1.0)
    plan.pflat[0] = plan.pflat[0] - 1.0
    # Gradients: views of the flat gradient buffer; on out= backends written in place.
    opt.zero_grad()
    _, dy = xpnet.MSELoss()(model(x), t)
    model.backward_params(dy)
    for p, gv in zip(params, plan.gviews):
        assert p.grad_buffer is gv
        if _backend.supports_out(backend.xp):
            assert p.grad is gv  # the layer wrote its product into the view
    backend.check(params[0].data, dtype="float32", shape=(7, 5))
    backend.check(opt.state[params[0]]["exp_avg"], dtype="float32", shape=(7, 5))


def _twin_runs(backend, steps, event, cls=optim.Adam, kw=None, groups=None):
    """The same training run with flat storage and with the per-parameter path; ``event(k,
    model, opt)`` may intervene before step k. Returns both (model, opt) pairs."""
    kw = kw or {"lr": 1e-2}
    runs = []
    for factory in (cls, type(f"PerParam{cls.__name__}", (_PerParam, cls), {})):
        model, x, t = _flat_mlp(backend)
        params = list(model.parameters()) if groups is None else groups(model)
        opt = factory(params, **kw)
        for k in range(steps):
            model, opt, x, t = event(k, model, opt, x, t) or (model, opt, x, t)
            _train_step(model, opt, x, t)
        runs.append((model, opt))
    return runs


def _assert_twins_equal(runs, exact=True):
    (ma, oa), (mb, ob) = runs
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        a, b = _backend.to_numpy(pa.data), _backend.to_numpy(pb.data)
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    sa, sb = oa.state_dict(), ob.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i in sa["state"]:
        for key, value in sa["state"][i].items():
            if key == "step":
                assert value == sb["state"][i][key]
            else:
                np.testing.assert_array_equal(_backend.to_numpy(value), _backend.to_numpy(sb["state"][i][key]))


def test_flat_storage_follows_model_to_between_backends():
    """model.to() mid-run (NumPy -> array-api-strict on another device -> NumPy): the
    plan is dropped, the state follows, a new plan is built on the new device, and the
    run equals the per-parameter one bit for bit."""
    strict = get_backend("array_api_strict")
    numpy_b = get_backend("numpy")
    dev = strict.xp.Device("device1")

    def event(k, model, opt, x, t):
        if k == 3:
            model.to("array_api_strict", device=dev)
            return model, opt, strict.xp.asarray(_backend.to_numpy(x), device=dev), strict.xp.asarray(
                _backend.to_numpy(t), device=dev)
        if k == 6:
            model.to("numpy")
            return model, opt, _backend.to_numpy(x), _backend.to_numpy(t)
        if k == 5:
            plan = opt._plans.get(0)
            if not isinstance(opt, _PerParam):
                assert plan is not None and _backend.device_of(plan.pflat) == dev
        return None

    runs = _twin_runs(numpy_b, 9, event)
    _assert_twins_equal(runs)
    assert runs[0][1]._plans[0] is not None


def test_flat_storage_survives_model_load_state_dict(backend):
    """model.load_state_dict alone (the optimizer untouched) rebinds every p.data: the
    plan must notice, or the update would go to the old buffer instead of the model."""
    def event(k, model, opt, x, t):
        if k == 4:
            model.load_state_dict({n: _backend.to_numpy(v).copy() for n, v in model.state_dict().items()})
        return None

    runs = _twin_runs(backend, 8, event)
    _assert_twins_equal(runs)


def test_flat_storage_survives_checkpoint_round_trip(tmp_path):
    """save_checkpoint / load_checkpoint mid-run into the same model and optimizer."""
    backend = get_backend("numpy")

    def event(k, model, opt, x, t):
        if k == 4:
            path = tmp_path / f"ck{id(opt)}.npz"
            xpnet.save_checkpoint(path, model, opt)
            for p in model.parameters():  # scribble: the load must restore everything
                p.data[...] = 0
            xpnet.load_checkpoint(path, model, opt)
        return None

    runs = _twin_runs(backend, 8, event)
    _assert_twins_equal(runs)
    assert runs[0][1]._plans[0] is not None


def test_flat_storage_param_groups_with_different_hyperparameters(backend):
    """One plan per group, each updated with its own lr / weight decay."""
    def groups(model):
        l1, _, l2 = model
        return [{"params": [l1.weight, l1.bias], "lr": 1e-2, "weight_decay": 0.1},
                {"params": [l2.weight, l2.bias], "lr": 3e-3}]

    runs = _twin_runs(backend, 6, lambda *a: None, kw={"lr": 1e-2}, groups=groups)
    _assert_twins_equal(runs)
    opt = runs[0][1]
    assert opt._plans[0] is not None and opt._plans[1] is not None
    assert opt._plans[0].pflat is not opt._plans[1].pflat


def test_flat_storage_leaves_out_frozen_parameters(backend):
    """requires_grad=False parameters stay out of the buffers and unchanged; switching
    one off mid-run drops the plan and the run still equals the per-parameter one."""
    frozen = {}

    def event(k, model, opt, x, t):
        if k == 0:
            model[0].bias.requires_grad = False
            frozen[id(opt)] = _backend.to_numpy(model[0].bias.data).copy()
        if k == 4:
            model[2].weight.requires_grad = False
        return None

    runs = _twin_runs(backend, 8, event, cls=optim.SGD, kw={"lr": 0.1, "momentum": 0.9})
    _assert_twins_equal(runs)
    (model, opt), _ = runs
    np.testing.assert_array_equal(_backend.to_numpy(model[0].bias.data), frozen[id(opt)])
    plan = opt._plans[0]
    assert plan is not None and model[2].weight not in plan.members and model[0].bias not in plan.members
    assert not plan.covers


def test_flat_storage_gathers_gradients_set_by_hand(backend):
    """A gradient assigned by hand (not written into grad_buffer) is copied in."""
    def event(k, model, opt, x, t):
        if k == 4:
            opt.zero_grad()
            _, dy = xpnet.MSELoss()(model(x), t)
            model.backward_params(dy)
            p = model[2].bias
            p.grad = p.grad * 2.0  # a new array, not the view
            opt.step()
        return None

    runs = _twin_runs(backend, 6, event)
    _assert_twins_equal(runs)
