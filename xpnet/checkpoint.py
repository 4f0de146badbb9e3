"""Checkpoints: atomic, pickle-free ``.npz`` files that resume training on any backend.

A checkpoint is an ordinary NumPy ``.npz`` archive (a zip of ``.npy`` files, written with
:func:`numpy.savez`) that holds every array of the model, the optimizer and the scheduler
on the host, plus one entry ``__meta__``: UTF-8 JSON (stored as a ``uint8`` array) with
the numbers, the hyperparameters, the names, shapes and dtypes of every array and a
SHA-256 digest over them. Nothing in it is pickled, so loading never executes code, and
anyone can read it with NumPy and :mod:`json` alone; ``docs/checkpoints.md`` specifies
the layout.

Guarantees
----------
* **Atomic**: the file is written to a temporary file in the target's directory,
  flushed, ``fsync``-ed and renamed over the target with :func:`os.replace`. A crash, a
  ``kill -9`` or an exception mid-save leaves the previous checkpoint intact.
* **Pickle-free**: arrays are loaded with ``allow_pickle=False`` and object dtypes are
  refused on both sides.
* **Checked**: truncated, corrupt (zip CRC), tampered (digests over the arrays and the
  metadata), foreign or too-new files, and state of the wrong type, shape or dtype for
  the optimizer/scheduler raise :class:`CheckpointError` naming the file, the entry and
  the problem; no other exception type escapes from a malformed file.
* **Bounded**: member count, metadata size and depth, and every member's declared and
  actual size are checked against fixed caps or the metadata's shapes before the work
  they cost is done.
* **Finite**: weights holding NaN or inf are never written unless asked
  (``allow_nonfinite=True``).
* **Cross-backend**: values are stored on the host, and loading goes through
  ``Module.load_state_dict`` / ``Optimizer.load_state_dict``, which keep the target's
  backend and device. A checkpoint written from torch on a GPU loads bit-identically into
  a NumPy model, and back.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import hmac
import json
import math
import os
import re
import stat as stat_mod
import struct
import tempfile
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _backend

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, stale temporaries are left alone
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_MEMBERS",
    "MAX_META_BYTES",
    "MAX_META_DEPTH",
    "META_KEY",
    "Checkpoint",
    "CheckpointError",
    "array_digest",
    "load_checkpoint",
    "load_model",
    "meta_digest",
    "save_checkpoint",
]

#: Value of ``meta["format"]``: how a reader recognises an xpnet checkpoint.
FORMAT_NAME = "xpnet.checkpoint"
#: Layout version written by this code; readers refuse newer versions.
FORMAT_VERSION = 1
#: Name of the metadata entry inside the archive.
META_KEY = "__meta__"

#: Most archive entries a checkpoint may have (checked before the zip directory is parsed).
MAX_MEMBERS = 1 << 18
#: Largest ``__meta__`` entry, in bytes (checked before it is read).
MAX_META_BYTES = 64 << 20

_HINT = "Hint: the file is truncated or not an xpnet checkpoint"
# Longest .npy header read (NumPy's own default limit for untrusted files).
_MAX_NPY_HEADER = 10000
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
#: Deepest nesting of lists/dicts in the metadata (checked when saving and loading).
MAX_META_DEPTH = 64


def _depth(node: Any) -> int:
    """Nesting depth of JSON-like lists/dicts, without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, d)
        if d > MAX_META_DEPTH:
            break
        stack.extend((v, d + 1) for v in item)
    return deepest
# Array kinds a checkpoint may hold: bool, signed/unsigned int, float, complex. Anything
# else (object, structured, string, datetime) is refused: object arrays mean pickles.
_ALLOWED_KINDS = "biufc"
# Tags of the JSON encoding of values JSON cannot hold directly (see docs/checkpoints.md).
_TAGS = ("__array__", "__float__", "__tuple__", "__dict__")
# Bit generators a checkpoint may name: the state names a class, which we look up in this
# allow-list only, never with a bare getattr on data read from a file.
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, is damaged, or does not match what it is loaded into.

    Every failure of :func:`load_checkpoint` on a file's content raises this one type (a
    :class:`ValueError`), whatever part of the file is wrong.

    Attributes
    ----------
    path
        The checkpoint file (a :class:`~pathlib.Path`), or None when not known.
    member
        The archive entry at fault (``"__meta__"``, ``"model/0.weight"``, ...), or None
        when the problem is not confined to one entry.
    """

    def __init__(self, message: str, *, path: Path | None = None, member: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.member = member


@dataclass
class Checkpoint:
    """Everything :func:`load_checkpoint` read from a file, with arrays on the host.

    Attributes
    ----------
    meta
        The decoded ``__meta__`` JSON (format, versions, creation time, source backend,
        array table, digest, ...).
    model_state
        State-dict name -> :class:`numpy.ndarray`, in the model's order: the parameters
        and the buffers (``meta["model"]["buffers"]`` names the buffers).
    optimizer_state
        The optimizer's ``state_dict()`` in torch's layout (``{"state": {int: {...}},
        "param_groups": [...]}``) with NumPy arrays, or ``None``.
    scheduler_state
        The scheduler's ``state_dict()``, or ``None``.
    epoch
        Number of completed epochs when saved: pass it as ``initial_epoch`` to resume.
    step
        Number of optimizer steps taken when saved.
    rng_state
        A NumPy bit-generator state (``generator.bit_generator.state``), or ``None``.
    hparams, metrics, extra
        What was passed to :func:`save_checkpoint` (empty dicts when nothing was).
    path
        The file it was read from.
    """

    meta: dict[str, Any]
    model_state: OrderedDict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    epoch: int = 0
    step: int = 0
    rng_state: dict[str, Any] | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def model_config(self) -> dict[str, Any] | None:
        """The architecture (:func:`xpnet.models.model_config`) saved with the weights, or None.

        Recorded automatically for models built by :func:`xpnet.models.mlp` or
        :func:`xpnet.models.cnn`; :func:`load_model` rebuilds the model from it.
        """
        cfg = self.meta.get("model", {}).get("config")
        return None if cfg is None else dict(cfg)

    @property
    def task(self) -> str | None:
        """``"classification"``, ``"regression"`` or None: what ``save_checkpoint(task=)`` said."""
        return self.meta.get("model", {}).get("task")

    @property
    def classes(self) -> list[Any] | None:
        """The original class labels, in output order (``save_checkpoint(classes=)``), or None."""
        classes = self.meta.get("model", {}).get("classes")
        return None if classes is None else list(classes)

    def generator(self) -> np.random.Generator:
        """A new :class:`numpy.random.Generator` in the saved RNG state.

        Pass it as ``generator=`` to ``xpnet.training.fit(..., initial_epoch=ckpt.epoch)`` so the
        resumed run draws the same batches an uninterrupted run would have drawn.

        Raises
        ------
        CheckpointError
            When the checkpoint holds no RNG state, or an unknown bit generator.
        """
        state = self.rng_state
        if state is None:
            raise CheckpointError(
                f"{self.path}: the checkpoint holds no RNG state. Hint: save it with "
                f"save_checkpoint(..., rng_state=xpnet.get_rng_state(generator))"
            )
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in _BIT_GENERATORS:
            raise CheckpointError(
                f"{self.path}: unknown bit generator {name!r} in the RNG state; expected one "
                f"of {list(_BIT_GENERATORS)}"
            )
        bit_gen = getattr(np.random, name)()
        try:
            bit_gen.state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{self.path}: invalid {name} RNG state: {exc}") from exc
        return np.random.Generator(bit_gen)


# ----------------------------------------------------------------------------- encoding


def _to_host(value: Any, *, key: str, who: str) -> np.ndarray:
    """Copy an array of any backend to a little-endian NumPy array with an allowed dtype."""
    host = np.asarray(_backend.to_numpy(value))
    if host.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(
            f"{who}: {key!r} has dtype {host.dtype}, which a checkpoint cannot hold; expected "
            f"bool, integer, float or complex arrays (object arrays would need pickle)"
        )
    # One byte order in every file, whatever machine wrote it.
    if host.dtype.byteorder not in ("<", "|") and host.dtype.itemsize > 1:
        host = host.astype(host.dtype.newbyteorder("<"))
    return host


def _encode(value: Any, key: str, arrays: dict[str, np.ndarray], who: str) -> Any:
    """Turn a state value into JSON, moving arrays into ``arrays`` under the name ``key``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        # Strict JSON has no NaN/Infinity (ReduceLROnPlateau starts with best = inf).
        return {"__float__": repr(float(value))}
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return _encode(value.item(), key, arrays, who)
    if isinstance(value, np.ndarray) or _backend.is_array(value):
        if key in arrays:
            raise ValueError(f"{who}: two values map to the same array name {key!r}")
        arrays[key] = _to_host(value, key=key, who=who)
        return {"__array__": key}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, f"{key}/{k}", arrays, who) for k, v in value.items()}
        # Non-string keys (MultiStepLR's milestone counter) or keys that look like tags.
        return {
            "__dict__": [
                [_encode_key(k, key, who), _encode(v, f"{key}/{i}", arrays, who)]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", arrays, who) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}/{i}", arrays, who) for i, v in enumerate(value)]
    raise TypeError(
        f"{who}: cannot store {key!r} of type {type(value).__module__}.{type(value).__qualname__}; "
        f"a checkpoint holds arrays, numbers, strings, bools, None, lists, tuples and dicts. "
        f"Hint: convert it first (str(...), float(...), list(...))"
    )


