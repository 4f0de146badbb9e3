"""``check_layer``: certify that a (user-written) layer keeps the backend contract.

A layer that works on NumPy can still break on a GPU: a stray ``np.asarray`` pulls the
input to the host, an ``xp.zeros(shape)`` without ``device=`` lands on the wrong device, a
NumPy scalar promotes float32 to float64. :func:`check_layer` runs the layer on every
available backend, including array-api-strict on its second device (``device1``), which
reproduces those GPU failures on a CPU-only machine, and checks::

    from xpnet.testing import check_layer
    check_layer(lambda: MyLayer(5, 3), (4, 5))   # raises LayerCheckError listing failures

* forward (training mode): output is an array of the backend's namespace, on the
  input's device, of the requested dtype, of the same shape as on NumPy; the input is not
  modified;
* backward: returns ``dx`` shaped like ``x`` and fills every parameter's ``grad`` with
  the parameter's shape, namespace, device and dtype; ``dy`` is not modified; a second
  backward without a new forward raises ``RuntimeError`` (the stored forward is cleared);
* output, ``dx`` and gradients agree with NumPy's (:func:`~xpnet.testing.assert_close`);
* central finite differences in float64 agree with backward
  (:func:`~xpnet.testing.gradcheck`);
* eval mode stores nothing (backward after an eval forward raises ``RuntimeError``) and
  backward before any forward raises ``RuntimeError``;
* forward and backward never force a host synchronisation: on array-api-strict, calling
  ``float()``, ``bool()`` (``if x > 0:``), ``int()``, ``complex()`` or ``operator.index()``
  on an array inside the layer is reported (DESIGN §2.4).

Every failure is reported with its backend and a hint that names the usual cause.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _backend
from ..module import Module
from ..random import get_rng_state, set_rng_state
from ._backends import DEFAULT_BACKENDS, Backend, BackendUnavailable, get_backend
from .assertions import assert_close, default_tolerances
from .gradcheck import GradcheckError
from .gradcheck import gradcheck as _gradcheck
from .parity import _has_float64, _seeded

__all__ = ["LayerCheckError", "LayerCheckFailure", "LayerCheckReport", "BackendLayerReport", "check_layer"]

REFERENCE = "numpy"

_HINT_NUMPY = (
    "the layer probably calls numpy (np.asarray, np.exp, ...): get xp = "
    "xpnet._backend.namespace_of(x) and use xp functions only"
)
_HINT_DTYPE = (
    "a NumPy scalar (np.float64(...), np.pi * array) or a hard-coded dtype changes the dtype: "
    "use Python floats and dtype=x.dtype when creating arrays"
)
_HINT_HOST_SYNC = (
    "keep value checks out of forward/backward: replace `if` on array values by xp.where / "
    "xp.clip / masks, keep Python scalars as Python floats, and leave checks that need values "
    "(NaN, label ranges) to the entry points (fit, the data loader), which run them once"
)
_HINT_CACHE_EVAL = (
    "store what backward needs with self.save_for_backward(ctx), which keeps nothing in "
    "eval mode, and read it back in backward with ctx = self.pop_saved(), which raises when "
    "nothing is stored"
)


class LayerCheckError(AssertionError):
    """A layer broke the backend contract; ``.report`` is the :class:`LayerCheckReport`."""

    def __init__(self, report: LayerCheckReport) -> None:
        self.report = report
        super().__init__(report.describe())


@dataclass
class LayerCheckFailure:
    """One failed check on one backend."""

    backend: str
    check: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"[{self.backend}] {self.check}: {self.message}"
        return text + (f"\n      hint: {self.hint}" if self.hint else "")


@dataclass
class BackendLayerReport:
    """Result of :func:`check_layer` on one backend.

    Attributes
    ----------
    backend
        Backend name.
    dtype
        Dtype checked there (float32 when the device has no float64).
    passed
        Names of the checks that passed.
    failures
        The :class:`LayerCheckFailure` s.
    skipped
        Checks that could not run here, with the reason.
    gradcheck_max_abs_err
        Worst absolute finite-difference error per tensor, when gradcheck ran.
    """

    backend: str
    dtype: str
    passed: list[str] = field(default_factory=list)
    failures: list[LayerCheckFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    gradcheck_max_abs_err: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, check: str, message: str, hint: str = "") -> None:
        self.failures.append(LayerCheckFailure(self.backend, check, message, hint))


@dataclass
class LayerCheckReport:
    """Result of :func:`check_layer`: one :class:`BackendLayerReport` per backend."""

    layer: str
    input_shape: tuple[int, ...]
    dtype: str
    backends: dict[str, BackendLayerReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.backends.values())

    @property
    def failures(self) -> list[LayerCheckFailure]:
        return [f for r in self.backends.values() for f in r.failures]

    def describe(self) -> str:
        """Multi-line text: verdict per backend, then every failure with its hint."""
        n = len(self.failures)
        head = f"check_layer({self.layer}, input {self.input_shape}, {self.dtype}): "
        head += "passed on " + ", ".join(self.backends) if n == 0 else f"{n} failure{'s' * (n != 1)}"
        lines = [head]
        for name, r in self.backends.items():
            state = "ok" if r.ok else f"FAILED ({len(r.failures)})"
            extra = f"; skipped: {'; '.join(r.skipped)}" if r.skipped else ""
            lines.append(f"  {name}: {state}{extra}")
        lines += [f"  {f}" for f in self.failures]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


# --------------------------------------------------------------------------- hints


_TWO_DEVICES = re.compile(r"Device\('([^']+)'\) and array_api_strict\.Device\('([^']+)'\)")


def _dev_name(dev: Any) -> str:
    """``device1`` for ``array_api_strict.Device('device1')``, ``cuda:0`` for torch's."""
    text = str(dev)
    m = re.search(r"Device\('([^']+)'\)", text)
    return m.group(1) if m else text


