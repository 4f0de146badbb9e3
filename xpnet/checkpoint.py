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
* **Checked**: truncated, corrupt (zip CRC), tampered (digest), foreign or too-new files
  raise :class:`CheckpointError` naming the file and the problem.
* **Cross-backend**: values are stored on the host, and loading goes through
  ``Module.load_state_dict`` / ``Optimizer.load_state_dict``, which keep the target's
  backend and device. A checkpoint written from torch on a GPU loads bit-identically into
  a NumPy model, and back.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _backend

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "META_KEY",
    "Checkpoint",
    "CheckpointError",
    "array_digest",
    "load_checkpoint",
    "save_checkpoint",
]

#: Value of ``meta["format"]``: how a reader recognises an xpnet checkpoint.
FORMAT_NAME = "xpnet.checkpoint"
#: Layout version written by this code; readers refuse newer versions.
FORMAT_VERSION = 1
#: Name of the metadata entry inside the archive.
META_KEY = "__meta__"

_HINT = "Hint: the file is truncated or not an xpnet checkpoint"
# Array kinds a checkpoint may hold: bool, signed/unsigned int, float, complex. Anything
# else (object, structured, string, datetime) is refused: object arrays mean pickles.
_ALLOWED_KINDS = "biufc"
# Tags of the JSON encoding of values JSON cannot hold directly (see docs/checkpoints.md).
_TAGS = ("__array__", "__float__", "__tuple__", "__dict__")
# Bit generators a checkpoint may name: the state names a class, which we look up in this
# allow-list only, never with a bare getattr on data read from a file.
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, is damaged, or does not match what it is loaded into."""


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
            return tuple(_decode(v, arrays, where) for v in payload)
        if tag == "__dict__":
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, entries)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        # KeyboardInterrupt included: never leave a half-written temporary behind when we
        # still can clean up (a SIGKILL cannot be caught; its temporary stays, harmless).
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
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
    meta["digest"] = {"algorithm": "sha256", "value": array_digest(arrays)}
    text = json.dumps(meta, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    entries = {META_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    entries.update(arrays)
    _atomic_write(path, entries)
    return path


# ----------------------------------------------------------------------------- load


def _fail(path: Path, problem: str, *, hint: str = _HINT) -> CheckpointError:
    return CheckpointError(f"load_checkpoint: {str(path)!r}: {problem}. {hint}")


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read, verify and return (metadata, arrays) from a checkpoint file."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic != b"PK\x03\x04":
            what = "the file is empty" if not magic else "it is not a zip/npz archive"
            raise _fail(path, f"cannot read the checkpoint: {what}")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any parse failure of a damaged file
            raise _fail(path, f"cannot open the archive ({type(exc).__name__}: {exc})") from exc
        with npz:
            return _read_archive(path, npz)


def _read_archive(path: Path, npz: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Verify the archive's entries against the metadata and the digest."""
    members = [info.filename for info in npz.zip.infolist()]
    if len(members) != len(set(members)):
        dup = sorted({m for m in members if members.count(m) > 1})
        raise _fail(path, f"duplicate archive entries {dup} (the file was tampered with)")
    if META_KEY not in npz.files:
        raise _fail(path, f"no {META_KEY!r} entry (a plain .npz, not an xpnet checkpoint)")
    meta = _read_meta(path, npz)
    table = meta["arrays"]
    names = set(npz.files) - {META_KEY}
    if names != set(table):
        missing, unexpected = sorted(set(table) - names), sorted(names - set(table))
        raise _fail(
            path,
            f"archive entries do not match the metadata (missing {missing}, unexpected "
            f"{unexpected})",
        )
    arrays: dict[str, np.ndarray] = {}
    for name in sorted(table):
        try:
            a = npz[name]
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise _fail(
                    path,
                    f"entry {name!r} holds Python objects (pickled data), which xpnet never "
                    f"loads because unpickling can execute code",
                    hint="Hint: only load checkpoints written by xpnet.checkpoint.save_checkpoint",
                ) from exc
            raise _fail(path, f"cannot read entry {name!r} ({exc})") from exc
        except Exception as exc:  # noqa: BLE001 - CRC errors, truncated members, bad headers
            raise _fail(path, f"cannot read entry {name!r} ({type(exc).__name__}: {exc})") from exc
        spec = table[name]
        if a.dtype.kind not in _ALLOWED_KINDS:
            raise _fail(path, f"entry {name!r} has unsupported dtype {a.dtype}")
        if not isinstance(spec, dict) or a.dtype.str != spec.get("dtype") or list(a.shape) != spec.get("shape"):
            raise _fail(
                path,
                f"entry {name!r} is {a.dtype.str} {list(a.shape)} but the metadata says "
                f"{spec.get('dtype') if isinstance(spec, dict) else spec} "
                f"{spec.get('shape') if isinstance(spec, dict) else ''} (the file was tampered with)",
            )
        arrays[name] = a
    digest = meta.get("digest")
    if not isinstance(digest, dict) or digest.get("algorithm") != "sha256" or not isinstance(digest.get("value"), str):
        raise _fail(path, "the metadata has no sha256 digest")
    actual = array_digest(arrays)
    if not hmac.compare_digest(actual, digest["value"]):
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


