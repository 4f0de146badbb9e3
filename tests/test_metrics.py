"""Metrics: values against hand-computed numbers, on-device results, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import metrics
from xpnet.metrics import (
    accuracy,
    binary_accuracy,
    get_metric,
    mean_absolute_error,
    mean_squared_error,
    metric_name,
    register_metric,
)

# Metric values are means of a handful of float32 numbers: exact for counts (k/6 is the
# nearest float32 to k/6 either way) and within a few float32 ulps (eps 1.2e-7) for MSE.
F32_RTOL = 1e-6

LOGITS = np.array(
    [
        [2.0, 0.1, -1.0],  # 0
        [0.0, 3.0, 1.0],  # 1
        [0.5, 0.2, 0.9],  # 2
        [1.0, 0.0, -2.0],  # 0
        [-1.0, 2.5, 0.0],  # 1
        [0.3, 0.1, 0.2],  # 0
    ]
)
LABELS = np.array([0, 1, 1, 0, 2, 0])  # argmax matches on rows 0, 1, 3, 5 -> 4/6


def _value(backend, a, dtype="float32"):
    backend.check(a, dtype=dtype, shape=())
    return float(backend.to_numpy(a))


def test_accuracy_multiclass_int_labels(backend):
    out = backend.asarray(LOGITS, dtype="float32")
    y = backend.asarray(LABELS.astype(np.int64))
    assert _value(backend, accuracy(out, y)) == pytest.approx(4 / 6, rel=F32_RTOL)


def test_accuracy_multiclass_one_hot_and_int32_labels(backend):
    out = backend.asarray(LOGITS, dtype="float64")
    one_hot = backend.asarray(np.eye(3)[LABELS], dtype="float64")
    assert _value(backend, accuracy(out, one_hot), "float64") == pytest.approx(4 / 6)
    y32 = backend.asarray(LABELS.astype(np.int32))
    assert _value(backend, accuracy(out, y32), "float64") == pytest.approx(4 / 6)


def test_accuracy_binary_probabilities_and_logits(backend):
    p = np.array([[0.9], [0.2], [0.6], [0.4], [0.51]])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0])  # correct: rows 0, 1, 4 -> 3/5
    out = backend.asarray(p, dtype="float32")
    assert _value(backend, accuracy(out, backend.asarray(t, dtype="float32"))) == pytest.approx(0.6, rel=F32_RTOL)
    # (N, 1) targets and integer targets give the same answer.
    assert _value(backend, accuracy(out, backend.asarray(t[:, None], dtype="float32"))) == pytest.approx(0.6, rel=F32_RTOL)
    assert _value(backend, binary_accuracy(out, backend.asarray(t.astype(np.int64)))) == pytest.approx(0.6, rel=F32_RTOL)
    # Logits threshold at 0: z = logit(p) keeps every decision.
    z = backend.asarray(np.log(p / (1 - p)), dtype="float32")
    assert _value(backend, accuracy(z, backend.asarray(t, dtype="float32"), from_logits=True)) == pytest.approx(0.6, rel=F32_RTOL)
    # An explicit threshold of 0.55 flips row 4 (0.51) to negative: 2/5.
    assert _value(backend, binary_accuracy(out, backend.asarray(t, dtype="float32"), threshold=0.55)) == pytest.approx(0.4, rel=F32_RTOL)


def test_regression_metrics_hand_computed(backend):
    o = np.array([[1.0], [2.0], [4.0], [-1.0]])
    t = np.array([[1.5], [2.0], [3.0], [1.0]])
    # errors 0.5, 0, -1, 2: MSE = (0.25 + 0 + 1 + 4) / 4, MAE = 3.5 / 4
    out, tgt = backend.asarray(o, dtype="float32"), backend.asarray(t, dtype="float32")
    assert _value(backend, mean_squared_error(out, tgt)) == pytest.approx(5.25 / 4, rel=F32_RTOL)
    assert _value(backend, mean_absolute_error(out, tgt)) == pytest.approx(3.5 / 4, rel=F32_RTOL)
    flat = backend.asarray(t[:, 0], dtype="float32")  # (N,) against (N, 1) is accepted
    assert _value(backend, mean_squared_error(out, flat)) == pytest.approx(5.25 / 4, rel=F32_RTOL)


def test_integer_predictions_give_float64_on_every_backend(backend):
    # Predicted labels are integers: the result dtype must not be the namespace's default
    # float (float64 on NumPy, float32 on torch) but the same everywhere.
    want = "float64" if backend.supports_float64 else "float32"
    y = backend.asarray(np.array([1, 0, 1, 1]))
    pred01 = backend.asarray(np.array([1, 0, 0, 1]))  # (N,) 0/1 predictions: binary
    assert _value(backend, accuracy(pred01, y), want) == 0.75
    assert _value(backend, binary_accuracy(backend.asarray(np.array([[1], [1], [0], [1]])), y), want) == 0.5


def test_float32_regression_metrics_are_arrays_not_numpy_scalars(backend):
    a = backend.asarray(np.array([1.0, 2.0]), dtype="float32")
    b = backend.asarray(np.array([0.0, 0.0]), dtype="float32")
    for fn, expected in ((mean_squared_error, 2.5), (mean_absolute_error, 1.5)):
        assert _value(backend, fn(a, b)) == expected  # backend.check refuses NumPy scalars


def test_metric_shape_and_dtype_errors(backend):
    out = backend.asarray(LOGITS, dtype="float32")
    with pytest.raises(TypeError, match="integers"):
        accuracy(out, backend.asarray(LABELS.astype(np.float64), dtype="float32"))
    with pytest.raises(ValueError, match="samples"):
        accuracy(out, backend.asarray(LABELS[:4].astype(np.int64)))
    with pytest.raises(ValueError, match="differ"):
        mean_squared_error(out, backend.asarray(np.zeros((6, 2)), dtype="float32"))
    with pytest.raises(ValueError, match="binary_accuracy"):
        binary_accuracy(out, backend.asarray(LABELS.astype(np.int64)))


def test_get_metric_names_and_callables():
    assert get_metric("accuracy") is accuracy
    assert get_metric("acc") is accuracy
    assert get_metric("mse") is mean_squared_error
    assert get_metric("mae") is mean_absolute_error

    def f(o, t):
        return o

    assert get_metric(f) is f
    assert metric_name(f) == "f" and metric_name("mse") == "mse"
    with pytest.raises(ValueError, match="registered"):
        get_metric("nope")
    with pytest.raises(TypeError, match="expected a metric name or a callable, got int"):
        get_metric(3)


def test_register_metric_decorator_and_overwrite():
    try:

        @register_metric("test_max_error")
        def max_error(output, target):
            from xpnet import namespace_of

            xp = namespace_of(output)
            return xp.max(xp.abs(output - target))

        assert get_metric("test_max_error") is max_error
        with pytest.raises(ValueError, match="already registered"):
            register_metric("test_max_error", lambda o, t: o)
        register_metric("test_max_error", mean_absolute_error, overwrite=True)
        assert get_metric("test_max_error") is mean_absolute_error
        with pytest.raises(ValueError, match="val_"):
            register_metric("val_x", mean_absolute_error)
    finally:
        metrics.METRICS.pop("test_max_error", None)


# 360 samples, 352 correct: the float32 mean is 0.97777778 (0.9777777791023254) and the
# float32 product/sum drift seen before the fix gave 0.9777777698; the exact ratio is
# 352 / 360 = 0.9777777777777777.
N_EXACT, N_WRONG = 360, 8


def _scores_and_labels(n=N_EXACT, wrong=N_WRONG, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, classes))
    y = z.argmax(1)
    y[:wrong] = (y[:wrong] + 1) % classes  # exactly `wrong` mistakes
    return z, y.astype(np.int64)


def test_correct_count_is_an_exact_integer_on_device(backend):
    z, y = _scores_and_labels()
    out, yb = backend.asarray(z, dtype="float32"), backend.asarray(y)
    n = metrics.correct_count(out, yb)
    backend.check(n, shape=())
    assert backend.xp.isdtype(n.dtype, "integral")
    assert int(backend.to_numpy(n)) == N_EXACT - N_WRONG
    # Called directly, accuracy stays a 0-d float32 array: the ratio rounded once to float32.
    acc = accuracy(out, yb)
    backend.check(acc, dtype="float32", shape=())
    assert float(backend.to_numpy(acc)) == float(np.float32(352 / 360))
    # Binary outputs count too.
    p = backend.asarray((np.arange(10) % 2).astype(np.float32)[:, None])
    t = backend.asarray(np.array([0, 1, 0, 1, 0, 1, 0, 1, 1, 0]))
    assert int(backend.to_numpy(metrics.correct_count(p, t))) == 8


def test_counting_form_of_accuracy_metrics():
    import functools

    assert metrics.counting_form(accuracy) is metrics.correct_count
    assert metrics.counting_form(mean_squared_error) is None
    assert metrics.counting_form(lambda o, t: o) is None
    logit_acc = metrics.counting_form(functools.partial(binary_accuracy, from_logits=True))
    z = np.array([[-0.2], [0.3], [0.1]], dtype=np.float32)
    # from_logits thresholds at 0: predictions 0, 1, 1 against targets 0, 1, 0.
    assert int(logit_acc(z, np.array([0, 1, 0]))) == 2
