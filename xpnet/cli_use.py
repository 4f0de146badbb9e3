"""``xpnet eval``, ``xpnet predict`` and ``xpnet export``: using a saved model.

A checkpoint written by ``xpnet train --save`` records the whole run: dataset, split,
scaler, task and architecture. One written from Python by :func:`xpnet.save_checkpoint`
records the architecture of a model built by :func:`xpnet.models.mlp` or
:func:`xpnet.models.cnn`, and the task and class labels when they were passed; what it
lacks is settled as ``docs/cli.md`` describes:

* the task: ``--task``, else the checkpoint's, else (``eval``) the dataset's, else the
  model's head (:func:`head_task`);
* the inputs are used as given (no standardization was recorded);
* ``eval`` needs a DATASET or ``--data`` (no training run's data was recorded).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._cli_common import (
    CLIError,
    _apply_scaler,
    _check_finite,
    _dataset_fields,
    _evaluate,
    _load_source,
    _load_test_split,
    _make_loss,
    _out,
    _prepare_labels,
    _resolve_backend,
    _split,
    _to_backend,
    _usable_dtype,
    _UsageError,
    _write_json,
)
from .models import config_in_features, config_out_features

__all__ = ["cmd_eval", "cmd_predict", "cmd_export", "head_task"]

# Output activations after which an mlp's outputs are class scores.
_CLASS_SCORES = (None, "identity", "softmax", "log_softmax")


@dataclass
class _Saved:
    """A checkpoint's model on the requested backend, and what it records about its run."""

    model: Any
    hp: dict[str, Any]  # the run's description: "model", "task", "classes", scaler, ...
    xp: Any
    dev: Any
    path: str

    @property
    def config(self) -> dict[str, Any]:
        return self.hp["model"]

    @property
    def classes(self) -> list[Any] | None:
        return self.hp.get("classes")


def head_task(config: dict[str, Any], where: str) -> str:
    """The task of a model whose checkpoint records none, from its head.

    A :func:`~xpnet.models.cnn`, and an :func:`~xpnet.models.mlp` with two or more outputs
    and no output activation (logits) or a softmax, are classifiers. Anything else (one
    output, a sigmoid or tanh head) could be either, and the user is asked to say.
    """
    if config.get("type") == "cnn":
        return "classification"
    n_out, act = config_out_features(config), config.get("output_activation")
    if n_out >= 2 and act in _CLASS_SCORES:
        return "classification"
    head = f"{n_out} output{'s' if n_out != 1 else ''}" + (f" and a {act} output activation" if act else "")
    raise CLIError(
        f"{where}: the checkpoint records no task, and a model with {head} could be a "
        f"classifier or a regressor. Hint: pass --task classification or --task regression "
        f"(or save it with save_checkpoint(..., task=...))"
    )


def _description(path: str) -> dict[str, Any]:
    """The run description of a checkpoint: ``xpnet train``'s hparams, or what Python saved."""
    from .checkpoint import load_checkpoint

    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint: {path!r}")
    ck = load_checkpoint(path)
    hp = dict(ck.hparams or {})
    if isinstance(hp.get("model"), dict) and "type" in hp["model"]:
        hp.setdefault("classes", ck.classes)
        return hp  # written by xpnet train --save
    if ck.model_config is None:
        raise CLIError(
            f"{path}: this checkpoint records no architecture: its model was not built by "
            f"xpnet.models.mlp or cnn, and xpnet rebuilds only those. Hint: save a model built "
            f"by mlp()/cnn() with xpnet.save_checkpoint, or load the weights from Python with "
            f"xpnet.load_checkpoint(path, model)"
        )
    return {"model": ck.model_config, "task": ck.task, "classes": ck.classes, "standardize": False}


def _load_saved(path: str, backend: str | None, device: str | None) -> _Saved:
    """Rebuild the checkpoint's model, load its weights and move it to the backend."""
    from .checkpoint import load_checkpoint
    from .models import model_from_config

    hp = _description(path)
    model = model_from_config(hp["model"], generator=0)
    load_checkpoint(path, model)
    xp, dev = _resolve_backend(backend, device)
    dtype = _usable_dtype(xp, dev, hp["model"]["dtype"], "evaluating")
    if dtype != hp["model"]["dtype"]:
        hp["model"] = {**hp["model"], "dtype": dtype}
    model.to(xp, device=dev, dtype=dtype)
    model.eval()
    return _Saved(model=model, hp=hp, xp=xp, dev=dev, path=path)


