"""Callbacks: History, EarlyStopping, LossThreshold, NaNGuard, ModelCheckpoint, LR, CSV."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import xpnet
from xpnet.activations import Tanh
from xpnet.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LossThreshold,
    LRSchedulerCallback,
    ModelCheckpoint,
    NaNGuard,
    NonFiniteLossError,
    host_state_dict,
)
from xpnet.losses import CrossEntropyLoss, MSELoss
from xpnet.optim import SGD, Adam
from xpnet.optim.lr_scheduler import ReduceLROnPlateau, StepLR
from xpnet.training import fit

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def mlp(backend, sizes, *, seed: int = 0, dtype: str = "float32"):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(xpnet.Linear(a, b, generator=seed + i))
        if i < len(sizes) - 2:
            layers.append(Tanh())
    return backend.move(xpnet.Sequential(*layers), dtype=dtype)


def blobs(n: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = np.arange(n) % 3
    return centers[y] + 0.3 * rng.standard_normal((n, 2)), y.astype(np.int64)


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class Feed(Callback):
    """Writes a scripted value into the epoch logs (runs before the callbacks after it)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Snapshots(Callback):
    """Host copies of the weights at every epoch start and end."""

    def __init__(self):
        super().__init__()
        self.begin, self.end = {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.begin[epoch] = host_state_dict(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.end[epoch] = host_state_dict(self.model)


# --------------------------------------------------------------------------- History


def test_history_records_aligns_and_serialises():
    h = History()
    h.on_epoch_end(0, {"loss": 1.0, "lr": 0.1, "note": "text"})
    h.on_epoch_end(1, {"loss": 0.5, "val_loss": 0.7, "lr": 0.1})
    h.on_epoch_end(2, {"loss": math.nan, "val_loss": 0.6})
    assert h.epoch == [1, 2, 3]  # 1-based numbers, as on screen; hooks got indices 0, 1, 2
    assert h.history["val_loss"] == [None, 0.7, 0.6]
    assert h.history["lr"] == [0.1, 0.1, None]
    assert "note" not in h.history
    assert h.best("loss") == (2, 0.5)  # NaN never wins
    assert h.best("val_loss").epoch == 3
    with pytest.raises(KeyError, match="recorded keys"):
        h.best("accuracy")
    h2 = History()
    h2.on_epoch_end(0, {"accuracy": 0.5})
    h2.on_epoch_end(1, {"accuracy": 0.9})
    h2.on_epoch_end(2, {"accuracy": 0.9})
    assert h2.best("accuracy") == (2, 0.9)  # max for accuracies, ties to the earliest
    text = json.dumps(h.to_dict())
    back = History.from_dict(json.loads(text))
    assert back.epoch == h.epoch and back.history["val_loss"] == [None, 0.7, 0.6]
    # A dict written when History counted from 0 (no "epoch_base") reads back 1-based.
    old = History.from_dict({"epoch": [0, 1], "history": {"loss": [1.0, 0.5]}, "stopped_epoch": 1})
    assert old.epoch == [1, 2] and old.stopped_epoch == 2


def test_host_state_dict_is_an_independent_copy():
    model = xpnet.Sequential(xpnet.Linear(2, 2, generator=0))
    snap = host_state_dict(model)
    before = snap["0.weight"].copy()
    model[0].weight.data += 1.0  # in-place update, as NumPy optimizers do
    assert np.array_equal(snap["0.weight"], before)


# --------------------------------------------------------------------------- EarlyStopping


def _drive(cb, values, key="val_loss"):
    cb.set_context(model=None)
    cb.on_train_begin({})
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {key: v})
        if cb.stop_training:
            return epoch
    return None


def test_early_stopping_patience_min_delta_and_mode():
    assert _drive(EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.91, 0.5]) == 3
    assert _drive(EarlyStopping(patience=0), [1.0, 0.9, 0.95]) == 2
    # Improvements smaller than min_delta do not count.
    assert _drive(EarlyStopping(patience=2, min_delta=0.05), [1.0, 0.97, 0.96, 0.9]) == 2
    # Accuracy-like names are maximised.
    es = EarlyStopping(monitor="val_accuracy", patience=1)
    assert es.mode == "max"
    assert _drive(es, [0.5, 0.6, 0.6], key="val_accuracy") == 2 and es.best == 0.6 and es.best_epoch == 2
    # A baseline that is never beaten stops after `patience` epochs.
    assert _drive(EarlyStopping(patience=2, baseline=0.1), [0.5, 0.4, 0.3]) == 1
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="largest")


def test_early_stopping_without_validation_data_says_how_to_fix(backend):
    X = backend.asarray(XOR_X, dtype="float32")
    y = backend.asarray(XOR_Y, dtype="float32")
    model = mlp(backend, [2, 3, 1])
    with pytest.raises(ValueError, match="validation_data"):
        fit(model, MSELoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2,
            callbacks=[EarlyStopping()], verbose=0)


