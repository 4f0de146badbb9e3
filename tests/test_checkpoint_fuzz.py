"""Unreadable checkpoints (issue 11): every malformed file ends in CheckpointError, with
bounded time and memory, and a seeded fuzzer (byte flips, truncation, member
replacement, metadata edits) finds nothing that loads as different data."""

from __future__ import annotations

import io
import json
import math
import resource
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import xpnet
import xpnet.checkpoint as ckmod
from xpnet.checkpoint import (
    META_KEY,
    CheckpointError,
    load_checkpoint,
    meta_digest,
    save_checkpoint,
)
from xpnet.optim import SGD, Adam
from xpnet.optim.lr_scheduler import StepLR

# ----------------------------------------------------------------------------- helpers


def _model(seed=0):
    return xpnet.Sequential(xpnet.Linear(3, 4, generator=seed), xpnet.Tanh(), xpnet.Linear(4, 2, generator=seed + 1))


def _trained(seed=0):
    model = _model(seed)
    opt = Adam(model.parameters(), lr=1e-2)
    sched = StepLR(opt, step_size=2)
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 2)).astype(np.float32)
    for _ in range(2):
        out = model(X)
        model.zero_grad()
        model.backward(2 * (out - T) / out.size)
        opt.step()
        sched.step()
    return model, opt, sched


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(path, bytes, model, opt, sched) of one small checkpoint with every kind of state."""
    path = tmp_path_factory.mktemp("ck") / "good.npz"
    model, opt, sched = _trained()
    save_checkpoint(path, model, opt, scheduler=sched, epoch=2, step=2,
                    rng_state=np.random.default_rng(5), hparams={"sizes": [3, 4, 2], "t": (1, 2)},
                    metrics={"loss": 0.5}, extra={"note": "x"})
    return path, path.read_bytes(), model, opt, sched


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(members, compress=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        for name, raw in members:
            zf.writestr(name, raw)
    return buf.getvalue()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _meta(data: bytes) -> dict:
    raw = _members(data)[META_KEY + ".npy"]
    return json.loads(np.load(io.BytesIO(raw)).tobytes().decode())


def _with_meta(data: bytes, meta_text: str | bytes, redigest: dict | None = None) -> bytes:
    """The archive with ``__meta__`` replaced (by JSON text, or by a dict re-digested)."""
    if redigest is not None:
        redigest["digest"]["meta"] = meta_digest(redigest)
        meta_text = json.dumps(redigest)
    raw = meta_text.encode() if isinstance(meta_text, str) else meta_text
    members = _members(data)
    members[META_KEY + ".npy"] = _npy(np.frombuffer(raw, np.uint8))
    return _zip(members.items())


def _refused(tmp_path, data, *words, name="bad.npz", **kw):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kw)
    msg = str(info.value)
    assert str(path) in msg and info.value.path == path
    for w in words:
        assert w.lower() in msg.lower(), msg
    return info.value


# ----------------------------------------------------------------------------- item 2: one type


def test_member_replaced_by_non_npy_bytes(tmp_path, good):
    _, data, *_ = good
    for member in (META_KEY, "model/0.weight"):
        m = _members(data)
        m[member + ".npy"] = b"not an npy file at all" * 10
        err = _refused(tmp_path, _zip(m.items()), "not an .npy array", member)
        assert err.member == member


def test_deeply_nested_metadata(tmp_path, good):
    _, data, *_ = good
    deep = "[" * 100_000 + "]" * 100_000
    _refused(tmp_path, _with_meta(data, deep), "nested too deeply")
    meta = _meta(data)
    node = root = {}
    meta["extra"] = root
    for _ in range(100):  # valid, shallow enough for json, deeper than the format allows
        node["a"] = {}
        node = node["a"]
    _refused(tmp_path, _with_meta(data, "", redigest=meta), "nested too deeply")
    with pytest.raises(ValueError, match="nested"):
        save_checkpoint(tmp_path / "deep.npz", _model(), extra={"x": root})


def test_non_ascii_and_bad_digest_values(tmp_path, good):
    _, data, *_ = good
    for value in ("é" * 64, "0" * 63, 12, None):
        meta = _meta(data)
        meta["digest"]["value"] = value
        _refused(tmp_path, _with_meta(data, json.dumps(meta)), "sha256 digest")
    meta = _meta(data)
    meta["digest"]["meta"] = "ü" * 64
    _refused(tmp_path, _with_meta(data, json.dumps(meta)), "metadata digest")


def test_huge_integers(tmp_path, good):
    _, data, *_ = good
    text = json.dumps(_meta(data)).replace('"epoch": 2', '"epoch": ' + "9" * 5000)
    _refused(tmp_path, _with_meta(data, text), "not valid UTF-8 JSON")
    meta = _meta(data)
    meta["epoch"] = 10**30
    _refused(tmp_path, _with_meta(data, "", redigest=meta), "out of range")
    meta = _meta(data)
    meta["arrays"]["model/0.weight"]["shape"] = [10**30, 3]
    _refused(tmp_path, _with_meta(data, "", redigest=meta), "bad shape")
    meta = _meta(data)
    meta["optimizer"]["state"]["9" * 400] = meta["optimizer"]["state"].pop("0")
    _refused(tmp_path, _with_meta(data, "", redigest=meta), "optimizer state key")


@pytest.mark.parametrize("groups", [5, "abc", [1, 2], [{"params": "x"}], [{"params": [0, 0]}], [{"params": [True]}]])
def test_optimizer_param_groups_of_the_wrong_type(tmp_path, good, groups):
    path, data, model, opt, sched = good
    meta = _meta(data)
    meta["optimizer"]["param_groups"] = groups
    _refused(tmp_path, _with_meta(data, "", redigest=meta), "param_groups",
             model=_model(), optimizer=Adam(_model().parameters()))


def test_metadata_edit_without_redigest_is_tampering(tmp_path, good):
    _, data, *_ = good
    meta = _meta(data)
    meta["hparams"]["sizes"] = [3, 5, 2]
    _refused(tmp_path, _with_meta(data, json.dumps(meta)), "metadata was modified")


# ----------------------------------------------------------------------------- item 3: bounded work


def test_member_cap_is_checked_before_the_directory_is_parsed(tmp_path, good, monkeypatch):
    _, data, *_ = good
    monkeypatch.setattr(ckmod, "MAX_MEMBERS", 3)

    def no_parse(*a, **k):
        raise AssertionError("the zip directory was parsed")

    monkeypatch.setattr(ckmod.zipfile, "ZipFile", no_parse)
    _refused(tmp_path, data, "declares", "at most 3")


def test_zip64_member_count_is_read(tmp_path, good, monkeypatch):
    # More than 65535 entries: the count lives in the zip64 end record.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(65536):
            zf.writestr(f"{i}.npy", b"")
    monkeypatch.setattr(ckmod, "MAX_MEMBERS", 65535)
    _refused(tmp_path, buf.getvalue(), "declares 65536 entries")


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_many_duplicate_members_are_refused_fast(tmp_path, good):
    _, data, *_ = good
    m = list(_members(data).items())
    dup = _zip(m + [("model/0.weight.npy", b"")] * 30_000)
    t0 = time.perf_counter()
    _refused(tmp_path, dup, "duplicate archive entries")
    assert time.perf_counter() - t0 < 5.0


def _deflated_bomb(data: bytes, extra: int) -> bytes:
    """model/0.weight as a deflated member whose content is ``extra`` bytes too long."""
    m = _members(data)
    m["model/0.weight.npy"] = m["model/0.weight.npy"] + b"\0" * extra
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in m.items():
            zf.writestr(name, raw, compress_type=zipfile.ZIP_DEFLATED if name == "model/0.weight.npy" else zipfile.ZIP_STORED)
    return buf.getvalue()


def test_declared_expansion_beyond_the_shapes_is_refused_before_reading(tmp_path, good):
    _, data, *_ = good
    bomb = _deflated_bomb(data, 64 << 20)  # 64 MiB of zeros: a ~64 KiB file
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        _refused(tmp_path, bomb, "model/0.weight", "declares")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def _patch_sizes(data: bytes, member: str, file_size: int) -> bytes:
    """Rewrite a member's declared uncompressed size in both zip headers (CRC kept)."""
    out = bytearray(data)
    name = member.encode()
    for sig, off_size, off_name in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = 0
        while (at := out.find(sig, at)) >= 0:
            if out[at + off_name:at + off_name + len(name)] == name:
                struct.pack_into("<I", out, at + off_size, file_size)
            at += 4
    return bytes(out)