def _encode_key(k: Any, key: str, who: str) -> Any:
    if k is None or isinstance(k, (bool, int, float, str)):
        return _encode(k, key, {}, who)
    if isinstance(k, np.generic) and k.dtype.kind in "biuf":
        return _encode(k.item(), key, {}, who)
    if isinstance(k, tuple):
        return {"__tuple__": [_encode_key(v, key, who) for v in k]}
    raise TypeError(f"{who}: cannot store dict key {k!r} of type {type(k).__name__} in {key!r}")


def _decode(value: Any, arrays: Mapping[str, np.ndarray], where: str) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, list):
        return [_decode(v, arrays, where) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, payload), = value.items()
        if tag == "__array__":
            if not isinstance(payload, str) or payload not in arrays:
                raise CheckpointError(f"{where}: metadata refers to a missing array {payload!r}. {_HINT}")
            return arrays[payload]
        if tag == "__float__":
            if payload not in ("nan", "inf", "-inf"):
                raise CheckpointError(f"{where}: bad tagged float {payload!r}. {_HINT}")
            return float(payload)
        if tag == "__tuple__":
            if not isinstance(payload, list):
                raise CheckpointError(f"{where}: bad tagged tuple. {_HINT}")
            return tuple(_decode(v, arrays, where) for v in payload)
        if tag == "__dict__":
            if not isinstance(payload, list) or not all(isinstance(i, list) and len(i) == 2 for i in payload):
                raise CheckpointError(f"{where}: bad tagged dict. {_HINT}")
            out = {}
            for item in payload:
                k = _decode(item[0], arrays, where)
                try:
                    out[k] = _decode(item[1], arrays, where)
                except TypeError as exc:
                    raise CheckpointError(f"{where}: unhashable dict key {k!r}. {_HINT}") from exc
            return out
    return {k: _decode(v, arrays, where) for k, v in value.items()}


# ----------------------------------------------------------------------------- digest


def array_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) over ``arrays``: the integrity check stored in every checkpoint.

    For each name in sorted (code point) order, the hash receives the UTF-8 name, a NUL
    byte, the NumPy dtype string (``"<f4"``), a NUL byte, the shape as comma-separated
    decimal integers (empty for 0-d), a NUL byte, then the array's bytes in C order.
    ``docs/checkpoints.md`` shows how to recompute it without xpnet.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        h.update(name.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode("ascii") + b"\0")
        h.update(",".join(str(int(d)) for d in a.shape).encode("ascii") + b"\0")
        # A uint8 view of the C-ordered data hashes large arrays without a bytes copy.
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def meta_digest(meta: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the metadata itself, every key except ``"digest"``.

    The hash is fed the canonical JSON of the metadata without its ``"digest"`` entry:
    ``json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    allow_nan=False)`` encoded as ASCII. Stored as ``meta["digest"]["meta"]``; files
    written before it existed lack it and are read without this check.
    """
    body = {k: v for k, v in meta.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# ----------------------------------------------------------------------------- save


def _source_of(model: Any) -> dict[str, Any]:
    for p in model.parameters():
        xp = _backend.namespace_of(p.data)
        return {
            "backend": _backend.backend_name(xp),
            "device": str(_backend.device_of(p.data)),
            "dtype": _backend.dtype_name(p.data.dtype),
        }
    return {"backend": None, "device": None, "dtype": None}


_TASKS = ("classification", "regression")


def _description(model: Any, task: Any, classes: Any, who: str) -> dict[str, Any]:
    """``{"config", "task", "classes"}``: what rebuilds and interprets the model (all may be None)."""
    from .models import config_out_features, model_config

    # mlp()/cnn() record their description; model_config gives the weights' dtype now.
    config = model_config(model) if getattr(model, "_xpnet_config", None) is not None else None
    if task is not None and task not in _TASKS:
        raise ValueError(f"{who}: task must be 'classification', 'regression' or None, got {task!r}")
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
            raise TypeError(f"{who}: classes must be a list of labels such as ['cat', 'dog'], got {classes!r}")
        classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
        if not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes):
            raise TypeError(f"{who}: classes must be strings or ints, got {classes!r}")
        if task == "regression":
            raise ValueError(f"{who}: classes were given for task='regression'; drop one of them")
        task = "classification"
        n_out = None if config is None else config_out_features(config)
        if n_out is not None and len(classes) != n_out:
            raise ValueError(
                f"{who}: {len(classes)} classes were given but the model has {n_out} outputs; "
                f"pass one label per output, in output order"
            )
    return {"config": config, "task": task, "classes": classes}


def _check_description(path: Path, model_meta: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose model description has the wrong types."""
    config, task, classes = (model_meta.get(k) for k in ("config", "task", "classes"))
    if config is not None and not (isinstance(config, dict) and isinstance(config.get("type"), str)):
        raise _fail(path, "the model's 'config' is not a model description dict", member=META_KEY)
    if task is not None and task not in _TASKS:
        raise _fail(path, f"the model's task {task!r} is not one of {_TASKS}", member=META_KEY)
    if classes is not None and not (
        isinstance(classes, list) and all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)
    ):
        raise _fail(path, "the model's 'classes' is not a list of labels", member=META_KEY)


def _check_state_dict(sd: Any, who: str, kind: str) -> Mapping[str, Any]:
    if not isinstance(sd, Mapping):
        raise TypeError(f"{who}: {kind}.state_dict() returned a {type(sd).__name__}, expected a dict")
    return sd


