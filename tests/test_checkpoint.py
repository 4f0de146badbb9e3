"""Checkpoints: round trips on every backend, cross-backend loads, resume == uninterrupted,
atomic writes, and rejection of truncated, corrupt, tampered, pickle-bearing and
mismatched files."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import _backend
from xpnet.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    META_KEY,
    CheckpointError,
    array_digest,
    load_checkpoint,
    save_checkpoint,
)
from xpnet.layers import Dropout, Sequential
from xpnet.models import mlp
from xpnet.optim import SGD, Adam
from xpnet.testing import get_backend

SIZES = (4, 8, 3)
HINT = "truncated or not an xpnet checkpoint"
# Continuing float32 training on two backends: their matmuls may sum in different
# orders, so each op can differ by ~1 ulp (6e-8 relative). Measured after 3 + 3 Adam
# steps of this 4-8-3 net: torch vs numpy differ by at most 4.5e-8 absolute (strict and
# numpy agree bitwise). 1e-5 / 1e-6 leaves 20x margin while a wrong or lost optimizer
# state (exp_avg_sq reset, step count off by one) moves parameters by > 1e-3.
CROSS_RTOL = 1e-5
CROSS_ATOL = 1e-6
# Resuming a 2-epoch fit (dropout, StepLR) for 2 more epochs on another backend: measured
# max 6e-8 absolute / 2e-7 relative vs the uninterrupted run; skipping the RNG restore
# moves parameters by 7e-2. Same margin argument as above, over twice the steps.
RESUME_RTOL = 1e-4
RESUME_ATOL = 1e-5


# ----------------------------------------------------------------------------- helpers


def _other(backend):
    """A backend different from ``backend`` to save from / load into."""
    return get_backend("array_api_strict:device1" if backend.name == "numpy" else "numpy")


def _setup(backend, seed=0, dtype="float32"):
    model = backend.move(mlp(SIZES, "tanh", generator=seed), dtype=dtype)
    return model, Adam(model.parameters(), lr=1e-2)


def _data(backend, dtype="float32"):
    rng = np.random.default_rng(123)
    X = rng.standard_normal((16, SIZES[0]))
    T = rng.standard_normal((16, SIZES[-1]))
    return backend.asarray(X, dtype=dtype), backend.asarray(T, dtype=dtype)


def _train(model, opt, X, T, steps):
    # Plain MSE gradient: this file tests checkpoints, not losses.
    for _ in range(steps):
        y = model(X)
        model.backward((y - T) * (2.0 / y.shape[0]))
        opt.step()
        opt.zero_grad()


def _params(model):
    return {n: np.array(_backend.to_numpy(p.data)) for n, p in model.named_parameters()}


def _opt_state(opt):
    out = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[(idx, k)] = np.array(_backend.to_numpy(v)) if _backend.is_array(v) else v
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


def _good(tmp_path, name="good.npz", **kw):
    """A small numpy checkpoint with Adam state, RNG state and hparams; returns (path, model)."""
    np_b = get_backend("numpy")
    model, opt = _setup(np_b)
    X, T = _data(np_b)
    _train(model, opt, X, T, 2)
    path = save_checkpoint(
        tmp_path / name, model, opt, epoch=2, step=2,
        rng_state=xpnet.get_rng_state(np.random.default_rng(5)),
        hparams={"sizes": list(SIZES), "activation": "tanh"}, **kw,
    )
    return path, model


def _entries(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _meta(entries):
    return json.loads(entries[META_KEY].tobytes().decode("utf-8"))


def _with_meta(entries, meta):
    out = dict(entries)
    out[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    return out


def _rewrite(path, entries, **kw):
    with open(path, "wb") as f:
        np.savez(f, **entries, **kw)


def _raises_corrupt(path, *words):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


# ----------------------------------------------------------------------------- round trips


def test_round_trip_same_backend(backend, tmp_path):
    model, opt = _setup(backend)
    X, T = _data(backend)
    _train(model, opt, X, T, 3)
    g = np.random.default_rng(7)
    g.random(5)
    path = save_checkpoint(
        tmp_path / "c.npz", model, opt, epoch=3, step=3, rng_state=xpnet.get_rng_state(g),
        hparams={"sizes": SIZES, "lr": 1e-2}, metrics={"loss": backend.xp.sum(backend.asarray(np.array([0.25], dtype=np.float32)))},
        extra={"note": "x"},
    )
    assert path == tmp_path / "c.npz"
    saved = _params(model)

    model2, opt2 = _setup(backend, seed=1)
    ck = load_checkpoint(path, model2, opt2)
    for name, p in model2.named_parameters():
        backend.check(p.data, dtype="float32", shape=saved[name].shape)
        assert isinstance(ck.model_state[name], np.ndarray)
    _assert_same(_params(model2), saved)
    _assert_same(ck.model_state, saved)
    _assert_same(_opt_state(opt2), _opt_state(opt))
    for st in opt2.state.values():
        backend.check(st["exp_avg"], dtype="float32")
        backend.check(st["exp_avg_sq"], dtype="float32")
    assert (ck.epoch, ck.step) == (3, 3)
    assert ck.hparams == {"sizes": SIZES, "lr": 1e-2}
    assert ck.metrics == {"loss": 0.25} and isinstance(ck.metrics["loss"], float)
    assert ck.extra == {"note": "x"}
    assert ck.meta["source"] == {
        "backend": _backend.backend_name(backend.xp), "device": str(backend.device), "dtype": "float32",
    }
    assert ck.meta["format"] == FORMAT_NAME and ck.meta["format_version"] == FORMAT_VERSION
    np.testing.assert_array_equal(ck.generator().random(4), g.random(4))

    # Training continues identically (same backend, same state: bit for bit), and the
    # returned arrays are not aliased by the model being trained.
    _train(model, opt, X, T, 3)
    _train(model2, opt2, X, T, 3)
    _assert_same(_params(model2), _params(model))
    _assert_same(ck.model_state, saved)


def test_cross_backend_load_and_continue(backend, tmp_path):
    src = _other(backend)
    model_s, opt_s = _setup(src)
    Xs, Ts = _data(src)
    _train(model_s, opt_s, Xs, Ts, 3)
    path = save_checkpoint(tmp_path / "src.npz", model_s, opt_s, epoch=1, step=3)

    model_t, opt_t = _setup(backend, seed=1)
    ck = load_checkpoint(path, model_t, opt_t)
    assert ck.meta["source"]["backend"] == _backend.backend_name(src.xp)
    for p in model_t.parameters():
        backend.check(p.data, dtype="float32")
    for st in opt_t.state.values():
        backend.check(st["exp_avg"], dtype="float32")
    _assert_same(_params(model_t), _params(model_s))  # bit-identical across backends
    _assert_same(_opt_state(opt_t), _opt_state(opt_s))

    Xt, Tt = _data(backend)
    _train(model_s, opt_s, Xs, Ts, 3)
    _train(model_t, opt_t, Xt, Tt, 3)
    a, b = _params(model_t), _params(model_s)
    for n in a:
        np.testing.assert_allclose(a[n], b[n], rtol=CROSS_RTOL, atol=CROSS_ATOL, err_msg=n)
    assert _opt_state(opt_t)[(0, "step")] == 6

    # ... and back: from this backend onto the other one.
    back = save_checkpoint(tmp_path / "back.npz", model_t, opt_t, epoch=2, step=6)
    model_b, opt_b = _setup(src, seed=2)
    load_checkpoint(back, model_b, opt_b)
    for p in model_b.parameters():
        src.check(p.data, dtype="float32")
    _assert_same(_params(model_b), _params(model_t))
    _assert_same(_opt_state(opt_b), _opt_state(opt_t))


def test_float64_round_trip_and_dtype_mismatch(backend, tmp_path):
    model, _ = _setup(backend, dtype="float64")
    path = save_checkpoint(tmp_path / "f64.npz", model)
    target, _ = _setup(_other(backend), seed=3, dtype="float64")
    load_checkpoint(path, target)
    _assert_same(_params(target), _params(model))

    f32, _ = _setup(backend, seed=4)
    before = _params(f32)
    with pytest.raises(CheckpointError, match=r"dtype mismatch.*model\.to\(dtype='float64'\)"):
        load_checkpoint(path, f32)
    _assert_same(_params(f32), before)


# ----------------------------------------------------------------------------- resume


def _resume_model(init_seed, g):
    lin = mlp(SIZES, "tanh", generator=init_seed)
    return Sequential(lin[0], lin[1], Dropout(0.25, generator=g), lin[2])


def _classification_data():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((48, SIZES[0]))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5).astype(np.int64)
    return X, y


def _fit_run(backend, *, epochs, initial_epoch=0, ckpt=None, init_seed=0):
    """One fit() call with the generator shuffling batches *and* drawing dropout masks."""
    from xpnet.losses import CrossEntropyLoss
    from xpnet.optim.lr_scheduler import StepLR
    from xpnet.training import fit

    g = np.random.default_rng(42 if ckpt is None else 999)
    model = backend.move(_resume_model(init_seed, g))
    opt = Adam(model.parameters(), lr=0.05)
    sched = StepLR(opt, step_size=1, gamma=0.7)
    if ckpt is not None:
        ck = load_checkpoint(ckpt, model, opt, sched)
        xpnet.set_rng_state(ck.rng_state, g)  # the generator the Dropout layer holds too
        initial_epoch = ck.epoch
    X, y = _classification_data()
    hist = fit(
        model, CrossEntropyLoss(), opt, backend.asarray(X, dtype="float32"), backend.asarray(y),
        epochs=epochs, initial_epoch=initial_epoch, batch_size=16, generator=g,
        scheduler=sched, metrics=(), verbose=0,
    )
    return model, opt, sched, g, hist


def _losses(hist):
    return list(getattr(hist, "history", hist)["loss"])


def test_resume_equals_uninterrupted(backend, tmp_path):
    ref, ref_opt, ref_sched, _, ref_hist = _fit_run(backend, epochs=4)

    model, opt, sched, g, hist = _fit_run(backend, epochs=2)
    path = save_checkpoint(tmp_path / "e2.npz", model, opt, scheduler=sched, epoch=2, step=6,
                           rng_state=xpnet.get_rng_state(g))
    del model, opt, sched, g  # a fresh process would have none of these

    # Same backend: bit for bit (parameters, optimizer state, lr, losses).
    res, res_opt, res_sched, _, res_hist = _fit_run(backend, epochs=4, ckpt=path, init_seed=7)
    _assert_same(_params(res), _params(ref))
    _assert_same(_opt_state(res_opt), _opt_state(ref_opt))
    assert res_sched.get_last_lr() == ref_sched.get_last_lr()
    assert _losses(hist) + _losses(res_hist) == _losses(ref_hist)

    # Resumed on another backend: the same run up to float32 rounding.
    other = _other(backend)
    oth, *_ , oth_hist = _fit_run(other, epochs=4, ckpt=path, init_seed=7)
    a, b = _params(oth), _params(ref)
    for n in a:
        np.testing.assert_allclose(a[n], b[n], rtol=RESUME_RTOL, atol=RESUME_ATOL, err_msg=n)
    np.testing.assert_allclose(_losses(oth_hist), _losses(ref_hist)[2:], rtol=RESUME_RTOL)


def test_scheduler_state_round_trip(tmp_path):
    from xpnet.optim.lr_scheduler import ExponentialLR, ReduceLROnPlateau, StepLR

    model, opt = _setup(get_backend("numpy"))
    sched = StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        opt.step()
        sched.step()
    path = save_checkpoint(tmp_path / "s.npz", model, opt, scheduler=sched)
    model2, opt2 = _setup(get_backend("numpy"), seed=1)
    sched2 = StepLR(opt2, step_size=2, gamma=0.5)
    ck = load_checkpoint(path, model2, opt2, sched2)
    assert ck.scheduler_state == sched.state_dict()
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]

    wrong = ExponentialLR(_setup(get_backend("numpy"))[1], gamma=0.9)
    with pytest.raises(CheckpointError, match="StepLR"):
        load_checkpoint(path, scheduler=wrong)

    # ReduceLROnPlateau keeps best = inf until the first metric: strict JSON has no inf.
    plateau = ReduceLROnPlateau(opt, patience=0)
    path = save_checkpoint(tmp_path / "p.npz", model, opt, scheduler=plateau)
    plateau2 = ReduceLROnPlateau(_setup(get_backend("numpy"))[1], patience=0)
    load_checkpoint(path, scheduler=plateau2)
    assert plateau2.state_dict() == plateau.state_dict() and plateau2.best == float("inf")
    for loss in (1.0, 0.5, 0.7):
        plateau.step(loss)
    load_checkpoint(save_checkpoint(path, model, opt, scheduler=plateau), scheduler=plateau2)
    assert plateau2.state_dict() == plateau.state_dict()


# ----------------------------------------------------------------------------- damaged files


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        load_checkpoint(tmp_path / "nope.npz")
    assert "nope.npz" in str(info.value)


@pytest.mark.parametrize("keep", ["empty", 3, 100, "half", "minus_eocd", "minus_1"])
def test_truncated_file(tmp_path, keep):
    path, _ = _good(tmp_path)
    data = path.read_bytes()
    n = {"empty": 0, "half": len(data) // 2, "minus_eocd": len(data) - 22, "minus_1": len(data) - 1}.get(keep, keep)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[:n])
    _raises_corrupt(cut, HINT)


def test_flipped_byte_in_array_data(tmp_path):
    path, model = _good(tmp_path)
    data = bytearray(path.read_bytes())
    w = _backend.to_numpy(model.state_dict()["0.weight"]).tobytes()
    at = data.find(w) + len(w) // 2
    data[at] ^= 0x01
    bad = tmp_path / "flip.npz"
    bad.write_bytes(bytes(data))
    _raises_corrupt(bad, "model/0.weight")


def test_every_single_byte_flip_is_caught_or_harmless(tmp_path):
    # Flip each byte of a small checkpoint in turn: a load must raise CheckpointError or
    # return exactly the saved content (zip timestamps, for one, are not checked). No
    # other exception type, and never different numbers.
    np_b = get_backend("numpy")
    model = mlp((2, 3, 1), "tanh", generator=0)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model, opt, *(np_b.asarray(a, dtype="float32") for a in (np.ones((2, 2)), np.zeros((2, 1)))), 1)
    path = save_checkpoint(tmp_path / "small.npz", model, opt, epoch=1, hparams={"a": 1})
    good = load_checkpoint(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data)
    caught = tried = 0
    # Every third byte covers every region (zip headers, npy headers, array data, JSON,
    # central directory) in about a second; the flip is done in place because truncating
    # rewrites are slow on some file systems.
    for i in range(0, len(data), 3):
        tried += 1
        with open(bad, "r+b") as f:
            f.seek(i)
            f.write(bytes([data[i] ^ 0x10]))
        try:
            ck = load_checkpoint(bad)
        except CheckpointError:
            caught += 1
            continue
        finally:
            with open(bad, "r+b") as f:
                f.seek(i)
                f.write(data[i : i + 1])
        _assert_same(ck.model_state, good.model_state)
        assert ck.hparams == good.hparams and ck.epoch == good.epoch
        assert _opt_state_np(ck.optimizer_state) == _opt_state_np(good.optimizer_state)
    assert caught > tried // 2  # most bytes matter: data, names, metadata, sizes


def _opt_state_np(sd):
    return {(i, k): np.asarray(v).tobytes() for i, st in sd["state"].items() for k, v in st.items()}


def test_tampered_array_with_unchanged_metadata(tmp_path):
    path, _ = _good(tmp_path)
    entries = _entries(path)
    w = entries["model/0.weight"].copy()
    w[0, 0] += 1.0  # same dtype, same shape: only the digest can tell
    entries["model/0.weight"] = w
    _rewrite(path, entries)
    _raises_corrupt(path, "digest", "tampered")


@pytest.mark.parametrize(
    "digest", [None, {"algorithm": "md5", "value": "0" * 32}, {"algorithm": "sha256"}, "abc"],
    ids=["missing", "other-algorithm", "no-value", "not-a-dict"],
)
def test_metadata_without_a_sha256_digest_is_refused(tmp_path, digest):
    # Dropping the digest must not be a way around it: a file without one is corrupt.
    path, _ = _good(tmp_path)
    entries = _entries(path)
    meta = json.loads(bytes(entries[META_KEY]).decode("utf-8"))
    if digest is None:
        del meta["digest"]
    else:
        meta["digest"] = digest
    _rewrite(path, _with_meta(entries, meta))
    _raises_corrupt(path, "no sha256 digest")


def test_tampered_shape_and_extra_entries(tmp_path):
    path, _ = _good(tmp_path)
    entries = _entries(path)
    entries["model/0.bias"] = entries["model/0.bias"][:-1]
    _rewrite(path, entries)
    _raises_corrupt(path, "model/0.bias", "metadata says")

    path, _ = _good(tmp_path, name="g2.npz")
    entries = _entries(path)
    entries["model/sneaky"] = np.zeros(3)
    _rewrite(path, entries)
    _raises_corrupt(path, "model/sneaky", "unexpected")


class _Evil:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_bearing_files_are_rejected_without_running_code(tmp_path):
    marker = str(tmp_path / "PWNED")
    path, _ = _good(tmp_path)
    entries = _entries(path)
    meta = _meta(entries)

    # 1. An object array declared in the metadata, as if it were a parameter.
    evil = dict(entries)
    evil["model/evil"] = np.array([_Evil(marker)], dtype=object)
    meta1 = json.loads(json.dumps(meta))
    meta1["arrays"]["model/evil"] = {"dtype": "|O", "shape": [1]}
    p1 = tmp_path / "obj.npz"
    _rewrite(p1, _with_meta(evil, meta1), allow_pickle=True)
    _raises_corrupt(p1, "model/evil", "pickle")

    # 2. The metadata entry itself pickled.
    p2 = tmp_path / "meta_obj.npz"
    bad_meta = dict(entries)
    bad_meta[META_KEY] = np.array([_Evil(marker)], dtype=object)
    _rewrite(p2, bad_meta, allow_pickle=True)
    _raises_corrupt(p2, META_KEY)

    # 3. A bare pickle named like a checkpoint.
    p3 = tmp_path / "raw.npz"
    p3.write_bytes(pickle.dumps(_Evil(marker)))
    _raises_corrupt(p3, HINT)

    assert not os.path.exists(marker)


def test_foreign_and_future_files(tmp_path):
    path, _ = _good(tmp_path)
    entries = _entries(path)
    meta = _meta(entries)

    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(3))
    _raises_corrupt(plain, META_KEY, "plain .npz")

    npy = tmp_path / "arr.npy"
    np.save(npy, np.ones(3))
    _raises_corrupt(npy, "not a zip")

    for change, words in [
        ({"format": "keras"}, ("wrong format", "keras")),
        ({"format_version": FORMAT_VERSION + 1}, ("newer", "upgrade xpnet")),
        ({"format_version": "1"}, ("format_version",)),
        ({"epoch": None}, ("epoch",)),
    ]:
        p = tmp_path / "changed.npz"
        _rewrite(p, _with_meta(entries, {**meta, **change}))
        _raises_corrupt(p, *words)

    p = tmp_path / "notjson.npz"
    _rewrite(p, {**entries, META_KEY: np.frombuffer(b"{not json", dtype=np.uint8)})
    _raises_corrupt(p, "JSON")

    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path)


# ----------------------------------------------------------------------------- mismatches


def test_wrong_shapes_and_names_leave_model_unchanged(backend, tmp_path):
    path, _ = _good(tmp_path)

    wide = backend.move(mlp((4, 9, 3), "tanh", generator=1))
    objs = [p.data for p in wide.parameters()]
    before = _params(wide)
    with pytest.raises(CheckpointError, match=r"shape mismatch: 0\.weight: checkpoint \(8, 4\), model \(9, 4\)"):
        load_checkpoint(path, wide)
    assert [p.data for p in wide.parameters()] == objs
    _assert_same(_params(wide), before)

    deep = backend.move(mlp((4, 8, 3, 3), "tanh", generator=1))
    before = _params(deep)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: \['4\.weight', '4\.bias'\]") as info:
        load_checkpoint(path, deep)
    assert "strict=False" in str(info.value) and "'sizes': [4, 8, 3]" in str(info.value)
    _assert_same(_params(deep), before)

    # strict=False loads the common names and leaves the rest alone.
    ck = load_checkpoint(path, deep, strict=False)
    after = _params(deep)
    for n in ("0.weight", "0.bias", "2.weight", "2.bias"):
        np.testing.assert_array_equal(after[n], ck.model_state[n])
    for n in ("4.weight", "4.bias"):
        np.testing.assert_array_equal(after[n], before[n])
        backend.check(dict(deep.named_parameters())[n].data, dtype="float32")


def test_optimizer_mismatches_leave_everything_unchanged(tmp_path):
    np_b = get_backend("numpy")
    path, _ = _good(tmp_path)
    model, _ = _setup(np_b, seed=3)
    before = _params(model)

    with pytest.raises(CheckpointError, match="holds Adam state but a SGD was given"):
        load_checkpoint(path, model, SGD(model.parameters(), lr=0.1))
    reordered = Adam(list(model.parameters())[::-1], lr=1e-2)
    with pytest.raises(CheckpointError, match="parameter order"):
        load_checkpoint(path, model, reordered)
    assert reordered.state == {}
    bare = save_checkpoint(tmp_path / "bare.npz", model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(bare, model, Adam(model.parameters()))
    _assert_same(_params(model), before)

    class Adam2(Adam):  # an optimizer whose own loader refuses, after the model loaded
        def load_state_dict(self, state_dict):
            raise ValueError("refused")

    Adam2.__name__ = "Adam"
    objs = [p.data for p in model.parameters()]
    with pytest.raises(CheckpointError, match="loading the optimizer state failed.*refused"):
        load_checkpoint(path, model, Adam2(model.parameters()))
    assert [p.data for p in model.parameters()] == objs  # rolled back


def test_failed_scheduler_load_rolls_back_model_and_optimizer(tmp_path):
    from xpnet.optim.lr_scheduler import StepLR

    np_b = get_backend("numpy")
    model, opt = _setup(np_b)
    path = save_checkpoint(tmp_path / "s.npz", model, opt, scheduler=StepLR(opt, step_size=1))

    class StepLR2(StepLR):
        def load_state_dict(self, state_dict):
            raise KeyError("refused")

    StepLR2.__name__ = "StepLR"
    target, topt = _setup(np_b, seed=5)
    X, T = _data(np_b)
    _train(target, topt, X, T, 2)
    before, before_opt = _params(target), _opt_state(topt)
    with pytest.raises(CheckpointError, match="loading the scheduler state failed"):
        load_checkpoint(path, target, topt, StepLR2(topt, step_size=1))
    _assert_same(_params(target), before)
    _assert_same(_opt_state(topt), before_opt)


def test_backend_and_device_arguments_move_the_model(tmp_path):
    path, saved = _good(tmp_path)
    strict = get_backend("array_api_strict:device1")
    model = mlp(SIZES, "tanh", generator=9)
    load_checkpoint(path, model, backend="array_api_strict", device=strict.device)
    for p in model.parameters():
        strict.check(p.data, dtype="float32")
    _assert_same(_params(model), _params(saved))
    with pytest.raises(ValueError, match="pass model="):
        load_checkpoint(path, backend="numpy")


# ----------------------------------------------------------------------------- format


def test_format_is_readable_without_xpnet(tmp_path):
    path, model = _good(tmp_path)
    # Only zipfile, numpy, json and hashlib: what docs/checkpoints.md promises.
    with zipfile.ZipFile(path) as zf:
        assert set(zf.namelist()) >= {"__meta__.npy", "model/0.weight.npy"}
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        h.update(name.encode() + b"\0" + a.dtype.str.encode() + b"\0")
        h.update(",".join(map(str, a.shape)).encode() + b"\0")
        h.update(np.ascontiguousarray(a).tobytes())
    body = json.dumps({k: v for k, v in meta.items() if k != "digest"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    meta_hash = hashlib.sha256(body.encode("ascii")).hexdigest()
    assert meta["digest"] == {"algorithm": "sha256", "value": h.hexdigest(), "meta": meta_hash}
    assert array_digest(arrays) == h.hexdigest()
    assert meta["format"] == "xpnet.checkpoint" and meta["format_version"] == 1
    assert meta["model"]["params"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert meta["arrays"]["model/0.weight"] == {"dtype": "<f4", "shape": [8, 4]}
    assert meta["optimizer"]["class"] == "Adam"
    assert meta["optimizer"]["state"]["0"]["exp_avg"] == {"__array__": "optim/0/exp_avg"}
    assert meta["optimizer"]["state"]["0"]["step"] == 2
    assert meta["optimizer"]["param_groups"][0]["betas"] == {"__tuple__": [0.9, 0.999]}
    np.testing.assert_array_equal(arrays["model/0.weight"], _backend.to_numpy(model.state_dict()["0.weight"]))
    assert meta["created"].endswith("Z") and meta["xpnet_version"] == xpnet.__version__


def test_values_json_cannot_hold_directly_round_trip(tmp_path):
    np_b = get_backend("numpy")
    model, _ = _setup(np_b)
    hp = {"t": (1, (2.5, "a")), "inf": float("inf"), "none": None, "flag": True,
          "np": np.float64(0.5), "i": np.int64(3), "milestones": {30: 1, 60: 2},
          "__odd": 1, "arr": np.arange(3, dtype=np.int32)}
    path = save_checkpoint(tmp_path / "v.npz", model, hparams=hp, extra={"nan": float("nan")})
    ck = load_checkpoint(path)
    arr = ck.hparams.pop("arr")
    np.testing.assert_array_equal(arr, np.arange(3, dtype=np.int32))
    assert ck.hparams == {"t": (1, (2.5, "a")), "inf": float("inf"), "none": None, "flag": True,
                          "np": 0.5, "i": 3, "milestones": {30: 1, 60: 2}, "__odd": 1}
    assert np.isnan(ck.extra["nan"])

    with pytest.raises(TypeError, match="hparams/bad"):
        save_checkpoint(tmp_path / "x.npz", model, hparams={"bad": object()})
    with pytest.raises(TypeError, match="object arrays"):
        save_checkpoint(tmp_path / "x.npz", model, extra={"o": np.array([None], dtype=object)})
    assert not (tmp_path / "x.npz").exists()


def test_save_argument_errors(tmp_path):
    model, _ = _setup(get_backend("numpy"))
    with pytest.raises(FileNotFoundError, match="mkdir"):
        save_checkpoint(tmp_path / "no" / "dir.npz", model)
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(tmp_path / "a.npz", model, epoch=-1)
    with pytest.raises(TypeError, match="Module"):
        save_checkpoint(tmp_path / "a.npz", {"w": np.ones(2)})
    with pytest.raises(TypeError, match="rng_state"):
        save_checkpoint(tmp_path / "a.npz", model, rng_state=42)
    g = np.random.default_rng(1)
    ck = load_checkpoint(save_checkpoint(tmp_path / "g.npz", model, rng_state=g))
    np.testing.assert_array_equal(ck.generator().random(3), g.random(3))
    with pytest.raises(CheckpointError, match="no RNG state"):
        load_checkpoint(save_checkpoint(tmp_path / "n.npz", model)).generator()


# ----------------------------------------------------------------------------- atomic writes


class _DiskFull:
    """File wrapper whose writes fail after ``limit`` bytes, like a full disk."""

    def __init__(self, f, limit):
        self._f, self._left = f, limit

    def write(self, b):
        if len(b) > self._left:
            self._f.write(bytes(b)[: self._left])
            raise OSError(28, "No space left on device")
        self._left -= len(b)
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("failure", ["disk_full_mid_write", "fsync", "keyboard_interrupt"])
def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch, failure):
    import xpnet.checkpoint as ckmod

    path, model = _good(tmp_path, name="c.npz")
    old = _params(model)
    for p in model.parameters():
        p.data = p.data + 1.0
    real_write = ckmod._write_npz
    if failure == "disk_full_mid_write":
        monkeypatch.setattr(ckmod, "_write_npz", lambda f, entries: real_write(_DiskFull(f, 1500), entries))
        expected, message = OSError, "No space left on device"
    elif failure == "fsync":
        def bad_fsync(fd):
            raise OSError(5, "Input/output error")
        monkeypatch.setattr(ckmod.os, "fsync", bad_fsync)
        expected, message = OSError, "Input/output error"
    else:
        def interrupted(f, entries):
            f.write(b"PK\x03\x04partial")
            raise KeyboardInterrupt
        monkeypatch.setattr(ckmod, "_write_npz", interrupted)
        expected, message = KeyboardInterrupt, None
    with pytest.raises(expected, match=message):
        save_checkpoint(path, model, epoch=9)
    monkeypatch.undo()
    ck = load_checkpoint(path)
    assert ck.epoch == 2
    _assert_same(dict(ck.model_state), old)
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temporary left behind


_KILL_CHILD = textwrap.dedent(
    """
    import sys
    import xpnet
    from xpnet.checkpoint import save_checkpoint
    path = sys.argv[1]
    # 4 MB of float32 (plus fsync): a save lasts long enough to be killed midway.
    model = xpnet.Sequential(xpnet.Linear(1000, 1000, generator=0))
    k = int(sys.argv[2])
    while True:
        for p in model.parameters():
            p.data[...] = k  # every array of version k holds k: a mix would show
        save_checkpoint(path, model, epoch=k)
        k += 1
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_mid_save_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "big.npz"
    script = tmp_path / "child.py"
    script.write_text(_KILL_CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(xpnet.__file__).resolve().parents[1])}
    killed_mid_write = 0
    start = 0
    for _ in range(3):
        child = subprocess.Popen([sys.executable, str(script), str(path), str(start)], env=env)
        # os.replace gives the target a new inode: a changed inode means this child
        # completed a save, and a temporary file after that means the next one is running.
        first = path.stat().st_ino if path.exists() else None
        try:
            deadline = time.monotonic() + 30
            seen_complete = False
            while time.monotonic() < deadline:
                if seen_complete and any(n.endswith(".tmp") for n in os.listdir(tmp_path)):
                    child.send_signal(signal.SIGKILL)
                    break
                if not seen_complete and path.exists():
                    seen_complete = path.stat().st_ino != first
                assert child.poll() is None, "the saving child died on its own"
                time.sleep(0.0005)
            else:
                pytest.fail("the child never started a second save")
        finally:
            child.kill()
            child.wait()
        leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
        killed_mid_write += bool(leftovers)
        ck = load_checkpoint(path)  # verifies the digest of every array
        assert ck.epoch >= start
        for a in ck.model_state.values():
            assert np.all(a == ck.epoch), "a checkpoint mixes two versions"
        for n in leftovers:  # what a killed save leaves: harmless, safe to delete
            os.remove(tmp_path / n)
        start = ck.epoch + 1
    assert killed_mid_write >= 1


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_file_mode_follows_umask_and_existing_file(tmp_path):
    model, _ = _setup(get_backend("numpy"))
    mask = os.umask(0o022)
    os.umask(mask)
    path = save_checkpoint(tmp_path / "m.npz", model)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    os.chmod(path, 0o600)
    save_checkpoint(path, model, epoch=1)
    assert path.stat().st_mode & 0o777 == 0o600