def test_early_stopping_in_fit_restores_best_weights(backend):
    X, y = blobs()
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 4, 3])
    snaps = Snapshots()
    es = EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2), Xb, yb, epochs=10,
               batch_size=6, callbacks=[snaps, Feed("score", [3, 1, 2, 2, 2, 0, 0, 0, 0, 0]), es],
               verbose=0)
    assert hist.epoch == [1, 2, 3, 4] and es.stopped_epoch == 4 and es.best_epoch == 2
    assert hist.stop_reason == "EarlyStopping" and hist.history["score"] == [3, 1, 2, 2]
    assert not same(snaps.end[1], snaps.end[3])  # training did move the weights
    assert same(host_state_dict(model), snaps.end[1])
    for p in model.parameters():
        backend.check(p.data, dtype="float32")


def test_early_stopping_stops_on_a_flat_val_loss(backend):
    X, y = blobs()
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 4, 3])
    # lr = 0: val_loss never improves after the first epoch.
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.0), Xb, yb, epochs=10,
               validation_data=(Xb, yb), callbacks=[EarlyStopping(patience=2)], verbose=0)
    assert hist.epoch == [1, 2, 3] and hist.stopped_epoch == 3


# --------------------------------------------------------------------------- LossThreshold


def test_loss_threshold_stops_training(backend):
    X = backend.asarray(XOR_X, dtype="float32")
    y = backend.asarray(XOR_Y, dtype="float32")
    model = mlp(backend, [2, 8, 1])
    cb = LossThreshold(0.04)
    hist = fit(model, MSELoss(), Adam(model.parameters(), lr=0.05), X, y, epochs=500,
               batch_size=4, generator=0, callbacks=[cb], verbose=0)
    loss = hist.history["loss"]
    assert len(loss) < 500 and cb.stopped_epoch == hist.epoch[-1]
    assert loss[-1] < 0.04 and all(v >= 0.04 for v in loss[:-1])


def test_loss_threshold_on_the_largest_sample_loss(backend):
    X = backend.asarray(XOR_X, dtype="float32")
    y = backend.asarray(XOR_Y, dtype="float32")
    model = mlp(backend, [2, 8, 1], seed=3)
    cb = LossThreshold(0.04, monitor="max_batch_loss")
    hist = fit(model, MSELoss(), Adam(model.parameters(), lr=0.02), X, y, epochs=500,
               batch_size=1, generator=0, callbacks=[cb], verbose=0)
    h = hist.history
    assert cb.stopped_epoch == hist.epoch[-1] < 499
    assert h["max_batch_loss"][-1] < 0.04 <= h["max_batch_loss"][-2]
    assert all(m >= mean for m, mean in zip(h["max_batch_loss"], h["loss"]))
    with pytest.raises(ValueError, match="finite"):
        LossThreshold(math.nan)


# --------------------------------------------------------------------------- NaNGuard


def _diverging(backend):
    # MSE of a 1-D linear model on inputs ~10: SGD with lr = 1 multiplies the error by
    # about -65 per step, so the float32 loss overflows after a few epochs of 4 steps.
    rng = np.random.default_rng(0)
    x = rng.uniform(5.0, 10.0, size=(8, 1))
    X, y = backend.asarray(x, dtype="float32"), backend.asarray(2.0 * x, dtype="float32")
    lin = xpnet.Linear(1, 1, generator=0)
    model = backend.move(xpnet.Sequential(lin))
    return model, X, y


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_guard_restores_last_good_weights_and_raises(backend):
    model, X, y = _diverging(backend)
    snaps = Snapshots()
    with pytest.raises(NonFiniteLossError) as info:
        fit(model, MSELoss(), SGD(model.parameters(), lr=1.0), X, y, epochs=50, batch_size=2,
            shuffle=False, callbacks=[snaps], verbose=0)
    err = info.value
    assert err.epoch >= 1 and err.step is not None and 0 <= err.step < 4
    assert f"in epoch {err.epoch}/50, first at step {err.step + 1}/4 (index {err.step})" in str(err)
    assert not math.isfinite(err.loss)
    assert err.restored_epoch == err.epoch
    state = host_state_dict(model)
    assert all(np.all(np.isfinite(v)) for v in state.values())
    assert same(state, snaps.begin[err.epoch - 1])  # Snapshots are keyed by hook index
    assert err.history is not None and err.history.epoch == list(range(1, err.epoch))
    for p in model.parameters():
        backend.check(p.data, dtype="float32")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_guard_can_be_turned_off(backend):
    model, X, y = _diverging(backend)
    hist = fit(model, MSELoss(), SGD(model.parameters(), lr=1.0), X, y, epochs=6, batch_size=2,
               shuffle=False, nan_guard=False, validation_data=(X, y), verbose=0)
    assert not math.isfinite(hist.history["loss"][-1])
    assert math.isnan(hist.history["val_loss"][-1])


