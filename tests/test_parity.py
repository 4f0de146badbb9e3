"""Trajectory parity (check_parity) and the ``xpnet parity`` command.

The real backends are compared on digits for 50 steps with every optimizer, in float64 and
float32. A deliberately perturbed backend (NumPy behind a wrapper namespace that scales
one operation by 1 + 1e-7 from a chosen step on) proves that the check can fail, and that
its report names the right first step, tensor and parameter. Training that diverges to
NaN on the reference is never reported as a pass.

Only the tests that compare against torch need it (``pytest.importorskip`` inside them);
everything else (the perturbed backend, NaN handling, the CLI's argument handling) runs
with NumPy and array-api-strict alone.
"""

from __future__ import annotations

import argparse
import json
import types
import warnings
from typing import Any

import array_api_compat.numpy as compat_np
import numpy as np
import pytest

import xpnet
from xpnet import _backend, optim
from xpnet.activations import ReLU
from xpnet.losses import CrossEntropyLoss
from xpnet.testing import get_backend
from xpnet.testing._backends import Backend
from xpnet.testing.parity import (
    PARITY_FLOAT32_RTOL,
    PARITY_FLOAT64_RTOL,
    NonFinite,
    ParityError,
    ParityReport,
    check_parity,
    environment_info,
)

# Tolerances under test are the library defaults (PARITY_FLOAT64_RTOL = 1e-10,
# PARITY_FLOAT32_RTOL, measured in docs/parity.md); the brief asks for float64 1e-10.
assert PARITY_FLOAT64_RTOL == 1e-10

STEPS = 50
# array-api-strict is always installed: the torch-free tests compare against it.
STRICT = "array_api_strict"
# Relative size of the planted perturbation: 1e-7 is a million times float64's unit
# roundoff and 1000x the float64 parity tolerance, so it must be caught at once.
PERTURBATION = 1e-7

OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "momentum": lambda p: optim.SGD(p, lr=0.01, momentum=0.9),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.01),
    "rmsprop": lambda p: optim.RMSprop(p, lr=1e-3),
    "adam": lambda p: optim.Adam(p, lr=1e-3),
    "adamw": lambda p: optim.AdamW(p, lr=1e-3, weight_decay=1e-2),
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from xpnet.data import StandardScaler, load_dataset

    ds = load_dataset("digits")
    # A 512-row subset keeps the suite fast; batches are drawn from it by permutation.
    X = StandardScaler().fit_transform(ds.X)[:512]
    return np.asarray(X, dtype=np.float64), np.asarray(ds.y[:512])


def _mlp(hidden: int = 32):
    def build(g: np.random.Generator) -> xpnet.Module:
        return xpnet.Sequential(
            xpnet.Linear(64, hidden, generator=g), ReLU(), xpnet.Linear(hidden, 10, generator=g)
        )

    return build


# --------------------------------------------------------------------------- real backends


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_numpy_strict_torch_agree_on_digits(digits, opt, dtype):
    pytest.importorskip("torch")
    X, y = digits
    report = check_parity(
        _mlp(), CrossEntropyLoss(), OPTIMIZERS[opt], X, y,
        backends=("numpy", "array_api_strict", "torch"), steps=STEPS, dtype=dtype,
    )
    assert report.passed
    assert report.backends == ["numpy", "array_api_strict", "torch"]
    assert report.dtype == dtype and len(report.rows) == STEPS
    expected_rtol = PARITY_FLOAT64_RTOL if dtype == "float64" else PARITY_FLOAT32_RTOL
    assert report.rtol == expected_rtol
    assert report.max_rel <= expected_rtol
    # every step compared the loss, 4 gradients and 4 parameters on 2 backends
    assert len(report.diffs) == STEPS * 2 * (1 + 4 + 4)
    # training actually moved: the loss went down and parameters changed
    first, last = report.rows[0].losses["numpy"], report.rows[-1].losses["numpy"]
    assert last < first


