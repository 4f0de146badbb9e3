"""Pieces shared by the ``xpnet`` subcommands.

Argument types and the optimizer table; the one-line errors; backend resolution; loading,
checking and splitting a dataset; results files and checkpoint metadata.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import _log

__all__ = ["OPTIMIZERS", "DEFAULT_LR", "hidden_sizes", "channel_sizes", "positive_int", "nonneg_int", "float_in",
           "make_optimizer", "PROG", "CLIError"]

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
#: Learning rate per optimizer when --lr is not given: values that train digits stably.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "adagrad": 0.01, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3}


def hidden_sizes(text: str) -> tuple[int, ...]:
    """``"128,64"`` -> ``(128, 64)``; ``"none"`` or ``"-"`` -> no hidden layer."""
    t = text.strip().lower()
    if t in ("none", "-"):
        return ()
    if t == "0":
        # "0 units" is not a layer; asking for `none` keeps a typo from dropping the hidden layer.
        raise argparse.ArgumentTypeError(
            "0 is not a layer width; use --hidden none for a linear model (no hidden layer)"
        )
    try:
        sizes = tuple(int(s) for s in t.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer widths such as 128 or 128,64, got {text!r}"
        ) from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"layer widths must be positive, got {text!r} (use 'none' for no hidden layer)"
        )
    return sizes


def channel_sizes(text: str) -> tuple[int, ...]:
    """``"32,64"`` -> ``(32, 64)``: the convolution stages of ``--model cnn`` (at least one)."""
    try:
        sizes = tuple(int(s) for s in text.strip().replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive channel counts such as 32,64, got {text!r}"
        ) from None
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"channel counts must be positive, got {text!r}")
    return sizes


def check_model_size(sizes: Sequence[int], dtype: str) -> None:
    """Refuse, before allocating anything, an MLP that cannot fit in this machine's memory.

    Training holds the weights, their gradients and up to two optimizer moments: about
    four copies of the parameters.
    """
    params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    need = 4 * params * np.dtype(dtype).itemsize
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = 1 << 50
    if need > ram:
        raise CLIError(
            f"--hidden: layer sizes {list(sizes)} make {params:,} parameters, about "
            f"{need / 2**30:,.1f} GiB to train ({dtype} weights, gradients and optimizer "
            f"state), more than this machine's {ram / 2**30:,.1f} GiB of memory. Hint: use "
            f"narrower layers, e.g. --hidden 256,128"
        )


def _int_at_least(lo: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return v

    return parse


positive_int = _int_at_least(1, "positive")
nonneg_int = _int_at_least(0, "non-negative")


def float_in(lo: float, hi: float | None, *, lo_open: bool, hi_open: bool = True) -> Callable[[str], float]:
    """An argparse type accepting finite floats in the interval (lo|[lo, hi|inf)|])."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo)
        if hi is not None:
            ok = ok and (v < hi if hi_open else v <= hi)
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
            raise argparse.ArgumentTypeError(f"expected a number in {rng}, got {text!r}")
        return v

    return parse


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float | None = None) -> Any:
    """Build the optimizer a CLI name stands for (``momentum`` is SGD with momentum 0.9)."""
    from . import optim

    table: dict[str, tuple[type, dict[str, Any]]] = {
        "sgd": (optim.SGD, {}),
        "momentum": (optim.SGD, {"momentum": 0.9}),
        "adagrad": (optim.Adagrad, {}),
        "rmsprop": (optim.RMSprop, {}),
        "adam": (optim.Adam, {}),
        "adamw": (optim.AdamW, {}),
    }
    if name not in table:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    cls, extra = table[name]
    if weight_decay is not None:
        extra = {**extra, "weight_decay": weight_decay}
    return cls(params, lr=lr, **extra)


# --------------------------------------------------------------------------- errors and output

PROG = "xpnet"


class CLIError(Exception):
    """A failure to report as ``xpnet: error: <message>`` with exit status 1."""


class _UsageError(Exception):
    """Bad command-line usage: exit status 2."""


def _out(args: argparse.Namespace, msg: str) -> None:
    """A progress line of the command: INFO on the ``"xpnet"`` logger (stdout; -q hides it)."""
    if not getattr(args, "quiet", False) and _main_process():
        _log.logger.info(msg)