def test_nan_guard_unit_keeps_only_finite_snapshots():
    model = xpnet.Sequential(xpnet.Linear(1, 1, generator=0))
    guard = NaNGuard()
    guard.set_context(model=model, params={"epochs": 3, "steps": 2})
    guard.on_train_begin({})
    guard.on_epoch_begin(0)
    good = host_state_dict(model)
    guard.on_epoch_end(0, {"loss": 1.0})  # finite: this copy is the start of epoch 1
    guard.on_epoch_begin(1)
    model[0].weight.data[...] = np.inf  # the last step of epoch 1 blew the weights up
    with pytest.raises(NonFiniteLossError, match=r"'0\.weight' hold NaN or inf after epoch 2/3") as info:
        guard.on_epoch_end(1, {"loss": 1.0})  # the loss was still finite
    assert info.value.epoch == 2 and info.value.restored_epoch == 2 and info.value.step is None
    assert info.value.reason == "weights" and info.value.names == ["0.weight"]
    assert same(host_state_dict(model), good)


# --------------------------------------------------------------------------- ModelCheckpoint


def test_model_checkpoint_resume_is_bit_identical(backend, tmp_path):
    ckpt_mod = pytest.importorskip("xpnet.checkpoint")
    X, y = blobs(18, seed=4)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    loss = CrossEntropyLoss()

    def new_run():
        model = mlp(backend, [2, 5, 3], seed=9)
        opt = Adam(model.parameters(), lr=0.05)
        return model, opt, StepLR(opt, step_size=2, gamma=0.5)

    model_a, opt_a, sched_a = new_run()
    fit(model_a, loss, opt_a, Xb, yb, epochs=4, batch_size=5, scheduler=sched_a,
        generator=np.random.default_rng(3), verbose=0)

    model_b, opt_b, sched_b = new_run()
    mc = ModelCheckpoint(tmp_path / "run" / "e{epoch:02d}.npz", hparams={"note": "test"})
    fit(model_b, loss, opt_b, Xb, yb, epochs=2, batch_size=5, scheduler=sched_b,
        generator=np.random.default_rng(3), callbacks=[mc], verbose=0)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["e01.npz", "e02.npz"]
    assert mc.last_path.endswith("e02.npz")

    model_c, opt_c, sched_c = new_run()
    ck = ckpt_mod.load_checkpoint(mc.last_path, model_c, opt_c, sched_c)
    assert ck.epoch == 2 and ck.step == 2 * 4 and ck.hparams == {"note": "test"}
    assert "loss" in ck.metrics
    hist = fit(model_c, loss, opt_c, Xb, yb, epochs=4, initial_epoch=ck.epoch, batch_size=5,
               scheduler=sched_c, generator=ck.generator(), verbose=0)
    assert hist.epoch == [3, 4]
    assert same(host_state_dict(model_c), host_state_dict(model_a))


def test_model_checkpoint_save_best_only(tmp_path):
    pytest.importorskip("xpnet.checkpoint")
    model = xpnet.Sequential(xpnet.Linear(2, 1, generator=0))
    mc = ModelCheckpoint(tmp_path / "best-{epoch}.npz", monitor="val_loss", save_best_only=True)
    mc.set_context(model=model, optimizer=None)
    mc.on_train_begin({})
    for epoch, v in enumerate([0.5, 0.7, 0.4, 0.4]):
        mc.on_epoch_end(epoch, {"loss": 1.0, "val_loss": v})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-1.npz", "best-3.npz"]
    with pytest.raises(ValueError, match="not in the epoch logs"):
        mc.on_epoch_end(4, {"loss": 1.0})


# --------------------------------------------------------------------------- LR, CSV, base


def test_lr_scheduler_callback_steps_plain_and_plateau():
    model = xpnet.Sequential(xpnet.Linear(2, 1, generator=0))
    opt = SGD(model.parameters(), lr=1.0)
    cb = LRSchedulerCallback(StepLR(opt, step_size=1, gamma=0.5))
    cb.on_epoch_end(0, {"loss": 1.0})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    opt2 = SGD(model.parameters(), lr=1.0)
    plateau = LRSchedulerCallback(ReduceLROnPlateau(opt2, factor=0.1, patience=0))
    for epoch in range(3):  # loss flat, val_loss preferred when present
        plateau.on_epoch_end(epoch, {"loss": 5.0 - epoch, "val_loss": 1.0})
    assert opt2.param_groups[0]["lr"] < 1.0
    with pytest.raises(TypeError, match="step"):
        LRSchedulerCallback(object())


def test_csv_logger_writes_one_row_per_epoch(backend, tmp_path):
    X = backend.asarray(XOR_X, dtype="float32")
    y = backend.asarray(XOR_Y, dtype="float32")
    model = mlp(backend, [2, 3, 1])
    path = tmp_path / "log.csv"
    hist = fit(model, MSELoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=3,
               callbacks=[CSVLogger(path)], verbose=0)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] == hist.epoch
    assert [float(r["loss"]) for r in rows] == hist.history["loss"]


def test_callback_base_is_a_no_op_with_context():
    cb = Callback()
    model = xpnet.Sequential(xpnet.Linear(2, 1, generator=0))
    cb.stop_training = True
    cb.set_context(model=model, params={"epochs": 2})
    assert cb.model is model and cb.params == {"epochs": 2} and not cb.stop_training
    for hook in ("on_train_begin", "on_train_end"):
        getattr(cb, hook)({})
    cb.on_epoch_begin(0, {})
    cb.on_batch_begin(0, {})
    cb.on_batch_end(0, {})
    cb.on_epoch_end(0, {})
