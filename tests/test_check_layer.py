"""check_layer certifies built-in layers and catches planted contract violations."""

from __future__ import annotations

import importlib.util
import inspect

import array_api_strict
import numpy as np
import pytest

import xpnet
from xpnet import _backend
from xpnet import activations as A
from xpnet.testing.check_layer import LayerCheckError, LayerCheckReport, check_layer

# The backends check_layer uses by default that exist on every CI machine; cupy and
# torch join when installed/usable.
ALWAYS = {"numpy", "array_api_strict", "array_api_strict:device1"}

BUILTIN = {
    "Linear": (lambda: xpnet.Linear(5, 3), (4, 5), {}),
    "Linear-no-bias": (lambda: xpnet.Linear(5, 3, bias=False), (4, 5), {}),
    "Linear-3d": (lambda: xpnet.Linear(5, 3), (2, 4, 5), {}),
    "Identity": (xpnet.Identity, (4, 5), {}),
    "Flatten": (xpnet.Flatten, (4, 2, 3), {}),
    "Unflatten": (lambda: xpnet.Unflatten(1, (2, 3)), (4, 6), {}),
    "Sequential": (lambda: xpnet.Sequential(xpnet.Linear(5, 4), A.Tanh(), xpnet.Linear(4, 2)), (3, 5), {}),
    # Dropout's train-mode forward is random, so it is no fixed function to difference.
    "Dropout": (lambda: xpnet.Dropout(0.5), (4, 5), {"gradcheck": False}),
    "Sigmoid": (A.Sigmoid, (4, 5), {}),
    "Tanh": (A.Tanh, (4, 5), {}),
    "ReLU": (A.ReLU, (4, 5), {}),
    "LeakyReLU": (lambda: A.LeakyReLU(0.1), (4, 5), {}),
    "ELU": (A.ELU, (4, 5), {}),
    "GELU": (A.GELU, (4, 5), {}),
    "GELU-tanh": (lambda: A.GELU(approximate="tanh"), (4, 5), {}),
    "SiLU": (A.SiLU, (4, 5), {}),
    "Softplus": (A.Softplus, (4, 5), {}),
    "Softmax": (A.Softmax, (4, 5), {}),
    "LogSoftmax": (A.LogSoftmax, (4, 5), {}),
    "Heaviside": (A.Heaviside, (4, 5), {}),
    "Conv2d": (lambda: xpnet.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 6), {}),
    "Conv2d-groups-dilation": (lambda: xpnet.Conv2d(4, 2, (2, 3), dilation=2, groups=2), (1, 4, 7, 8), {}),
    # Random inputs have no ties, so the max-pool gradient is a fixed function here.
    "MaxPool2d": (lambda: xpnet.MaxPool2d(2), (2, 3, 4, 5), {}),
    "AvgPool2d": (lambda: xpnet.AvgPool2d(3, stride=2, padding=1), (2, 3, 5, 5), {}),
    "AdaptiveAvgPool2d": (lambda: xpnet.AdaptiveAvgPool2d(1), (2, 3, 4, 5), {}),
    # Without running statistics, train and eval mode compute the same function.
    "BatchNorm1d": (lambda: xpnet.BatchNorm1d(3, track_running_stats=False), (4, 3), {}),
    "BatchNorm2d": (lambda: xpnet.BatchNorm2d(2, track_running_stats=False), (2, 2, 3, 3), {}),
    # With running statistics eval mode differs from train mode: no gradcheck of it.
    "BatchNorm1d-running": (lambda: xpnet.BatchNorm1d(3), (4, 3, 2), {"gradcheck": False}),
    "LayerNorm": (lambda: xpnet.LayerNorm((3, 4)), (2, 3, 4), {}),
    "Embedding": (
        lambda: xpnet.Embedding(6, 3, validate=False), (2, 4),
        {"input": np.array([[1, 5, 5, 4], [2, 0, 1, 3]])},
    ),
    "Residual": (lambda: xpnet.Residual(xpnet.Sequential(xpnet.Linear(4, 4), A.Tanh())), (3, 4), {}),
    "PReLU": (lambda: xpnet.PReLU(3), (4, 3), {}),
    "SELU": (xpnet.SELU, (4, 5), {}),
    "CELU": (lambda: xpnet.CELU(0.7), (4, 5), {}),
    "ReLU6": (xpnet.ReLU6, (4, 5), {}),
    "Hardtanh": (xpnet.Hardtanh, (4, 5), {}),
    "Hardsigmoid": (xpnet.Hardsigmoid, (4, 5), {}),
    "Hardswish": (xpnet.Hardswish, (4, 5), {}),
    "Mish": (xpnet.Mish, (4, 5), {}),
    "LogSigmoid": (xpnet.LogSigmoid, (4, 5), {}),
    "Softsign": (xpnet.Softsign, (4, 5), {}),
    "Tanhshrink": (xpnet.Tanhshrink, (4, 5), {}),
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_layers_pass(name):
    factory, shape, kw = BUILTIN[name]
    report = check_layer(factory, shape, **kw)
    assert isinstance(report, LayerCheckReport) and report.ok
    assert ALWAYS <= set(report.backends)
    for r in report.backends.values():
        assert "forward output" in r.passed
        assert any(step.startswith("backward dx") for step in r.passed)  # "(None: integer input)" for Embedding
        assert "eval mode" in r.passed and "backward before forward" in r.passed
        if kw.get("gradcheck", True):
            assert "gradcheck" in r.passed and r.gradcheck_max_abs_err is not None
    # the host-sync watch ran on array-api-strict (both devices) and found nothing
    for name in ("array_api_strict", "array_api_strict:device1"):
        passed = report.backends[name].passed
        for phase in ("forward", "backward", "eval-mode forward"):
            assert f"no host sync in {phase}" in passed