def test_actual_expansion_beyond_the_declared_size_is_refused(tmp_path, good):
    _, data, *_ = good
    need = len(_members(data)["model/0.weight.npy"])
    bomb = _patch_sizes(_deflated_bomb(data, 64 << 20), "model/0.weight.npy", need)
    tracemalloc.start()
    try:
        _refused(tmp_path, bomb, "model/0.weight")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_metadata_shape_beyond_the_member_is_refused_before_allocating(tmp_path, good):
    _, data, *_ = good
    meta = _meta(data)
    meta["arrays"]["model/0.weight"]["shape"] = [1 << 28, 4]  # 4 GiB of float32
    tracemalloc.start()
    try:
        _refused(tmp_path, _with_meta(data, "", redigest=meta), "model/0.weight", "needs 4294967296")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_metadata_size_cap(tmp_path, good, monkeypatch):
    _, data, *_ = good
    monkeypatch.setattr(ckmod, "MAX_META_BYTES", 100)
    _refused(tmp_path, data, "exceeds the 100-byte cap")


def test_npy_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, good):
    _, data, *_ = good
    m = _members(data)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 40,)})
    m["model/0.weight.npy"] = header.getvalue()
    _refused(tmp_path, _zip(m.items()), "model/0.weight", "metadata says")


# ----------------------------------------------------------------------------- the fuzzer

