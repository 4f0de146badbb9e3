"""Metrics: batch statistics computed on the device, plus a registry of names.

Every metric takes ``(output, target)`` (the model's output and the batch's targets) and
returns a **0-d array** in the output's namespace, on its device, in its floating dtype:
the *mean over the samples of the batch*. Nothing is copied to the host, so a metric can
run every step; :func:`xpnet.training.fit` weights each batch's value by its size, sums on
the device and brings the epoch's value to the host once per epoch.

Accuracies are exact: :func:`accuracy` and :func:`binary_accuracy` count the correct
samples as an integer sum (:func:`correct_count`) and divide once, and ``fit`` /
``evaluate`` accumulate those integer counts and divide by the number of samples on the
host in float64 (:func:`counting_form`), so the History and ``--metrics-json`` hold the
exact ratio (352 of 360 correct is ``0.9777777777777777``). A metric called directly
still returns a 0-d array in the output's floating dtype (float32 for a float32 model),
so its value is that ratio rounded to float32.

Register your own metric under a name with :func:`register_metric`::

    from xpnet.metrics import register_metric

    @register_metric("top2_accuracy")
    def top2_accuracy(output, target):
        xp = xpnet.namespace_of(output)
        ...                                  # return a 0-d array: the batch mean

    fit(model, loss_fn, opt, X, y, epochs=5, metrics=["top2_accuracy"])

Because the epoch value is the size-weighted mean of the batch values, a metric must be a
mean over samples (accuracy, MSE, MAE) for the epoch value to equal the metric on the
whole dataset. A ratio of sums (precision, F1) is not; compute it from
:func:`xpnet.training.predict` instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import _backend

__all__ = [
    "METRICS",
    "accuracy",
    "binary_accuracy",
    "mean_squared_error",
    "mean_absolute_error",
    "get_metric",
    "register_metric",
    "metric_name",
    "correct_count",
    "counting_form",
]

Array = Any
Metric = Callable[[Array, Array], Array]

#: Name -> metric function. Add entries with :func:`register_metric`.
METRICS: dict[str, Metric] = {}


# (namespace, device) -> float64 or float32, for metrics of integer outputs.
_WIDEST_FLOAT: dict[tuple[int, str], Any] = {}


def _float_dtype(xp: Any, x: Array) -> Any:
    """The floating dtype results are computed in: the output's own if it is floating.

    For integer outputs (predicted labels) it is float64 wherever the device has it, on
    every backend alike; not the namespace's default float, which is float64 on NumPy
    but float32 on torch, so the same call would give different dtypes per backend.
    """
    if xp.isdtype(x.dtype, "real floating"):
        return x.dtype
    dev = _backend.device_of(x)
    key = (id(xp), str(dev))
    dtype = _WIDEST_FLOAT.get(key)
    if dtype is None:
        dtype = _WIDEST_FLOAT[key] = xp.float64 if _backend.supports_float64(xp, dev) else xp.float32
    return dtype


def _as_array(xp: Any, value: Any, like: Array) -> Array:
    """``value`` as a 0-d array of ``like``'s namespace and device.

    NumPy reduces 0-d arithmetic to scalars (numpy.float32, numpy.float64), which are not
    arrays to the rest of xpnet; every other backend already returns an array.
    """
    if type(value) is type(like):
        return value
    return xp.asarray(value, device=_backend.device_of(like))


def _count_dtype(xp: Any, x: Array) -> Any:
    """The device's default integer dtype (int64; int32 where int64 is unavailable)."""
    dev = _backend.device_of(x)
    try:
        return xp.__array_namespace_info__().default_dtypes(device=dev)["integral"]
    except Exception:  # noqa: BLE001 - namespaces without the inspection API
        return xp.asarray(0, device=dev).dtype


# (namespace, dtype) -> whether it is an integer dtype; NumPy's isdtype costs ~1 us a call.
_INTEGRAL: dict[tuple[int, Any], bool] = {}


def _is_integral(xp: Any, dtype: Any) -> bool:
    key = (id(xp), dtype)
    ok = _INTEGRAL.get(key)
    if ok is None:
        ok = _INTEGRAL[key] = bool(xp.isdtype(dtype, "integral"))
    return ok