def test_builtin_layers_pass_in_float32():
    report = check_layer(lambda: xpnet.Linear(5, 3), (4, 5), dtype="float32")
    assert report.ok and all(r.dtype == "float32" for r in report.backends.values())


def test_device_without_float64_checks_in_float32_and_skips_gradcheck():
    report = check_layer(lambda: xpnet.Linear(5, 3), (4, 5), backends=["array_api_strict:no_float64"])
    r = report.backends["array_api_strict:no_float64"]
    assert r.ok and r.dtype == "float32"
    assert any("gradcheck" in s for s in r.skipped)
    assert report.backends["numpy"].dtype == "float64"  # the reference always runs


def test_rng_state_is_left_alone():
    xpnet.manual_seed(5)
    before = xpnet.get_rng_state()
    check_layer(lambda: xpnet.Dropout(0.5), (4, 5), gradcheck=False, backends=["numpy", "array_api_strict"])
    assert xpnet.get_rng_state() == before


# --------------------------------------------------------------------------- planted bugs


class _Base(xpnet.Module):
    """A well-behaved parameter-free layer; the planted bugs override one piece."""

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def _store(self, value):
        self._cache = value if self.training else None

    def _take(self):
        value = self._cache
        if value is None:
            raise self._missing_cache()
        self._cache = None
        return value


class WrongGradient(_Base):
    """tanh whose backward forgets to square: dx = dy (1 - tanh x)."""

    def forward(self, x):
        y = _backend.namespace_of(x).tanh(x)
        self._store(y)
        return y

    def backward(self, dy):
        y = self._take()
        return dy * (1.0 - y)


class NumpyCall(_Base):
    """Doubles its input through NumPy: works on NumPy, breaks every other backend."""

    def forward(self, x):
        self._store(True)
        return np.asarray(x) * 2.0

    def backward(self, dy):
        self._take()
        return dy * 2.0


class MissingDevice(_Base):
    """Adds a constant created without device=: lands on the default device."""

    def forward(self, x):
        xp = _backend.namespace_of(x)
        self._store(True)
        return x + xp.ones(x.shape[-1:], dtype=x.dtype)

    def backward(self, dy):
        self._take()
        return dy


