"""``xpnet train``: the command's phases, its per-dataset defaults and its checkpoints.

``run(args)`` goes through the phases in order, each a short function: check the
outputs can be written, settle the configuration (command line, checkpoint, defaults),
load and split the data, build the model and optimizer, resume, train with
:func:`xpnet.fit`, then evaluate once and report.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._cli_common import (
    _PATH_DATASETS,
    _VOLATILE,
    DEFAULT_LR,
    CLIError,
    _apply_scaler,
    _check_finite,
    _dataset_fields,
    _evaluate,
    _fit_scaler,
    _history_dict,
    _infer_task,
    _load_source,
    _load_test_split,
    _make_loss,
    _out,
    _prepare_labels,
    _read_meta,
    _resolve_backend,
    _split,
    _to_backend,
    _usable_dtype,
    _UsageError,
    _warn,
    _write_json,
    check_model_size,
    make_optimizer,
)

__all__ = ["run", "DATASET_DEFAULTS", "CNN_DEFAULTS", "SCHEDULERS", "ACTIVATIONS"]

SCHEDULERS = ("none", "cosine", "step")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu", "silu", "softplus", "identity")

# Defaults that train each built-in dataset well in seconds on a laptop CPU. Anything a
# user passes on the command line wins. ``lr`` applies to the dataset's own optimizer;
# another --optimizer without --lr uses DEFAULT_LR.
_GATE = dict(hidden=(8,), activation="tanh", optimizer="adam", lr=0.05, batch_size=4,
             epochs=200, test_size=0.0, val_size=0.0)
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # Measured: 97.8-98.6% test accuracy over split/init seeds 0-4, ~1.5 s on one CPU core.
    "digits": dict(hidden=(256,), activation="relu", optimizer="adam", lr=2e-3, batch_size=32,
                   epochs=20),
    "iris": dict(hidden=(16,), activation="tanh", optimizer="adam", lr=0.01, batch_size=16,
                 epochs=100),
    "breast_cancer": dict(hidden=(32,), activation="relu", optimizer="adam", lr=1e-3,
                          batch_size=32, epochs=40),
    "spirals": dict(hidden=(64, 64), activation="relu", optimizer="adam", lr=0.01, batch_size=32,
                    epochs=100),
    "moons": dict(hidden=(16,), activation="relu", optimizer="adam", lr=0.01, batch_size=32,
                  epochs=100),
    "linear": dict(hidden=(), activation="relu", optimizer="adam", lr=0.05, batch_size=32,
                   epochs=50),
    "sine": dict(hidden=(32,), activation="tanh", optimizer="adam", lr=0.01, batch_size=32,
                 epochs=300),
    "mnist": dict(hidden=(128,), activation="relu", optimizer="adam", lr=1e-3, batch_size=64,
                  epochs=10),
    "fashion_mnist": dict(hidden=(256,), activation="relu", optimizer="adam", lr=1e-3,
                          batch_size=64, epochs=15),
    **{gate: dict(_GATE) for gate in ("xor", "and", "or", "nand", "nor")},
}
_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": dict(hidden=(64,), activation="relu", optimizer="adam", lr=1e-3,
                           batch_size=32, epochs=20),
    "regression": dict(hidden=(64,), activation="tanh", optimizer="adam", lr=1e-3, batch_size=32,
                       epochs=100),
}
_COMMON = dict(test_size=0.2, val_size=0.1, seed=0, weight_decay=0.0, scheduler="none", init="torch",
               dtype="float32", standardize=True, arch="mlp", channels=None)

# --model cnn: a LeNet-style net (xpnet.models.cnn). Its defaults replace the MLP's.
_CNN_COMMON = dict(channels=(32, 64), hidden=(128,), activation="relu", optimizer="adam",
                   lr=1e-3, batch_size=32, epochs=20)
CNN_DEFAULTS: dict[str, dict[str, Any]] = {
    # Measured (docs/layers.md): 98.8% mean test accuracy over seeds 0-4, ~8 s per run.
    # digits trains on the whole training split (--val-size 0): with 10% of its 1437
    # images held out for validation the mean drops to 98.1% (96.9-99.2%).
    "digits": dict(_CNN_COMMON, lr=2e-3, batch_size=64, val_size=0.0),
    "mnist": dict(_CNN_COMMON, batch_size=64, epochs=5),
    "fashion_mnist": dict(_CNN_COMMON, batch_size=64, epochs=10),
}

# Options whose value a checkpoint fixes: resuming with a different one would not continue
# the same run, so it is an error (the others, such as --backend, may change).
_RESUME_FIXED = ("dataset", "data", "hidden", "activation", "init", "optimizer", "lr",
                 "weight_decay", "batch_size", "seed", "test_size", "val_size", "dtype",
                 "scheduler", "standardize", "task", "arch", "channels")
_CLI_FORMAT = 1


#: Image formats --plot accepts (those matplotlib's Agg canvas writes; checked up front).
_PLOT_FALLBACK_FORMATS = ("png", "pdf", "svg")


def _check_plot_path(path: str) -> None:
    """Fail before training when --plot names a format matplotlib cannot write."""
    from .plotting import pyplot

    pyplot()  # ImportError with the install hint when matplotlib is missing
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        formats = tuple(sorted(FigureCanvasAgg.get_supported_filetypes()))
    except Exception:  # noqa: BLE001 - an unusual matplotlib build: the formats every one has
        formats = _PLOT_FALLBACK_FORMATS
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in formats:
        shown = f"'.{ext}'" if ext else "no extension"
        raise _UsageError(
            f"argument --plot: {path!r} has {shown}; expected an image file name ending in "
            f".png, .pdf or .svg (matplotlib also writes "
            f"{', '.join('.' + f for f in formats if f not in _PLOT_FALLBACK_FORMATS)})"
        )


def _make_scheduler(name: str, optimizer: Any, epochs: int) -> Any:
    if name in (None, "none"):
        return None
    from .optim import lr_scheduler

    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    raise CLIError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")


def _train_config(args: argparse.Namespace, hp: dict[str, Any] | None) -> dict[str, Any]:
    """Merge command line, checkpoint hyperparameters and per-dataset defaults."""
    explicit = {k: getattr(args, k) for k in _RESUME_FIXED if getattr(args, k, None) is not None}
    if explicit.get("channels") is not None and (explicit.get("arch") or (hp or {}).get("arch")) != "cnn":
        raise _UsageError("argument --channels: only --model cnn has convolution channels")
    if hp is not None:
        hp = {**hp, "arch": hp.get("arch") or "mlp"}  # checkpoints from before --model: MLPs
        for key, value in explicit.items():
            theirs = hp.get(key)
            mine = list(value) if isinstance(value, tuple) else value
            theirs = list(theirs) if isinstance(theirs, tuple) else theirs
            if mine != theirs:
                flag = {"dataset": "DATASET", "arch": "--model"}.get(key, "--" + key.replace("_", "-"))
                raise CLIError(
                    f"--resume: {flag} {value!r} differs from the checkpoint's {theirs!r}; "
                    f"leave it out to continue the saved run"
                )
        cfg = {k: hp.get(k) for k in _RESUME_FIXED}
        if "val_size" not in hp:  # saved before --val-size existed: it trained on all of it
            cfg["val_size"] = 0.0
        cfg["hidden"] = tuple(cfg["hidden"] or ())
        cfg["channels"] = tuple(cfg["channels"]) if cfg["channels"] else None
        cfg["epochs"] = args.epochs if args.epochs is not None else int(hp.get("epochs", 1))
        return cfg
    if args.data is not None and args.dataset is not None and args.dataset not in _PATH_DATASETS:
        raise _UsageError("give either a DATASET name or --data PATH, not both "
                          "(see 'xpnet train --help')")
    dataset = args.dataset if args.dataset is not None else (None if args.data else "digits")
    cfg: dict[str, Any] = {"dataset": dataset, "data": args.data}
    return {**cfg, **{k: v for k, v in explicit.items() if k not in cfg}, "epochs": args.epochs}


def _fill_defaults(cfg: dict[str, Any], task: str) -> dict[str, Any]:
    base = dict(_COMMON)
    name = cfg.get("dataset")
    base.update(_TASK_DEFAULTS[task])
    if cfg.get("arch") == "cnn":
        base.update(CNN_DEFAULTS.get(name, _CNN_COMMON))
    elif name in DATASET_DEFAULTS:
        base.update(DATASET_DEFAULTS[name])
    out = {**base, **{k: v for k, v in cfg.items() if v is not None},
           "dataset": cfg.get("dataset"), "data": cfg.get("data")}
    if cfg.get("lr") is None and out["optimizer"] != base["optimizer"]:
        out["lr"] = DEFAULT_LR[out["optimizer"]]
    out["task"] = task
    out["hidden"] = tuple(out["hidden"])
    if out["arch"] == "cnn":
        if task != "classification":
            raise CLIError("--model cnn is a classifier; use --model mlp for regression")
        out["channels"] = tuple(out["channels"])
    return out


@dataclass
class _Data:
    """The train and test arrays of a run, on the host, after checks, split and scaling."""

    name: str  # the dataset's name or the file's base name
    where: str  # what error messages call the data
    task: str
    n_features: int
    n_out: int
    image_shape: tuple[int, ...] | None  # (C, H, W) of one image for --model cnn
    Xtr: np.ndarray
    ytr: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    Xva: np.ndarray | None  # the validation split of the training data (None: --val-size 0)
    yva: np.ndarray | None
    has_test: bool
    t10k: bool  # the test set is an MNIST directory's official t10k files
    classes: list[str] | None = None  # a data file's own labels (text, -1/+1), by class index


@dataclass
class _Run:
    """What the train phases build and hand on: config, data, model and its training state."""

    cfg: dict[str, Any]
    hp: dict[str, Any]  # what the checkpoint records
    data: _Data
    xp: Any
    dev: Any
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    loss_fn: Any = None
    generator: Any = None
    start_epoch: int = 0
    stop: int = 0
    prior: dict[str, list[float]] | None = None
    test_arrays: tuple[Any, Any] | None = None  # the test set on the device, for the report
    val_arrays: tuple[Any, Any] | None = None  # the validation split on the device
    early_stop: Any = None  # the EarlyStopping callback of --patience


def run(args: argparse.Namespace) -> int:
    """``xpnet train``: every phase in order; returns the exit status."""
    t0 = time.perf_counter()
    _check_outputs(args)
    world = _join_processes(args)
    xp, dev = _resolve_backend(args.backend, args.device)
    ck = _read_meta(args.resume) if args.resume else None
    hp_in = dict(ck.hparams) if ck is not None else None
    cfg, data = _load_data(args, _train_config(args, hp_in), hp_in, xp, dev)
    _check_global_batch(cfg["batch_size"], world)
    r = _Run(cfg=cfg, hp=_hparams(cfg, data, hp_in), data=data, xp=xp, dev=dev)
    _build(r)
    _resume(args, r, ck)
    _announce(args, r)
    save_cb = (_save_every_epoch(args.save, r.model, r.optimizer, r.scheduler, r.generator,
                                 r.hp, r.prior) if args.save and _is_main() else None)
    try:
        history = _train(args, r, save_cb)
    except KeyboardInterrupt:
        _resume_hint(args, r, save_cb)
        raise
    return _report(args, r, history, save_cb, t0)


def _resume_hint(args: argparse.Namespace, r: _Run, save_cb: Any) -> None:
    """After Ctrl-C: the exact command that continues from the last saved epoch."""
    import shlex

    if not _is_main():
        return
    if save_cb is None or not os.path.exists(args.save):
        _warn("xpnet: interrupted before a checkpoint was saved; pass --save CKPT to be able "
              "to resume an interrupted run")
        return
    done = len(next(iter(save_cb.history.values()), []))
    cmd = ["xpnet", "train", "--resume", args.save, "--epochs", str(r.cfg["epochs"])]
    for flag, value in (("--backend", args.backend), ("--device", args.device),
                        ("--patience", args.patience), ("--log-every", args.log_every),
                        ("--save", args.save),
                        ("--metrics-json", args.metrics_json), ("--plot", args.plot)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.quiet:
        cmd.append("-q")
    _warn(f"xpnet: interrupted; {args.save} holds epoch {done} of {r.cfg['epochs']}. "
          f"Resume with:\n  {shlex.join(cmd)}")


def _join_processes(args: argparse.Namespace) -> int:
    """Under ``mpiexec -n N``: join the other ranks (each CuPy rank on its own GPU); N."""
    from . import distributed

    g = distributed.init("auto")
    if g.size > 1 and args.backend == "cupy" and args.device is None:
        import cupy

        args.device = f"cuda:{g.local_rank % cupy.cuda.runtime.getDeviceCount()}"
    return g.size


def _is_main() -> bool:
    from . import distributed

    return distributed.is_main()


def _check_global_batch(batch_size: int, world: int) -> None:
    """--batch-size is the global batch: it must split evenly over the processes."""
    if batch_size % world:
        raise _UsageError(
            f"argument --batch-size: {batch_size} is the global batch, split over the "
            f"{world} processes of this job (mpiexec -n {world}), so it must be divisible "
            f"by {world}; pass a multiple of {world}"
        )


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before training, not after it, when an output cannot be written."""
    for flag, target in (("--save", args.save), ("--plot", args.plot),
                         ("--metrics-json", args.metrics_json)):
        if target is not None:
            parent = os.path.dirname(os.path.abspath(target))
            if not os.path.isdir(parent):
                raise FileNotFoundError(f"{flag}: directory {parent!r} does not exist")
            _check_writable(flag, target, parent)
    if args.plot is not None:
        _check_plot_path(args.plot)
    if args.stop_after is not None and args.epochs is not None and args.stop_after > args.epochs:
        raise _UsageError(
            f"argument --stop-after: {args.stop_after} is after the last epoch (--epochs "
            f"{args.epochs}); pass a value <= {args.epochs}, or raise --epochs"
        )


