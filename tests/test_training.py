"""fit / evaluate / predict: learning, History, metrics, resume, validation, syncs, output."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import xpnet
from xpnet import _backend, _loop
from xpnet.activations import Tanh
from xpnet.callbacks import Callback, History, host_state_dict
from xpnet.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from xpnet.optim import SGD, Adam
from xpnet.optim.lr_scheduler import ReduceLROnPlateau, StepLR
from xpnet.progress import ProgressReporter, format_logs, resolve_mode
from xpnet.testing import get_backend
from xpnet.training import evaluate, fit, predict

# Epoch values are size-weighted means of float32 batch values, accumulated in float64 on
# the host: they agree with a one-batch float32 evaluation to a few float32 ulps
# (eps 1.2e-7) times the number of batches.
F32_RTOL = 1e-5

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def blobs(n: int = 30, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian clusters in 2-D, labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7], [0.0, 3.0]])[:classes]
    y = np.arange(n) % classes
    X = centers[y] + 0.3 * rng.standard_normal((n, 2))
    return X, y.astype(np.int64)


def mlp(backend, sizes, *, seed: int = 0, dtype: str = "float32", dropout: float = 0.0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(xpnet.Linear(a, b, generator=seed + i))
        if i < len(sizes) - 2:
            layers.append(Tanh())
            if dropout:
                layers.append(xpnet.Dropout(dropout, generator=seed))
    return backend.move(xpnet.Sequential(*layers), dtype=dtype)


def weights(model) -> dict[str, np.ndarray]:
    return dict(host_state_dict(model))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- learning


def test_fit_learns_xor(backend):
    X = backend.asarray(XOR_X, dtype="float32")
    y = backend.asarray(XOR_Y, dtype="float32")
    model = mlp(backend, [2, 8, 1])
    hist = fit(model, MSELoss(), Adam(model.parameters(), lr=0.05), X, y, epochs=150, batch_size=4,
               generator=0, verbose=0, metrics=["accuracy"])
    loss = hist.history["loss"]
    assert len(loss) == 150 and hist.epoch == list(range(1, 151))
    assert loss[-1] < 0.05 * loss[0], f"loss did not decrease enough: {loss[0]} -> {loss[-1]}"
    assert hist.history["accuracy"][-1] == 1.0
    assert model.training  # fit leaves the mode the model had


def test_fit_learns_blobs_with_validation(backend):
    X, y = blobs(48)
    Xtr, ytr = backend.asarray(X[:36], dtype="float32"), backend.asarray(y[:36])
    Xva, yva = backend.asarray(X[36:], dtype="float32"), backend.asarray(y[36:])
    model = mlp(backend, [2, 6, 3])
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2, momentum=0.9), Xtr, ytr,
               epochs=15, batch_size=8, validation_data=(Xva, yva), generator=1, verbose=0)
    h = hist.history
    assert set(h) == {"loss", "accuracy", "max_batch_loss", "val_loss", "val_accuracy", "lr", "time"}
    assert all(len(v) == 15 for v in h.values())
    assert h["val_loss"][-1] < h["val_loss"][0] and h["val_accuracy"][-1] == 1.0
    assert all(t > 0 for t in h["time"]) and h["lr"] == [0.2] * 15
    assert all(m >= lo for m, lo in zip(h["max_batch_loss"], h["loss"]))
    best = hist.best("val_loss")
    assert best.value == min(h["val_loss"]) and h["val_loss"][best.epoch - 1] == best.value
    assert hist.best("val_accuracy").value == 1.0
    again = History.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert again.history == h and again.epoch == hist.epoch and again.params["steps"] == 5


def test_validation_split_is_a_seeded_stratified_holdout(backend, monkeypatch):
    X, y = blobs(40)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    seen = []
    real_split = xpnet.training._split_validation

    def spy(*args):
        out = real_split(*args)
        seen.append((backend.to_numpy(out[1]), backend.to_numpy(out[2][1])))
        return out

    monkeypatch.setattr(xpnet.training, "_split_validation", spy)
    for _ in range(2):
        model = mlp(backend, [2, 6, 3])
        hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), Xb, yb, epochs=2,
                   batch_size=8, validation_split=0.25, generator=3, verbose=0)
        assert len(hist.history["val_loss"]) == 2 and len(hist.history["val_accuracy"]) == 2
        assert hist.params["samples"] == 30
    (ytr, yva), (ytr2, yva2) = seen
    assert len(yva) == 10 and np.array_equal(yva, yva2) and np.array_equal(ytr, ytr2)
    # Stratified: each class keeps its share of the 40 samples in the 10 held out.
    for c in np.unique(y):
        assert abs(np.sum(yva == c) - 10 * np.mean(y == c)) <= 1
    assert sorted(np.concatenate([ytr, yva]).tolist()) == sorted(y.tolist())
    model = mlp(backend, [2, 6, 3])
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not both"):
        fit(model, CrossEntropyLoss(), opt, Xb, yb, epochs=1, validation_split=0.2,
            validation_data=(Xb, yb), verbose=0)
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="validation_split"):
            fit(model, CrossEntropyLoss(), opt, Xb, yb, epochs=1, validation_split=bad, verbose=0)


def test_epoch_values_match_hand_computation(backend):
    # lr=0 keeps the weights fixed, so the epoch's loss and accuracy must equal the loss
    # and accuracy of the fixed model on the whole set, whatever the (uneven) batching.
    X, y = blobs(7, seed=3)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 5, 3], seed=4)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.0), Xb, yb, epochs=1,
               batch_size=3, shuffle=False, verbose=0, metrics=["accuracy"])
    out = predict(model, Xb)
    backend.check(out, dtype="float32", shape=(7, 3))
    z = backend.to_numpy(out).astype(np.float64)
    logp = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    ce = -np.mean(logp[np.arange(7), y])
    acc = np.mean(z.argmax(1) == y)
    assert hist.history["loss"][0] == pytest.approx(ce, rel=F32_RTOL)
    assert hist.history["accuracy"][0] == pytest.approx(acc, rel=F32_RTOL)
    res = evaluate(model, CrossEntropyLoss(), Xb, yb, batch_size=2, metrics=["accuracy"])
    assert set(res) == {"loss", "accuracy"} and all(isinstance(v, float) for v in res.values())
    assert res["loss"] == pytest.approx(ce, rel=F32_RTOL) and res["accuracy"] == pytest.approx(acc)


def test_accuracy_in_history_and_evaluate_is_the_exact_ratio(backend):
    # A float32 model that gets exactly 352 of 360 right (identity weights on fixed
    # scores). The logged value must be the float64 ratio, not a float32 mean of means.
    rng = np.random.default_rng(0)
    z = rng.standard_normal((360, 3))
    y = z.argmax(1)
    y[:8] = (y[:8] + 1) % 3
    lin = xpnet.Linear(3, 3)
    lin.load_state_dict({"weight": np.eye(3, dtype=np.float32), "bias": np.zeros(3, np.float32)})
    model = backend.move(xpnet.Sequential(lin), dtype="float32")
    Xb, yb = backend.asarray(z, dtype="float32"), backend.asarray(y.astype(np.int64))
    exact = 352 / 360  # 0.9777777777777777
    for bs in (7, 32, 360):
        res = evaluate(model, CrossEntropyLoss(), Xb, yb, batch_size=bs, metrics=["accuracy"])
        assert res["accuracy"] == exact
        assert evaluate(model, None, Xb, yb, batch_size=bs, metrics=["acc"])["acc"] == exact
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.0), Xb, yb, epochs=1,
               batch_size=32, shuffle=True, generator=0, verbose=0, metrics=["accuracy"],
               validation_data=(Xb, yb))
    assert hist.history["accuracy"] == [exact] and hist.history["val_accuracy"] == [exact]


def test_bce_with_logits_accuracy_thresholds_logits(backend):
    # z = x0 exactly (w = [1, 0], b = 0). Thresholding the logits at 0 gets all four right;
    # the probability threshold 0.5 applied to logits would get only 2 of 4.
    X = np.array([[0.2, 5.0], [0.4, -1.0], [-0.3, 2.0], [0.8, 0.0]])
    t = np.array([[1.0], [1.0], [0.0], [1.0]])
    lin = xpnet.Linear(2, 1)
    lin.load_state_dict({"weight": np.array([[1.0, 0.0]], np.float32), "bias": np.zeros(1, np.float32)})
    model = backend.move(xpnet.Sequential(lin))
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(t, dtype="float32")
    hist = fit(model, BCEWithLogitsLoss(), SGD(model.parameters(), lr=0.0), Xb, yb, epochs=1,
               batch_size=3, verbose=0)  # metrics="auto": accuracy, on logits
    assert hist.history["accuracy"] == [1.0]
    assert evaluate(model, BCEWithLogitsLoss(), Xb, yb, metrics=["accuracy"])["accuracy"] == 1.0
    assert evaluate(model, MSELoss(), Xb, yb, metrics=["accuracy"])["accuracy"] == 0.5


# --------------------------------------------------------------------------- evaluate / predict


def test_evaluate_and_predict_in_eval_mode(backend):
    X, y = blobs(10, seed=5)
    Xb, yb = backend.asarray(X, dtype="float64"), backend.asarray(y)
    model = mlp(backend, [2, 16, 3], dtype="float64", dropout=0.5)
    for p in model.parameters():
        assert p.grad is None
    out1 = predict(model, Xb, batch_size=3)
    out2 = predict(model, Xb, batch_size=100)
    backend.check(out1, dtype="float64", shape=(10, 3))
    backend.check(out2, dtype="float64", shape=(10, 3))
    # Dropout is off: batching changes only rounding, repeated calls nothing.
    np.testing.assert_allclose(backend.to_numpy(out1), backend.to_numpy(out2), rtol=1e-12, atol=1e-14)
    assert model.training and all(m.training for m in model.modules())
    res = evaluate(model, CrossEntropyLoss(), Xb, yb, batch_size=4, metrics=("accuracy",))
    assert res == evaluate(model, CrossEntropyLoss(), Xb, yb, batch_size=4, metrics=("accuracy",))
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    predict(model, Xb)
    evaluate(model, CrossEntropyLoss(), Xb, yb)
    assert not model.training and not any(m.training for m in model.modules())


# --------------------------------------------------------------------------- resume


def _resume_setup(backend):
    X, y = blobs(20, seed=7)
    return backend.asarray(X, dtype="float32"), backend.asarray(y)


def test_resume_with_restored_generator_is_bit_identical(backend):
    X, y = _resume_setup(backend)
    loss = CrossEntropyLoss()

    def new_run():
        model = mlp(backend, [2, 6, 3], seed=11)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, StepLR(opt, step_size=1, gamma=0.7)

    kw = dict(batch_size=6, verbose=0, metrics=())
    model_a, opt_a, sched_a = new_run()
    full = fit(model_a, loss, opt_a, X, y, epochs=4, scheduler=sched_a,
               generator=np.random.default_rng(123), **kw)

    model_b, opt_b, sched_b = new_run()
    gen_b = np.random.default_rng(123)
    fit(model_b, loss, opt_b, X, y, epochs=2, scheduler=sched_b, generator=gen_b, **kw)
    # Everything a checkpoint holds, moved into fresh objects.
    model_c, opt_c, sched_c = new_run()
    model_c.load_state_dict(host_state_dict(model_b))
    opt_c.load_state_dict(opt_b.state_dict())
    sched_c.load_state_dict(sched_b.state_dict())
    gen_c = np.random.default_rng(999)
    xpnet.set_rng_state(xpnet.get_rng_state(gen_b), gen_c)
    rest = fit(model_c, loss, opt_c, X, y, epochs=4, initial_epoch=2, scheduler=sched_c,
               generator=gen_c, **kw)

    assert rest.epoch == [3, 4]  # epochs 3 and 4 of 4, as the progress lines say
    assert rest.history["loss"] == full.history["loss"][2:]
    assert rest.history["lr"] == full.history["lr"][2:]
    assert same_weights(weights(model_c), weights(model_a))
    for p in model_c.parameters():
        backend.check(p.data, dtype="float32")


def test_resume_with_int_seed_fast_forwards_the_shuffling(backend):
    X, y = _resume_setup(backend)
    loss = CrossEntropyLoss()
    model_a = mlp(backend, [2, 6, 3], seed=1)
    fit(model_a, loss, SGD(model_a.parameters(), lr=0.1), X, y, epochs=3, batch_size=4,
        generator=5, verbose=0)
    model_b = mlp(backend, [2, 6, 3], seed=1)
    opt_b = SGD(model_b.parameters(), lr=0.1)
    fit(model_b, loss, opt_b, X, y, epochs=1, batch_size=4, generator=5, verbose=0)
    hist = fit(model_b, loss, opt_b, X, y, epochs=3, initial_epoch=1, batch_size=4, generator=5,
               verbose=0)
    assert hist.epoch == [2, 3]
    assert same_weights(weights(model_a), weights(model_b))


def test_initial_epoch_at_or_past_epochs_trains_nothing(backend):
    X, y = _resume_setup(backend)
    model = mlp(backend, [2, 4, 3])
    before = weights(model)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=1.0), X, y, epochs=3,
               initial_epoch=3, verbose=0)
    assert hist.epoch == [] and hist.history == {} and same_weights(before, weights(model))


# --------------------------------------------------------------------------- schedulers


def test_scheduler_is_stepped_once_per_epoch(backend):
    X, y = _resume_setup(backend)
    model = mlp(backend, [2, 4, 3])
    opt = SGD(model.parameters(), lr=0.4)
    hist = fit(model, CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=4,
               scheduler=StepLR(opt, step_size=1, gamma=0.5), verbose=0)
    assert hist.history["lr"] == pytest.approx([0.4, 0.2, 0.1])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_plateau_scheduler_receives_val_loss(backend):
    X, y = _resume_setup(backend)
    seen = []

    class Spy(ReduceLROnPlateau):
        def step(self, metrics):
            seen.append(float(metrics))
            super().step(metrics)

    model = mlp(backend, [2, 4, 3])
    opt = SGD(model.parameters(), lr=0.0)  # nothing changes, so the plateau is immediate
    hist = fit(model, CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=5,
               validation_data=(X[:8, ...], y[:8, ...]), scheduler=Spy(opt, patience=0), verbose=0)
    assert seen == hist.history["val_loss"]


# --------------------------------------------------------------------------- validation


def test_invalid_data_is_rejected_before_training(backend):
    X, y = blobs(12)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 4, 3])
    before = weights(model)
    loss = CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=1.0)

    def run(X_, y_, **kw):
        return fit(model, loss, opt, X_, y_, epochs=1, verbose=0, **kw)

    with pytest.raises(ValueError, match="same number of samples"):
        run(Xb, yb[:10, ...])
    if backend.name != "numpy":  # float64 NumPy input is cast at the entry (test_input_casts)
        with pytest.raises(TypeError, match="dtype"):
            run(backend.asarray(X, dtype="float64"), yb)
    with pytest.raises(TypeError, match="floating"):
        run(backend.asarray(X.astype(np.int64)), yb)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        run(Xb, backend.asarray(np.where(y == 2, 3, y)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        run(Xb, backend.asarray(np.where(y == 2, -1, y)))
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run(backend.asarray(bad, dtype="float32"), yb)
    with pytest.raises(ValueError, match="validation"):
        run(Xb, yb, validation_data=(Xb, backend.asarray(y + 7)))
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="y has dtype float64"):
            run(Xb, backend.asarray(np.eye(3)[y], dtype="float64"))
    with pytest.raises(ValueError, match="shape"):  # the loss's own check, run once at entry
        fit(model, MSELoss(), opt, Xb, yb, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="must be an array"):
        run(X.tolist(), yb)
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="different backends"):
            run(X.astype(np.float32), yb)  # host NumPy data with a model on another backend
    with pytest.raises(ValueError, match="epochs"):
        fit(model, loss, opt, Xb, yb, epochs=-1)
    assert same_weights(before, weights(model))
    assert loss.validate is True  # restored after every failure


def test_loss_validation_is_off_during_fit_without_touching_the_callers_loss(backend):
    X = backend.asarray(XOR_X, dtype="float32")
    y = backend.asarray(XOR_Y, dtype="float32")
    flags = []

    class Spy(MSELoss):
        def __call__(self, input, target):
            flags.append(self.validate)
            return super().__call__(input, target)

    class Watch(Callback):
        # The user's loss object, as a callback (or another thread) sees it mid-training.
        def on_batch_end(self, batch, logs=None):
            seen.append(loss.validate)

    loss, seen = Spy(), []
    model = mlp(backend, [2, 3, 1])
    fit(model, loss, SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=2, verbose=0,
        callbacks=[Watch()])
    assert loss.validate is True and seen and all(v is True for v in seen)
    # The copy fit trains with does not validate: every training call saw False.
    assert flags.count(False) >= 4 and all(f is False for f in flags[-4:])


# --------------------------------------------------------------------------- syncs


def _count_syncs(monkeypatch, backend, run):
    counts = {"to_numpy": 0, "dunder": 0, "buffer": 0}
    real = _backend.to_numpy

    def counting(x):
        # Host data passing through (the shuffling permutation) is not a sync; on the NumPy
        # backend everything is host data, so count every call there.
        if backend.name == "numpy" or not isinstance(x, np.ndarray):
            counts["to_numpy"] += 1
        return real(x)

    monkeypatch.setattr(_backend, "to_numpy", counting)
    if backend.name.startswith("array_api_strict"):
        # Every way a strict array can reach Python or NumPy values goes through these.
        array_type = type(backend.xp.asarray(0.0))
        kinds = {"__float__": "dunder", "__int__": "dunder", "__bool__": "dunder",
                 "__index__": "dunder", "__complex__": "dunder", "__array__": "buffer",
                 "__dlpack__": "buffer"}
        for name, kind in kinds.items():
            orig = getattr(array_type, name, None)
            if orig is None:
                continue

            def wrapper(self, *a, _orig=orig, _kind=kind, **k):
                counts[_kind] += 1
                return _orig(self, *a, **k)

            monkeypatch.setattr(array_type, name, wrapper)
    run()
    monkeypatch.undo()
    return counts


def test_fit_does_not_sync_per_step(backend, monkeypatch):
    X, y = blobs(40, seed=2)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)

    def make_run(batch_size, log_every=None):
        model = mlp(backend, [2, 4, 3])  # built outside the count: moving it copies

        def run():
            fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), Xb, yb, epochs=2,
                batch_size=batch_size, metrics=["accuracy"], verbose=0, log_every=log_every,
                validation_data=(Xb, yb))

        return run

    ten = _count_syncs(monkeypatch, backend, make_run(4))  # 10 steps per epoch
    twenty = _count_syncs(monkeypatch, backend, make_run(2))  # 20 steps per epoch
    assert ten == twenty, f"host syncs grow with the number of steps: {ten} vs {twenty}"
    n_params = 4  # two Linear layers: NaNGuard copies each to the host once per epoch
    per_epoch = 1 + 1 + n_params  # epoch losses+metrics, validation pass, NaNGuard copy
    if backend.name != "numpy":
        # + one check per dataset at entry, + NaNGuard's copy of the initial weights
        assert ten["to_numpy"] == 2 + 2 * per_epoch + n_params
    assert ten["dunder"] == 0
    logged = _count_syncs(monkeypatch, backend, make_run(4, log_every=5))
    assert logged["to_numpy"] == ten["to_numpy"] + 2 * 2  # two log points per epoch


# --------------------------------------------------------------------------- output


def test_verbose_zero_prints_nothing(backend, capsys):
    X = backend.asarray(XOR_X, dtype="float32")
    y = backend.asarray(XOR_Y, dtype="float32")
    model = mlp(backend, [2, 3, 1])
    fit(model, MSELoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=3, verbose=0, log_every=1)
    evaluate(model, MSELoss(), X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_one_line_per_epoch_when_not_a_tty(backend, capsys):
    X, y = blobs(12)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 4, 3])
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), Xb, yb, epochs=4,
        batch_size=4, validation_data=(Xb, yb))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/4  loss ")
        assert "acc " in line and "val_loss " in line and "val_acc " in line and "lr 0.1" in line
        assert line.endswith("s") and "\r" not in line


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_tty(monkeypatch):
    b = get_backend("numpy")
    X, y = blobs(12)
    model = mlp(b, [2, 4, 3])
    out = _TTY()
    monkeypatch.setattr("sys.stdout", out)
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), b.asarray(X, dtype="float32"),
        b.asarray(y), epochs=2, batch_size=2, log_every=3)
    text = out.getvalue()
    assert "\r" in text and "[" in text and "6/6" in text
    finals = [seg for seg in text.split("\r") if seg.startswith("epoch ") and seg.endswith("\n")]
    assert len(finals) == 2 and finals[-1].startswith("epoch 2/2  loss ")


def test_progress_bar_uses_tqdm_with_rate_and_falls_back_without_it(monkeypatch):
    pytest.importorskip("tqdm")
    import xpnet.progress as progress

    def run() -> str:
        out = _TTY()
        rep = ProgressReporter("bar", epochs=2, steps=6, stream=out)
        rep.epoch_begin(0)
        for s in range(1, 7):
            rep.step(s, loss=0.25 if s % 3 == 0 else None)
        rep.epoch_end(0, {"loss": 0.25, "time": 0.1})
        return out.getvalue()

    text = run()
    assert "epoch 1/2:" in text and "6/6 [" in text and "step/s" in text and "loss 0.2500" in text
    assert text.endswith("\repoch 1/2  loss 0.2500  0.1s\x1b[K\n")
    monkeypatch.setattr(progress, "_tqdm_class", lambda stream: None)  # tqdm not installed
    text = run()
    assert "[========================] 6/6  loss 0.2500" in text and "step/s" not in text


def test_progress_helpers():
    assert resolve_mode(0) == "silent" and resolve_mode(2) == "line"
    assert resolve_mode("auto", _TTY()) == "bar" and resolve_mode(1, io.StringIO()) == "line"
    with pytest.raises(ValueError, match="verbose must be 0, 1, 2, True, False or 'auto', got 'loud'"):
        resolve_mode("loud")
    text = format_logs({"loss": 0.12345, "accuracy": 0.5, "val_loss": 1e-6, "lr": 0.01, "time": 1.23})
    assert text == "loss 0.1235  acc 0.5000  val_loss 1.000e-06  lr 0.01  1.2s"
    buf = io.StringIO()
    rep = ProgressReporter("line", epochs=3, steps=10, stream=buf)
    rep.epoch_begin(0)
    rep.step(5)  # no loss: nothing synced, nothing printed
    rep.step(10, loss=0.5)
    rep.epoch_end(0, {"loss": 0.5, "time": 0.1})
    assert buf.getvalue() == "epoch 1/3  step 10/10  loss 0.5000\nepoch 1/3  loss 0.5000  0.1s\n"


# --------------------------------------------------------------------------- callbacks in the loop


def test_callback_hooks_and_batch_logs(backend):
    X, y = blobs(10)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", self.params["steps"]))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_batch_end(self, batch, logs=None):
            backend.check(logs["loss"], shape=())  # still on the device, not synced
            events.append(("batch", batch, logs["size"]))
            if self.state.epoch == 1 and batch == 1:
                self.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            events.append(("train_end",))

    model = mlp(backend, [2, 4, 3])
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), Xb, yb, epochs=5,
               batch_size=4, callbacks=[Recorder()], verbose=0)
    keys = ["accuracy", "loss", "lr", "max_batch_loss", "time"]
    assert events == [
        ("train_begin", 3),
        ("epoch_begin", 0), ("batch", 0, 4), ("batch", 1, 4), ("batch", 2, 2), ("epoch_end", 0, keys),
        ("epoch_begin", 1), ("batch", 0, 4), ("batch", 1, 4), ("epoch_end", 1, keys),
        ("train_end",),
    ]
    assert hist.epoch == [1, 2] and hist.stop_reason == "Recorder" and hist.stopped_epoch == 2


def test_fit_rejects_bad_arguments(backend):
    X, y = blobs(6)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 3, 3])
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="Callback"):
        fit(model, CrossEntropyLoss(), opt, Xb, yb, epochs=1, callbacks=[object()], verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, CrossEntropyLoss(), opt, Xb, yb, epochs=1, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="no batch"):
        fit(model, CrossEntropyLoss(), opt, Xb, yb, epochs=1, batch_size=10, drop_last=True, verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        fit(model, CrossEntropyLoss(), opt, Xb, yb, epochs=1, metrics=["f2"], verbose=0)


def test_evaluate_and_predict_check_their_inputs(backend):
    X, y = blobs(9)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 3, 3])
    with pytest.raises(TypeError, match="required"):
        evaluate(model, CrossEntropyLoss(), Xb, None)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        evaluate(model, CrossEntropyLoss(), Xb, backend.asarray(y + 1))
    if backend.name != "numpy":  # NumPy float64 is cast at the entry (test_input_casts)
        with pytest.raises(TypeError, match="dtype"):
            predict(model, backend.asarray(X, dtype="float64"))
    with pytest.raises(ValueError, match="at least one sample"):
        predict(model, Xb[:0, ...])
    # Metrics only (no loss) and a callable metric logged under its name.
    def half_accuracy(output, target):
        from xpnet.metrics import accuracy

        return accuracy(output, target) * 0.5

    res = evaluate(model, None, Xb, yb, metrics=["accuracy", half_accuracy])
    assert set(res) == {"accuracy", "half_accuracy"}
    assert res["half_accuracy"] == pytest.approx(0.5 * res["accuracy"])


def test_long_epochs_compact_the_step_log_without_changing_values(backend, monkeypatch):

    X, y = blobs(10, seed=8)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)

    def run():
        model = mlp(backend, [2, 4, 3], seed=2)
        h = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), Xb, yb, epochs=2,
                batch_size=1, generator=0, log_every=4, verbose=0)
        return {k: v for k, v in h.history.items() if k != "time"}

    reference = run()
    monkeypatch.setattr(_loop._StepLog, "_CHUNK", 3)  # 10 steps: chunks of 3, 3, 3 + 1
    assert run() == reference


def test_fit_skips_the_input_gradient_and_counts_accuracy_exactly():
    """fit calls backward_params (no dL/dx), and its accuracy is the exact epoch ratio of
    the running correct count (the same as evaluate before the step's update)."""
    backend = get_backend("numpy")
    X, y = blobs(45, seed=4)
    Xb, yb = backend.asarray(X, dtype="float32"), backend.asarray(y)
    model = mlp(backend, [2, 5, 3])
    # Every path (the per-layer one and Sequential's chain) ends in the first Linear's
    # kernel; dx = δ W is computed only when it is asked for need_dx.
    need_dx = []
    first = model[0]
    orig = first._kernel_backward

    def kernel_backward(dy, ctx, xp, need):
        need_dx.append(need)
        return orig(dy, ctx, xp, need)

    first._kernel_backward = kernel_backward
    # lr 0: the weights never change, so the epoch accuracy equals evaluate's.
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.0), Xb, yb, epochs=2,
               batch_size=7, metrics=["accuracy"], verbose=0, shuffle=False)
    assert need_dx == [False] * (2 * 7)
    expected = evaluate(model, None, Xb, yb, metrics=["accuracy"])["accuracy"]
    assert hist.history["accuracy"] == [expected, expected]
    hits = int(np.sum(np.argmax(backend.to_numpy(model(Xb)), axis=1) == y))
    assert expected == hits / 45