CASES = 240  # what CI runs: docs/checkpoints.md quotes this number


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def _same_checkpoint(c, ref):
    return all(
        _same(getattr(c, k), getattr(ref, k))
        for k in ("model_state", "optimizer_state", "scheduler_state", "epoch", "step", "rng_state",
                  "hparams", "metrics", "extra")
    )


_EDITS = [
    lambda v, r: None, lambda v, r: "x", lambda v, r: -1, lambda v, r: 2**70, lambda v, r: [],
    lambda v, r: {}, lambda v, r: [v], lambda v, r: {"__array__": "model/0.bias"},
    lambda v, r: {"__float__": "1e999"}, lambda v, r: {"__tuple__": 3}, lambda v, r: {"__dict__": [[1]]},
    lambda v, r: True, lambda v, r: 1.5, lambda v, r: float(r.integers(-3, 3)),
]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutate(data: bytes, r: np.random.Generator) -> tuple[str, bytes, bool]:
    """(kind, mutated bytes, redigested): one random corruption of ``data``."""
    kind = ["flip", "truncate", "replace", "meta", "meta_redigest"][r.integers(5)]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(r.integers(1, 5)):
            b[r.integers(len(b))] ^= 1 << int(r.integers(8))
        return kind, bytes(b), False
    if kind == "truncate":
        return kind, data[: r.integers(len(data))], False
    if kind == "replace":
        m = _members(data)
        names = sorted(m)
        victim = names[r.integers(len(names))]
        choice = r.integers(4)
        if choice == 0:
            m[victim] = r.bytes(int(r.integers(0, 200)))
        elif choice == 1:
            m[victim] = m[names[r.integers(len(names))]]
        elif choice == 2:
            m[victim] = _npy(r.standard_normal(int(r.integers(1, 20))).astype(np.float32))
        else:
            del m[victim]
        return kind, _zip(m.items()), False
    meta = _meta(data)
    paths = [p for p in _paths(meta) if p]
    target = paths[r.integers(len(paths))]
    parent = meta
    for k in target[:-1]:
        parent = parent[k]
    parent[target[-1]] = _EDITS[r.integers(len(_EDITS))](parent[target[-1]], r)
    if kind == "meta_redigest":
        return kind, _with_meta(data, "", redigest=meta), True
    return kind, _with_meta(data, json.dumps(meta)), False


def test_fuzz_checkpoint_error_or_identical_data(tmp_path, good):
    path, data, *_ = good
    ref = load_checkpoint(path)
    r = np.random.default_rng(20261203)
    kinds: dict[str, int] = {}
    outcomes = {"refused": 0, "identical": 0, "redigested_loaded": 0}
    t_start = time.perf_counter()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model, opt, sched = _trained(seed=7)
    for case in range(CASES):
        kind, bad, redigested = _mutate(data, r)
        kinds[kind] = kinds.get(kind, 0) + 1
        p = tmp_path / "f.npz"
        p.write_bytes(bad)
        t0 = time.perf_counter()
        try:
            c = load_checkpoint(p, model, opt, sched)
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        finally:
            assert time.perf_counter() - t0 < 2.0, f"case {case} ({kind}) took too long"
        if _same_checkpoint(c, ref):
            outcomes["identical"] += 1
            continue
        # A careful tamperer who recomputes the metadata digest can change values;
        # what must hold then: everything was validated at load time, so training
        # goes on without an exception from the restored state.
        assert redigested, f"case {case} ({kind}) loaded different data without an error"
        outcomes["redigested_loaded"] += 1
        out = model(np.ones((2, 3), np.float32))
        model.zero_grad()
        model.backward(np.ones_like(out))
        opt.step()
        sched.step()
        model, opt, sched = _trained(seed=7)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before  # KiB on Linux
    assert grown < 64 << 10, f"peak memory grew by {grown} KiB"
    assert time.perf_counter() - t_start < 60
    assert set(kinds) == {"flip", "truncate", "replace", "meta", "meta_redigest"}
    assert outcomes["refused"] > CASES // 2, outcomes