def _check_writable(flag: str, target: str, parent: str) -> None:
    """Create and remove a probe file next to ``target``: permissions, read-only mounts."""
    if os.path.isdir(target):
        raise _UsageError(f"argument {flag}: {target!r} is a directory; pass a file path")
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".xpnet-probe-", dir=parent)
    except OSError as exc:
        raise PermissionError(
            exc.errno, f"{flag}: cannot write to directory {parent!r} ({exc.strerror}); "
            f"nothing was trained. Hint: choose a writable directory"
        ) from exc
    os.close(fd)
    os.remove(probe)


def _load_data(
    args: argparse.Namespace, cfg: dict[str, Any], hp_in: dict[str, Any] | None, xp: Any, dev: Any
) -> tuple[dict[str, Any], _Data]:
    """Load, check and split the data; completes ``cfg`` with the task's defaults."""
    ds = _load_source(cfg["dataset"], cfg["data"], cfg.get("task"))
    test_ds = _load_test_split(cfg["dataset"], cfg["data"])
    X, y, ds_task, num_classes = _dataset_fields(ds)
    where = cfg["data"] or cfg["dataset"]
    if y is None:
        raise CLIError(f"{where}: the data has no labels or targets; training needs them")
    if len(X) != len(y):
        raise CLIError(f"{where}: {len(X)} samples but {len(y)} labels")
    if len(X) < 2:
        raise CLIError(f"{where}: need at least 2 samples, got {len(X)}")
    _check_finite(X, where)
    task = cfg.get("task") or _infer_task(y, ds_task)
    cfg = _fill_defaults(cfg, task)
    if args.stop_after is not None and args.stop_after > cfg["epochs"]:
        raise _UsageError(
            f"argument --stop-after: {args.stop_after} is after the last epoch ({cfg['epochs']}"
            f"{'' if args.epochs is not None else ', the default --epochs for ' + str(where)}); "
            f"pass a value <= {cfg['epochs']}, or raise --epochs"
        )
    cfg["dtype"] = _usable_dtype(xp, dev, cfg["dtype"])
    y, n_out = _prepare_labels(y, task, num_classes, where)
    if test_ds is not None:
        # The official t10k files are the test set: no part of the training files is held out.
        Xte, yte_raw, _, _ = _dataset_fields(test_ds)
        twhere = f"{where} (t10k)"
        if Xte.shape[1] != X.shape[1]:
            raise CLIError(f"{twhere}: the test images have {Xte.shape[1]} pixels but the "
                           f"training images {X.shape[1]}")
        _check_finite(Xte, twhere)
        yte, n_te = _prepare_labels(yte_raw, task, num_classes, twhere)
        n_out = max(n_out, n_te)
        Xtr, ytr = X, y
    else:
        Xtr, Xte, ytr, yte = _split(X, y, cfg["test_size"], cfg["seed"],
                                    stratify=task == "classification")
    Xtr, ytr, Xva, yva = _validation_split(Xtr, ytr, cfg["val_size"], cfg["seed"], task, where)
    if hp_in is not None:
        from .models import config_out_features

        n_out = config_out_features(hp_in["model"])
    name = cfg["dataset"] or os.path.basename(cfg["data"])
    image = _image_shape(ds, int(X.shape[1]), str(where)) if cfg["arch"] == "cnn" else None
    data = _Data(name=name, where=str(where), task=task, n_features=int(X.shape[1]), n_out=n_out,
                 image_shape=image,
                 Xtr=Xtr, ytr=ytr, Xte=Xte, yte=yte, Xva=Xva, yva=yva,
                 has_test=test_ds is not None or cfg["test_size"] > 0, t10k=test_ds is not None,
                 classes=_file_classes(ds, cfg, task, hp_in))
    return cfg, data