def _count(xp: Any, hits: Array) -> Array:
    """Number of True entries of a boolean array, as a 0-d integer array (exact, no sync)."""
    count_nonzero = getattr(xp, "count_nonzero", None)
    if count_nonzero is not None:
        # Array API 2023.12: a 0-d array of the default integer dtype, in one call (0.6 us
        # on NumPy against 5 us for astype + sum + asarray; docs/performance.md).
        return count_nonzero(hits)
    # NumPy reduces to a scalar (np.int64), not a 0-d array: asarray makes it one and is a
    # no-op for the other backends.
    return _as_array(xp, xp.sum(xp.astype(hits, _count_dtype(xp, hits))), hits)


def _fraction(xp: Any, count: Array, n: int, like: Array) -> Array:
    """``count / n`` in ``like``'s floating dtype: the exact integer count, divided once."""
    return _as_array(xp, xp.astype(count, _float_dtype(xp, like)) / float(n), like)


def _mean(xp: Any, a: Array) -> Array:
    return _as_array(xp, xp.mean(a), a)


def _check_batch(output: Array, target: Array, *, who: str) -> Any:
    xp = _backend.namespace_of(output, target)
    if _backend.device_of(output) != _backend.device_of(target):
        raise ValueError(
            f"{who}: output is on device {_backend.device_of(output)!r} but target is on "
            f"{_backend.device_of(target)!r}. Hint: move the targets to the model's device"
        )
    if output.ndim == 0 or target.ndim == 0:
        raise ValueError(
            f"{who}: expected batched arrays with a leading sample axis, got output shape "
            f"{tuple(output.shape)} and target shape {tuple(target.shape)}"
        )
    if output.shape[0] != target.shape[0]:
        raise ValueError(
            f"{who}: output has {output.shape[0]} samples but target has {target.shape[0]}"
        )
    return xp


def _is_binary_output(output: Array) -> bool:
    return output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)


def _as_column_free(xp: Any, a: Array) -> Array:
    """(N, 1) -> (N,); (N,) stays."""
    return xp.reshape(a, (a.shape[0],)) if a.ndim == 2 and a.shape[1] == 1 else a


def binary_accuracy(
    output: Array,
    target: Array,
    *,
    from_logits: bool = False,
    threshold: float | None = None,
) -> Array:
    """Fraction of samples whose thresholded output equals the 0/1 target.

    Parameters
    ----------
    output
        Shape ``(N,)`` or ``(N, 1)``: probabilities (after a sigmoid), or logits when
        ``from_logits=True``.
    target
        Shape ``(N,)`` or ``(N, 1)``: 0/1 labels, integer or floating. A target counts as
        positive when it is above 0.5.
    from_logits
        When True the default threshold is 0 (``sigmoid(z) > 0.5  ⇔  z > 0``).
    threshold
        Decision threshold on ``output``; default 0.5 for probabilities, 0 for logits.

    Returns
    -------
    array
        0-d array in ``output``'s namespace, device and floating dtype; no host sync.

    Notes
    -----
    ``mean_i [ (output_i > threshold) == (target_i > 0.5) ]``.
    """
    xp = _check_batch(output, target, who="binary_accuracy")
    count = _binary_correct(xp, output, target, from_logits=from_logits, threshold=threshold)
    return _fraction(xp, count, int(output.shape[0]), output)


def _binary_correct(
    xp: Any, output: Array, target: Array, *, from_logits: bool, threshold: float | None
) -> Array:
    if not (_is_binary_output(output) and _is_binary_output(target)):
        raise ValueError(
            f"binary_accuracy: expected output and target of shape (N,) or (N, 1), got "
            f"{tuple(output.shape)} and {tuple(target.shape)}. Hint: use accuracy() for "
            f"multi-class outputs of shape (N, C)"
        )
    thr = (0.0 if from_logits else 0.5) if threshold is None else float(threshold)
    out = _as_column_free(xp, output)
    if not xp.isdtype(out.dtype, "real floating"):
        # 0/1 (or bool) predictions: the Array API forbids comparing them with a float.
        out = xp.astype(out, _float_dtype(xp, out))
    pred = out > thr
    tgt = _as_column_free(xp, target)
    if xp.isdtype(tgt.dtype, "bool"):
        truth = tgt
    elif xp.isdtype(tgt.dtype, "integral"):
        truth = tgt > 0  # strict Array API forbids comparing an int array with a float
    else:
        truth = tgt > 0.5
    return _count(xp, pred == truth)