def _read_meta(path: Path, npz: Any) -> dict[str, Any]:
    try:
        raw = npz[META_KEY]
    except Exception as exc:  # noqa: BLE001 - CRC errors and pickles alike
        raise _fail(path, f"cannot read {META_KEY!r} ({type(exc).__name__}: {exc})") from exc
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _fail(path, f"{META_KEY!r} must be a 1-d uint8 array, got {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"{META_KEY!r} is not valid UTF-8 JSON ({exc})") from exc
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


def _decode_checkpoint(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Checkpoint:
    where = f"load_checkpoint: {str(path)!r}"
    try:
        params = meta["model"].get("params")
        if not isinstance(params, list) or any(f"model/{n}" not in arrays for n in params):
            raise _fail(path, "the model parameter list does not match the stored arrays")
        model_state = OrderedDict((n, arrays[f"model/{n}"]) for n in params)
        optimizer_state = None
        opt = meta.get("optimizer")
        if opt is not None:
            optimizer_state = {
                "state": {int(k): _decode(v, arrays, where) for k, v in opt["state"].items()},
                "param_groups": _decode(opt["param_groups"], arrays, where),
            }
            optimizer_state.update(_decode(opt.get("other", {}), arrays, where))
        sched = meta.get("scheduler")
        scheduler_state = None if sched is None else _decode(sched["state"], arrays, where)
        rng = meta.get("rng_state")
        return Checkpoint(
            meta=meta,
            model_state=model_state,
            optimizer_state=optimizer_state,
            scheduler_state=scheduler_state,
            epoch=meta["epoch"],
            step=meta["step"],
            rng_state=None if rng is None else _decode(rng, arrays, where),
            hparams=_decode(meta.get("hparams", {}), arrays, where),
            metrics=_decode(meta.get("metrics", {}), arrays, where),
            extra=_decode(meta.get("extra", {}), arrays, where),
            path=path,
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise _fail(path, f"malformed metadata ({type(exc).__name__}: {exc})") from exc


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
    for idx, st in ckpt.optimizer_state["state"].items():
        if not 0 <= idx < len(flat):
            problems.append(f"state for parameter index {idx}, but the optimizer has {len(flat)}")
            continue
        shape = tuple(getattr(flat[idx], "shape", ()))
        for key, v in (st.items() if isinstance(st, dict) else ()):
            if isinstance(v, np.ndarray) and v.ndim > 0 and tuple(v.shape) != shape:
                problems.append(f"state[{idx}][{key!r}] has shape {tuple(v.shape)}, parameter {shape}")
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