class MissingDeviceInBackward(_Base):
    """Returns dx = 0 created without device=."""

    def forward(self, x):
        self._store(tuple(x.shape))
        return x * 0.0

    def backward(self, dy):
        shape = self._take()
        return _backend.namespace_of(dy).zeros(shape, dtype=dy.dtype)


class NumpyScalar(_Base):
    """Multiplies by np.float64(2): promotes float32 NumPy arrays to float64."""

    def forward(self, x):
        self._store(True)
        return x * np.float64(2.0)

    def backward(self, dy):
        self._take()
        return dy * 2.0


class EvalStores(_Base):
    """Keeps its input for backward even in eval mode."""

    def forward(self, x):
        self._cache = True
        return x * 3.0

    def backward(self, dy):
        self._take()
        return dy * 3.0


class NoCacheCheck(xpnet.Module):
    """Never checks for a stored forward: backward always 'works'."""

    def forward(self, x):
        return x * 1.5

    def backward(self, dy):
        return dy * 1.5


class ForgetsParamGrad(_Base):
    """A scale parameter whose gradient is never accumulated."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = xpnet.Parameter(np.full((5,), 2.0))

    def forward(self, x):
        self._store(True)
        return x * self.scale.data

    def backward(self, dy):
        self._take()
        return dy * self.scale.data


class WrongShapeDx(_Base):
    """Returns dx summed over the batch."""

    def forward(self, x):
        self._store(True)
        return x * 1.0

    def backward(self, dy):
        self._take()
        return _backend.namespace_of(dy).sum(dy, axis=0)


class MutatesInput(_Base):
    """Scales its input in place."""

    def forward(self, x):
        self._store(True)
        x *= 2.0
        return x

    def backward(self, dy):
        self._take()
        return dy * 2.0


class TorchOnlyBranch(_Base):
    """A backend-specific branch computes slightly different numbers on torch."""

    def forward(self, x):
        xp = _backend.namespace_of(x)
        self._store(True)
        scale = 1.0 + 1e-6 if _backend.backend_name(xp) == "torch" else 1.0
        return x * scale

    def backward(self, dy):
        self._take()
        return dy * 1.0


class SyncInForward(_Base):
    """Branches on an array value with float(): the same function, but a host sync."""

    def forward(self, x):
        xp = _backend.namespace_of(x)
        self._store(True)
        if float(xp.sum(x)) > -1e300:  # always true: the numbers are unaffected
            return x * 2.0
        return x * 2.0

    def backward(self, dy):
        self._take()
        return dy * 2.0


class SyncInBackward(_Base):
    """`if xp.any(dy < 0):` in backward calls bool() on an array."""

    def forward(self, x):
        self._store(True)
        return x * 2.0

    def backward(self, dy):
        self._take()
        xp = _backend.namespace_of(dy)
        if xp.any(dy < -1e300):  # never true
            return dy * 0.0
        return dy * 2.0


class SyncInEvalOnly(_Base):
    """int() of an array, only on the eval-mode path."""

    def forward(self, x):
        xp = _backend.namespace_of(x)
        self._store(True)
        if not self.training:
            int(xp.sum(xp.astype(x > 1e300, xp.int64)))
        return x * 2.0

    def backward(self, dy):
        self._take()
        return dy * 2.0


class ItemCall(_Base):
    """x.item(): not in the Array API (array-api-strict has no .item), and a host sync."""

    def forward(self, x):
        xp = _backend.namespace_of(x)
        self._store(True)
        return x * (2.0 + 0.0 * xp.max(x).item())

    def backward(self, dy):
        self._take()
        return dy * 2.0


class PythonScalars(_Base):
    """float()/int() of Python numbers and shapes: no sync, must pass."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = 2

    def forward(self, x):
        self._store(int(x.shape[0]))
        return x * float(self.alpha)

    def backward(self, dy):
        self._take()
        return dy * float(self.alpha)