def accuracy(
    output: Array,
    target: Array,
    *,
    from_logits: bool = False,
    threshold: float | None = None,
) -> Array:
    """Classification accuracy: multi-class (argmax) or binary (threshold), from the shapes.

    Parameters
    ----------
    output
        ``(N, C)`` with ``C > 1``: scores, logits or probabilities of ``C`` classes; the
        predicted class is the argmax (so ``from_logits`` does not matter).
        ``(N,)`` or ``(N, 1)``: a binary output, thresholded as in :func:`binary_accuracy`.
    target
        Multi-class: integer labels ``(N,)`` or one-hot / probability targets ``(N, C)``
        (their argmax is the class). Binary: 0/1 labels ``(N,)`` or ``(N, 1)``.
    from_logits
        Binary outputs only: the output is a logit, so the default threshold is 0
        instead of 0.5. :func:`xpnet.training.fit` sets it for you when the loss is
        ``BCEWithLogitsLoss``.
    threshold
        Binary outputs only: explicit decision threshold.

    Returns
    -------
    array
        0-d array in ``output``'s namespace, device and floating dtype; no host sync.

    Notes
    -----
    Multi-class: ``mean_i [ argmax_c output_ic == label_i ]``; ties go to the lowest class
    index, as in ``numpy.argmax``.
    """
    xp = _check_batch(output, target, who="accuracy")
    count = _correct(xp, output, target, from_logits=from_logits, threshold=threshold)
    return _fraction(xp, count, int(output.shape[0]), output)


def _correct(
    xp: Any, output: Array, target: Array, *, from_logits: bool, threshold: float | None
) -> Array:
    if _is_binary_output(output):
        return _binary_correct(xp, output, target, from_logits=from_logits, threshold=threshold)
    if output.ndim != 2:
        raise ValueError(
            f"accuracy: expected output of shape (N, C), (N, 1) or (N,), got {tuple(output.shape)}"
        )
    pred = xp.argmax(output, axis=1)
    if target.ndim == 2 and target.shape[1] == output.shape[1]:
        labels = xp.argmax(target, axis=1)
    elif target.ndim == 1:
        if not _is_integral(xp, target.dtype):
            raise TypeError(
                f"accuracy: class labels of shape (N,) must be integers, got dtype "
                f"{_backend.dtype_name(target.dtype)}. Hint: xp.astype(y, xp.int64), or pass "
                f"one-hot targets of shape (N, {output.shape[1]})"
            )
        labels = target
    else:
        raise ValueError(
            f"accuracy: target must be integer labels (N,) or one-hot (N, {output.shape[1]}), "
            f"got shape {tuple(target.shape)}"
        )
    if labels.dtype != pred.dtype:
        labels = xp.astype(labels, pred.dtype)
    return _count(xp, pred == labels)


def correct_count(
    output: Array,
    target: Array,
    *,
    from_logits: bool = False,
    threshold: float | None = None,
) -> Array:
    """Number of correctly classified samples, as an exact 0-d integer array (no host sync).

    Same arguments and decision rule as :func:`accuracy` (argmax for ``(N, C)`` outputs,
    a threshold for binary ones). ``accuracy(output, target) == correct_count(...) / N``.

    Returns
    -------
    array
        0-d array in ``output``'s namespace and device, of the device's default integer
        dtype (int64; int32 where the device has no int64, e.g. JAX without x64).
    """
    xp = _check_batch(output, target, who="correct_count")
    return _correct(xp, output, target, from_logits=from_logits, threshold=threshold)


def counting_form(metric: Metric) -> Metric | None:
    """The exact counting function behind a "fraction correct" metric, else None.

    :func:`xpnet.training.fit` and :func:`~xpnet.training.evaluate` accumulate
    :func:`correct_count` per batch instead of :func:`accuracy` /
    :func:`binary_accuracy`, and divide the summed count by the number of samples on the
    host in float64, so the logged value is the exact ratio (352/360 gives
    0.9777777777777777, not a float32 rounding of it). ``functools.partial`` wrappers of
    those metrics keep their keyword arguments.
    """
    base, args, kw = metric, (), {}
    if isinstance(metric, functools.partial):
        base, args, kw = metric.func, metric.args, dict(metric.keywords)
    if base is accuracy:
        return functools.partial(correct_count, *args, **kw) if (args or kw) else correct_count
    if base is binary_accuracy:
        return functools.partial(_binary_count, *args, **kw)
    return None