def _task(saved: _Saved, cli_task: str | None, data_task: str | None, where: str) -> str:
    """``--task``, else the recorded task, else the data's, else the model's head."""
    recorded = saved.hp.get("task")
    if cli_task is not None and recorded is not None and cli_task != recorded:
        raise CLIError(f"--task {cli_task}: {saved.path} records task {recorded!r}; leave --task out")
    return cli_task or recorded or data_task or head_task(saved.config, saved.path)


# --------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    """``xpnet export CHECKPOINT OUT.safetensors``."""
    from .checkpoint import load_checkpoint
    from .interop import state_to_safetensors

    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"no such checkpoint: {args.checkpoint!r}")
    parent = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"OUT: directory {parent!r} does not exist")
    ck = load_checkpoint(args.checkpoint)
    hp = getattr(ck, "hparams", None) or {}
    meta = {"xpnet_epoch": str(ck.epoch)}
    config = hp.get("model") if isinstance(hp, dict) and isinstance(hp.get("model"), dict) else ck.model_config
    if config is not None:
        meta["xpnet_model"] = config  # the architecture, as JSON
    state_to_safetensors(ck.model_state, args.output, metadata=meta)
    n = sum(int(np.asarray(a).size) for a in ck.model_state.values())
    _out(args, f"xpnet: wrote {args.output} ({len(ck.model_state)} tensors, {n} values, "
               f"torch state_dict names)")
    return 0


# --------------------------------------------------------------------------- eval