def test_fuzz_sgd_without_state_and_cross_loads(tmp_path):
    # Loading a file into an optimizer of another layout is refused, never half-loaded.
    model = _model()
    path = save_checkpoint(tmp_path / "s.npz", model, SGD(model.parameters(), lr=0.1, momentum=0.9))
    other = _model(3)
    before = [p.data.copy() for p in other.parameters()]
    with pytest.raises(CheckpointError):
        load_checkpoint(path, other, Adam(other.parameters()))
    assert all(np.array_equal(a, p.data) for a, p in zip(before, other.parameters()))


# ----------------------------------------------------------------------------- item 4: restored state


def _edit_opt(meta, fn):
    fn(meta["optimizer"], meta)
    return meta


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda o, m: o["state"]["0"].__setitem__("step", -1), "non-negative int"),
        (lambda o, m: o["state"]["0"].__setitem__("step", "x"), "non-negative int"),
        (lambda o, m: o["state"]["0"].__setitem__("step", 1.5), "non-negative int"),
        (lambda o, m: o["state"]["0"].__setitem__("exp_avg", 0.0), "expected an array"),
        (lambda o, m: o["state"]["0"].__setitem__("exp_avg", [1, 2]), "expected an array"),
        (lambda o, m: o["state"]["0"].__setitem__("exp_avg", {"__array__": "model/0.bias"}), "has shape"),
        (lambda o, m: o["state"]["0"].__setitem__("momentum_buffer", {"__array__": "model/0.weight"}), "not state of a Adam"),
        (lambda o, m: o["param_groups"][0].__setitem__("lr", "0.1"), "expected a number"),
        (lambda o, m: o["param_groups"][0].__setitem__("betas", {"__tuple__": [0.9]}), "expected 2 values"),
        (lambda o, m: o["param_groups"][0].__setitem__("amsgrad", 1), "expected a bool"),
        (lambda o, m: o["param_groups"][0].__setitem__("colour", 1), "unknown hyperparameter"),
        (lambda o, m: m["scheduler"]["state"].__setitem__("last_epoch", "2"), "expected an int"),
        (lambda o, m: m["scheduler"]["state"].__setitem__("base_lrs", [0.1, 0.2]), "expected 1 values"),
        (lambda o, m: m["scheduler"]["state"].__setitem__("step_size", {"__array__": "model/0.bias"}), "expected an int"),
        (lambda o, m: m["scheduler"]["state"].pop("gamma"), "has keys"),
    ],
)
def test_restored_state_is_validated_at_load_time(tmp_path, good, edit, words):
    _, data, *_ = good
    meta = _edit_opt(_meta(data), edit)
    model, opt, sched = _trained(seed=7)
    before = [p.data.copy() for p in model.parameters()]
    opt_before, sched_before = opt.state_dict(), sched.state_dict()
    _refused(tmp_path, _with_meta(data, "", redigest=meta), words, model=model, optimizer=opt, scheduler=sched)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
    assert sched.state_dict() == sched_before
    assert opt.state_dict()["param_groups"] == opt_before["param_groups"]


def test_int_state_array_for_a_float_parameter(tmp_path):
    model = _model()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.zero_grad()
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    path = save_checkpoint(tmp_path / "s.npz", model, opt)
    data = path.read_bytes()
    m = _members(data)
    meta = _meta(data)
    w = np.ones((4, 3), np.int32)
    m["optim/0/momentum_buffer.npy"] = _npy(w)
    meta["arrays"]["optim/0/momentum_buffer"] = {"dtype": "<i4", "shape": [4, 3]}
    arrays = {k[:-4]: np.load(io.BytesIO(v)) for k, v in m.items() if k != META_KEY + ".npy"}
    meta["digest"]["value"] = ckmod.array_digest(arrays)
    m[META_KEY + ".npy"] = _npy(np.frombuffer(b"{}", np.uint8))
    bad = _with_meta(_zip(m.items()), "", redigest=meta)
    _refused(tmp_path, bad, "has dtype int32", model=_model(), optimizer=SGD(_model().parameters(), lr=0.1, momentum=0.9))