def _line_of(cls, text: str) -> int:
    lines, start = inspect.getsourcelines(cls)
    return start + next(i for i, ln in enumerate(lines) if text in ln)


def _fail(layer, shape=(3, 5), **kw) -> tuple[LayerCheckError, dict]:
    with pytest.raises(LayerCheckError) as info:
        check_layer(layer, shape, **kw)
    by_backend: dict[str, list] = {}
    for f in info.value.report.failures:
        by_backend.setdefault(f.backend, []).append(f)
    return info.value, by_backend


def test_wrong_gradient_fails_gradcheck_everywhere():
    err, by = _fail(WrongGradient)
    assert ALWAYS <= set(by)
    for fails in by.values():
        assert [f.check for f in fails] == ["gradcheck"]
    msg = str(err)
    assert "[array_api_strict:device1] gradcheck: gradient of input disagrees with finite differences" in msg
    assert "check the derivative formula" in msg


def test_numpy_call_is_caught_with_a_hint():
    err, by = _fail(NumpyCall)
    assert "numpy" not in by  # NumPy itself cannot tell
    strict = by["array_api_strict"][0]
    assert strict.check == "output"
    assert strict.message == "output is a numpy array on array_api_strict"
    assert "the layer probably calls numpy" in strict.hint
    dev1 = by["array_api_strict:device1"][0]
    assert dev1.check == "forward" and "the layer probably calls numpy" in dev1.hint
    has_torch = importlib.util.find_spec("torch") is not None
    assert ("torch" in err.report.backends) == has_torch  # the default list takes torch when installed
    if has_torch:
        assert by["torch"][0].message == "output is a numpy array on torch"


def test_missing_device_is_caught_on_device1_with_a_hint():
    err, by = _fail(MissingDevice)
    assert set(by) == {"array_api_strict:device1"}  # every default device passes
    f = by["array_api_strict:device1"][0]
    assert f.check == "forward" and "two different devices" in f.message
    assert "created on CPU_DEVICE instead of device1: pass device=" in f.hint


def test_missing_device_in_backward_names_dx():
    err, by = _fail(MissingDeviceInBackward)
    assert set(by) == {"array_api_strict:device1"}
    f = by["array_api_strict:device1"][0]
    assert f.message == "dx (backward's return value) is on device CPU_DEVICE, expected device1 (the input's device)"
    assert f.hint.startswith("created on CPU_DEVICE instead of device1: pass device=")


def test_numpy_scalar_promotion_is_caught_in_float32():
    err, by = _fail(NumpyScalar, dtype="float32", gradcheck=False)
    f = by["numpy"][0]
    assert f.message == "output has dtype float64, expected float32"
    assert "NumPy scalar" in f.hint


def test_eval_mode_storing_is_caught():
    err, by = _fail(EvalStores)
    checks = {f.check for fails in by.values() for f in fails}
    assert checks == {"eval mode"}
    assert "keeps nothing in eval mode" in by["numpy"][0].hint


def test_missing_cache_checks_are_caught():
    err, by = _fail(NoCacheCheck)
    checks = {f.check for f in by["numpy"]}
    assert checks == {"second backward", "backward before forward", "eval mode"}
    assert "pop_saved" in str(err)


def test_missing_parameter_gradient():
    err, by = _fail(ForgetsParamGrad)
    f = by["numpy"][0]
    assert f.check == "parameter gradients" and f.message == "scale.grad is None after backward"
    assert "accumulate_grad" in f.hint


def test_wrong_dx_shape():
    err, by = _fail(WrongShapeDx, gradcheck=False)
    f = by["numpy"][0]
    assert f.message == "dx (backward's return value) has shape (5,), expected (3, 5)"


def test_input_mutation():
    err, by = _fail(MutatesInput, gradcheck=False)
    assert any(f.message == "forward modified its input in place" for f in by["numpy"])