def _warn(msg: str) -> None:
    """A note or warning of the command: WARNING on the ``"xpnet"`` logger (stderr)."""
    _log.logger.warning(msg)


class _ConsoleHandler(logging.Handler):
    """The command line's handler: INFO records to stdout, WARNING and above to stderr.

    The streams are looked up at each record, so a redirected ``sys.stdout`` (pytest's
    capture, ``contextlib.redirect_stdout``) receives them.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except BrokenPipeError:
            raise
        except Exception:  # noqa: BLE001 - logging's own policy: report, never raise
            self.handleError(record)


@contextlib.contextmanager
def console_logging(quiet: bool = False) -> Iterator[None]:
    """Show the ``"xpnet"`` logger's records on the terminal while the command runs.

    The command line is an application, so it (and only it) attaches a handler; the
    library never configures logging. ``quiet`` keeps INFO lines off (``-q``).
    """
    logger = _log.logger
    handler = _ConsoleHandler(logging.WARNING if quiet else logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _main_process() -> bool:
    """False on the ranks > 0 of a data-parallel run (rank 0 alone prints)."""
    from . import distributed

    return not distributed.is_initialized() or distributed.is_main()


def _resolve_backend(name: str | None, device: str | None) -> tuple[Any, Any]:
    """Namespace and device object for ``--backend`` / ``--device``; fails with one line."""
    from . import _backend

    try:
        xp = _backend.get_namespace(name or "numpy")
    except ValueError as exc:
        raise _UsageError(f"argument --backend: {exc}") from None
    bname = _backend.backend_name(xp)
    dev: Any = None
    if device is not None:
        text = str(device).strip()
        if bname == "array_api_strict":
            import array_api_strict

            dev = array_api_strict.Device(text)
        elif bname == "torch":
            import torch

            dev = torch.device(text)
        elif bname == "cupy":
            import cupy

            dev = cupy.cuda.Device(int(text.split(":")[-1]))
        elif bname == "numpy":
            if text != "cpu":
                raise ValueError(f"backend numpy has only the device 'cpu', got --device {text!r}")
            dev = "cpu"
        else:
            dev = text
    else:
        dev = _backend.default_device(xp)
    try:
        probe = xp.zeros((1,), device=dev)
        _backend.to_numpy(probe + 1.0)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not usable"
        raise CLIError(
            f"backend {bname} cannot use device {device or dev!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return xp, dev


def _to_backend(a: np.ndarray, xp: Any, dev: Any, dtype: str | None = None) -> Any:
    from . import _backend

    if dtype is not None and a.dtype.kind == "f" and np.dtype(dtype).itemsize < a.dtype.itemsize:
        limit = float(np.finfo(dtype).max)
        hi = max(float(a.max(initial=0.0)), -float(a.min(initial=0.0)))
        if hi > limit:
            raise CLIError(
                f"values up to {hi:.3g} (after standardizing) do not fit in "
                f"{dtype} (max {limit:.3g}). Hint: rescale the data, or pass --dtype float64"
            )
    return _backend.asarray(np.ascontiguousarray(a), xp, device=dev, dtype=dtype)


# --------------------------------------------------------------------------- data


def _dataset_names() -> list[str]:
    from .data import list_datasets

    return list(list_datasets())


def _check_finite(X: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(X)):
        bad = int(np.size(X) - np.count_nonzero(np.isfinite(X)))
        raise CLIError(f"{where}: the inputs contain {bad} NaN or infinite value(s)")


def _dataset_fields(ds: Any) -> tuple[np.ndarray, np.ndarray | None, str | None, int | None]:
    """``(X, y, task, num_classes)`` of a Dataset, an ``(X, y)`` pair or a bare array."""
    if isinstance(ds, tuple):
        X, y = ds[0], ds[1] if len(ds) > 1 else None
        task = num_classes = None
    elif isinstance(ds, np.ndarray):
        X, y, task, num_classes = ds, None, None, None
    else:
        X, y = ds.X, getattr(ds, "y", None)
        task = getattr(ds, "task", None)
        num_classes = getattr(ds, "num_classes", None)
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim > 2:
        X = X.reshape(X.shape[0], -1)  # images: the MLP sees flat pixel vectors
    X = X.astype(np.float64, copy=False)
    if y is not None:
        y = np.asarray(y)
    return X, y, task, (int(num_classes) if num_classes else None)


# Built-in names that read the user's own files: ``xpnet train mnist --data DIR``.
_PATH_DATASETS = ("mnist", "fashion_mnist")


def _load_source(dataset: str | None, path: str | None, task: str | None = None) -> Any:
    """Load a built-in dataset by name, or a file / MNIST directory (its train split).

    Notes the loader raises as warnings (labels -1/+1 read as classes 0/1) are printed
    as ``xpnet: note: ...`` lines on stderr.
    """
    from . import data as xdata

    if path is not None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file or directory: {path!r}")
        if dataset in _PATH_DATASETS:
            return xdata.load_dataset(dataset, path=path)
        if os.path.isdir(path):
            return xdata.load_file(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = xdata.load_file(path, task=task)
        for w in caught:
            _warn(f"{PROG}: note: {w.message}")
        return ds
    names = _dataset_names()
    if dataset not in names:
        raise _UsageError(
            f"unknown dataset {dataset!r}; built-in datasets are {', '.join(names)} "
            f"(or pass --data PATH for a file)"
        )
    return xdata.load_dataset(dataset)


def _load_test_split(dataset: str | None, path: str | None) -> Any:
    """The official t10k split of an MNIST directory, or None when it has none.

    Raises when only one of the two t10k files is there.
    """
    if path is None or not os.path.isdir(path):
        return None
    from .data.idx import has_mnist_split, load_mnist

    if not has_mnist_split(path, "t10k"):
        return None
    return load_mnist(path, "t10k", name=dataset if dataset in _PATH_DATASETS else "mnist")


def _usable_dtype(xp: Any, dev: Any, dtype: str, what: str = "training") -> str:
    """``dtype``, or float32 with a warning line when the device cannot hold float64."""
    if dtype != "float64":
        return dtype
    from . import _backend

    bname = _backend.backend_name(xp)
    if _backend.supports_float64(xp, dev):
        return dtype
    _warn(f"{PROG}: warning: {bname} device {dev} has no float64; {what} in float32 instead")
    return "float32"


def _infer_task(y: np.ndarray | None, task: str | None) -> str:
    if task is not None:
        return task
    if y is None:
        raise CLIError("the data has no labels or targets; training needs them")
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification"
    if y.ndim == 1 and np.all(np.isfinite(y)) and np.all(y == np.round(y)) and len(np.unique(y)) <= 100:
        return "classification"
    return "regression"


def _prepare_labels(y: np.ndarray, task: str, num_classes: int | None, where: str) -> tuple[np.ndarray, int]:
    """Validate labels once (the fit loop then skips the per-batch checks)."""
    if task == "classification":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise CLIError(f"{where}: classification needs one integer label per sample, got "
                           f"labels of shape {y.shape}")
        if not np.all(np.isfinite(y.astype(np.float64))) or np.any(y != np.round(y)):
            raise CLIError(f"{where}: classification labels must be integers 0..C-1")
        y = y.astype(np.int64)
        if y.size and y.min() < 0:
            raise CLIError(f"{where}: class labels must be non-negative, got {int(y.min())}")
        c = int(y.max()) + 1 if y.size else 0
        n = max(num_classes or 0, c, 2)
        return y, n
    y = y.astype(np.float64)
    if y.ndim == 1:
        y = y[:, None]
    _check_finite(y, f"{where} targets")
    return y, int(y.shape[1])


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int, stratify: bool) -> tuple:
    from .data import train_test_split

    if test_size <= 0.0:
        return X, X, y, y
    if stratify:
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            raise CLIError(
                f"class {int(classes[np.argmin(counts)])} has only {int(counts.min())} sample; "
                f"a stratified test split needs at least 2 per class. Hint: if these are "
                f"numeric targets rather than class labels, pass --task regression; or "
                f"--test-size 0 to test on the training data"
            )
    return train_test_split(X, y, test_size=test_size, seed=seed, stratify=stratify)


def _fit_scaler(X: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-feature mean and scale (constant features get scale 1), as JSON-able lists."""
    from .data import StandardScaler

    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in one line
        sc = StandardScaler().fit(X)
    mean = np.asarray(getattr(sc, "mean_", getattr(sc, "mean", None)), dtype=np.float64)
    scale = np.asarray(getattr(sc, "scale_", getattr(sc, "scale", None)), dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(scale)))
    if bad.size:
        col = int(bad[0])
        raise CLIError(
            f"feature {col} has values too large to standardize (largest magnitude "
            f"{float(np.max(np.abs(X[:, col]))):.3g}; its mean or spread overflows float64). "
            f"Hint: rescale that column, or pass --no-standardize"
        )
    return mean.reshape(-1).tolist(), scale.reshape(-1).tolist()


