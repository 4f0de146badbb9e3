"""Reliability (issue 11): divergence is never returned or saved silently, and bad input
ends in one clear error. Checkpoint-file corruption is in test_checkpoint_fuzz.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet.callbacks import ModelCheckpoint, NaNGuard, NonFiniteLossError, host_state_dict
from xpnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from xpnet.losses import MSELoss
from xpnet.optim import SGD
from xpnet.training import fit

pytestmark = [
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]


def _regression(backend, n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    X, Y = backend.asarray(x, dtype="float32"), backend.asarray(y, dtype="float32")
    model = backend.move(xpnet.Sequential(xpnet.Linear(3, 4, generator=0), xpnet.Linear(4, 1, generator=1)))
    return model, X, Y


def _finite(model):
    return all(np.all(np.isfinite(a)) for a in host_state_dict(model).values())


# ----------------------------------------------------------------------------- divergence


def test_huge_lr_with_validation_raises_and_restores(backend, tmp_path):
    # The repro: the epoch's training loss is finite (computed before the one
    # update) but the update makes every weight inf/NaN.
    model, X, y = _regression(backend)
    before = host_state_dict(model)
    ckpt = ModelCheckpoint(tmp_path / "c.npz")
    with pytest.raises(NonFiniteLossError, match=r"validation loss became .* epoch 1/1") as info:
        fit(model, MSELoss(), SGD(model.parameters(), lr=1e300), X, y, epochs=1,
            batch_size=16, validation_data=(X, y), callbacks=[ckpt], verbose=0)
    err = info.value
    assert err.epoch == 1 and err.reason == "val_loss" and err.restored_epoch == 1
    after = host_state_dict(model)
    assert all(np.array_equal(after[k], before[k]) for k in before)
    assert not (tmp_path / "c.npz").exists()  # the guard runs before the checkpoint


def test_huge_lr_without_validation_checks_the_weights(backend):
    model, X, y = _regression(backend)
    before = host_state_dict(model)
    with pytest.raises(NonFiniteLossError, match=r"weights .* hold NaN or inf after epoch 1/2") as info:
        fit(model, MSELoss(), SGD(model.parameters(), lr=1e300), X, y, epochs=2,
            batch_size=16, verbose=0)
    assert info.value.reason == "weights" and info.value.names
    assert info.value.restored_epoch == 1 and _finite(model)
    after = host_state_dict(model)
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_guard_restores_the_last_finite_epoch(backend):
    # lr grows after a good epoch: the weights restored are those at the end of epoch 1.
    model, X, y = _regression(backend)
    opt = SGD(model.parameters(), lr=1e-3)
    fit(model, MSELoss(), opt, X, y, epochs=1, batch_size=16, verbose=0)
    good = host_state_dict(model)
    opt.param_groups[0]["lr"] = 1e300
    with pytest.raises(NonFiniteLossError) as info:
        fit(model, MSELoss(), opt, X, y, epochs=3, initial_epoch=1, batch_size=16, verbose=0)
    assert info.value.epoch == 2 and info.value.restored_epoch == 2
    after = host_state_dict(model)
    assert all(np.array_equal(after[k], good[k]) for k in good)


def test_guard_off_returns_but_checkpoint_refuses(tmp_path):
    model, X, y = _regression(xpnet.testing.get_backend("numpy"))
    ckpt = ModelCheckpoint(tmp_path / "c.npz")
    with pytest.raises(CheckpointError, match=r"c\.npz.*NaN or inf.*allow_nonfinite"):
        fit(model, MSELoss(), SGD(model.parameters(), lr=1e300), X, y, epochs=1,
            batch_size=16, nan_guard=False, callbacks=[ckpt], verbose=0)
    assert not (tmp_path / "c.npz").exists()
    assert not list(tmp_path.iterdir())  # no temporary left either


def test_save_checkpoint_refuses_nonfinite_unless_asked(tmp_path):
    model = xpnet.Sequential(xpnet.Linear(2, 2, generator=0))
    path = tmp_path / "m.npz"
    save_checkpoint(path, model)
    good = path.read_bytes()
    model[0].bias.data[0] = np.nan
    with pytest.raises(CheckpointError, match=r"'0\.bias'.*nothing was written"):
        save_checkpoint(path, model)
    assert path.read_bytes() == good  # the previous checkpoint is intact
    save_checkpoint(path, model, allow_nonfinite=True)
    assert math.isnan(load_checkpoint(path).model_state["0.bias"][0])
    model2, X, y = _regression(xpnet.testing.get_backend("numpy"))
    ckpt = ModelCheckpoint(tmp_path / "x.npz", allow_nonfinite=True)
    fit(model2, MSELoss(), SGD(model2.parameters(), lr=1e300), X, y, epochs=1, batch_size=16,
        nan_guard=False, callbacks=[ckpt], verbose=0)
    assert not all(np.all(np.isfinite(a)) for a in load_checkpoint(ckpt.last_path).model_state.values())


def test_guard_costs_one_copy_per_epoch(monkeypatch):
    from xpnet import callbacks as cb_mod

    calls = []
    real = cb_mod.host_state_dict
    monkeypatch.setattr(cb_mod, "host_state_dict", lambda m: calls.append(1) or real(m))
    model, X, y = _regression(xpnet.testing.get_backend("numpy"))
    fit(model, MSELoss(), SGD(model.parameters(), lr=1e-3), X, y, epochs=4, batch_size=4,
        callbacks=[NaNGuard()], verbose=0)
    assert len(calls) == 4 + 1  # one per epoch, plus the initial weights


# ----------------------------------------------------------------------------- saves clean up


@pytest.mark.skipif(not hasattr(__import__("os"), "getuid"), reason="POSIX locks")
def test_next_save_removes_stale_temporaries_of_its_own_only(tmp_path):
    import fcntl
    import os

    model = xpnet.Sequential(xpnet.Linear(2, 2, generator=0))
    stale = tmp_path / ".c.npz.abcd_123.tmp"  # what a kill -9 mid-save leaves
    stale.write_bytes(b"PK\x03\x04half")
    live = tmp_path / ".c.npz.live0000.tmp"  # another process saving right now
    live.write_bytes(b"PK\x03\x04")
    others = [tmp_path / n for n in (".d.npz.abcd_123.tmp", "c.npz.tmp", ".c.npz.toolongname.tmp", "notes.txt")]
    for o in others:
        o.write_bytes(b"x")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        save_checkpoint(tmp_path / "c.npz", model)
    finally:
        os.close(fd)
    assert not stale.exists() and live.exists() and all(o.exists() for o in others)
    save_checkpoint(tmp_path / "c.npz", model)  # the lock died with its holder
    assert not live.exists()
    assert load_checkpoint(tmp_path / "c.npz").epoch == 0


def test_disk_full_and_permission_errors_name_the_target(tmp_path, monkeypatch):
    import errno

    import xpnet.checkpoint as ckmod

    model = xpnet.Sequential(xpnet.Linear(2, 2, generator=0))

    def full(f, entries):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckmod, "_write_npz", full)
    with pytest.raises(OSError, match=r"cannot write '.*c\.npz': No space left on device\. Hint: free disk") as info:
        save_checkpoint(tmp_path / "c.npz", model)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "c.npz")
    monkeypatch.undo()

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".c.npz.x.tmp"))

    monkeypatch.setattr(ckmod.tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError, match=r"cannot write '.*c\.npz'.*is writable") as info:
        save_checkpoint(tmp_path / "c.npz", model)
    assert ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_save_into_unwritable_directory_fails_before_training(tmp_path, monkeypatch, capsys):
    import errno
    import tempfile

    from xpnet import cli

    monkeypatch.chdir(tmp_path)

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert cli.main(["train", "xor", "--epochs", "1", "--save", "out/../c.npz"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing loaded or trained
    assert "--save: cannot write to directory" in captured.err and "Permission denied" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_cli_metrics_json_pointing_at_a_directory(tmp_path, monkeypatch, capsys):
    from xpnet import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    assert cli.main(["train", "xor", "--epochs", "1", "--metrics-json", "m"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--metrics-json: 'm' is a directory" in captured.err


# ----------------------------------------------------------------------------- messages


@pytest.fixture(scope="module")
def xor_ckpt(tmp_path_factory):
    from xpnet import cli

    path = tmp_path_factory.mktemp("cli") / "x.npz"
    assert cli.main(["train", "xor", "--epochs", "1", "-q", "--save", str(path)]) == 0
    return path


def _cli_error(capsys, argv, code=1):
    import warnings

    from xpnet import cli

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may come before the error line
        assert cli.main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: ") and "unexpected" not in err, err
    return lines[0]


def test_cli_bad_files_get_one_line_naming_file_and_problem(tmp_path, capsys, xor_ckpt):
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(b"a,b,y\n1.0,2.0,0\n3.0,4.0,1\n\xe9,1,0\n")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    np.save(tmp_path / "str.npy", np.array(["a", "b"]))
    np.save(tmp_path / "zero.npy", np.array(1.0))
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }" + " " * 20000 + "\n"
    import struct

    huge = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header.encode() + np.ones(4).tobytes()
    (tmp_path / "huge.npy").write_bytes(huge)
    import zipfile

    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("X.npy", huge)
        zf.writestr("y.npy", huge)
    big = tmp_path / "big.csv"
    big.write_text("a,b,y\n1e308,2.0,0\n1e308,4.0,1\n1e308,1,0\n3,4,1\n")
    ck = str(xor_ckpt)
    cases = [
        # too large to standardize in float64, or to hold in float32 once standardized
        (["train", "--data", str(big), "--epochs", "1"], "1e+308"),
        (["predict", ck, "--data", str(big)], "(standardized, in float32): the inputs contain 3 NaN or infinite"),
        (["train", "--data", str(latin), "--epochs", "1"], "not UTF-8 text (byte 0xe9 on line 4)"),
        (["train", "--data", str(binary), "--epochs", "1"], "not a text file"),
        (["predict", ck, "--data", str(latin)], "not UTF-8 text"),
        (["predict", ck, "--data", str(binary)], "not a text file"),
        (["predict", ck, "--data", str(tmp_path / "empty.npy")], "holds no samples"),
        (["predict", ck, "--data", str(tmp_path / "str.npy")], "expected a numeric array, got dtype <U1"),
        (["predict", ck, "--data", str(tmp_path / "zero.npy")], "holds a single number (a 0-d array)"),
        (["predict", ck, "--data", str(tmp_path / "huge.npy")], "array header of 20,"),
        (["train", "--data", str(tmp_path / "huge.npz"), "--epochs", "1"], "array header of 20,"),
    ]
    for argv, needle in cases:
        line = _cli_error(capsys, argv)
        assert needle in line, (argv, line)
        assert any(part in line for part in (argv[2], argv[3], "huge.npz", "latin1.csv", "bin.csv", "1e+308")), line


def test_cli_absurd_hidden_sizes_are_refused_before_allocating(capsys):
    line = _cli_error(capsys, ["train", "xor", "--hidden", "100000000,100000000", "--epochs", "1"])
    assert "--hidden" in line and "GiB" in line and "more than this machine" in line


def test_cli_memory_error_is_one_line(capsys, monkeypatch):
    from xpnet import cli

    def boom(args):
        raise MemoryError("Unable to allocate 71.1 PiB")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), boom))
    line = _cli_error(capsys, ["train", "xor"])
    assert "out of memory (Unable to allocate 71.1 PiB)" in line and "--hidden" in line


def _with_func(parser, func):
    real = parser.parse_args

    def parse(argv):
        ns = real(argv)
        ns.func = func
        return ns

    parser.parse_args = parse
    return parser


def test_api_messages():
    from xpnet import _backend

    model = xpnet.Sequential(xpnet.Linear(2, 1, generator=0))
    X, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    with pytest.raises(TypeError, match=r"Sequential: expected an array of inputs, got float 1\.0\. Hint"):
        model(1.0)
    with pytest.raises(TypeError, match=r"unsupported dtype 'float128' \(float128/long double is a NumPy"):
        xpnet.asarray(X, dtype="float128")
    with pytest.raises(TypeError, match="unsupported dtype 'sin'"):
        xpnet.asarray(X, dtype="sin")  # a NumPy attribute, not a dtype
    with pytest.raises(TypeError, match=r"loss_fn must be a loss object, got str 'ce'.*CrossEntropyLoss\(\)"):
        fit(model, "ce", SGD(model.parameters(), lr=0.1), X, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="loss_fn must be a loss object"):
        fit(model, loss_fn="ce", optimizer=SGD(model.parameters(), lr=0.1), X=X, y=y, epochs=1, verbose=0)
    for backend in ("numpy", "torch"):
        if backend == "torch":
            pytest.importorskip("torch")
        with pytest.raises(TypeError, match="dtype object .*np.asarray\\(X, dtype=np.float32\\)"):
            xpnet.asarray(np.array([1, "a"], dtype=object), backend)
    y_bad = y.copy()
    y_bad[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"y contains NaN or infinite values \(1 samples, first at index 2\)"):
        fit(model, MSELoss(), SGD(model.parameters(), lr=0.1), X, y_bad, epochs=1, verbose=0)
    pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match="has no float64. Hint: pass dtype='float32'"):
        xpnet.asarray(X.astype(np.float64), "array_api_strict", device="no_float64")
    assert xpnet.asarray(X, "array_api_strict", device="no_float64", dtype="float32").shape == (4, 2)
    assert _backend.dtype_name(np.dtype("uint8")) == "uint8"
    assert _backend.dtype_name(np.dtype("int8")) == "int8"


@pytest.mark.parametrize("name", ["uint8", "uint16", "uint32", "uint64", "int8", "int64", "float16", "float64", "bool", "complex64"])
def test_dtype_name_on_every_backend(name):
    from xpnet import _backend

    assert _backend.dtype_name(np.dtype(name)) == name
    torch = pytest.importorskip("torch")
    assert _backend.dtype_name(getattr(torch, name)) == name
    xps = pytest.importorskip("array_api_strict")
    if name != "float16":  # not an Array API dtype
        assert _backend.dtype_name(getattr(xps, name)) == name