def test_training_moves_parameters_identically(digits):
    """The compared trajectories are real ones: weights change by far more than the tolerance."""
    pytest.importorskip("torch")
    X, y = digits
    report = check_parity(
        _mlp(), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y, backends=("torch",), steps=5, dtype="float64"
    )
    assert report.backends == ["numpy", "torch"]
    losses = [r.losses["numpy"] for r in report.rows]
    assert len(set(losses)) == 5  # different batches and weights at every step
    for r in report.rows:
        assert r.losses["torch"] == pytest.approx(r.losses["numpy"], rel=PARITY_FLOAT64_RTOL)


def test_report_table_json_and_env(digits, tmp_path):
    pytest.importorskip("torch")
    X, y = digits
    report = check_parity(
        _mlp(), CrossEntropyLoss(), OPTIMIZERS["adam"], X, y, backends=("torch", "array_api_strict"), steps=4
    )
    table = report.format_table()
    header = table.splitlines()[0]
    for col in ("step", "loss[numpy]", "loss[torch]", "loss[array_api_strict]", "max rel diff", "worst"):
        assert col in header
    assert len(table.splitlines()) == 1 + 4
    assert "PASSED" in report.summary()
    d = json.loads(report.to_json(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == d
    assert d["passed"] is True and d["reference"] == "numpy" and len(d["rows"]) == 4
    assert {"step", "backend", "kind", "name", "max_abs", "rel", "ok"} <= set(d["diffs"][0])
    env = d["env"]
    for lib in ("numpy", "array_api_compat", "array_api_strict", "torch", "cupy"):
        assert lib in env["versions"]
    assert env["versions"]["numpy"] == np.__version__
    assert "float32_matmul_precision" in env["torch"]
    assert "cuda_matmul_allow_tf32" in env["torch"] or "cuda_matmul_fp32_precision" in env["torch"]
    assert set(env["devices"]) == {"numpy", "torch", "array_api_strict"}
    assert environment_info(["numpy"])["python"]


def test_default_backends_fall_back_to_what_is_available(digits):
    X, y = digits
    report = check_parity(_mlp(8), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y, steps=2)
    assert report.backends[0] == "numpy"
    if _available("cupy"):
        assert report.backends == ["numpy", "cupy"]
    else:
        assert report.backends == ["numpy", *(b for b in ("torch", STRICT) if _available(b))]


def _available(name: str) -> bool:
    try:
        get_backend(name)
    except Exception:  # noqa: BLE001
        return False
    return True


def test_no_float64_device_falls_back_to_float32_with_warning(digits):
    X, y = digits
    with pytest.warns(UserWarning, match="array_api_strict:no_float64 cannot create float64.*float32"):
        report = check_parity(
            _mlp(8), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y,
            backends=("array_api_strict:no_float64",), steps=3, dtype="float64",
        )
    assert report.dtype == "float32" and report.rtol == PARITY_FLOAT32_RTOL
    assert report.passed


def test_unavailable_backend_is_skipped_with_a_warning(digits, monkeypatch):
    from xpnet.testing import parity as parity_mod
    from xpnet.testing._backends import BackendUnavailable

    real = parity_mod.get_backend

    def fake(name: str):
        if name == "cupy":
            raise BackendUnavailable("cupy: no CUDA device (simulated)")
        return real(name)

    monkeypatch.setattr(parity_mod, "get_backend", fake)
    X, y = digits
    with pytest.warns(UserWarning, match="'cupy' is not available"):
        report = check_parity(_mlp(8), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y, backends=("cupy", STRICT), steps=2)
    assert report.backends == ["numpy", STRICT]
    with pytest.warns(UserWarning), pytest.raises(BackendUnavailable, match="at least one other backend"):
        check_parity(_mlp(8), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y, backends=("cupy",), steps=2)


def test_bad_arguments(digits):
    X, y = digits
    args = (_mlp(8), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y)
    with pytest.raises(ValueError, match="given twice"):
        check_parity(*args, backends=(STRICT, STRICT), steps=1)
    with pytest.raises(ValueError, match="steps"):
        check_parity(*args, backends=(STRICT,), steps=0)
    with pytest.raises(TypeError, match="float32 or float64"):
        check_parity(*args, backends=(STRICT,), steps=1, dtype="float16")
    with pytest.raises(ValueError, match="rows"):
        check_parity(_mlp(8), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y[:10], backends=(STRICT,), steps=1)


@pytest.mark.parametrize("dropout_generator", [None, 3])
def test_dropout_draws_the_same_masks_on_every_backend(digits, dropout_generator):
    X, y = digits

    def build(g):
        return xpnet.Sequential(
            xpnet.Linear(64, 32, generator=g), ReLU(), xpnet.Dropout(0.5, generator=dropout_generator),
            xpnet.Linear(32, 10, generator=g),
        )

    # torch when installed (its own kernels); array-api-strict always.
    others = tuple(b for b in ("torch", STRICT) if _available(b))
    report = check_parity(build, CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y, backends=others, steps=5)
    assert report.passed and report.max_rel < PARITY_FLOAT64_RTOL
    assert report.backends == ["numpy", *others]


def test_zero_argument_builder_is_seeded_and_restores_rng(digits):
    X, y = digits
    xpnet.manual_seed(123)
    before = xpnet.get_rng_state()
    r1 = check_parity(lambda: _mlp(8)(None), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y, backends=(STRICT,), steps=2, seed=7)
    assert xpnet.get_rng_state() == before
    r2 = check_parity(lambda: _mlp(8)(None), CrossEntropyLoss(), OPTIMIZERS["sgd"], X, y, backends=(STRICT,), steps=2, seed=7)
    assert [r.losses for r in r1.rows] == [r.losses for r in r2.rows]


# --------------------------------------------------------------------------- planted divergence


class _Switch:
    """Which operation the perturbed namespace scales, and whether it is on yet."""

    def __init__(self, op: str, factor: float = 1.0 + PERTURBATION) -> None:
        self.op = op
        self.factor = factor
        self.active = False


def _make_perturbed_namespace(switch: _Switch) -> Any:
    """NumPy behind a wrapper array type, with ``switch.op`` scaled by 1 + PERTURBATION.

    ``namespace_of`` finds the namespace through ``__array_namespace__``, exactly as it
    would for a third-party Array API library, so the model, loss and optimizer run on it
    unchanged.
    """
    ns = types.ModuleType("perturbed_numpy")

    def unwrap(v: Any) -> Any:
        if isinstance(v, PArray):
            return v._a
        if isinstance(v, (list, tuple)):
            return type(v)(unwrap(i) for i in v)
        return v

    def wrap(v: Any) -> Any:
        if isinstance(v, (np.ndarray, np.generic)):
            return PArray(np.asarray(v))
        if isinstance(v, tuple):
            return tuple(wrap(i) for i in v)
        return v

    def perturb(name: str, r: Any) -> Any:
        if switch.active and switch.op == name:
            return r * switch.factor
        return r

    class PArray:
        __slots__ = ("_a",)
        __array_ufunc__ = None  # NumPy defers to our reflected operators

        def __init__(self, a: np.ndarray) -> None:
            self._a = a

        def __array_namespace__(self, api_version: str | None = None) -> Any:
            return ns

        shape = property(lambda self: self._a.shape)
        dtype = property(lambda self: self._a.dtype)
        ndim = property(lambda self: self._a.ndim)
        size = property(lambda self: self._a.size)
        device = property(lambda self: "cpu")
        T = property(lambda self: PArray(self._a.T))
        mT = property(lambda self: PArray(np.swapaxes(self._a, -1, -2)))

        def to_device(self, device: Any, /, stream: Any = None) -> PArray:
            return self

        def __dlpack__(self, **kw: Any) -> Any:
            return self._a.__dlpack__(**kw)

        def __dlpack_device__(self) -> Any:
            return self._a.__dlpack_device__()

        def __getitem__(self, key: Any) -> PArray:
            return wrap(self._a[unwrap(key)])

        def __setitem__(self, key: Any, value: Any) -> None:
            self._a[unwrap(key)] = unwrap(value)

        def __matmul__(self, other: Any) -> PArray:
            return PArray(perturb("matmul", self._a @ unwrap(other)))

        def __rmatmul__(self, other: Any) -> PArray:
            return PArray(perturb("matmul", unwrap(other) @ self._a))

        def __bool__(self) -> bool:
            return bool(self._a)

        def __float__(self) -> float:
            return float(self._a)

        def __int__(self) -> int:
            return int(self._a)

        def __index__(self) -> int:
            return self._a.__index__()

        def __len__(self) -> int:
            return len(self._a)

        def __repr__(self) -> str:
            return f"PArray({self._a!r})"

    def _binop(name: str) -> Any:
        def op(self: PArray, other: Any) -> Any:
            return wrap(getattr(self._a, name)(unwrap(other)))

        return op

    def _inplace(name: str) -> Any:
        def op(self: PArray, other: Any) -> PArray:
            getattr(self._a, name)(unwrap(other))
            return self

        return op

    for base in ("add", "sub", "mul", "truediv", "floordiv", "pow", "mod", "and", "or", "xor", "lshift", "rshift"):
        setattr(PArray, f"__{base}__", _binop(f"__{base}__"))
        setattr(PArray, f"__r{base}__", _binop(f"__r{base}__"))
        setattr(PArray, f"__i{base}__", _inplace(f"__i{base}__"))
    for cmp in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(PArray, f"__{cmp}__", _binop(f"__{cmp}__"))
    for un in ("neg", "pos", "abs", "invert"):
        setattr(PArray, f"__{un}__", (lambda n: lambda self: PArray(getattr(self._a, f"__{n}__")()))(un))
    PArray.__hash__ = None  # type: ignore[assignment]

    def _function(name: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            r = fn(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
            return wrap(perturb(name, r))

        call.__name__ = name
        return call

    for name in dir(compat_np):
        if name.startswith("__") and name != "__array_namespace_info__":
            continue
        value = getattr(compat_np, name)
        if callable(value) and not isinstance(value, type) and name != "__array_namespace_info__":
            setattr(ns, name, _function(name, value))
        else:
            setattr(ns, name, value)
    ns.__array_namespace_info__ = compat_np.__array_namespace_info__
    ns.PArray = PArray
    return ns


class _TriggerLoss:
    """A loss that switches the perturbation on after ``after_step`` calls on its backend.

    The switch flips right after the loss of step ``after_step + 1`` is computed, so the
    first perturbed computation is that step's backward pass.
    """

    def __init__(self, loss: Any, ns: Any, switch: _Switch, after_step: int) -> None:
        self.loss, self.ns, self.switch, self.after = loss, ns, switch, after_step
        self.calls = 0

    def __call__(self, out: Any, target: Any) -> Any:
        result = self.loss(out, target)
        if _backend.namespace_of(out) is self.ns:
            self.calls += 1
            self.switch.active = self.calls > self.after
        return result


def _perturbed(op: str, factor: float = 1.0 + PERTURBATION) -> tuple[Any, _Switch, Backend]:
    switch = _Switch(op, factor)
    ns = _make_perturbed_namespace(switch)
    return ns, switch, Backend("numpy+perturbed", ns, "cpu")


def test_perturbed_namespace_is_a_backend_of_its_own():
    ns, switch, b = _perturbed("matmul")
    x = b.asarray(np.ones((2, 3)), dtype="float64")
    assert _backend.namespace_of(x) is ns
    assert _backend.backend_name(ns) == "perturbed_numpy"
    np.testing.assert_array_equal(_backend.to_numpy(x @ x.T), np.full((2, 2), 3.0))
    switch.active = True
    assert _backend.to_numpy(x @ x.T)[0, 0] == 3.0 * (1 + PERTURBATION)


def test_perturbed_matmul_is_caught_at_the_right_step_and_parameter(digits):
    X, y = digits
    ns, switch, pb = _perturbed("matmul")
    k = 3
    loss = _TriggerLoss(CrossEntropyLoss(), ns, switch, after_step=k)
    with pytest.raises(ParityError) as info:
        check_parity(_mlp(), loss, OPTIMIZERS["sgd"], X, y, backends=(STRICT, pb), steps=8)
    report: ParityReport = info.value.report
    f = report.first_failure
    # Backward of step k+1 is the first perturbed computation. Its loss is still exact;
    # gradients come before parameters, and the first layer's weight is the first in
    # named_parameters order.
    assert (f.step, f.backend, f.kind, f.name) == (k + 1, "numpy+perturbed", "grad", "0.weight")
    assert all(r.ok for r in report.rows[:k]) and not report.rows[k].ok
    at = {(d.kind, d.name): d for d in report.diffs if d.step == k + 1 and d.backend == "numpy+perturbed"}
    assert at[("loss", "loss")].ok
    # dW of the last layer is one perturbed product δᵀx; the first layer's goes through
    # two (dx = δW, then δᵀx), so its error is about twice as large.
    assert at[("grad", "2.weight")].rel == pytest.approx(PERTURBATION, rel=1e-3)
    assert f.rel > 1.5 * PERTURBATION
    # the unperturbed backend stays in agreement throughout; only the perturbed one fails
    assert all(d.ok for d in report.diffs if d.backend == STRICT)
    msg = str(info.value)
    assert f"FAILED at step {k + 1}: 0.weight grad (numpy+perturbed)" in msg
    assert "<-- FAIL" in msg
    assert report.diagnosis().startswith("sudden divergence")


def test_perturbation_names_a_later_parameter(digits):
    """With the first weight frozen (no gradient anywhere), the first bias is named."""
    X, y = digits
    ns, switch, pb = _perturbed("matmul")
    k = 5

    def build(g):
        model = _mlp()(g)
        model[0].weight.requires_grad = False
        return model

    loss = _TriggerLoss(CrossEntropyLoss(), ns, switch, after_step=k)
    report = check_parity(build, loss, OPTIMIZERS["sgd"], X, y, backends=(pb,), steps=k + 2, raise_on_failure=False)
    f = report.first_failure
    assert (f.step, f.kind, f.name) == (k + 1, "grad", "0.bias")
    frozen = [d for d in report.diffs if d.name == "0.weight"]
    assert all(d.ok for d in frozen if d.kind == "grad")  # None on both backends
    assert all(d.ok and d.max_abs == 0.0 for d in frozen if d.kind == "param" and d.step <= k + 1)


def test_perturbed_optimizer_op_is_reported_as_a_parameter(digits):
    """sqrt only appears in Adam's update: gradients stay exact, parameters diverge."""
    X, y = digits
    ns, switch, pb = _perturbed("sqrt")
    k = 4
    loss = _TriggerLoss(CrossEntropyLoss(), ns, switch, after_step=k)
    report = check_parity(_mlp(), loss, OPTIMIZERS["adam"], X, y, backends=(pb,), steps=k + 2, raise_on_failure=False)
    f = report.first_failure
    assert (f.step, f.kind, f.name) == (k + 1, "param", "0.weight")
    assert all(d.ok for d in report.diffs if d.step == k + 1 and d.kind in ("loss", "grad"))


def test_perturbed_exp_shows_first_in_the_loss(digits):
    X, y = digits
    ns, switch, pb = _perturbed("exp")
    k = 2
    loss = _TriggerLoss(CrossEntropyLoss(), ns, switch, after_step=k)
    report = check_parity(_mlp(), loss, OPTIMIZERS["adam"], X, y, backends=(pb,), steps=6, raise_on_failure=False)
    f = report.first_failure
    # exp is only used by the softmax inside the loss: the next loss is the first victim
    assert (f.step, f.kind, f.name) == (k + 2, "loss", "loss")


def test_float32_tolerance_still_catches_a_float32_sized_bug(digits):
    """An lr off by 5% on one backend (a wrong constant) fails float32 parity at step 1."""
    pytest.importorskip("torch")  # torch's own float32 rounding is the noise to rise above
    X, y = digits

    def factory(params):
        lr = 1e-3
        if _backend.backend_name(_backend.namespace_of(params[0].data)) == "torch":
            lr *= 1.05
        return optim.Adam(params, lr=lr)

    with pytest.raises(ParityError) as info:
        check_parity(_mlp(), CrossEntropyLoss(), factory, X, y, backends=("torch",), steps=10, dtype="float32")
    f = info.value.report.first_failure
    assert (f.step, f.backend, f.kind, f.name) == (1, "torch", "param", "0.weight")


def test_gradual_divergence_is_diagnosed(digits):
    """Rounding amplified over many steps is told apart from a sudden bug."""
    pytest.importorskip("torch")  # needs real rounding differences (strict is bit-identical)
    X, y = digits
    # rtol 5e-7 is above float32's step-1 difference (~2e-7) but below what 60 steps of
    # Adam at lr 1e-2 accumulate, so the failure comes late and gradually.
    report = check_parity(
        _mlp(), CrossEntropyLoss(), lambda p: optim.Adam(p, lr=1e-2), X, y,
        backends=("torch",), steps=60, dtype="float32", rtol=5e-7, atol=0, raise_on_failure=False,
    )
    assert not report.passed and report.first_failure.step > 2
    assert report.diagnosis().startswith("gradual divergence")
    assert "gradual divergence" in report.summary()


def test_parameter_leaving_its_backend_is_reported(digits):
    """An optimizer that silently turns float32 parameters into float64 is a parity failure."""
    X, y = digits

    class Promoting(optim.SGD):
        def step(self, closure=None):
            super().step()
            for group in self.param_groups:
                for p in group["params"]:
                    xp = _backend.namespace_of(p.data)
                    if _backend.backend_name(xp) == STRICT:
                        p.data = xp.astype(p.data, xp.float64)

    report = check_parity(
        _mlp(8), CrossEntropyLoss(), lambda p: Promoting(p, lr=0.1), X, y,
        backends=(STRICT,), steps=1, dtype="float32", raise_on_failure=False,
    )
    f = report.first_failure
    assert (f.step, f.kind, f.name) == (1, "param", "0.weight")
    assert "changed dtype to float64" in f.note


# --------------------------------------------------------------------------- non-finite values

# SGD at lr 1e8 in float32 on this 64-32-10 MLP overflows the reference's logits at step 4
# (losses 2.4, 4.6e14, 2.6e30, then nan), on every backend alike.
EXPLODING_LR = 1e8
DIVERGES_AT = 4


class _NaNGradAfter:
    """A loss whose gradient turns NaN after ``after`` calls on each backend (loss stays finite)."""

    def __init__(self, loss: Any, after: int) -> None:
        self.loss, self.after = loss, after
        self.calls: dict[int, int] = {}

    def __call__(self, out: Any, target: Any) -> Any:
        loss, grad = self.loss(out, target)
        key = id(_backend.namespace_of(out))
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.calls[key] > self.after:
            grad = grad * float("nan")
        return loss, grad


@pytest.mark.parametrize("other", [STRICT, "torch"])
def test_training_diverging_to_nan_is_not_a_pass(digits, other):
    """Identical NaNs on every backend used to count as agreement (and PASSED)."""
    if other == "torch":
        pytest.importorskip("torch")
    X, y = digits
    args = (_mlp(), CrossEntropyLoss(), lambda p: optim.SGD(p, lr=EXPLODING_LR), X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warnings
        with pytest.raises(ParityError) as info:
            check_parity(*args, backends=(other,), steps=8, dtype="float32")
        report = check_parity(*args, backends=(other,), steps=8, dtype="float32", raise_on_failure=False)
    assert isinstance(info.value, AssertionError)
    assert info.value.report.diverged == report.diverged
    assert not report.passed and report.status == "inconclusive" and report.first_failure is None
    d = report.diverged
    assert d == NonFinite(DIVERGES_AT, "numpy", "loss", "loss", 1, 1, "nan")
    # the run stops at the first non-finite reference value
    assert report.steps_run == DIVERGES_AT and len(report.rows) == DIVERGES_AT
    losses = [r.losses["numpy"] for r in report.rows]
    assert all(np.isfinite(losses[:-1])) and np.isnan(losses[-1]) and losses[-2] > 1e20
    assert all(r.ok for r in report.rows[:-1]) and not report.rows[-1].ok
    # nothing whose reference is NaN was compared (NaN == NaN proves nothing)
    assert all(dd.step < DIVERGES_AT for dd in report.diffs)
    msg = str(info.value)
    assert (
        f"INCONCLUSIVE (not a pass) at step {DIVERGES_AT} of 8: training diverged to non-finite values at "
        f"step {DIVERGES_AT} on the reference backend (numpy): loss is nan; lower the learning rate"
    ) in msg
    assert "PASSED" not in msg and "NON-FINITE loss (numpy)" in msg
    assert report.diagnosis() == d.message()
    j = report.to_dict()
    assert j["passed"] is False and j["status"] == "inconclusive" and j["diverged"]["step"] == DIVERGES_AT


def test_nonfinite_reference_gradient_stops_the_run_and_names_it(digits):
    """The first non-finite reference tensor is named: here a gradient, with a finite loss."""
    X, y = digits
    k = 3
    report = check_parity(
        _mlp(), _NaNGradAfter(CrossEntropyLoss(), after=k), OPTIMIZERS["sgd"], X, y,
        backends=(STRICT,), steps=8, raise_on_failure=False,
    )
    d = report.diverged
    # backward of step k+1 is the first NaN; named_parameters order names 0.weight first
    assert (d.step, d.kind, d.name, d.values) == (k + 1, "grad", "0.weight", "nan")
    assert d.count == d.size == 32 * 64
    assert report.status == "inconclusive" and report.steps_run == k + 1
    # at that step the loss (finite on the reference) was still compared, and agreed
    at = [dd for dd in report.diffs if dd.step == k + 1]
    assert [(dd.kind, dd.ok) for dd in at] == [("loss", True)]
    assert "0.weight grad has 2048 of 2048 entries nan" in report.summary()


def test_nan_on_one_backend_only_is_a_failure_at_that_step(digits):
    """A backend producing NaN where the reference is finite fails there, with a note."""
    X, y = digits
    ns, switch, pb = _perturbed("matmul", factor=float("nan"))
    k = 2
    loss = _TriggerLoss(CrossEntropyLoss(), ns, switch, after_step=k)
    with pytest.raises(ParityError) as info:
        check_parity(_mlp(), loss, OPTIMIZERS["sgd"], X, y, backends=(STRICT, pb), steps=6)
    report = info.value.report
    f = report.first_failure
    assert (f.step, f.backend, f.kind, f.name) == (k + 1, "numpy+perturbed", "grad", "0.weight")
    assert f.note == "nan on numpy+perturbed where numpy is finite" and f.max_abs == float("inf")
    assert report.diverged is None and report.status == "failed"
    assert all(dd.ok for dd in report.diffs if dd.backend == STRICT)
    assert report.diagnosis().startswith("not a rounding difference: nan on numpy+perturbed")


def test_failure_then_divergence_reports_both(digits):
    """A real mismatch stays the verdict; the later divergence is added and stops the run."""
    X, y = digits
    ns, switch, pb = _perturbed("matmul")
    k = 2
    loss = _TriggerLoss(_NaNGradAfter(CrossEntropyLoss(), after=k + 2), ns, switch, after_step=k)
    report = check_parity(_mlp(), loss, OPTIMIZERS["sgd"], X, y, backends=(pb,), steps=10, raise_on_failure=False)
    assert report.status == "failed"
    assert (report.first_failure.step, report.diverged.step) == (k + 1, k + 3)
    assert report.steps_run == k + 3
    text = report.summary()
    assert f"FAILED at step {k + 1}" in text and f"then training diverged to non-finite values at step {k + 3}" in text


# --------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    from xpnet import cli_parity

    parser = argparse.ArgumentParser(prog="xpnet")
    sub = parser.add_subparsers(dest="command")
    cli_parity.add_parser(sub)
    return parser, parser.parse_args(["parity", *argv])


def test_cli_parity_passes_and_writes_json(capsys, tmp_path):
    pytest.importorskip("torch")
    from xpnet import cli_parity

    out = tmp_path / "report.json"
    _, args = _cli(["digits", "--backends", "numpy,torch,array_api_strict", "--steps", "5", "--hidden", "16",
                    "--optimizer", "momentum", "--json", str(out)])
    assert args.func is cli_parity.run
    rc = args.func(args)
    text = capsys.readouterr().out
    assert rc == 0
    assert "loss[torch]" in text and "max rel diff" in text and "PASSED" in text
    assert len([ln for ln in text.splitlines() if ln.strip().split(" ")[0].isdigit()]) >= 5
    report = json.loads(out.read_text())
    assert report["passed"] and report["steps"] == 5 and report["backends"] == ["numpy", "torch", "array_api_strict"]


def test_cli_parity_divergence_exits_1(capsys):
    pytest.importorskip("torch")  # strict is bit-identical to NumPy: it cannot fail this
    from xpnet import cli_parity

    # rtol/atol far below float32 rounding: torch and NumPy cannot agree that closely
    _, args = _cli(["--backends", "torch", "--steps", "3", "--hidden", "8", "--dtype", "float32",
                    "--rtol", "1e-30", "--atol", "0"])
    assert cli_parity.run(args) == 1
    out = capsys.readouterr().out
    assert "FAILED at step 1" in out and "(torch)" in out
    assert "rounding-level difference" in out


@pytest.mark.parametrize("other", [STRICT, "torch"])
def test_cli_parity_nan_training_exits_1(capsys, other):
    """The review's repro: `xpnet parity --optimizer sgd --lr 1e8 --dtype float32` printed PASSED."""
    if other == "torch":
        pytest.importorskip("torch")
    from xpnet import cli_parity

    _, args = _cli(["--backends", f"numpy,{other}", "--steps", "8", "--optimizer", "sgd", "--lr", "1e8",
                    "--dtype", "float32"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert cli_parity.run(args) == 1
    out = capsys.readouterr().out
    assert "PASSED" not in out
    assert "training diverged to non-finite values at step 4 on the reference backend" in out
    assert out.rstrip().splitlines()[-1] == (
        "INCONCLUSIVE: training diverged to non-finite values at step 4 on the reference backend numpy "
        "(loss is nan); lower the learning rate (--lr)"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backends", "numpy,tensorflow"], "unknown backend"),
        (["--backends", "numpy"], "at least one other"),
        (["--backends", "torch,torch"], "listed twice"),
        (["no_such_dataset", "--backends", STRICT], "cannot load dataset"),
        (["--backends", STRICT, "--activation", "swishy"], "unknown activation"),
    ],
)
def test_cli_parity_bad_arguments_exit_2(argv, message, capsys):
    from xpnet import cli_parity

    _, args = _cli(argv)
    assert cli_parity.run(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("xpnet parity: error:")


def test_cli_parity_argparse_rejects_bad_values():
    with pytest.raises(SystemExit) as info:
        _cli(["--steps", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        _cli(["--dtype", "float16"])
    assert info.value.code == 2  # argparse's usage error


def test_cli_parity_skips_unavailable_backend(capsys, monkeypatch):
    from xpnet import cli_parity
    from xpnet.testing import _backends
    from xpnet.testing._backends import BackendUnavailable

    real = _backends.get_backend

    def fake(name: str):
        if name == "cupy":
            raise BackendUnavailable("cupy: no CUDA device (simulated)")
        return real(name)

    monkeypatch.setattr(_backends, "get_backend", fake)
    _, args = _cli(["--backends", f"numpy,cupy,{STRICT}", "--steps", "2", "--hidden", "8"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli_parity.run(args) == 0
    captured = capsys.readouterr()
    assert "skipping unavailable backend cupy" in captured.err
    assert "loss[cupy]" not in captured.out
    _, args = _cli(["--backends", "numpy,cupy", "--steps", "2"])
    assert cli_parity.run(args) == 2