def test_fit_names_ignore_index_labels_instead_of_a_range_error():
    model = xpnet.Sequential(xpnet.Linear(2, 3, generator=0, dtype="float64"))
    X = np.zeros((4, 2))
    y = np.array([0, 1, -100, 2])
    opt = xpnet.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="ignore_index label -100; fit does not train on ignored samples"):
        xpnet.fit(model, xpnet.CrossEntropyLoss(), opt, X, y, epochs=1, verbose=0)


# --------------------------------------------------------------------------- entry errors


def _fit_case(case):
    """One bad fit call per case: (kwargs overriding a valid call, error type, message)."""
    X, y = blobs(12, seed=4)
    X = X.astype(np.float32)
    model = mlp(get_backend("numpy"), [2, 4, 3])
    base = dict(model=model, loss_fn=CrossEntropyLoss(), optimizer=SGD(model.parameters(), lr=0.1),
                X=X, y=y, epochs=1, verbose=0)
    base.update(case)
    args = [base.pop(k) for k in ("model", "loss_fn", "optimizer", "X", "y")]
    return args, base


def _metric_named(name):
    def fn(output, target):
        return output[0, 0]

    fn.__name__ = name
    return fn


FIT_ERRORS = {
    "reserved metric": ({"metrics": [_metric_named("loss")]}, ValueError, "metric name 'loss' is reserved or given twice"),
    "metric twice": ({"metrics": ["accuracy", "accuracy"]}, ValueError, "'accuracy' is reserved or given twice"),
    "model not a Module": ({"model": object()}, TypeError, "model must be an xpnet.Module, got object"),
    "optimizer without step": ({"optimizer": object()}, TypeError, "optimizer must have a step"),
    "2-D integer labels": ({"y": np.zeros((12, 3), dtype=np.int64)}, ValueError, r"integer class labels must have shape \(N,\)"),
    "NaN in float targets": (
        {"loss_fn": MSELoss(), "y": np.full((12, 3), np.nan, dtype=np.float32)}, ValueError, "y contains NaN or infinite"),
    "BCE targets outside [0, 1]": (
        {"loss_fn": xpnet.BCELoss(), "model": mlp(get_backend("numpy"), [2, 1]),
         "y": np.full((12, 1), 2.0, dtype=np.float32)}, ValueError, r"BCELoss targets must be in \[0, 1\], got values from 2 to 2"),
    "reduction none": ({"loss_fn": CrossEntropyLoss(reduction="none")}, ValueError, r"reduce to one number per batch .*reduction='none'"),
    "integer X without an Embedding": ({"X": np.zeros((12, 2), dtype=np.int64)}, TypeError, "integer indices only for a model whose first layer is an Embedding"),
    "validation_data not a pair": ({"validation_data": (np.zeros((2, 2)),)}, ValueError, r"validation_data must be a pair \(X_val, y_val\), got tuple"),
}