def _eval_source(args: argparse.Namespace, hp: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """``(dataset, path, split)`` that ``xpnet eval`` evaluates on."""
    if args.data is not None and args.dataset is not None:
        raise _UsageError("give either a DATASET name or --data PATH, not both "
                          "(see 'xpnet eval --help')")
    if args.data is None and args.dataset is None and not (hp.get("dataset") or hp.get("data")):
        raise _UsageError(f"{args.checkpoint} was not written by 'xpnet train', so it records no "
                          f"dataset: pass one, e.g. 'xpnet eval {args.checkpoint} iris' or "
                          f"'--data PATH'")
    own = args.data is None and args.dataset is None
    if args.data is not None and hp.get("data") and os.path.abspath(args.data) == os.path.abspath(hp["data"]):
        own = True
    if args.dataset is not None and args.dataset == hp.get("dataset"):
        own = True
    dataset = args.dataset if args.dataset is not None else (None if args.data else hp.get("dataset"))
    path = args.data if args.data is not None else (None if args.dataset else hp.get("data"))
    split = args.split or ("test" if own else "all")
    if split != "all" and not own:
        raise CLIError("--split test/train needs the checkpoint's own dataset; use --split all")
    return dataset, path, split


def _class_indices(y: np.ndarray, names: Any, classes: list[Any] | None, where: str) -> np.ndarray:
    """Labels of a file read as class names, renumbered in the checkpoint's class order."""
    if classes is None or names is None:
        return y
    lookup = {str(c): i for i, c in enumerate(classes)}
    unknown = sorted({str(names[int(k)]) for k in np.unique(y)} - set(lookup))
    if unknown:
        raise CLIError(f"{where}: labels {unknown} are not among the model's classes {classes}")
    return np.asarray([lookup[str(names[int(k)])] for k in y], dtype=np.int64)


def _eval_arrays(args: argparse.Namespace, saved: _Saved) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Features, labels, task and split name of the samples ``xpnet eval`` scores."""
    hp = saved.hp
    dataset, path, split = _eval_source(args, hp)
    where = str(path or dataset)
    ds = _load_source(dataset, path, args.task or hp.get("task"))
    X, y, ds_task, _ = _dataset_fields(ds)
    if y is None:
        raise CLIError(f"{where}: the data has no labels or targets to evaluate against")
    task = _task(saved, args.task, ds_task, where)
    _check_finite(X, where)
    if task == "classification":
        y = _class_indices(y, getattr(ds, "target_names", None) if path else None, saved.classes, where)
    y, _ = _prepare_labels(y, task, hp.get("num_classes"), where)
    n_classes = config_out_features(saved.config)
    if task == "classification" and y.size and int(y.max()) >= n_classes:
        raise CLIError(f"{where}: label {int(y.max())} is out of range for a model with "
                       f"{n_classes} classes")
    if split != "all" and hp.get("test_split") == "t10k":
        # The run tested on the directory's t10k files and trained on all of its train files.
        if split == "test":
            test_ds = _load_test_split(dataset, path)
            if test_ds is None:
                raise CLIError(f"{where}: the checkpoint was tested on the t10k files, which "
                               f"are no longer in this directory")
            X, y, _, _ = _dataset_fields(test_ds)
            _check_finite(X, f"{where} (t10k)")
            y, _ = _prepare_labels(y, task, hp.get("num_classes"), f"{where} (t10k)")
    elif split != "all":
        Xtr, Xte, ytr, yte = _split(X, y, hp["test_size"], hp["seed"],
                                    stratify=task == "classification")
        X, y = (Xte, yte) if split == "test" else (Xtr, ytr)
    X = _apply_scaler(X, hp)
    if X.shape[1] != config_in_features(saved.config):
        raise CLIError(f"{where}: the data has {X.shape[1]} features but the model expects "
                       f"{config_in_features(saved.config)}")
    return X, y, task, split


def cmd_eval(args: argparse.Namespace) -> int:
    """``xpnet eval CHECKPOINT [DATASET]``: loss and accuracy of a saved model."""
    saved = _load_saved(args.checkpoint, args.backend, args.device)
    X, y, task, split = _eval_arrays(args, saved)
    dtype = saved.config["dtype"]
    Xb = _to_backend(X, saved.xp, saved.dev, dtype)
    yb = _to_backend(y, saved.xp, saved.dev, None if task == "classification" else dtype)
    loss_fn = _make_loss(task, saved.config.get("output_activation"))
    res = _evaluate(saved.model, loss_fn, Xb, yb, task, args.batch_size)
    out = {"samples": int(len(X)), "split": split, "task": task, "loss": res.get("loss"),
           "accuracy": res.get("accuracy") if task == "classification" else None}
    if args.metrics_json:
        _write_json(args.metrics_json, out)
    if task == "classification":
        print(f"{split} accuracy: {100 * res['accuracy']:.2f}% (loss {res['loss']:.4f}) on "
              f"{len(X)} samples")
    else:
        print(f"{split} loss (MSE): {res['loss']:.6g} on {len(X)} samples")
    return 0


# --------------------------------------------------------------------------- predict


def _predict_inputs(path: str, n_features: int, task: str | None = None) -> np.ndarray:
    """Feature matrix from a prediction file (a trailing label column is dropped), or the
    features of a built-in dataset named instead of a path that does not exist."""
    if not os.path.exists(path):
        from .data import list_datasets, load_dataset

        if path in list_datasets():
            return _dataset_fields(load_dataset(path))[0]
        raise FileNotFoundError(f"--data: no such file or directory: {path!r} (nor a built-in "
                                f"dataset: {', '.join(list_datasets())})")
    if path.endswith(".npy"):
        return _read_npy(path, n_features)
    if path.endswith(".csv"):
        return _read_csv_matrix(path, n_features)
    from . import data as xdata

    kw = {} if os.path.isdir(path) else {"task": task}
    X, y, _, _ = _dataset_fields(xdata.load_file(path, **kw))
    if X.shape[1] == n_features - 1 and y is not None and y.ndim == 1:
        X = np.column_stack([X, y])  # the loader took the last feature column as a label
    return X


def _read_npy(path: str, n_features: int) -> np.ndarray:
    try:
        X = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if "max_header_size" in str(exc) or "Header info length" in str(exc):
            from .data.files import npy_header_problem

            raise CLIError(f"{path}: {npy_header_problem(exc)}") from None
        raise CLIError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf":
        what = type(X).__name__ if not isinstance(X, np.ndarray) else f"dtype {X.dtype}"
        raise CLIError(f"{path}: expected a numeric array, got {what}")
    if X.ndim == 0:
        raise CLIError(f"{path}: holds a single number (a 0-d array); expected samples of "
                       f"{n_features} features, shape (n, {n_features}) or ({n_features},)")
    if X.size == 0:
        raise CLIError(f"{path}: holds no samples (shape {X.shape})")
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(X.shape[0], -1) if X.ndim > 1 else X[None, :]


def _read_csv_matrix(path: str, n_features: int) -> np.ndarray:
    """The feature columns of a CSV file: an optional header row and a trailing label
    column (numbers or class names) are skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh if ln.strip()]
    except UnicodeDecodeError as exc:
        from .data.files import text_decode_problem

        raise CLIError(text_decode_problem(path, exc)) from None
    if not lines:
        raise CLIError(f"{path}: the file is empty")
    delim = ";" if lines[0].count(";") > lines[0].count(",") else ","
    rows = []
    for i, ln in enumerate(lines):
        cells = [c.strip() for c in ln.split(delim)]
        if len(cells) == n_features + 1:
            cells = cells[:n_features]  # features followed by a label column
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            if i == 0:
                continue  # header
            raise CLIError(f"{path}:{i + 1}: non-numeric value in {ln!r}") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise CLIError(f"{path}: rows have different numbers of columns")
    return np.asarray(rows, dtype=np.float64)