def _exception_hint(exc: BaseException, b: Backend) -> str:
    text = str(exc)
    low = text.lower()
    m = _TWO_DEVICES.search(text)
    if m or "different devices" in low or "same device" in low or "expected device" in low:
        want = _dev_name(b.device)
        other = ""
        if m:
            other = m.group(1) if m.group(2) == want else m.group(2)
        where = f"created on {other} instead of {want}" if other else f"an array is not on {want}"
        return (
            f"{where}: pass device= when creating arrays "
            f"(device=xpnet._backend.device_of(x)), or use xp.zeros_like(x)"
        )
    if (
        "to a numpy array" in low
        or "numpy.ndarray" in low
        or "implicit conversion to a numpy array" in low
        or "can't convert" in low and "numpy" in low
    ):
        return _HINT_NUMPY
    if isinstance(exc, AttributeError) and re.search(r"attribute '(item|tolist)'", text):
        return (
            "x.item() / x.tolist() copy values to the host, a host sync (DESIGN §2.4), and are not "
            "part of the Array API: " + _HINT_HOST_SYNC
        )
    if isinstance(exc, AttributeError) and "has no attribute" in low:
        return (
            "the layer uses an array method or attribute outside the Array API standard "
            "(x.sum(0), x.reshape(...), x.astype(...)): use xp.sum(x, axis=0), "
            "xp.reshape(x, shape), xp.astype(x, dtype)"
        )
    if "dtype" in low and isinstance(exc, TypeError):
        return _HINT_DTYPE
    return ""