def _apply_scaler(X: np.ndarray, hp: dict[str, Any]) -> np.ndarray:
    if not hp.get("standardize", True) or hp.get("scaler_mean") is None:
        return X
    mean = np.asarray(hp["scaler_mean"], dtype=np.float64)
    scale = np.asarray(hp["scaler_scale"], dtype=np.float64)
    if X.shape[1] != mean.shape[0]:
        raise CLIError(
            f"the data has {X.shape[1]} features but the model was trained on {mean.shape[0]}"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are reported by the caller
        return (X - mean) / scale


def _make_loss(task: str, output_activation: str | None = None) -> Any:
    """The loss a run reports: cross entropy on the model's logits for classification.

    A classifier whose head already ends in ``softmax`` / ``log_softmax`` outputs
    (log-)probabilities: its cross entropy is the NLL of their log, not a second softmax.
    """
    from .losses import CrossEntropyLoss, MSELoss, NLLLoss

    if task != "classification":
        return MSELoss()
    if output_activation == "log_softmax":
        return NLLLoss()
    if output_activation == "softmax":
        return _ProbabilityNLL()
    return CrossEntropyLoss()


class _ProbabilityNLL:
    """Cross entropy of probability outputs: ``NLLLoss`` of ``log p`` (p clamped at the
    smallest normal, so a 0 gives a large finite loss instead of inf). The gradient is
    with respect to ``log p``; only ``xpnet eval`` uses it, which reads the loss alone."""

    def __init__(self) -> None:
        from .losses import NLLLoss

        self.inner = NLLLoss()

    def __call__(self, input: Any, target: Any) -> Any:
        from . import _backend

        xp = _backend.namespace_of(input)
        tiny = float(xp.finfo(input.dtype).smallest_normal)
        return self.inner(xp.log(xp.maximum(input, tiny)), target)


# --------------------------------------------------------------------------- results and checkpoints


# Per-epoch keys that are not reproducible (wall time) and so stay out of saved histories.
_VOLATILE = ("time",)


def _history_dict(history: Any) -> dict[str, list[float | None]]:
    h = getattr(history, "history", history) or {}
    return {str(k): [None if v is None else float(v) for v in vs] for k, vs in dict(h).items()
            if isinstance(vs, (list, tuple)) and k not in _VOLATILE}


def _write_json(path: str, payload: dict[str, Any]) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {path!r}: directory {parent!r} does not exist")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def _evaluate(model: Any, loss_fn: Any, X: Any, y: Any, task: str, batch_size: int) -> dict[str, float]:
    from .training import evaluate

    metrics = ("accuracy",) if task == "classification" else ()
    res = evaluate(model, loss_fn, X, y, batch_size=batch_size, metrics=metrics)
    return {k: float(v) for k, v in dict(res).items()}


def _read_meta(path: str) -> Any:
    """Load and verify the metadata of a checkpoint of ``xpnet train`` (for --resume)."""
    from .checkpoint import load_checkpoint

    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint: {path!r}")
    ck = load_checkpoint(path)
    hp = getattr(ck, "hparams", None) or {}
    if not isinstance(hp, dict) or "model" not in hp:
        raise CLIError(
            f"{path}: --resume continues runs of 'xpnet train --save', and this checkpoint was "
            f"saved from Python (it records no dataset, split or optimizer settings). Hint: "
            f"'xpnet eval' and 'xpnet predict' take it; resume it in Python with "
            f"fit(..., initial_epoch=ckpt.epoch)"
        )
    return ck