def _binary_count(
    output: Array, target: Array, *, from_logits: bool = False, threshold: float | None = None
) -> Array:
    xp = _check_batch(output, target, who="binary_accuracy")
    return _binary_correct(xp, output, target, from_logits=from_logits, threshold=threshold)


def _regression_pair(output: Array, target: Array, *, who: str) -> tuple[Any, Array, Array]:
    xp = _check_batch(output, target, who=who)
    if tuple(target.shape) != tuple(output.shape):
        # (N, 1) against (N,) is the common regression mix-up; anything else is an error
        # rather than a silent broadcast to (N, N).
        if _is_binary_output(output) and _is_binary_output(target):
            output, target = _as_column_free(xp, output), _as_column_free(xp, target)
        else:
            raise ValueError(
                f"{who}: output shape {tuple(output.shape)} and target shape "
                f"{tuple(target.shape)} differ"
            )
    dt = _float_dtype(xp, output)
    if target.dtype != dt:
        target = xp.astype(target, dt)
    if output.dtype != dt:
        output = xp.astype(output, dt)
    return xp, output, target


def mean_squared_error(output: Array, target: Array) -> Array:
    """Mean of ``(output - target)²`` over all elements, as a 0-d array (no host sync).

    Shapes must match; ``(N, 1)`` against ``(N,)`` is accepted.
    """
    xp, out, tgt = _regression_pair(output, target, who="mean_squared_error")
    d = out - tgt
    return _mean(xp, d * d)


def mean_absolute_error(output: Array, target: Array) -> Array:
    """Mean of ``|output - target|`` over all elements, as a 0-d array (no host sync).

    Shapes must match; ``(N, 1)`` against ``(N,)`` is accepted.
    """
    xp, out, tgt = _regression_pair(output, target, who="mean_absolute_error")
    return _mean(xp, xp.abs(out - tgt))


def register_metric(name: str, fn: Metric | None = None, *, overwrite: bool = False) -> Any:
    """Register ``fn`` under ``name`` so ``metrics=[name]`` finds it; usable as a decorator.

    Parameters
    ----------
    name
        Key used in ``fit(metrics=[...])`` and in the History (``name`` and ``"val_" + name``).
    fn
        ``fn(output, target) -> 0-d array``, the batch mean. Omit to use as a decorator.
    overwrite
        Replace an existing entry (default False raises ``ValueError``).

    Returns
    -------
    callable
        ``fn`` (or the decorator).
    """
    if not isinstance(name, str) or not name or name.startswith("val_"):
        raise ValueError(
            f"register_metric: name must be a non-empty string not starting with 'val_', got {name!r}"
        )

    def deco(f: Metric) -> Metric:
        if not callable(f):
            raise TypeError(f"register_metric: {name!r} must be callable, got {type(f).__name__}")
        if name in METRICS and METRICS[name] is not f and not overwrite:
            raise ValueError(
                f"register_metric: {name!r} is already registered; pass overwrite=True to replace it"
            )
        METRICS[name] = f
        return f

    return deco if fn is None else deco(fn)


for _name, _fn in (
    ("accuracy", accuracy),
    ("acc", accuracy),
    ("binary_accuracy", binary_accuracy),
    ("mean_squared_error", mean_squared_error),
    ("mse", mean_squared_error),
    ("mean_absolute_error", mean_absolute_error),
    ("mae", mean_absolute_error),
):
    register_metric(_name, _fn)


def get_metric(metric: str | Metric) -> Metric:
    """Return the metric function for a registered name, or ``metric`` itself if callable.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones).
    TypeError
        Neither a string nor a callable.
    """
    if callable(metric):
        return metric
    if isinstance(metric, str):
        try:
            return METRICS[metric]
        except KeyError:
            raise ValueError(
                f"get_metric: unknown metric {metric!r}; registered: {sorted(METRICS)}. "
                f"Hint: xpnet.metrics.register_metric({metric!r}, fn) adds your own"
            ) from None
    raise TypeError(f"get_metric: expected a metric name or a callable, got {type(metric).__name__}")


def metric_name(metric: str | Metric) -> str:
    """The key a metric is logged under: the name given, or a callable's ``__name__``."""
    if isinstance(metric, str):
        return metric
    name = getattr(metric, "__name__", None) or type(metric).__name__
    return "metric" if name == "<lambda>" else name