def _describe_exc(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"raised {type(exc).__name__}: {first}"


def _placement(
    report: BackendLayerReport, what: str, arr: Any, b: Backend, dtype: str, shape: tuple[int, ...] | None
) -> bool:
    """Check namespace/device/dtype/shape of ``arr``; record failures; True when all fine."""
    check = what
    if not _backend.is_array(arr):
        report.fail(check, f"{what} is a {type(arr).__name__}, not an array", "return an array of the input's namespace")
        return False
    xp = _backend.namespace_of(arr)
    if xp is not b.xp:
        got = _backend.backend_name(xp)
        hint = _HINT_NUMPY if got == "numpy" else f"create arrays with the input's namespace (xp = namespace_of(x)), not {got}"
        report.fail(check, f"{what} is a {got} array on {b.name}", hint)
        return False
    ok = True
    dev = _backend.device_of(arr)
    if dev != b.device:
        got_name = _dev_name(dev)
        want_name = _dev_name(b.device)
        report.fail(
            check,
            f"{what} is on device {got_name}, expected {want_name} (the input's device)",
            f"created on {got_name} instead of {want_name}: pass device= when creating arrays "
            f"(device=xpnet._backend.device_of(x))",
        )
        ok = False
    got_dt = _backend.dtype_name(arr.dtype)
    if got_dt != dtype:
        report.fail(check, f"{what} has dtype {got_dt}, expected {dtype}", _HINT_DTYPE)
        ok = False
    if shape is not None and tuple(arr.shape) != tuple(shape):
        report.fail(check, f"{what} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
        ok = False
    return ok


# --------------------------------------------------------------------------- host syncs


# Python conversions of an array to a host value: each one copies the value off the device
# and waits for every queued kernel (a stall on a GPU). ``bool`` is also what ``if x > 0:``
# calls; ``__index__`` is an array used as an int (``range(n)``, ``operator.index``).
_SYNC_OPS = {
    "__bool__": "bool()",
    "__float__": "float()",
    "__int__": "int()",
    "__complex__": "complex()",
    "__index__": "operator.index()",
}
# Backends whose array type is a Python class we may patch for the duration of a call.
# (NumPy's ndarray and CuPy's are C types; torch's own code converts tensors internally.)
_WATCHED_NAMESPACES = ("array_api_strict",)


@contextlib.contextmanager
def _watch_host_syncs(b: Backend) -> Iterator[list[tuple[str, str]] | None]:
    """Record every host conversion of one of ``b``'s arrays made inside the block.

    Yields a list that fills with ``(operation, "file:line")`` of the calling code; the
    conversions still happen (so the remaining checks run). Only array-api-strict arrays
    are watched; elsewhere it yields None. The array class is restored on exit.
    """
    if _backend.backend_name(b.xp) not in _WATCHED_NAMESPACES:
        yield None
        return
    calls: list[tuple[str, str]] = []
    cls = type(b.xp.zeros((), device=b.device))
    package = sys.modules.get(cls.__module__.partition(".")[0])
    own_dir = os.path.dirname(getattr(package, "__file__", "") or "") + os.sep
    saved: dict[str, Any] = {}
    for name, label in _SYNC_OPS.items():
        if getattr(cls, name, None) is None:
            continue
        saved[name] = cls.__dict__.get(name)
        setattr(cls, name, _recording(getattr(cls, name), label, calls, own_dir))
    try:
        yield calls
    finally:
        for name, original in saved.items():
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


def _recording(original: Callable[..., Any], label: str, calls: list[tuple[str, str]], own_dir: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        # The conversion builtins (float(x), `if x:`) call the slot straight from the
        # frame that wrote them, so frame 1 is the layer's code. The array library's own
        # use of its dunders (validating an index) is its business, not the layer's.
        frame = sys._getframe(1)
        where = frame.f_code.co_filename
        if not (own_dir != os.sep and where.startswith(own_dir)):
            calls.append((label, f"{os.path.basename(where)}:{frame.f_lineno}"))
        return original(self, *args, **kwargs)

    method.__name__ = getattr(original, "__name__", "method")
    method.__doc__ = getattr(original, "__doc__", None)
    return method


def _report_host_syncs(r: BackendLayerReport, phase: str, calls: list[tuple[str, str]] | None) -> None:
    if calls is None:
        return
    if not calls:
        r.passed.append(f"no host sync in {phase}")
        return
    ops = list(dict.fromkeys(op for op, _ in calls))
    places = list(dict.fromkeys(where for _, where in calls))
    shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
    r.fail(
        "host sync",
        f"{phase} calls {'/'.join(ops)} on an array ({shown}): a host sync (DESIGN §2.4) that "
        f"copies the value to the host and waits for the device on every call",
        _HINT_HOST_SYNC,
    )


def _call_watched(r: BackendLayerReport, b: Backend, phase: str, call: Callable[[], Any]) -> Any:
    """``call()`` with host conversions of ``b``'s arrays recorded and reported for ``phase``."""
    with _watch_host_syncs(b) as calls:
        try:
            return call()
        finally:
            _report_host_syncs(r, phase, calls)


# --------------------------------------------------------------------------- the check


@dataclass
class _Outputs:
    y: np.ndarray | None = None
    dx: np.ndarray | None = None
    grads: dict[str, np.ndarray] = field(default_factory=dict)


def _resolve(backends: Sequence[Backend | str] | None, require: bool = False) -> list[Backend]:
    names: Sequence[Backend | str] = DEFAULT_BACKENDS if backends is None else backends
    out: list[Backend] = []
    for n in names:
        if isinstance(n, Backend):
            out.append(n)
            continue
        try:
            out.append(get_backend(n))
        except BackendUnavailable as exc:
            if require:
                raise BackendUnavailable(f"check_layer: required backend {n!r} is unavailable ({exc})") from exc
            if backends is not None:
                warnings.warn(f"check_layer: skipping unavailable backend {n!r} ({exc})", stacklevel=3)
    if not any(b.name == REFERENCE for b in out):
        out.insert(0, get_backend(REFERENCE))
    out.sort(key=lambda b: b.name != REFERENCE)
    return out


def check_layer(
    layer_factory: Callable[[], Module] | Module,
    input_shape: Sequence[int],
    *,
    backends: Sequence[Backend | str] | None = None,
    dtype: str = "float64",
    seed: int = 0,
    gradcheck: bool = True,
    input: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    raise_on_failure: bool = True,
    require_backends: bool = False,
) -> LayerCheckReport:
    """Certify a layer on every available backend.

    Parameters
    ----------
    layer_factory
        A callable without arguments returning a new module (a class such as
        ``xpnet.ReLU`` or ``lambda: MyLayer(5, 3)``; called once with
        :func:`xpnet.manual_seed` ``(seed)``, then deep-copied for every backend so all
        see the same weights), or a module (deep-copied).
    input_shape
        Shape of the test input, drawn from a seeded standard normal on the host.
    backends
        Backend names or :class:`~xpnet.testing.Backend` objects; default every available
        one of numpy, array_api_strict, array_api_strict:device1, torch, cupy. NumPy is
        always included as the reference. Unavailable names given explicitly are skipped
        with a warning.
    dtype
        ``"float64"`` (default) or ``"float32"`` for the placement and agreement checks;
        float32 on devices without float64. The gradient check always runs in float64.
    seed
        Seed of the layer's weights, the input and the upstream gradient.
    gradcheck
        Run the finite-difference check (turn off for random layers such as Dropout,
        whose train-mode forward is not a fixed function).
    input
        Host array to use instead of the random input (keep it off kinks such as ReLU at 0).
        An integer array (indices into an ``Embedding``) keeps its dtype on every backend;
        ``backward`` must then return ``None``, and only parameter gradients are checked.
    rtol, atol
        Tolerances of the agreement with NumPy; default the dtype's
        :data:`~xpnet.testing.assertions.DEFAULT_TOLERANCES`.
    raise_on_failure
        Raise :class:`LayerCheckError` listing every failure (default).
    require_backends
        Raise :class:`~xpnet.testing.BackendUnavailable` when a backend named in
        ``backends`` cannot be used, instead of warning and skipping it: a GPU
        validation run must not certify a layer without touching the GPU.

    Returns
    -------
    LayerCheckReport
        One :class:`BackendLayerReport` per backend.

    Raises
    ------
    LayerCheckError
        When any check fails on any backend (with ``raise_on_failure``).
    """
    shape = tuple(int(s) for s in input_shape)
    dtype = dtype if isinstance(dtype, str) else _backend.dtype_name(dtype)
    if dtype not in ("float32", "float64"):
        raise TypeError(f"check_layer: dtype must be 'float32' or 'float64', got {dtype!r}")
    with _seeded(seed):
        host_layer = copy.deepcopy(layer_factory) if isinstance(layer_factory, Module) else layer_factory()
    if not isinstance(host_layer, Module):
        raise TypeError(
            f"check_layer: layer_factory must return an xpnet Module, got {type(host_layer).__name__}. "
            f"Hint: pass the class or a lambda that builds the layer"
        )
    rng = np.random.default_rng(seed)
    if input is None:
        x_host = rng.standard_normal(shape)
    else:
        x_host = np.asarray(input)
        # Integer inputs (indices) keep their dtype; anything else is float64 on the host.
        x_host = x_host if x_host.dtype.kind in "iu" else x_host.astype(np.float64)
    if x_host.shape != shape:
        raise ValueError(f"check_layer: input has shape {x_host.shape}, expected {shape}")
    dy_seed = int(rng.integers(2**31))

    report = LayerCheckReport(type(host_layer).__name__, shape, dtype)
    ref: _Outputs | None = None
    # Random layers (Dropout) draw from xpnet's default generator: give every backend the
    # same draws, and leave the generator as we found it.
    rng_state = get_rng_state()
    try:
        for b in _resolve(backends, require_backends):
            set_rng_state(rng_state)
            r, outs = _check_one(host_layer, b, x_host, dy_seed, dtype, gradcheck, seed, ref, rtol, atol)
            report.backends[b.name] = r
            if b.name == REFERENCE:
                ref = outs
    finally:
        set_rng_state(rng_state)
    if raise_on_failure and not report.ok:
        raise LayerCheckError(report)
    return report


def _fresh(host_layer: Module, b: Backend, dtype: str) -> Module:
    layer = copy.deepcopy(host_layer)
    b.move(layer, dtype)
    return layer


def _check_one(
    host_layer: Module,
    b: Backend,
    x_host: np.ndarray,
    dy_seed: int,
    dtype: str,
    gradcheck: bool,
    seed: int,
    ref: _Outputs | None,
    rtol: float | None,
    atol: float | None,
) -> tuple[BackendLayerReport, _Outputs]:
    dt = dtype
    skipped = []
    if dt == "float64" and not _has_float64(b):
        dt = "float32"
        skipped.append("float64 (device has none; checked in float32)")
    r = BackendLayerReport(b.name, dt, skipped=skipped)
    outs = _Outputs()
    try:
        layer = _fresh(host_layer, b, dt)
    except Exception as exc:  # noqa: BLE001 - a failed move is a finding, not a crash
        r.fail("move", f"layer.to({b.name}) {_describe_exc(exc)}", _exception_hint(exc, b))
        return r, outs
    params = dict(layer.named_parameters())
    for name, p in params.items():
        _placement(r, f"parameter {name} after .to()", p.data, b, dt, None)

    # ---- forward in training mode
    layer.train()
    integer_input = x_host.dtype.kind in "iu"
    x = b.asarray(x_host, dtype=None if integer_input else dt)
    x_before = _backend.to_numpy(x).copy()
    try:
        y = _call_watched(r, b, "forward", lambda: layer.forward(x))
    except Exception as exc:  # noqa: BLE001
        r.fail("forward", _describe_exc(exc), _exception_hint(exc, b))
        return r, outs
    ref_y_shape = tuple(ref.y.shape) if ref is not None and ref.y is not None else None
    if _placement(r, "output", y, b, dt, ref_y_shape):
        r.passed.append("forward output")
        outs.y = _backend.to_numpy(y)
    if not np.array_equal(_backend.to_numpy(x), x_before):
        r.fail("forward", "forward modified its input in place", "never mutate arrays the caller passed in; compute a new array")
    if not _backend.is_array(y):
        return r, outs

    # ---- backward
    dy_host = np.random.default_rng(dy_seed).standard_normal(tuple(int(s) for s in y.shape))
    dy = b.asarray(dy_host, dtype=dt)
    layer.zero_grad()
    backward_ran = True
    try:
        dx = _call_watched(r, b, "backward", lambda: layer.backward(dy))
    except Exception as exc:  # noqa: BLE001
        r.fail("backward", _describe_exc(exc), _exception_hint(exc, b))
        backward_ran = False
    if backward_ran and integer_input:
        if dx is None:
            r.passed.append("backward dx (None: integer input)")
        else:
            r.fail("backward", "backward returned a gradient for an integer input", "return None: indices have no gradient")
    if backward_ran:
        if integer_input:
            pass
        elif _placement(r, "dx (backward's return value)", dx, b, dt, tuple(x_host.shape)):
            r.passed.append("backward dx")
            outs.dx = _backend.to_numpy(dx)
        if not np.array_equal(_backend.to_numpy(dy), dy_host.astype(dt)):
            r.fail("backward", "backward modified dy in place", "never mutate arrays the caller passed in")
        grads_ok = True
        for name, p in layer.named_parameters():
            if not p.requires_grad:
                continue
            if p.grad is None:
                r.fail("parameter gradients", f"{name}.grad is None after backward", "accumulate it in backward: self.weight.accumulate_grad(dw)")
                grads_ok = False
                continue
            if _placement(r, f"gradient of {name}", p.grad, b, dt, p.shape):
                outs.grads[name] = _backend.to_numpy(p.grad)
            else:
                grads_ok = False
        if grads_ok:
            r.passed.append("parameter gradients")
        _expect_runtime_error(
            r, "second backward", lambda: layer.backward(dy),
            "a second backward after one forward did not raise RuntimeError: the stored forward was reused",
            "read the stored forward with self.pop_saved(), which consumes it, so a stale one is never reused",
        )

    # ---- agreement with the reference backend
    if ref is not None and b.name != REFERENCE:
        _agree(r, "output", outs.y, ref.y, rtol, atol)
        _agree(r, "dx", outs.dx, ref.dx, rtol, atol)
        for name, g in outs.grads.items():
            _agree(r, f"gradient of {name}", g, ref.grads.get(name), rtol, atol)

    # ---- eval mode stores nothing; backward before forward
    try:
        ev = _fresh(host_layer, b, dt).eval()
        y_eval = _call_watched(r, b, "eval-mode forward", lambda: ev.forward(x))
        _placement(r, "eval-mode output", y_eval, b, dt, tuple(y.shape))
        _expect_runtime_error(
            r, "eval mode", lambda: ev.backward(dy),
            "backward after an eval-mode forward did not raise RuntimeError: eval mode stored the forward pass",
            _HINT_CACHE_EVAL,
        )
    except Exception as exc:  # noqa: BLE001
        r.fail("eval mode", f"forward in eval mode {_describe_exc(exc)}", _exception_hint(exc, b))
    fresh = _fresh(host_layer, b, dt).train()
    _expect_runtime_error(
        r, "backward before forward", lambda: fresh.backward(dy),
        "backward before any forward did not raise RuntimeError",
        "read what forward stored with self.pop_saved(), which raises RuntimeError when nothing "
        "is stored",
    )

    # ---- finite differences (float64 only)
    if gradcheck:
        if not _has_float64(b):
            r.skipped.append("gradcheck (device has no float64)")
        else:
            try:
                g_layer = _fresh(host_layer, b, "float64")
                res = _gradcheck(g_layer, b.asarray(x_host, dtype=None if integer_input else "float64"), seed=seed)
                r.gradcheck_max_abs_err = dict(res.max_abs_err)
                r.passed.append("gradcheck")
            except GradcheckError as exc:
                r.fail(
                    "gradcheck",
                    str(exc),
                    "backward disagrees with finite differences of forward: check the derivative "
                    "formula, and that forward computes the same function in train and eval mode",
                )
            except Exception as exc:  # noqa: BLE001
                r.fail("gradcheck", _describe_exc(exc), _exception_hint(exc, b))
    return r, outs


def _expect_runtime_error(r: BackendLayerReport, check: str, call: Callable[[], Any], message: str, hint: str) -> None:
    try:
        call()
    except RuntimeError:
        r.passed.append(check)
        return
    except Exception as exc:  # noqa: BLE001
        r.fail(check, f"expected RuntimeError but backward {_describe_exc(exc)}", hint)
        return
    r.fail(check, message, hint)


def _agree(r: BackendLayerReport, what: str, got: np.ndarray | None, want: np.ndarray | None, rtol: float | None, atol: float | None) -> None:
    if got is None or want is None:
        return
    d_rtol, d_atol = default_tolerances(got.dtype.name, want.dtype.name)
    try:
        assert_close(
            got, want,
            rtol=d_rtol if rtol is None else rtol,
            atol=d_atol if atol is None else atol,
            check_dtype=False,
            msg=f"{what} vs {REFERENCE}",
        )
    except AssertionError as exc:
        r.fail(
            "agreement with numpy",
            str(exc).replace("\n", "\n      "),
            "the same layer computes different numbers here than on NumPy: look for "
            "backend-specific branches or operations whose semantics differ between libraries",
        )
    else:
        r.passed.append(f"{what} agrees with numpy")