def _predictions(saved: _Saved, X: np.ndarray, task: str, batch_size: int,
                 proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(predictions, probabilities or None)`` on the host; class labels for classifiers."""
    from . import _backend
    from .training import predict

    dtype = saved.config["dtype"]
    out = _backend.to_numpy(predict(saved.model, _to_backend(X, saved.xp, saved.dev, dtype),
                                    batch_size=batch_size)).astype(np.float64)
    if task != "classification":
        return (out[:, 0] if out.shape[1] == 1 else out), None
    pred = out.argmax(axis=1).astype(np.int64)
    if saved.classes is not None:
        pred = np.asarray(saved.classes)[pred]  # the labels the training file used
    if not proba:
        return pred, None
    e = np.exp(out - out.max(axis=1, keepdims=True))
    return pred, e / e.sum(axis=1, keepdims=True)


def _cell(v: Any) -> str:
    if isinstance(v, (np.floating, float)):
        return f"{float(v):.6g}"
    return str(v.item() if isinstance(v, np.generic) else v)


def _print_predictions(pred: np.ndarray, proba: np.ndarray | None) -> None:
    for i, p in enumerate(pred):
        extra = "" if proba is None else " " + " ".join(f"{v:.4f}" for v in proba[i])
        print(" ".join(_cell(v) for v in np.atleast_1d(p)) + extra)


def _write_predictions(path: str, pred: np.ndarray, proba: np.ndarray | None) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"--output: directory {parent!r} does not exist")
    if path.endswith(".npy"):
        if proba is not None and pred.dtype.kind not in "biuf":
            raise CLIError(f"--output {path!r}: class names and --proba do not fit in one .npy "
                           f"array; write a .csv, or leave out --proba")
        np.save(path, pred if proba is None else np.column_stack([pred, proba]))
    elif path.endswith(".csv"):
        table = pred.reshape(len(pred), -1)
        cols = ["prediction"] if pred.ndim == 1 else [f"prediction_{j}" for j in range(table.shape[1])]
        if proba is not None:
            cols += [f"p{j}" for j in range(proba.shape[1])]
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(",".join(cols) + "\n")
            for i in range(len(table)):
                cells = [str(v.item()) if v.dtype.kind in "iuU" else repr(float(v)) for v in table[i]]
                cells += [] if proba is None else [repr(float(v)) for v in proba[i]]
                fh.write(",".join(cells) + "\n")
    else:
        raise CLIError(f"--output {path!r}: expected a .csv or .npy file name")


def cmd_predict(args: argparse.Namespace) -> int:
    """``xpnet predict CHECKPOINT --data PATH``: class labels or values for new inputs."""
    saved = _load_saved(args.checkpoint, args.backend, args.device)
    task = _task(saved, args.task, None, args.checkpoint)
    dtype = saved.config["dtype"]
    n_features = config_in_features(saved.config)
    X = _predict_inputs(args.data, n_features, task)
    _check_finite(X, args.data)
    X = _apply_scaler(X, saved.hp)
    with np.errstate(over="ignore"):
        _check_finite(X.astype(dtype), f"{args.data} (standardized, in {dtype})")
    if X.shape[1] != n_features:
        raise CLIError(f"{args.data}: the data has {X.shape[1]} features but the model expects "
                       f"{n_features}")
    pred, proba = _predictions(saved, X, task, args.batch_size, args.proba)
    if args.output is None:
        _print_predictions(pred, proba)
        return 0
    _write_predictions(args.output, pred, proba)
    _out(args, f"xpnet: wrote {len(pred)} predictions to {args.output}")
    return 0