def _file_classes(ds: Any, cfg: dict[str, Any], task: str, hp_in: dict[str, Any] | None) -> list[str] | None:
    """The labels a --data file wrote for each class (text such as ``setosa``, or -1/+1),
    recorded so that ``xpnet predict`` prints them; None when the labels are the indices."""
    if hp_in is not None:
        return hp_in.get("classes")
    names = getattr(ds, "target_names", None)
    if task != "classification" or not cfg.get("data") or os.path.isdir(cfg["data"]) or not names:
        return None
    return [str(n) for n in names]


def _validation_split(
    X: np.ndarray, y: np.ndarray, val_size: float, seed: int, task: str, where: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Hold ``val_size`` of the training data out for validation (stratified, seeded)."""
    from .data import train_test_split

    if not val_size:
        return X, y, None, None
    n_val = int(np.ceil(val_size * len(X)))
    if not 1 <= n_val <= len(X) - 1:
        raise CLIError(
            f"{where}: --val-size {val_size:g} of the {len(X)} training samples leaves "
            f"{n_val} for validation and {len(X) - n_val} for training; both need at least "
            f"one (pass --val-size 0 to train on all of them)"
        )
    stratify = task == "classification" and int(np.unique(y, return_counts=True)[1].min()) >= 2
    # seed + 1: not the draw that split off the test set, so the two splits are independent.
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=n_val, seed=seed + 1, stratify=stratify)
    return Xtr, ytr, Xva, yva


def _image_shape(ds: Any, n_features: int, where: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of one image: the dataset's ``feature_shape``, else a square guess."""
    shape = tuple(int(s) for s in getattr(ds, "feature_shape", ()) or ())
    if len(shape) == 2 and math.prod(shape) == n_features:
        return (1, *shape)
    if len(shape) == 3 and math.prod(shape) == n_features:
        return shape
    side = math.isqrt(n_features)
    if side * side == n_features and side >= 4:  # a flat square image (a CSV of pixels)
        return (1, side, side)
    raise CLIError(
        f"{where}: --model cnn needs images, but the {n_features} features are not a square "
        f"image; use --model mlp, or load the data as an IDX/MNIST file"
    )


def _hparams(cfg: dict[str, Any], data: _Data, hp_in: dict[str, Any] | None) -> dict[str, Any]:
    """What the checkpoint records: the fixed options, the scaler and the model description."""
    from .models import cnn_config, mlp_config

    if cfg["standardize"]:
        if hp_in is not None:
            mean, scale = hp_in["scaler_mean"], hp_in["scaler_scale"]
        elif cfg["arch"] == "cnn":
            # One mean and scale for every pixel: per-pixel scaling would give border pixels
            # (constant zero in digits and MNIST) a different meaning from central ones,
            # which a convolution, sharing its weights across positions, cannot undo.
            m, sd = float(np.mean(data.Xtr)), float(np.std(data.Xtr))
            mean, scale = [m] * data.n_features, [sd if sd > 0 else 1.0] * data.n_features
        else:
            mean, scale = _fit_scaler(data.Xtr)
    else:
        mean = scale = None
    return {
        "xpnet_cli": _CLI_FORMAT,
        **{k: cfg[k] for k in _RESUME_FIXED},
        "hidden": list(cfg["hidden"]),
        "epochs": cfg["epochs"],
        "n_features": data.n_features,
        "test_split": "t10k" if data.t10k else None,
        "num_classes": data.n_out if data.task == "classification" else None,
        "classes": data.classes,
        "scaler_mean": mean,
        "scaler_scale": scale,
        "channels": list(cfg["channels"]) if cfg["channels"] else None,
        "model": (cnn_config(data.image_shape, data.n_out, cfg["channels"], cfg["hidden"],
                             activation=cfg["activation"], dtype=cfg["dtype"])
                  if cfg["arch"] == "cnn" else
                  mlp_config([data.n_features, *cfg["hidden"], data.n_out], cfg["activation"],
                             dtype=cfg["dtype"], init=cfg["init"])),
    }


def _build(r: _Run) -> None:
    """Model, optimizer, scheduler and loss, with the run's one generator."""
    from .models import mlp, model_from_config

    cfg = r.cfg
    # One generator for the initial weights and then the shuffling: its state after N
    # epochs is what a checkpoint records, so a resumed run draws the same batches.
    r.generator = np.random.default_rng(cfg["seed"])
    if cfg["arch"] == "cnn":
        r.model = model_from_config(r.hp["model"], generator=r.generator)
    else:
        check_model_size(r.hp["model"]["sizes"], cfg["dtype"])
        r.model = mlp(r.hp["model"]["sizes"], cfg["activation"], dtype=cfg["dtype"],
                      generator=r.generator, init=cfg["init"])
    r.model.to(r.xp, device=r.dev)
    r.optimizer = make_optimizer(cfg["optimizer"], r.model.parameters(), cfg["lr"],
                                 cfg["weight_decay"])
    r.scheduler = _make_scheduler(cfg["scheduler"], r.optimizer, cfg["epochs"])
    r.loss_fn = _make_loss(r.data.task)


def _resume(args: argparse.Namespace, r: _Run, ck: Any) -> None:
    """Load the checkpoint's weights, optimizer, scheduler, RNG and history when resuming."""
    r.start_epoch, r.prior = 0, {}
    if ck is not None:
        from .checkpoint import load_checkpoint
        from .random import set_rng_state

        ck = load_checkpoint(args.resume, r.model, r.optimizer, r.scheduler)
        r.start_epoch = int(ck.epoch)
        if ck.rng_state is None:
            raise CLIError(f"{args.resume}: the checkpoint has no RNG state to resume from")
        set_rng_state(ck.rng_state, r.generator)
        r.prior = _history_dict((getattr(ck, "extra", None) or {}).get("history") or {})
        if r.cfg["epochs"] < r.start_epoch:
            raise CLIError(
                f"--resume: the checkpoint is already at epoch {r.start_epoch}; --epochs is the "
                f"total, so pass a value >= {r.start_epoch}"
            )
        if args.stop_after is not None and args.stop_after <= r.start_epoch:
            raise CLIError(
                f"--stop-after {args.stop_after}: the checkpoint is already at epoch "
                f"{r.start_epoch}; pass a value > {r.start_epoch}"
            )
    epochs = r.cfg["epochs"]
    r.stop = epochs if args.stop_after is None else min(args.stop_after, epochs)


def _announce(args: argparse.Namespace, r: _Run) -> None:
    """The run's header lines: data, backend, model and optimizer."""
    from . import _backend

    cfg, d = r.cfg, r.data
    n_val = 0 if d.Xva is None else len(d.Xva)
    _out(args, f"xpnet: {d.name} ({d.task}, {len(d.Xtr)} train / {n_val} validation / "
               f"{len(d.Xte) if d.has_test else 0} test samples, {d.n_features} features) on {_backend.backend_name(r.xp)}:{r.dev}, "
               f"{cfg['dtype']}")
    if d.t10k:
        _out(args, f"xpnet: test set: the official t10k files in {cfg['data']} "
                   f"(--test-size does not apply)")
    mc = r.hp["model"]
    if cfg["arch"] == "cnn":
        arch = (f"cnn {'x'.join(map(str, mc['input_shape']))} conv {'-'.join(map(str, mc['channels']))}"
                f" dense {'-'.join(map(str, [*mc['hidden'], mc['num_classes']]))}")
    else:
        arch = f"mlp {'-'.join(str(s) for s in mc['sizes'])}"
    _out(args, f"xpnet: {arch} {cfg['activation']}, "
               f"{cfg['optimizer']} lr={cfg['lr']:g}, batch {cfg['batch_size']}, "
               f"epochs {r.start_epoch + 1}..{r.stop} of {cfg['epochs']}, seed {cfg['seed']}")


def _device_arrays(r: _Run) -> tuple[Any, Any, Any, Any]:
    """Scaled train and test arrays on the run's backend, device and dtype."""
    d, dtype = r.data, r.cfg["dtype"]
    Xtr = _to_backend(_apply_scaler(d.Xtr, r.hp), r.xp, r.dev, dtype)
    Xte = _to_backend(_apply_scaler(d.Xte, r.hp), r.xp, r.dev, dtype)
    ydt = None if d.task == "classification" else dtype
    if d.Xva is not None:
        r.val_arrays = (_to_backend(_apply_scaler(d.Xva, r.hp), r.xp, r.dev, dtype),
                        _to_backend(d.yva, r.xp, r.dev, ydt))
    return Xtr, _to_backend(d.ytr, r.xp, r.dev, ydt), Xte, _to_backend(d.yte, r.xp, r.dev, ydt)


def _train(args: argparse.Namespace, r: _Run, save_cb: Any) -> dict[str, list[float | None]]:
    """Run :func:`xpnet.fit` for the remaining epochs; the whole history, prior epochs first."""
    history_now: dict[str, list[float]] = {}
    Xtr_b, ytr_b, Xte_b, yte_b = _device_arrays(r)
    r.test_arrays = (Xte_b, yte_b)  # evaluated once, by _report, never during training
    if r.stop > r.start_epoch:
        from .training import fit

        callbacks = [save_cb] if save_cb is not None else []
        if args.patience is not None:
            from .callbacks import EarlyStopping

            r.early_stop = EarlyStopping(
                monitor="val_loss" if r.val_arrays is not None else "loss",
                patience=args.patience, restore_best_weights=True)
            callbacks.append(r.early_stop)
        hist = fit(
            r.model, r.loss_fn, r.optimizer, Xtr_b, ytr_b,
            epochs=r.stop,
            batch_size=r.cfg["batch_size"],
            validation_data=r.val_arrays,
            metrics=("accuracy",) if r.data.task == "classification" else (),
            callbacks=callbacks,
            scheduler=r.scheduler,
            shuffle=True,
            generator=r.generator,
            verbose=0 if args.quiet else 1,
            log_every=args.log_every,
            initial_epoch=r.start_epoch,
        )
        history_now = _history_dict(hist)
        if save_cb is not None and r.early_stop is not None and r.early_stop.best_weights is not None:
            # The best epoch's weights are back in the model (after the last per-epoch save):
            # the checkpoint holds the model that the result line reports.
            save_cb.save(r.start_epoch + len(hist.epoch), save_cb.history,
                         save_cb.state.global_step if save_cb.state is not None else 0)
    prior = r.prior or {}
    n_prior = len(next(iter(prior.values()), []))
    n_now = len(next(iter(history_now.values()), []))
    return {k: prior.get(k, [None] * n_prior) + history_now.get(k, [None] * n_now)
            for k in [*prior, *(k for k in history_now if k not in prior)]}


def _report(args: argparse.Namespace, r: _Run, history: dict[str, list[float | None]],
            save_cb: Any, t0: float) -> int:
    """Evaluate once on the test set; write the metrics file and plot; print the result."""
    from . import _backend

    d = r.data
    Xte_b, yte_b = r.test_arrays
    test = _evaluate(r.model, r.loss_fn, Xte_b, yte_b, d.task, 256)
    val = _evaluate(r.model, r.loss_fn, *r.val_arrays, d.task, 256) if r.val_arrays else {}
    train_loss = history["loss"][-1] if history.get("loss") else None
    seconds = time.perf_counter() - t0
    es = r.early_stop
    # Stopped before the last epoch (EarlyStopping also "stops" when patience runs out on it).
    stopped = es is not None and es.stopped_epoch is not None and es.stopped_epoch < r.stop
    epochs_done = len(history["loss"]) if history.get("loss") else max(r.stop, r.start_epoch)
    result = {
        "dataset": d.name,
        "task": d.task,
        "backend": _backend.backend_name(r.xp),
        "device": str(r.dev),
        "dtype": r.cfg["dtype"],
        "epochs": epochs_done,
        "val_loss": val.get("loss"),
        "val_accuracy": val.get("accuracy") if d.task == "classification" else None,
        "test_loss": test.get("loss"),
        "test_accuracy": test.get("accuracy") if d.task == "classification" else None,
        "train_loss": train_loss,
        "seconds": seconds,
        "test_on_train": not d.has_test,
        "test_split": r.hp["test_split"],
        "val_size": r.cfg["val_size"],
        "stopped_early": stopped,
        "best_epoch": None if es is None else es.best_epoch,
        "world_size": _world_size(),
    }
    if not _is_main():
        return 0  # rank 0 writes the files and prints the result
    if save_cb is not None and r.stop <= r.start_epoch:
        save_cb.save(r.start_epoch, history)  # nothing trained: still write the requested file
    if args.metrics_json:
        _write_json(args.metrics_json, {**result, "history": history})
    if args.plot:
        from .plotting import plot_training

        # The test set in the data's own units: the axes show those, and the model gets
        # them standardized as in training.
        plot_training(history, args.plot, model=r.model, X=d.Xte, y=d.yte, task=d.task,
                      transform=lambda X: _apply_scaler(X, r.hp))
        _out(args, f"xpnet: wrote {args.plot}")
    what = "test" if d.has_test else "train"
    if val:
        if d.task == "classification":
            _out(args, f"validation accuracy: {100 * val['accuracy']:.2f}% (loss {val['loss']:.4f})")
        else:
            _out(args, f"validation loss (MSE): {val['loss']:.6g}")
    if d.task == "classification":
        print(f"{what} accuracy: {100 * test['accuracy']:.2f}% (loss {test['loss']:.4f}) after "
              f"{result['epochs']} epochs in {seconds:.1f} s")
    else:
        print(f"{what} loss (MSE): {test['loss']:.6g} after {result['epochs']} epochs in "
              f"{seconds:.1f} s")
    return 0


def _world_size() -> int:
    from . import distributed

    return distributed.world_size()


def _save_every_epoch(path: str, model: Any, optimizer: Any, scheduler: Any, g: Any,
                      hp: dict[str, Any], prior: dict[str, list[float]]) -> Any:
    """A fit callback that writes the checkpoint (atomically) at the end of every epoch."""
    from .callbacks import Callback

    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"--save: directory {parent!r} does not exist")

    class SaveEachEpoch(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = {k: list(v) for k, v in prior.items()}

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            n = len(next(iter(self.history.values()), []))
            for k, v in (logs or {}).items():
                if k in _VOLATILE or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                self.history.setdefault(k, [None] * n).append(float(v))
            for values in self.history.values():
                if len(values) < n + 1:
                    values.append(None)
            step = self.state.global_step if self.state is not None else 0
            self.save(epoch + 1, self.history, step)

        def save(self, epoch: int, history: dict[str, list[float | None]], step: int = 0) -> None:
            from .checkpoint import save_checkpoint
            from .random import get_rng_state

            # ModelCheckpoint minus templating, plus the whole history (in `extra`),
            # so curves and --metrics-json of a resumed run cover every epoch.
            save_checkpoint(path, model, optimizer, scheduler=scheduler, epoch=epoch,
                            step=step, rng_state=get_rng_state(g), hparams=hp,
                            metrics={k: v[-1] for k, v in history.items() if v},
                            extra={"history": history})

    return SaveEachEpoch()