def _optimizer_meta(optimizer: Any, model: Any, arrays: dict[str, np.ndarray], who: str) -> dict:
    sd = _check_state_dict(optimizer.state_dict(), who, "optimizer")
    if "state" not in sd or "param_groups" not in sd:
        raise TypeError(
            f"{who}: optimizer.state_dict() must have torch's layout with 'state' and "
            f"'param_groups', got keys {sorted(map(str, sd))}"
        )
    state = {}
    for idx, st in sd["state"].items():
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool):
            raise TypeError(f"{who}: optimizer state keys must be parameter indices (int), got {idx!r}")
        state[str(int(idx))] = _encode(st, f"optim/{int(idx)}", arrays, who)
    out: dict[str, Any] = {
        "class": type(optimizer).__name__,
        "state": state,
        "param_groups": _encode(sd["param_groups"], "optim_groups", arrays, who),
    }
    others = {k: v for k, v in sd.items() if k not in ("state", "param_groups")}
    if others:
        out["other"] = _encode(others, "optim_other", arrays, who)
    # Which model parameter each optimizer index refers to: lets load_checkpoint catch an
    # optimizer built over the parameters in another order (same shapes, wrong state).
    names = {id(p): n for n, p in model.named_parameters()}
    groups = getattr(optimizer, "param_groups", None)
    if groups is not None:
        out["param_names"] = [names.get(id(p)) for g in groups for p in g["params"]]
    return out


def _umask() -> int:
    # Reading the umask without changing it is only possible through /proc; elsewhere the
    # classic set-and-restore is the only way.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); directories cannot be opened on Windows."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_npz(f: Any, entries: dict[str, np.ndarray]) -> None:
    """Write ``entries`` as an uncompressed npz to the open binary file ``f``."""
    np.savez(f, **entries)


def _tmp_pattern(path: Path) -> re.Pattern[str]:
    # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") adds 8 characters of [a-z0-9_].
    return re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.tmp")


