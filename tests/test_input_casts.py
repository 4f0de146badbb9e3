"""float64 NumPy input to a float32 model is cast on the host at the fit / evaluate /
predict entry, with one note through the "xpnet" logger per process; integer labels and
other backends are never cast."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import xpnet
from xpnet import _log
from xpnet.losses import CrossEntropyLoss, MSELoss
from xpnet.models import mlp
from xpnet.optim import SGD
from xpnet.training import _host_cast, evaluate, fit, predict


@pytest.fixture
def fresh_notes(monkeypatch, caplog):
    monkeypatch.setattr(_log, "_noted", set())
    caplog.set_level(logging.INFO, logger="xpnet")
    return caplog


def _data(n: int = 40):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 3))
    return X, (X[:, 0] > 0).astype(np.int64)


def _train(X, y, loss=None):
    model = mlp([3, 5, 2 if loss is None else 1], generator=0)
    hist = fit(model, loss or CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y,
               epochs=2, batch_size=8, generator=0, verbose=0)
    return model, hist


def _cast_notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "xpnet" and "casting float64" in r.getMessage()]


def test_float64_numpy_input_trains_like_float32_with_one_note(fresh_notes):
    X, y = _data()
    model64, hist64 = _train(X, y)
    model32, hist32 = _train(X.astype(np.float32), y)
    assert hist64.history["loss"] == hist32.history["loss"]  # the same float32 training
    assert X.dtype == np.float64  # the caller's array is not touched
    out = predict(model64, X)
    assert out.dtype == np.float32 and np.array_equal(out, predict(model32, X.astype(np.float32)))
    assert evaluate(model64, CrossEntropyLoss(), X, y)["loss"] == pytest.approx(
        evaluate(model32, CrossEntropyLoss(), X.astype(np.float32), y)["loss"])
    notes = _cast_notes(fresh_notes)
    assert len(notes) == 1, notes  # once per process, not per call, batch or array
    assert "pass float32 arrays" in notes[0] and "model.to(dtype='float64')" in notes[0]


def test_float64_regression_targets_and_validation_data_are_cast_too(fresh_notes):
    X, _ = _data()
    t = X[:, :1] * 2.0
    model, hist = _train(X, t, MSELoss())
    model2 = mlp([3, 5, 1], generator=0)
    hist2 = fit(model2, MSELoss(), SGD(model2.parameters(), lr=0.1), X, t, epochs=2, batch_size=8,
                generator=0, verbose=0, validation_data=(X[:10], t[:10]))
    assert hist.history["loss"] == hist2.history["loss"] and "val_loss" in hist2.history


def test_integer_labels_float64_models_and_other_backends_are_not_cast(fresh_notes):
    X, y = _data()
    model = mlp([3, 5, 2], generator=0)
    for labels in (y, y.astype(np.int32), y.astype(bool)):
        assert _host_cast(model, labels, "fit") is labels
    model64 = mlp([3, 5, 2], generator=0, dtype="float64")
    assert _host_cast(model64, X, "fit") is X  # the model's own dtype: nothing to do
    _train(X.astype(np.float32), y)
    assert _cast_notes(fresh_notes) == []
    strict = pytest.importorskip("array_api_strict")
    model.to("array_api_strict")
    with pytest.raises(TypeError, match="dtype"):  # only NumPy input is cast, on the host
        predict(model, strict.asarray(X))
    with pytest.raises(TypeError):  # NumPy data for a model on another backend: no silent move
        predict(model, X)


def test_the_note_can_be_silenced(fresh_notes):
    logger = logging.getLogger("xpnet")
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        predict(mlp([3, 5, 2], generator=0), _data()[0])
    finally:
        logger.setLevel(old)
    assert _cast_notes(fresh_notes) == []
    assert xpnet  # the package imports without configuring logging
    assert not logging.getLogger("xpnet").handlers