@pytest.mark.parametrize("name", sorted(FIT_ERRORS))
def test_fit_entry_errors_say_what_is_wrong(name):
    case, exc, message = FIT_ERRORS[name]
    args, kw = _fit_case(case)
    with pytest.raises(exc, match=message):
        fit(*args, **kw)


def test_fit_refuses_targets_on_another_device():
    b = get_backend("array_api_strict")
    X, y = blobs(12, seed=4)
    model = mlp(b, [2, 4, 3])
    other = get_backend("array_api_strict:device1").asarray(y)
    with pytest.raises(ValueError, match=r"X is on device .*CPU_DEVICE.* but y is on .*device1.*Hint: move y"):
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), b.asarray(X, dtype="float32"), other,
            epochs=1, verbose=0)


def test_fit_metrics_given_as_one_name_or_none():
    X, y = blobs(12, seed=4)
    for metrics, keys in (("accuracy", {"loss", "accuracy"}), ("auto", {"loss", "accuracy"}), (None, {"loss"})):
        model = mlp(get_backend("numpy"), [2, 4, 3])
        hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X.astype(np.float32), y,
                   epochs=1, verbose=0, metrics=metrics)
        assert keys <= set(hist.history) and ("accuracy" in hist.history) == ("accuracy" in keys)


def test_fit_trains_an_embedding_model_on_integer_indices(backend):
    # Token ids in, classes out: fit accepts integer X when the first layer is an Embedding,
    # checks the ids once at entry, and trains without the per-batch index check.
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, size=(120, 5))
    y = (ids.sum(axis=1) > 47).astype(np.int64)
    model = backend.move(xpnet.Sequential(
        xpnet.Embedding(20, 8, generator=0), xpnet.Flatten(), xpnet.Linear(40, 2, generator=1)), dtype="float32")
    opt = Adam(model.parameters(), lr=1e-2)
    X = backend.asarray(ids)
    hist = fit(model, CrossEntropyLoss(), opt, X, backend.asarray(y), epochs=15, batch_size=30, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model[0].validate is True  # restored after training
    backend.check(predict(model, X), dtype="float32", shape=(120, 2))
    with pytest.raises(ValueError, match=r"indices must be in \[0, 20\).*got values from 1 to 20"):
        fit(model, CrossEntropyLoss(), opt, backend.asarray(ids + 1), backend.asarray(y), epochs=1, verbose=0)