def test_backend_specific_numbers_fail_agreement():
    pytest.importorskip("torch")
    err, by = _fail(TorchOnlyBranch, gradcheck=False)
    assert set(by) == {"torch"}
    f = by["torch"][0]
    assert f.check == "agreement with numpy" and "output vs numpy" in f.message


def test_report_text_lists_backends_and_raise_switch():
    report = check_layer(NumpyCall, (3, 5), raise_on_failure=False)
    assert not report.ok
    text = str(report)
    assert text.startswith("check_layer(NumpyCall, input (3, 5), float64):")
    assert "numpy: ok" in text and "array_api_strict: FAILED" in text


def test_bad_factory():
    with pytest.raises(TypeError, match="must return an xpnet Module"):
        check_layer(lambda: 3, (2, 2))


STRICT_BACKENDS = {"array_api_strict", "array_api_strict:device1"}


@pytest.mark.parametrize(
    "layer, phases, op, marker",
    [
        (SyncInForward, ("forward", "eval-mode forward"), "float()", "if float(xp.sum(x))"),
        (SyncInBackward, ("backward",), "bool()", "if xp.any(dy < -1e300)"),
        (SyncInEvalOnly, ("eval-mode forward",), "int()", "int(xp.sum("),
    ],
)
def test_host_sync_in_forward_or_backward_is_caught(layer, phases, op, marker):
    array_cls = type(array_api_strict.asarray(0.0))
    original = {n: array_cls.__dict__[n] for n in ("__bool__", "__float__", "__int__", "__index__", "__complex__")}
    err, by = _fail(layer)
    # the numbers are right everywhere: only the watched backends can see the sync
    assert set(by) == STRICT_BACKENDS
    line = _line_of(layer, marker)
    for name in STRICT_BACKENDS:
        assert [f.message for f in by[name]] == [
            f"{phase} calls {op} on an array (test_check_layer.py:{line}): a host sync (DESIGN §2.4) "
            f"that copies the value to the host and waits for the device on every call"
            for phase in phases
        ]
        for f in by[name]:
            assert f.check == "host sync" and f.hint.startswith("keep value checks out of forward/backward")
    assert "[array_api_strict:device1] host sync:" in str(err)
    # the array class is restored after the check, also when it fails
    assert {n: array_cls.__dict__[n] for n in original} == original
    x = array_api_strict.asarray(1.5)
    assert float(x) == 1.5 and bool(x) and int(x) == 1


def test_item_call_is_reported_as_a_host_sync():
    err, by = _fail(ItemCall)
    f = by["array_api_strict:device1"][0]
    assert f.check == "forward" and "item" in f.message
    assert "a host sync (DESIGN §2.4)" in f.hint and "keep value checks out of forward/backward" in f.hint


def test_python_scalars_are_not_host_syncs():
    report = check_layer(PythonScalars, (3, 5))
    assert report.ok
    assert "no host sync in forward" in report.backends["array_api_strict:device1"].passed


def test_builtin_table_names_every_public_layer():
    # .ci/gpu-validate certifies this table on the GPU: a layer missing here is a layer the
    # first lent GPU never checks.
    public = {
        n for n in xpnet.__all__
        if inspect.isclass(getattr(xpnet, n)) and issubclass(getattr(xpnet, n), xpnet.Module)
    }
    covered = {type(factory()).__name__ for factory, _, _ in BUILTIN.values()}
    missing = public - covered - {"Module"}
    assert not missing, f"add these layers to BUILTIN: {sorted(missing)}"


def test_require_backends_raises_instead_of_skipping():
    from xpnet.testing import BackendUnavailable

    with pytest.warns(UserWarning, match="skipping unavailable backend"):
        check_layer(xpnet.ReLU, (2, 3), backends=["numpy", "torch:cuda:7"])
    with pytest.raises(BackendUnavailable, match=r"required backend 'torch:cuda:7'"):
        check_layer(xpnet.ReLU, (2, 3), backends=["numpy", "torch:cuda:7"], require_backends=True)