def _lock(fd: int, blocking: bool) -> bool:
    """An exclusive advisory lock on ``fd`` (POSIX); False when another process holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:  # held elsewhere (BlockingIOError), or a file system without locks
        return False
    return True


def _remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries that killed saves to ``path`` left behind; return them.

    Only files named as :func:`_atomic_write` names its own (``.<name>.<8 chars>.tmp``)
    next to ``path`` are considered, and only those no live writer holds: every writer
    keeps an exclusive ``flock`` on its temporary until it is renamed, and the lock dies
    with the process. Without ``fcntl`` (Windows) nothing is removed.
    """
    if fcntl is None:
        return []
    pattern = _tmp_pattern(path)
    removed = []
    try:
        names = [n for n in os.listdir(path.parent) if pattern.fullmatch(n)]
    except OSError:
        return []
    for name in names:
        stale = path.parent / name
        try:
            fd = os.open(stale, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                continue
            if _lock(fd, blocking=False):
                # Still the same file under that name: then nobody can be writing it.
                if os.stat(stale, follow_symlinks=False).st_ino == st.st_ino:
                    stale.unlink()
                    removed.append(stale)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _os_error(exc: OSError, path: Path) -> OSError:
    """The same kind of OSError, naming the checkpoint rather than the temporary file."""
    hints = {
        errno.ENOSPC: "free disk space or save elsewhere",
        errno.EDQUOT: "free disk space (quota) or save elsewhere",
        errno.EACCES: f"check that the directory {str(path.parent)!r} is writable",
        errno.EPERM: f"check that the directory {str(path.parent)!r} is writable",
        errno.EROFS: "the file system is read-only; save elsewhere",
    }
    hint = hints.get(exc.errno or -1, "check the disk and the directory")
    what = exc.strerror or str(exc)
    new = type(exc)(exc.errno, f"save_checkpoint: cannot write {str(path)!r}: {what}. Hint: {hint}; "
                    f"the previous checkpoint (if any) is intact")
    new.filename = str(path)
    return new


def _atomic_write(path: Path, entries: dict[str, np.ndarray]) -> None:
    directory = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"save_checkpoint: {str(path)!r} is a directory; expected a file path")
    if not directory.is_dir():
        raise FileNotFoundError(
            f"save_checkpoint: directory {str(directory)!r} does not exist. Hint: create it "
            f"first with Path({str(directory)!r}).mkdir(parents=True, exist_ok=True)"
        )
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    _remove_stale_temporaries(path)
    for _ in range(3):
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise _os_error(exc, path) from exc
        tmp = Path(tmp_name)
        # Held until the file is closed: marks the temporary as live for the cleanup of
        # other saves. A cleanup may have removed it in the instant before the lock.
        _lock(fd, blocking=True)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise OSError(errno.EAGAIN, f"save_checkpoint: cannot create a temporary file next to {str(path)!r}")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, entries)
            f.flush()
            os.fsync(f.fileno())
            if os.name != "nt":  # rename while still locked (Windows cannot rename open files)
                os.chmod(tmp, mode)
                os.replace(tmp, path)
        if os.name == "nt":
            os.chmod(tmp, mode)
            os.replace(tmp, path)
    except BaseException as exc:
        # KeyboardInterrupt included: never leave a half-written temporary behind when we
        # still can clean up (a SIGKILL cannot be caught; the next save removes it).
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _os_error(exc, path) from exc
        raise
    _fsync_dir(directory)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    *,
    scheduler: Any = None,
    epoch: int = 0,
    step: int = 0,
    rng_state: Mapping[str, Any] | np.random.Generator | None = None,
    hparams: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    allow_nonfinite: bool = False,
    task: str | None = None,
    classes: Sequence[Any] | None = None,
) -> Path:
    """Write a model (and optionally its training state) to ``path``, atomically.

    Parameters
    ----------
    path
        Target file, written exactly as given (no suffix is added; ``.npz`` is customary).
        Its directory must exist. An existing file is replaced only once the new one is
        complete and on disk.
    model
        The :class:`~xpnet.Module` whose ``state_dict()`` is saved, on any backend.
    optimizer
        Optional optimizer; its ``state_dict()`` (torch layout) is saved.
    scheduler
        Optional learning-rate scheduler; its ``state_dict()`` is saved.
    epoch
        Number of completed epochs (what ``fit(initial_epoch=...)`` takes to resume).
    step
        Number of optimizer steps taken so far.
    rng_state
        The state of the generator that shuffles batches / draws dropout masks, from
        :func:`xpnet.get_rng_state` (a NumPy ``bit_generator.state`` dict); a
        :class:`numpy.random.Generator` is accepted and its state is taken.
    hparams
        JSON-able description of the run (architecture, dataset, ...); arrays, tuples
        and non-finite floats are allowed too.
    metrics
        Latest metrics (``{"val_loss": 0.12}``); 0-d arrays become Python numbers.
    extra
        Anything else to keep, with the same rules as ``hparams``.
    allow_nonfinite
        By default a model whose parameters or buffers hold NaN or inf is refused with
        :class:`CheckpointError` and nothing is written (the previous file stays): a
        checkpoint of diverged weights is never what a resume wants. ``True`` writes it
        anyway (to inspect a divergence). Optimizer and scheduler state are not checked
        (``ReduceLROnPlateau`` legitimately starts from ``best = inf``).
    task
        ``"classification"`` or ``"regression"``: what the model's outputs are, so that
        ``xpnet eval`` / ``xpnet predict`` need not guess (see ``docs/checkpoints.md``).
    classes
        The original class labels in output order (``["cat", "dog"]``): ``xpnet predict``
        prints these instead of class indices. Implies ``task="classification"``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        A value that a checkpoint cannot hold (object arrays, arbitrary Python objects).
    FileNotFoundError
        The target directory does not exist.
    CheckpointError
        The model's weights hold NaN or inf and ``allow_nonfinite`` is False.

    Notes
    -----
    Every array is copied to the host first (the only device synchronisation of a
    save), then the archive is written to a temporary file in the same directory,
    flushed, ``fsync``-ed and moved over ``path`` with :func:`os.replace`, and the
    directory is ``fsync``-ed. Readers therefore see either the old file or the new one,
    never a mix, even when the process is killed mid-save.

    A model built by :func:`xpnet.models.mlp` or :func:`xpnet.models.cnn` carries its
    architecture (:func:`xpnet.models.model_config`, with the dtype the weights have now)
    into the checkpoint: :func:`load_model` and the ``xpnet`` command rebuild it from the
    file alone.
    """
    who = "save_checkpoint"
    path = Path(os.fspath(path))
    if not (hasattr(model, "state_dict") and hasattr(model, "named_parameters")):
        raise TypeError(f"{who}: expected an xpnet Module as model, got {type(model).__name__}")
    for label, n in (("epoch", epoch), ("step", step)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{who}: {label} must be a non-negative int, got {n!r}")
    if isinstance(rng_state, np.random.Generator):
        rng_state = rng_state.bit_generator.state
    if rng_state is not None and not isinstance(rng_state, Mapping):
        raise TypeError(
            f"{who}: rng_state must be a bit-generator state dict (xpnet.get_rng_state(g)) "
            f"or a numpy Generator, got {type(rng_state).__name__}"
        )

    arrays: dict[str, np.ndarray] = {}
    model_sd = _check_state_dict(model.state_dict(), who, "model")
    named_buffers = getattr(model, "named_buffers", None)
    buffer_names = set() if named_buffers is None else {n for n, _ in named_buffers()}
    for name, value in model_sd.items():
        arrays[f"model/{name}"] = _to_host(value, key=name, who=who)
    if not allow_nonfinite:
        bad = [
            n for n in model_sd
            if arrays[f"model/{n}"].dtype.kind in "fc" and not np.all(np.isfinite(arrays[f"model/{n}"]))
        ]
        if bad:
            shown = ", ".join(repr(n) for n in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise CheckpointError(
                f"{who}: refusing to write {str(path)!r}: the model's {shown} hold NaN or inf "
                f"(training diverged); nothing was written. Hint: restore good weights (fit's "
                f"NaNGuard does), or pass allow_nonfinite=True to save them anyway"
            )
    metrics_host = {}
    for k, v in dict(metrics or {}).items():
        if (_backend.is_array(v) or isinstance(v, np.ndarray)) and len(v.shape) == 0:
            v = _backend.to_numpy(v).reshape(()).item()
        metrics_host[k] = v

    from . import __version__

    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "xpnet_version": __version__,
        "numpy_version": np.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "source": _source_of(model),
        "epoch": int(epoch),
        "step": int(step),
        "model": {
            "class": type(model).__name__,
            "params": list(model_sd.keys()),
            # Which of those entries are buffers (non-trainable state such as BatchNorm's
            # running statistics); absent in checkpoints written before buffers existed.
            "buffers": [n for n in model_sd if n in buffer_names],
            **_description(model, task, classes, who),
        },
        "optimizer": None if optimizer is None else _optimizer_meta(optimizer, model, arrays, who),
        "scheduler": None,
        "rng_state": None if rng_state is None else _encode(dict(rng_state), "rng", arrays, who),
        "hparams": _encode(dict(hparams or {}), "hparams", arrays, who),
        "metrics": _encode(metrics_host, "metrics", arrays, who),
        "extra": _encode(dict(extra or {}), "extra", arrays, who),
    }
    if scheduler is not None:
        sd = _check_state_dict(scheduler.state_dict(), who, "scheduler")
        meta["scheduler"] = {"class": type(scheduler).__name__, "state": _encode(sd, "sched", arrays, who)}
    meta["arrays"] = {
        name: {"dtype": a.dtype.str, "shape": [int(d) for d in a.shape]} for name, a in sorted(arrays.items())
    }
    if _depth(meta) > MAX_META_DEPTH:
        raise ValueError(
            f"{who}: hparams, metrics or extra are nested more than a checkpoint's metadata may "
            f"be ({MAX_META_DEPTH} levels in all); flatten them"
        )
    meta["digest"] = {"algorithm": "sha256", "value": array_digest(arrays), "meta": meta_digest(meta)}
    text = json.dumps(meta, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    entries = {META_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    entries.update(arrays)
    _atomic_write(path, entries)
    return path


# ----------------------------------------------------------------------------- load


def _fail(path: Path, problem: str, *, hint: str = _HINT, member: str | None = None) -> CheckpointError:
    where = "" if member is None else f"entry {member!r}: "
    return CheckpointError(f"load_checkpoint: {str(path)!r}: {where}{problem}. {hint}", path=path, member=member)


def _zip_entry_count(path: Path, f: Any, size: int) -> int:
    """Number of members from the zip's end-of-central-directory record, read without
    parsing the directory: the member cap is enforced before any per-member work."""
    tail_len = min(size, 22 + 0xFFFF)  # the record plus the longest zip comment
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise _fail(path, "cannot read the checkpoint: no zip end-of-central-directory record")
    count = struct.unpack_from("<H", tail, at + 10)[0]
    if count != 0xFFFF:
        return count
    # Zip64: the locator (20 bytes) sits right before the record and points at the
    # zip64 end record, whose total entry count is a uint64 at offset 32.
    loc = at - 20
    if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
        return count
    offset = struct.unpack_from("<Q", tail, loc + 8)[0]
    if offset + 56 > size:
        raise _fail(path, "cannot read the checkpoint: bad zip64 end record offset")
    f.seek(offset)
    rec = f.read(56)
    if rec[:4] != b"PK\x06\x06":
        raise _fail(path, "cannot read the checkpoint: bad zip64 end record")
    return struct.unpack_from("<Q", rec, 32)[0]


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read, verify and return (metadata, arrays) from a checkpoint file.

    Every size is checked against a bound before the work it costs is done: the member
    count before the zip directory is parsed, each member's declared size before it is
    opened, each ``.npy`` header against the metadata before its data is read.
    """
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic != b"PK\x03\x04":
            what = "the file is empty" if not magic else "it is not a zip/npz archive"
            raise _fail(path, f"cannot read the checkpoint: {what}")
        size = os.fstat(f.fileno()).st_size
        count = _zip_entry_count(path, f, size)
        if count > MAX_MEMBERS:
            raise _fail(path, f"the archive declares {count} entries; a checkpoint holds at most {MAX_MEMBERS}")
        f.seek(0)
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
                NotImplementedError, struct.error, UnicodeDecodeError) as exc:
            raise _fail(path, f"cannot open the archive ({type(exc).__name__}: {exc})") from exc
        with archive:
            try:
                return _read_archive(path, archive, size)
            except CheckpointError:
                raise
            except RecursionError as exc:
                raise _fail(path, "the metadata is nested too deeply") from exc
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, TypeError, KeyError,
                    AttributeError, IndexError, OverflowError, UnicodeError, struct.error,
                    NotImplementedError, MemoryError) as exc:
                raise _fail(path, f"cannot read the archive ({type(exc).__name__}: {exc})") from exc


def _spec_of(path: Path, name: str, spec: Any) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, byte count) of one entry of the metadata's array table, checked."""
    if not isinstance(spec, dict) or not isinstance(spec.get("dtype"), str) or not isinstance(spec.get("shape"), list):
        raise _fail(path, f"bad array-table entry {spec!r}", member=name)
    shape = spec["shape"]
    if len(shape) > 64 or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**62 for d in shape):
        raise _fail(path, f"bad shape {shape!r} in the array table", member=name)
    text = spec["dtype"]
    if len(text) > 8:
        raise _fail(path, f"bad dtype {text[:20]!r} in the array table", member=name)
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"bad dtype {text!r} in the array table", member=name) from exc
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _fail(path, f"unsupported dtype {text!r} in the array table", member=name)
    return dtype, tuple(shape), math.prod(shape) * dtype.itemsize


def _check_member_info(path: Path, info: zipfile.ZipInfo, name: str, nbytes: int, size: int) -> None:
    """Refuse a member whose declared sizes exceed what its array needs, before opening it."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _fail(path, f"unsupported compression method {info.compress_type}", member=name)
    if info.file_size > nbytes + _MAX_NPY_HEADER:
        raise _fail(
            path,
            f"declares {info.file_size} bytes uncompressed but its array needs {nbytes} (plus "
            f"a header of at most {_MAX_NPY_HEADER})",
            member=name,
        )
    if name != META_KEY and info.file_size < nbytes:
        raise _fail(
            path,
            f"declares {info.file_size} bytes but the metadata's shape for it needs {nbytes}",
            member=name,
        )
    if info.compress_size > size or (info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size):
        raise _fail(path, "declared sizes do not fit the file", member=name)


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str,
                 dtype: np.dtype | None, shape: tuple[int, ...] | None) -> np.ndarray:
    """Read one ``.npy`` member, checking its header against (dtype, shape) before the data.

    ``dtype``/``shape`` None: accept a 1-d uint8 array of any length (the metadata).
    """
    fmt = np.lib.format
    with archive.open(info) as f:
        head = f.read(6)
        if head != fmt.MAGIC_PREFIX:
            raise _fail(path, "is not an .npy array (bad magic bytes)", member=name)
        rest = f.read(2)
        if len(rest) != 2 or rest[0] not in (1, 2, 3) or rest[1] != 0:
            raise _fail(path, f"unsupported .npy format version {tuple(rest)}", member=name)
        try:
            reader = fmt.read_array_header_1_0 if rest[0] == 1 else fmt.read_array_header_2_0
            hshape, fortran, hdtype = reader(f, max_header_size=_MAX_NPY_HEADER)
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                raise _fail(path, "holds Python objects (pickled data), which xpnet never loads because "
                            "unpickling can execute code", member=name,
                            hint="Hint: only load checkpoints written by xpnet.checkpoint.save_checkpoint") from exc
            raise _fail(path, f"bad .npy header ({exc})", member=name) from exc
        if hdtype.kind not in _ALLOWED_KINDS or hdtype.fields is not None or hdtype.hasobject:
            hint = _HINT
            if hdtype.hasobject:
                hint = "Hint: only load checkpoints written by xpnet.checkpoint.save_checkpoint"
            raise _fail(path, f"unsupported dtype {hdtype} (object arrays would need pickle)", member=name, hint=hint)
        if dtype is None:
            if hdtype != np.uint8 or len(hshape) != 1:
                raise _fail(path, f"must be a 1-d uint8 array, got {hdtype} {hshape}", member=name)
            if hshape[0] > MAX_META_BYTES:
                raise _fail(path, f"metadata of {hshape[0]} bytes exceeds the {MAX_META_BYTES}-byte cap", member=name)
            dtype, shape = hdtype, tuple(hshape)
        elif hdtype.str != dtype.str or tuple(hshape) != shape:
            raise _fail(
                path,
                f"is {hdtype.str} {list(hshape)} but the metadata says {dtype.str} {list(shape)} "
                f"(the file was tampered with)",
                member=name,
            )
        nbytes = math.prod(shape) * dtype.itemsize
        # Bounded already: by the file's size for a stored member, by the metadata's
        # shapes for a deflated one (its declared size was checked against them).
        buf = np.empty(nbytes, dtype=np.uint8)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                raise _fail(path, f"is truncated ({got} of {nbytes} data bytes)", member=name)
            got += n
        if f.read(1):  # also reaches the end, where zipfile checks the CRC-32
            raise _fail(path, "has bytes after its array data", member=name)
    return buf.view(dtype).reshape(shape, order="F" if fortran else "C")


def _read_archive(path: Path, archive: zipfile.ZipFile, size: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Verify the archive's entries against the metadata and the digest."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _fail(path, f"the archive holds {len(infos)} entries; a checkpoint holds at most {MAX_MEMBERS}")
    counts = Counter(info.filename for info in infos)
    dup = sorted(n for n, c in counts.items() if c > 1)
    if dup:
        raise _fail(path, f"duplicate archive entries {dup[:10]} (the file was tampered with)")
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise _fail(path, f"entry {info.filename!r} is not an .npy member")
        by_name[info.filename[:-4]] = info
    if META_KEY not in by_name:
        raise _fail(path, f"no {META_KEY!r} entry (a plain .npz, not an xpnet checkpoint)")
    meta_info = by_name[META_KEY]
    if meta_info.file_size > MAX_META_BYTES + _MAX_NPY_HEADER:
        raise _fail(path, f"metadata of {meta_info.file_size} bytes exceeds the {MAX_META_BYTES}-byte cap", member=META_KEY)
    _check_member_info(path, meta_info, META_KEY, MAX_META_BYTES, size)
    meta = _read_meta(path, _read_member(path, archive, meta_info, META_KEY, None, None))
    table = meta["arrays"]
    names = set(by_name) - {META_KEY}
    if names != set(table):
        missing, unexpected = sorted(set(table) - names), sorted(names - set(table))
        raise _fail(
            path,
            f"archive entries do not match the metadata (missing {missing[:10]}, unexpected "
            f"{unexpected[:10]})",
        )
    specs = {name: _spec_of(path, name, table[name]) for name in sorted(table)}
    for name, (_, _, nbytes) in specs.items():
        _check_member_info(path, by_name[name], name, nbytes, size)
    digest = meta.get("digest")
    if (
        not isinstance(digest, dict)
        or digest.get("algorithm") != "sha256"
        or not isinstance(digest.get("value"), str)
        or not _HEX64.fullmatch(digest["value"])
    ):
        raise _fail(path, "the metadata has no sha256 digest (64 hex digits)")
    stored_meta = digest.get("meta")
    if stored_meta is not None:
        if not isinstance(stored_meta, str) or not _HEX64.fullmatch(stored_meta):
            raise _fail(path, "the metadata digest is not 64 hex digits", member=META_KEY)
        if not hmac.compare_digest(meta_digest(meta), stored_meta.lower()):
            raise _fail(
                path,
                "SHA-256 digest mismatch: the metadata was modified after saving",
                member=META_KEY,
                hint="Hint: the file is corrupt or was tampered with; restore it from a good copy",
            )
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, shape, _) in specs.items():
        try:
            arrays[name] = _read_member(path, archive, by_name[name], name, dtype, shape)
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - CRC errors, truncated members, bad headers
            raise _fail(path, f"cannot read it ({type(exc).__name__}: {exc})", member=name) from exc
    actual = array_digest(arrays)
    if not hmac.compare_digest(actual, digest["value"].lower()):
        raise _fail(
            path,
            f"SHA-256 digest mismatch: the arrays were modified after saving (stored "
            f"{digest['value'][:16]}..., computed {actual[:16]}...)",
            hint="Hint: the file is corrupt or was tampered with; restore it from a good copy",
        )
    # Hand out native-byte-order arrays: backends (torch) refuse foreign byte orders.
    for name, a in arrays.items():
        if not a.dtype.isnative:
            arrays[name] = a.astype(a.dtype.newbyteorder("="))
    return meta, arrays


def _read_meta(path: Path, raw: np.ndarray) -> dict[str, Any]:
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError as exc:
        raise _fail(path, "the JSON is nested too deeply", member=META_KEY) from exc
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, and ints over 4300 digits
        raise _fail(path, f"is not valid UTF-8 JSON ({exc})", member=META_KEY) from exc
    if _depth(meta) > MAX_META_DEPTH:
        raise _fail(path, f"the metadata is nested too deeply (more than {MAX_META_DEPTH} levels)", member=META_KEY)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _fail(path, f"wrong format {got!r}; expected {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _fail(
            path,
            f"format version {version} is newer than this xpnet reads (<= {FORMAT_VERSION}); "
            f"it was written by xpnet {meta.get('xpnet_version')}",
            hint="Hint: upgrade xpnet to load it",
        )
    for key in ("arrays", "model"):
        if not isinstance(meta.get(key), dict):
            raise _fail(path, f"the metadata has no {key!r} table")
    for key in ("epoch", "step"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool):
            raise _fail(path, f"the metadata has no integer {key!r}")
    return meta


def _index_key(path: Path, k: Any) -> int:
    """An optimizer state key: the decimal string of a parameter index."""
    if not isinstance(k, str) or not k.isdigit() or not k.isascii() or len(k) > 9:
        raise _fail(path, f"bad optimizer state key {k[:20] if isinstance(k, str) else k!r} (expected a parameter index)")
    return int(k)


def _check_groups(path: Path, groups: Any) -> None:
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise _fail(path, f"optimizer param_groups must be a list of dicts, got {type(groups).__name__}")
    seen: set[int] = set()
    for i, g in enumerate(groups):
        ids = g.get("params")
        if not isinstance(ids, list) or not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 2**31 for k in ids
        ):
            raise _fail(path, f"optimizer param_groups[{i}]['params'] must be a list of parameter indices")
        if seen & set(ids) or len(set(ids)) != len(ids):
            raise _fail(path, f"optimizer param_groups[{i}] repeats a parameter index")
        seen |= set(ids)


def _decode_checkpoint(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Checkpoint:
    where = f"load_checkpoint: {str(path)!r}"
    try:
        for key in ("epoch", "step"):
            if not 0 <= meta[key] < 2**62:
                raise _fail(path, f"the metadata's {key!r} {meta[key]} is out of range")
        params = meta["model"].get("params")
        if not isinstance(params, list) or not all(isinstance(n, str) for n in params) or any(
            f"model/{n}" not in arrays for n in params
        ):
            raise _fail(path, "the model parameter list does not match the stored arrays")
        model_state = OrderedDict((n, arrays[f"model/{n}"]) for n in params)
        _check_description(path, meta["model"])
        optimizer_state = None
        opt = meta.get("optimizer")
        if opt is not None:
            if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or not isinstance(opt.get("class"), str):
                raise _fail(path, "the optimizer metadata is not a dict with 'class' and 'state'")
            state = {}
            for k, v in opt["state"].items():
                st = _decode(v, arrays, where)
                if not isinstance(st, dict) or not all(isinstance(n, str) for n in st):
                    raise _fail(path, f"optimizer state {k!r} is not a dict of named values")
                state[_index_key(path, k)] = st
            groups = _decode(opt.get("param_groups"), arrays, where)
            _check_groups(path, groups)
            optimizer_state = {"state": state, "param_groups": groups}
            other = _decode(opt.get("other", {}), arrays, where)
            if not isinstance(other, dict):
                raise _fail(path, "the optimizer's 'other' entry is not a dict")
            optimizer_state.update(other)
        sched = meta.get("scheduler")
        scheduler_state = None
        if sched is not None:
            if not isinstance(sched, dict) or not isinstance(sched.get("class"), str):
                raise _fail(path, "the scheduler metadata is not a dict with 'class' and 'state'")
            scheduler_state = _decode(sched.get("state"), arrays, where)
            if not isinstance(scheduler_state, dict):
                raise _fail(path, "the scheduler state is not a dict")
        rng = meta.get("rng_state")
        rng_state = None if rng is None else _decode(rng, arrays, where)
        if rng_state is not None and not isinstance(rng_state, dict):
            raise _fail(path, "the RNG state is not a dict")
        decoded = {k: _decode(meta.get(k, {}), arrays, where) for k in ("hparams", "metrics", "extra")}
        for k, v in decoded.items():
            if not isinstance(v, dict):
                raise _fail(path, f"the metadata's {k!r} is not a dict")
        return Checkpoint(
            meta=meta,
            model_state=model_state,
            optimizer_state=optimizer_state,
            scheduler_state=scheduler_state,
            epoch=meta["epoch"],
            step=meta["step"],
            rng_state=rng_state,
            path=path,
            **decoded,
        )
    except CheckpointError:
        raise
    except RecursionError as exc:
        raise _fail(path, "the metadata is nested too deeply", member=META_KEY) from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise _fail(path, f"malformed metadata ({type(exc).__name__}: {exc})", member=META_KEY) from exc


def _check_model(path: Path, ckpt: Checkpoint, model: Any, strict: bool) -> None:
    # Everything the model's state_dict holds: parameters and persistent buffers.
    own = dict(model.state_dict())
    saved = ckpt.model_state
    missing = [n for n in own if n not in saved]
    unexpected = [n for n in saved if n not in own]
    shapes: list[str] = []
    dtypes: dict[str, str] = {}  # name -> message
    for n, a in saved.items():
        if n not in own:
            continue
        p = own[n]
        if tuple(a.shape) != tuple(p.shape):
            shapes.append(f"{n}: checkpoint {tuple(a.shape)}, model {tuple(p.shape)}")
        elif _backend.dtype_name(a.dtype) != _backend.dtype_name(p.dtype) and not (
            a.dtype.kind in "iu" and _backend.dtype_name(p.dtype).startswith(("int", "uint"))
        ):  # an integer buffer (num_batches_tracked) accepts any integer dtype
            dtypes[n] = f"{n}: checkpoint {a.dtype.name}, model {_backend.dtype_name(p.dtype)}"
    problems = []
    if strict and missing:
        problems.append(f"missing from the checkpoint: {missing}")
    if strict and unexpected:
        problems.append(f"unexpected in the checkpoint: {unexpected}")
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes))
    if dtypes:
        problems.append("dtype mismatch: " + "; ".join(dtypes.values()))
    if not problems:
        return
    hints = []
    if dtypes:
        want = sorted({saved[n].dtype.name for n in dtypes})
        hints.append(f"model.to(dtype={want[0]!r}) before loading converts the model")
    if missing or unexpected or shapes:
        arch = f" (saved hparams: {ckpt.hparams})" if ckpt.hparams else ""
        hints.append(
            f"build the model with the checkpoint's architecture{arch}"
            + ("" if not strict or shapes else ", or pass strict=False to load the common names")
        )
    raise CheckpointError(
        f"load_checkpoint: {str(path)!r} does not match the {type(model).__name__}: "
        + "; ".join(problems)
        + ". Hint: "
        + "; ".join(hints)
        + ". Nothing was loaded."
    )


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mismatch(saved: Any, own: Any, where: str, out: list[str]) -> None:
    """Append to ``out`` where ``saved`` cannot stand in for ``own`` (same kind of value)."""
    if len(out) >= 10:
        return
    if own is None:
        if not (saved is None or _is_num(saved) or isinstance(saved, (bool, str))):
            out.append(f"{where} is a {type(saved).__name__}, expected a scalar")
    elif isinstance(own, bool):
        if not isinstance(saved, bool):
            out.append(f"{where} is {saved!r}, expected a bool")
    elif isinstance(own, int) and not isinstance(own, np.ndarray):
        if not (isinstance(saved, int) and not isinstance(saved, bool)) or not -(2**62) < saved < 2**62:
            out.append(f"{where} is {saved!r}, expected an int")
    elif isinstance(own, float):
        if not _is_num(saved):
            out.append(f"{where} is {saved!r}, expected a number")
    elif isinstance(own, str):
        if saved != own:
            out.append(f"{where} is {saved!r}, this one has {own!r}")
    elif isinstance(own, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(own):
            out.append(f"{where} is {saved!r}, expected {len(own)} values like {own!r}")
        else:
            for i, (a, b) in enumerate(zip(saved, own)):
                _mismatch(a, b, f"{where}[{i}]", out)
    elif isinstance(own, Mapping):
        if not isinstance(saved, Mapping) or set(saved) != set(own):
            got = sorted(map(str, saved)) if isinstance(saved, Mapping) else type(saved).__name__
            out.append(f"{where} has keys {got}, expected {sorted(map(str, own))}")
        else:
            for k in own:
                _mismatch(saved[k], own[k], f"{where}[{k!r}]", out)
    elif isinstance(saved, np.ndarray) != (isinstance(own, np.ndarray) or _backend.is_array(own)):
        out.append(f"{where} is a {type(saved).__name__}, expected a {type(own).__name__}")


def _optimizer_state_problems(ckpt: Checkpoint, optimizer: Any, groups: list, flat: list) -> list[str]:
    """Type, shape and dtype of every restored state entry and hyperparameter."""
    problems: list[str] = []
    saved_groups = ckpt.optimizer_state["param_groups"]
    defaults = dict(getattr(optimizer, "defaults", {}) or {})
    merged_groups = []
    for i, (saved, own) in enumerate(zip(saved_groups, groups)):
        for k, v in saved.items():
            if k == "params":
                continue
            if k not in own and k not in defaults:
                problems.append(f"param_groups[{i}] has an unknown hyperparameter {k!r}")
            else:
                _mismatch(v, own.get(k, defaults.get(k)), f"param_groups[{i}][{k!r}]", problems)
        merged = {**defaults, **{k: v for k, v in own.items() if k != "params"},
                  **{k: v for k, v in saved.items() if k != "params"}}
        merged_groups.append(merged)
    if problems:
        return problems
    group_of = [g for g, own in zip(merged_groups, groups) for _ in own["params"]]
    # Which state entries exist is known when the optimizer class says so (_state_keys
    # overridden, as every built-in optimizer does); a custom optimizer is checked by shape.
    from .optim.optimizer import Optimizer

    keys_of = getattr(type(optimizer), "_state_keys", None)
    known = keys_of is not None and keys_of is not Optimizer._state_keys
    for idx, st in ckpt.optimizer_state["state"].items():
        if not 0 <= idx < len(flat):
            problems.append(f"state for parameter index {idx}, but the optimizer has {len(flat)}")
            continue
        p = flat[idx]
        shape = tuple(getattr(p, "shape", ()))
        pkind = "f"
        try:
            pkind = np.dtype(_backend.dtype_name(p.dtype)).kind
        except (TypeError, AttributeError):
            pass
        allowed = None
        if known:
            try:
                allowed = set(optimizer._state_keys(group_of[idx])) | {"step"}
            except Exception:  # noqa: BLE001 - a bad saved hyperparameter; reported by the loader
                allowed = None
        for key, v in st.items():
            at = f"state[{idx}][{key!r}]"
            if allowed is not None and key not in allowed:
                problems.append(f"{at} is not state of a {type(optimizer).__name__} with these settings")
            elif key == "step":
                ok = (isinstance(v, int) and not isinstance(v, bool)) or (
                    isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iu"
                )
                if not ok or not 0 <= int(v) < 2**62:
                    problems.append(f"{at} is {v!r}, expected a non-negative int")
            elif isinstance(v, np.ndarray):
                if tuple(v.shape) != shape:
                    problems.append(f"{at} has shape {tuple(v.shape)}, parameter {shape}")
                elif v.dtype.kind != pkind and not (pkind == "f" and v.dtype.kind == "f"):
                    problems.append(f"{at} has dtype {v.dtype}, parameter {_backend.dtype_name(p.dtype)}")
            elif allowed is not None:
                problems.append(f"{at} is a {type(v).__name__}, expected an array of shape {shape}")
    return problems


def _check_optimizer(path: Path, ckpt: Checkpoint, optimizer: Any, model: Any) -> None:
    opt_meta = ckpt.meta.get("optimizer")
    if opt_meta is None or ckpt.optimizer_state is None:
        raise CheckpointError(
            f"load_checkpoint: {str(path)!r} holds no optimizer state (it was saved with "
            f"optimizer=None). Hint: load it with optimizer=None and start the optimizer fresh"
        )
    if opt_meta.get("class") != type(optimizer).__name__:
        raise CheckpointError(
            f"load_checkpoint: {str(path)!r} holds {opt_meta.get('class')} state but a "
            f"{type(optimizer).__name__} was given. Hint: build a {opt_meta.get('class')}, "
            f"or pass optimizer=None to load only the model"
        )
    groups = getattr(optimizer, "param_groups", None)
    if groups is None:
        return
    saved_sizes = [len(g.get("params", [])) for g in ckpt.optimizer_state["param_groups"]]
    own_sizes = [len(g["params"]) for g in groups]
    if saved_sizes != own_sizes:
        raise CheckpointError(
            f"load_checkpoint: {str(path)!r}: the optimizer has parameter groups of sizes "
            f"{own_sizes}, the checkpoint {saved_sizes}. Hint: build the optimizer over the "
            f"same parameters as when saving, e.g. Adam(model.parameters(), ...)"
        )
    flat = [p for g in groups for p in g["params"]]
    problems = []
    saved_names = opt_meta.get("param_names")
    if model is not None and isinstance(saved_names, list) and None not in saved_names:
        names = {id(p): n for n, p in model.named_parameters()}
        own_names = [names.get(id(p)) for p in flat]
        if None not in own_names and own_names != saved_names:
            problems.append(f"parameter order {own_names} differs from the saved {saved_names}")
    problems += _optimizer_state_problems(ckpt, optimizer, groups, flat)
    if problems:
        raise CheckpointError(
            f"load_checkpoint: {str(path)!r}: the optimizer state does not match the "
            f"optimizer: {'; '.join(problems)}. Hint: build the optimizer over the same "
            f"parameters, in the same order, as when saving. Nothing was loaded."
        )


def _check_scheduler(path: Path, ckpt: Checkpoint, scheduler: Any) -> None:
    sched = ckpt.meta.get("scheduler")
    if sched is None:
        raise CheckpointError(
            f"load_checkpoint: {str(path)!r} holds no scheduler state (saved with "
            f"scheduler=None). Hint: pass scheduler=None"
        )
    if sched.get("class") != type(scheduler).__name__:
        raise CheckpointError(
            f"load_checkpoint: {str(path)!r} holds {sched.get('class')} state but a "
            f"{type(scheduler).__name__} was given. Hint: build a {sched.get('class')}, or pass "
            f"scheduler=None"
        )
    own = scheduler.state_dict() if callable(getattr(scheduler, "state_dict", None)) else None
    if isinstance(own, Mapping):
        problems: list[str] = []
        _mismatch(ckpt.scheduler_state, own, "state", problems)
        if problems:
            raise CheckpointError(
                f"load_checkpoint: {str(path)!r}: the {type(scheduler).__name__} state does not "
                f"match this scheduler: {'; '.join(problems)}. Hint: build the scheduler with "
                f"the same arguments, over the same optimizer, as when saving. Nothing was loaded.",
                path=path,
            )


def _buffer_values(model: Any) -> list[tuple[Any, str, Any]]:
    """Every (module, attribute, array) buffer slot, to undo a failed load."""
    modules = getattr(model, "modules", None)
    if modules is None:
        return []
    return [(m, name, value) for m in modules() for name, value in getattr(m, "_buffers", {}).items()]


def load_checkpoint(
    path: str | os.PathLike[str],
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    strict: bool = True,
    backend: Any = None,
    device: Any = None,
) -> Checkpoint:
    """Read and verify a checkpoint; optionally load it into a model, optimizer, scheduler.

    Parameters
    ----------
    path
        A file written by :func:`save_checkpoint`.
    model
        Module to load the parameters into. It keeps its own backend, device and dtype
        (unless ``backend``/``device`` say otherwise), so a checkpoint saved from any
        backend loads onto any other. Names, shapes and dtypes are checked first.
    optimizer
        Optimizer to restore (same class, built over the same parameters in the same
        order); its ``load_state_dict`` moves the state onto each parameter's backend.
    scheduler
        Learning-rate scheduler to restore (same class).
    strict
        With ``False``, parameter names missing on either side are skipped; shapes and
        dtypes of the common names must still match.
    backend, device
        Move ``model`` to this backend / device before loading (``model.to(backend,
        device=device)``); default: leave it where it is.

    Returns
    -------
    Checkpoint
        Metadata and every stored value, arrays as NumPy (host) arrays.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        The file is truncated, corrupt, tampered with, not an xpnet checkpoint, of a newer
        format version, or does not match ``model`` / ``optimizer`` / ``scheduler``. A
        failed load leaves the model, optimizer and scheduler unchanged.

    Notes
    -----
    Nothing is unpickled: arrays are read with ``numpy.load(allow_pickle=False)`` and the
    metadata is JSON. Every array is checked against the stored SHA-256 digest before
    anything is loaded.
    """
    try:
        return _load(path, model, optimizer, scheduler, strict=strict, backend=backend, device=device)
    except CheckpointError as exc:
        if exc.path is None:  # every refusal names the file, as an attribute too
            exc.path = Path(os.fspath(path))
        raise


def load_model(
    path: str | os.PathLike[str], *, backend: Any = None, device: Any = None, dtype: Any = None
) -> Any:
    """Rebuild the model saved in a checkpoint from the architecture recorded with it.

    Parameters
    ----------
    path
        A file written by :func:`save_checkpoint` for a model built by
        :func:`xpnet.models.mlp` or :func:`xpnet.models.cnn` (or by ``xpnet train``).
    backend, device, dtype
        Where to put the model (``model.to(backend, device=, dtype=)``); default NumPy,
        in the saved dtype.

    Returns
    -------
    Module
        The model with the saved weights, in eval mode.

    Raises
    ------
    CheckpointError
        The file is damaged, or it records no architecture (the model was built by hand):
        then build the model yourself and call ``load_checkpoint(path, model)``.
    """
    from .models import model_from_config

    ckpt = load_checkpoint(path)
    config = ckpt.model_config
    if config is None:
        raise CheckpointError(
            f"load_model: {os.fspath(path)!r} records no architecture (its model was not built "
            f"by xpnet.models.mlp or cnn). Hint: build the model yourself and load the weights "
            f"with load_checkpoint(path, model)", path=Path(os.fspath(path)))
    try:
        model = model_from_config(config, generator=0)  # placeholder weights, replaced below
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"load_model: {os.fspath(path)!r}: cannot rebuild its model "
                              f"({exc})", path=Path(os.fspath(path))) from exc
    _check_model(Path(os.fspath(path)), ckpt, model, True)
    model.load_state_dict(OrderedDict((n, a.copy()) for n, a in ckpt.model_state.items()))
    if backend is not None or device is not None or dtype is not None:
        model.to(backend, device=device, dtype=dtype)
    return model.eval()


def _load(
    path: str | os.PathLike[str],
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    strict: bool = True,
    backend: Any = None,
    device: Any = None,
) -> Checkpoint:
    """:func:`load_checkpoint` without the final naming of the path."""
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(
            f"load_checkpoint: no checkpoint at {str(path)!r} (the file does not exist). "
            f"Hint: check the path; save_checkpoint(path, model) writes one"
        )
    if path.is_dir():
        raise CheckpointError(f"load_checkpoint: {str(path)!r} is a directory, not a checkpoint file")
    if (backend is not None or device is not None) and model is None:
        raise ValueError("load_checkpoint: backend= and device= move the model; pass model= too")
    meta, arrays = _read(path)
    ckpt = _decode_checkpoint(path, meta, arrays)
    if model is None and optimizer is None and scheduler is None:
        return ckpt

    # Validate everything before touching anything, so a mismatch changes nothing.
    if model is not None:
        _check_model(path, ckpt, model, strict)
    if optimizer is not None:
        _check_optimizer(path, ckpt, optimizer, model)
    if scheduler is not None:
        _check_scheduler(path, ckpt, scheduler)

    # Loaders may still refuse (their own checks); undo what was already applied then.
    params_before = [] if model is None else [(p, p.data, p.grad) for p in model.parameters()]
    buffers_before = [] if model is None else _buffer_values(model)
    opt_before = None if optimizer is None else optimizer.state_dict()
    sched_before = None if scheduler is None else scheduler.state_dict()
    stage = "model"
    try:
        if model is not None:
            if backend is not None or device is not None:
                model.to(backend, device=device)
            # Copies: the model updates its parameters in place and must not write into
            # the arrays this function returns (NumPy and torch-CPU would share memory).
            model.load_state_dict(OrderedDict((n, a.copy()) for n, a in ckpt.model_state.items()), strict=strict)
        stage = "optimizer"
        if optimizer is not None:
            optimizer.load_state_dict(ckpt.optimizer_state)
        stage = "scheduler"
        if scheduler is not None:
            scheduler.load_state_dict(ckpt.scheduler_state)
    except Exception as exc:
        for p, data, grad in params_before:
            p.data, p.grad = data, grad
        for owner, name, value in buffers_before:
            setattr(owner, name, value)
        if opt_before is not None and stage == "scheduler":
            optimizer.load_state_dict(opt_before)
        if sched_before is not None and stage == "scheduler":
            try:
                scheduler.load_state_dict(sched_before)
            except Exception:  # noqa: BLE001 - best effort; the original error matters more
                pass
        raise CheckpointError(
            f"load_checkpoint: {str(path)!r}: loading the {stage} state failed "
            f"({type(exc).__name__}: {exc}). Nothing was loaded."
        ) from exc
    return ckpt