# ----------------------------------------------------------------------------- docs


DOC = Path(__file__).resolve().parents[1] / "docs" / "checkpoints.md"


def test_docs_examples_run_as_written(tmp_path, monkeypatch):
    import re

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in blocks:  # one namespace: later blocks read the files earlier ones wrote
        exec(compile(block, str(DOC), "exec"), ns)  # noqa: S102 - our own docs
    saved = load_checkpoint(tmp_path / "run.npz").model_state
    _assert_same(_params(ns["other"]), dict(saved))
    assert ns["ckpt"].epoch == 2 and ns["meta"]["format"] == FORMAT_NAME


def test_minimal_hand_written_checkpoint_loads(tmp_path):
    # What docs/checkpoints.md says a non-xpnet writer must produce, and nothing more.
    w = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.zeros(2, dtype="<f4")
    arrays = {"model/weight": w, "model/bias": b}
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        h.update(name.encode() + b"\0" + a.dtype.str.encode() + b"\0")
        h.update(",".join(map(str, a.shape)).encode() + b"\0" + a.tobytes())
    meta = {
        "format": "xpnet.checkpoint", "format_version": 1, "epoch": 0, "step": 0,
        "model": {"params": ["weight", "bias"]},
        "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in arrays.items()},
        "digest": {"algorithm": "sha256", "value": h.hexdigest()},
    }
    path = tmp_path / "hand.npz"
    np.savez(path, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    layer = xpnet.Linear(3, 2, generator=0)
    ck = load_checkpoint(path, layer)
    np.testing.assert_array_equal(_backend.to_numpy(layer.weight.data), w)
    assert ck.optimizer_state is None and ck.hparams == {}


# ----------------------------------------------------------------------------- buffers


class _WithBuffers(xpnet.Module):
    def __init__(self):
        super().__init__()
        self.lin = xpnet.Linear(3, 2, generator=0)
        self.register_buffer("running", np.array([0.5, -2.0], dtype=np.float32))
        self.register_buffer("count", np.array(7, dtype=np.int64))


def test_buffers_round_trip_across_backends(backend, tmp_path):
    src = _other(backend).move(_WithBuffers())
    src.running = _other(backend).asarray(np.array([1.25, 3.0]), dtype="float32")
    src.count = _other(backend).asarray(np.array(11, dtype=np.int64))
    path = save_checkpoint(tmp_path / "b.npz", src)
    ck = load_checkpoint(path)
    assert ck.meta["model"]["buffers"] == ["running", "count"]
    assert list(ck.model_state) == ["running", "count", "lin.weight", "lin.bias"]
    dst = backend.move(_WithBuffers())
    dst.lin.weight.data = backend.asarray(np.zeros((2, 3)), dtype="float32")
    load_checkpoint(path, dst)
    backend.check(dst.running, dtype="float32", shape=(2,))
    backend.check(dst.count, dtype="int64", shape=())
    np.testing.assert_array_equal(backend.to_numpy(dst.running), [1.25, 3.0])
    assert int(backend.to_numpy(dst.count)) == 11
    np.testing.assert_array_equal(backend.to_numpy(dst.lin.weight.data), _backend.to_numpy(src.lin.weight.data))


def test_checkpoint_without_buffer_list_still_loads(tmp_path):
    # Files written before buffers existed have no meta["model"]["buffers"] (and, like
    # every file written before the metadata digest, no meta["digest"]["meta"]).
    lin = xpnet.Linear(3, 2, generator=1)
    path = save_checkpoint(tmp_path / "old.npz", lin)
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    meta = json.loads(bytes(entries[META_KEY]).decode())
    del meta["model"]["buffers"]
    del meta["digest"]["meta"]
    entries[META_KEY] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **entries)
    other = xpnet.Linear(3, 2, generator=2)
    load_checkpoint(path, other)
    np.testing.assert_array_equal(other.weight.data, lin.weight.data)


def test_buffer_mismatch_is_reported_and_a_failed_load_restores_buffers(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "b.npz", _WithBuffers())
    plain = _WithBuffers()
    del plain.running, plain.count
    with pytest.raises(CheckpointError, match=r"unexpected in the checkpoint: \['running', 'count'\]"):
        load_checkpoint(path, plain)
    m = _WithBuffers()
    m.running = np.array([9.0, 9.0], dtype=np.float32)
    before = m.running

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(xpnet.optim.SGD, "load_state_dict", boom)
    opt_path = save_checkpoint(tmp_path / "o.npz", _WithBuffers(), SGD(_WithBuffers().parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="Nothing was loaded"):
        load_checkpoint(opt_path, m, SGD(m.parameters(), lr=0.1))
    assert m.running is before
