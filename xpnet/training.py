"""The training loop: :func:`fit`, :func:`evaluate` and :func:`predict`.

One training step is the lecture's loop, written out::

    model.train()
    out = model(xb)                  # forward, storing what backward needs
    loss, dy = loss_fn(out, yb)      # loss (0-d array) and dL/d(out)
    model.zero_grad()
    model.backward(dy)               # δ recursion, accumulating each Parameter.grad
    optimizer.step()

What reaches the host, and when
-------------------------------
A host synchronisation (``float(loss)``, ``to_numpy``) waits for the device to finish
everything queued so far; doing one per step serialises a GPU with Python. ``fit`` keeps
every per-step value on the device and syncs:

* once per dataset at entry, to validate values (finite inputs, labels in range);
* once per epoch, for the losses and metrics of all its steps (stacked into one array);
* once per validation pass;
* once per ``log_every`` steps, only when ``log_every`` is given;
* when callbacks ask for it (``NaNGuard``, on by default, copies the weights to the host
  once per epoch; ``EarlyStopping(restore_best_weights=True)`` on each improvement).

See ``docs/training.md`` for the full semantics (resume, callbacks, metrics).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import _backend, _log
from ._loop import EpochRunner, _modes, _restore_modes, _unvalidated, evaluate_pass
from .callbacks import (
    Callback,
    EarlyStopping,
    History,
    LRSchedulerCallback,
    NaNGuard,
    NonFiniteLossError,
    TrainState,
)
from .distributed.data_parallel import data_parallel_for
from .layers import Embedding, Sequential
from .metrics import accuracy, binary_accuracy, counting_form, get_metric, metric_name
from .module import Module
from .progress import ProgressReporter, resolve_mode
from .random import resolve_generator

__all__ = ["fit", "evaluate", "predict", "History"]

Array = Any
LossFn = Callable[[Array, Array], tuple[Array, Array]]


# --------------------------------------------------------------------------- loss kinds


def _loss_kind(loss_fn: Any) -> str | None:
    """``"ce"``, ``"bce"``, ``"bce_logits"`` or None (regression / unknown)."""
    names = {c.__name__ for c in type(loss_fn).__mro__}
    if "CrossEntropyLoss" in names:
        return "ce"
    if "BCEWithLogitsLoss" in names:
        return "bce_logits"
    if "BCELoss" in names:
        return "bce"
    return None


def _resolve_metrics(metrics: Any, loss_fn: Any) -> list[tuple[str, Callable[[Array, Array], Array]]]:
    kind = _loss_kind(loss_fn)
    if metrics == "auto":
        metrics = ("accuracy",) if kind is not None else ()
    if metrics is None:
        metrics = ()
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    out: list[tuple[str, Callable[[Array, Array], Array]]] = []
    for m in metrics:
        fn = get_metric(m)
        # Accuracy of a logit output thresholds at 0, not 0.5: take it from the loss.
        if kind == "bce_logits" and fn in (accuracy, binary_accuracy):
            fn = functools.partial(fn, from_logits=True)
        name = metric_name(m)
        if name in ("loss", "lr", "time") or name in [n for n, _ in out]:
            raise ValueError(f"fit: metric name {name!r} is reserved or given twice")
        counter = counting_form(fn)
        out.append((name, fn if counter is None else _Counted(counter)))
    return out


class _Counted:
    """A "fraction correct" metric accumulated as exact per-batch integer counts.

    Each batch contributes its number of correct samples (a 0-d integer array, no sync);
    the epoch value is ``sum(counts) / samples`` computed on the host in float64, so it is
    the exact ratio rather than a float32 mean of float32 batch means.
    """

    counted = True

    def __init__(self, count_fn: Callable[[Array, Array], Array]) -> None:
        self.count_fn = count_fn

    def __call__(self, output: Array, target: Array) -> Array:
        return self.count_fn(output, target)


# --------------------------------------------------------------------------- validation


def _first_param(model: Module) -> Any:
    return next(iter(model.parameters()), None)


def _check_arrays(model: Module, X: Any, y: Any | None, *, who: str, what: str) -> Any:
    """Free checks (types, shapes, backend, device, dtype). Returns ``xp``."""
    pre = f"{what} " if what else ""
    for label, a in (("X", X), ("y", y)):
        if a is not None and not _backend.is_array(a):
            raise TypeError(
                f"{who}: {pre}{label} must be an array (numpy, torch, cupy, "
                f"array_api_strict, ...), got {type(a).__module__}.{type(a).__qualname__}. "
                f"Hint: xpnet.asarray(data, backend=..., dtype='float32')"
            )
    xp = _backend.namespace_of(X, y) if y is not None else _backend.namespace_of(X)
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"{who}: {pre}X must have at least one sample, got shape {tuple(X.shape)}")
    p = _first_param(model)
    if not xp.isdtype(X.dtype, "real floating"):
        if _index_layer(model) is None or not xp.isdtype(X.dtype, "integral"):
            raise TypeError(
                f"{who}: {pre}X must be floating point (integer indices only for a model whose "
                f"first layer is an Embedding), got dtype {_backend.dtype_name(X.dtype)}. "
                f"Hint: xpnet.asarray(X, dtype='float32') (or the model's dtype)"
            )
        if p is not None and _backend.device_of(X) != _backend.device_of(p.data):
            _backend.namespace_of(X, p.data)  # mixed backends: TypeError naming both
            raise ValueError(
                f"{who}: {pre}X is on device {_backend.device_of(X)!r} but the parameters are on "
                f"{_backend.device_of(p.data)!r}. Hint: move the indices to the model's device"
            )
    elif p is not None:
        # Raises TypeError (backend, dtype) or ValueError (device) with a hint.
        _backend.check_same_backend(X, p.data, who=f"{who} ({pre}X vs the model)")
    if y is None:
        return xp
    if y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{who}: {pre}X and y must have the same number of samples, got X "
            f"{tuple(X.shape)} and y {tuple(y.shape)}"
        )
    if _backend.device_of(y) != _backend.device_of(X):
        raise ValueError(
            f"{who}: {pre}X is on device {_backend.device_of(X)!r} but y is on "
            f"{_backend.device_of(y)!r}. Hint: move y to X's device"
        )
    return xp


def _check_targets(model: Module, loss_fn: Any, X: Any, y: Any, *, xp: Any, who: str, what: str) -> Any:
    """Free target checks and a one-sample probe through the model and loss; returns its output."""
    pre = f"{what} " if what else ""
    kind = _loss_kind(loss_fn)
    integral = xp.isdtype(y.dtype, "integral") or xp.isdtype(y.dtype, "bool")
    if integral and kind == "ce" and y.ndim != 1:
        raise ValueError(
            f"{who}: {pre}integer class labels must have shape (N,), got {tuple(y.shape)}. "
            f"Hint: one-hot targets must be floating point"
        )
    p = _first_param(model)
    fdt = X.dtype if p is None or xp.isdtype(X.dtype, "real floating") else p.data.dtype
    if not integral and y.dtype != fdt:
        raise TypeError(
            f"{who}: {pre}y has dtype {_backend.dtype_name(y.dtype)} but X (and the model) "
            f"use {_backend.dtype_name(fdt)}. Hint: xpnet.asarray(y, dtype="
            f"{_backend.dtype_name(fdt)!r})"
        )
    # A one-sample forward in eval mode gives the output shape (the number of classes)
    # and lets the loss's own shape checks fail here rather than in the middle of an epoch.
    saved = _modes(model)
    try:
        model.eval()
        out = model(X[:1, ...])
        if loss_fn is not None:
            _unvalidated(loss_fn)(out, y[:1, ...])
    finally:
        _restore_modes(saved)
    return out


def _validate_values(
    model: Module, loss_fn: Any, X: Any, y: Any, out: Any, *, xp: Any, who: str, what: str
) -> None:
    """Value checks that need the data (finite, label range): one host sync per dataset."""
    pre = f"{what} " if what else ""
    kind = _loss_kind(loss_fn)
    integral = xp.isdtype(y.dtype, "integral") or xp.isdtype(y.dtype, "bool")
    fdt = out.dtype
    if xp.isdtype(X.dtype, "integral"):
        _index_layer(model).check_indices(X)  # indices in range: its own one sync
        parts = [xp.ones((), dtype=fdt, device=_backend.device_of(out))]
    else:
        parts = [xp.astype(xp.all(xp.isfinite(X)), fdt)]
    if not xp.isdtype(y.dtype, "bool"):
        if not integral:
            parts.append(xp.astype(xp.all(xp.isfinite(y)), fdt))
        parts += [xp.astype(xp.min(y), fdt), xp.astype(xp.max(y), fdt)]
    host = _backend.to_numpy(xp.stack(parts))  # the one sync for this dataset
    if host[0] != 1.0:
        rows = np.flatnonzero(~np.all(np.isfinite(_backend.to_numpy(X).reshape(X.shape[0], -1)), axis=1))
        raise ValueError(
            f"{who}: {pre}X contains NaN or infinite values ({rows.size} samples, first at "
            f"index {int(rows[0]) if rows.size else '?'}). Hint: drop or impute them before training"
        )
    if xp.isdtype(y.dtype, "bool"):
        return
    if not integral and host[1] != 1.0:
        rows = np.flatnonzero(~np.all(np.isfinite(_backend.to_numpy(y).reshape(y.shape[0], -1)), axis=1))
        raise ValueError(
            f"{who}: {pre}y contains NaN or infinite values ({rows.size} samples, first at "
            f"index {int(rows[0]) if rows.size else '?'}). Hint: drop those samples"
        )
    lo, hi = float(host[-2]), float(host[-1])
    if integral and kind == "ce":
        n_classes = out.shape[-1] if out.ndim >= 2 else 1
        ignore = getattr(loss_fn, "ignore_index", None)
        if lo < 0 and ignore is not None and lo == ignore:
            raise ValueError(
                f"{who}: {pre}y contains the ignore_index label {ignore}; fit does not train on "
                f"ignored samples yet (its metrics would count them). Hint: drop them, "
                f"X, y = X[y != {ignore}], y[y != {ignore}], or call the loss directly"
            )
        if lo < 0 or hi >= n_classes:
            raise ValueError(
                f"{who}: {pre}class labels must be in [0, {n_classes}) for a model with "
                f"{n_classes} outputs, got labels from {lo:g} to {hi:g}. Hint: remap the "
                f"labels to 0..{n_classes - 1} or widen the output layer"
            )
    if kind in ("bce", "bce_logits") and (lo < 0.0 or hi > 1.0):
        raise ValueError(
            f"{who}: {pre}{type(loss_fn).__name__} targets must be in [0, 1], got values "
            f"from {lo:g} to {hi:g}"
        )


def _validate_dataset(
    model: Module, loss_fn: Any, X: Any, y: Any | None, *, who: str, what: str, values: bool
) -> Any:
    pre = f"{what} " if what else ""
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(
            f"{who}: loss_fn must be a loss object, got {type(loss_fn).__name__} {loss_fn!r}. "
            f"Hint: pass an instance such as xpnet.losses.CrossEntropyLoss() or MSELoss()"
        )
    if y is None:
        raise TypeError(
            f"{who}: {pre}targets y are required, got None. Hint: predict(model, X) needs no targets"
        )
    xp = _check_arrays(model, X, y, who=who, what=what)
    out = _check_targets(model, loss_fn, X, y, xp=xp, who=who, what=what)
    if values:
        _validate_values(model, loss_fn, X, y, out, xp=xp, who=who, what=what)
    return xp


# --------------------------------------------------------------------------- helpers


def _index_layer(model: Module) -> Any:
    """The Embedding that takes the model's input, if its first layer is one, else None."""
    m = model
    while True:
        if isinstance(m, Embedding):
            return m
        children = list(m.children()) if isinstance(m, Sequential) else []
        if not children:
            return None
        m = children[0]


@contextlib.contextmanager
def _indices_checked(model: Module, checked: bool) -> Any:
    """Turn off the Embeddings' per-call index check (a host sync per batch) while fit
    trains on indices it has already checked once at entry; restore it afterwards."""
    quiet = [m for m in model.modules() if isinstance(m, Embedding) and m.validate] if checked else []
    for m in quiet:
        m.validate = False
    try:
        yield
    finally:
        for m in quiet:
            m.validate = True


def _host_cast(model: Module, a: Any, who: str) -> Any:
    """float64 NumPy data for a float32 model, cast on the host (once per call, with a note
    once per process), as Keras and scikit-learn do; anything else is returned unchanged.

    Integer class labels are never cast: only float64 arrays are.
    """
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        return a
    p = _first_param(model) if isinstance(model, Module) else None
    if p is None or _backend.dtype_name(p.data.dtype) != "float32":
        return a
    _log.info_once("float64-input", (
        f"xpnet: {who}: casting float64 NumPy input to float32, the model's dtype (noted once; "
        f"pass float32 arrays to skip the copy, or model.to(dtype='float64') to train in float64)"))
    return a.astype(np.float32)


def _host_cast_all(model: Module, X: Any, y: Any, validation_data: Any, who: str) -> tuple[Any, Any, Any]:
    """:func:`_host_cast` of the training data and of a validation pair."""
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        validation_data = tuple(_host_cast(model, a, who) for a in validation_data)
    return _host_cast(model, X, who), _host_cast(model, y, who), validation_data


def _check_int(value: Any, name: str, *, minimum: int, who: str = "fit") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- public API


def evaluate(
    model: Module,
    loss_fn: LossFn | None,
    X: Array,
    y: Array,
    *,
    batch_size: int = 256,
    metrics: Iterable[str | Callable[[Array, Array], Array]] = (),
    validate_data: bool = True,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``(X, y)``, in eval mode.

    Parameters
    ----------
    model
        The model; put in eval mode for the pass, its previous mode restored afterwards.
        No gradient, stored forward pass or optimizer state is touched.
    loss_fn
        ``loss_fn(output, target) -> (loss, grad)``; ``None`` for metrics only.
    X, y
        Inputs and targets on the model's backend and device.
    batch_size
        Samples per forward pass (only memory and rounding depend on it).
    metrics
        Names from :data:`xpnet.metrics.METRICS` or callables (see :mod:`xpnet.metrics`).
    validate_data
        Check the data once (finite, labels in range; one host sync) before the pass.

    Returns
    -------
    dict
        ``{"loss": float, <metric>: float, ...}``: the loss over the whole dataset (as the
        loss's ``reduction`` would give on one big batch) and size-weighted metric means.
        One host sync for all of them.
    """
    who = "evaluate"
    batch_size = _check_int(batch_size, "batch_size", minimum=1, who=who)
    X, y, _ = _host_cast_all(model, X, y, None, who)
    xp = _validate_dataset(model, loss_fn, X, y, who=who, what="", values=validate_data)
    metric_fns = _resolve_metrics(metrics, loss_fn)
    return evaluate_pass(model, loss_fn, X, y, xp=xp, batch_size=batch_size, metric_fns=metric_fns)


def predict(model: Module, X: Array, *, batch_size: int = 256) -> Array:
    """Model outputs for ``X`` in eval mode, concatenated over batches.

    Parameters
    ----------
    model
        The model; eval mode during the pass, previous mode restored afterwards.
    X
        Inputs on the model's backend and device.
    batch_size
        Samples per forward pass.

    Returns
    -------
    array
        Shape ``(N, ...)`` in ``X``'s namespace, on its device, in the model's dtype.
        Nothing is copied to the host.
    """
    batch_size = _check_int(batch_size, "batch_size", minimum=1, who="predict")
    X = _host_cast(model, X, "predict")
    xp = _check_arrays(model, X, None, who="predict", what="")
    n = int(X.shape[0])
    saved = _modes(model)
    try:
        model.eval()
        outs = [model(X[s : min(s + batch_size, n), ...]) for s in range(0, n, batch_size)]
    finally:
        _restore_modes(saved)
    return outs[0] if len(outs) == 1 else xp.concat(outs, axis=0)


def fit(
    model: Module,
    loss_fn: LossFn,
    optimizer: Any,
    X: Array,
    y: Array,
    *,
    epochs: int,
    batch_size: int = 32,
    validation_data: tuple[Array, Array] | None = None,
    validation_split: float = 0.0,
    metrics: str | Iterable[str | Callable[[Array, Array], Array]] = "auto",
    callbacks: Iterable[Callback] = (),
    scheduler: Any = None,
    shuffle: bool = True,
    drop_last: bool = False,
    generator: np.random.Generator | int | None = None,
    verbose: int | bool | str = "auto",
    log_every: int | None = None,
    initial_epoch: int = 0,
    validate_data: bool = True,
    nan_guard: bool = True,
    validation_batch_size: int = 256,
    distributed: bool | str = "auto",
) -> History:
    """Train ``model`` on ``(X, y)`` with mini-batch gradient descent.

    Parameters
    ----------
    model
        A :class:`~xpnet.Module` on the data's backend, device and dtype.
    loss_fn
        ``loss_fn(output, target) -> (loss, grad)`` (``xpnet.losses``). Its
        ``validate`` switch is turned off during ``fit`` (the data is checked once at
        entry instead) and restored afterwards.
    optimizer
        An ``xpnet.optim`` optimizer over ``model.parameters()``.
    X, y
        Training inputs ``(N, ...)`` and targets ``(N, ...)`` on the model's backend and
        device: float inputs of the model's dtype; integer class labels or float targets.
    epochs
        **Total** number of epochs: training runs epochs ``initial_epoch + 1 .. epochs``
        (1-based numbers, as printed; the hooks get indices ``initial_epoch .. epochs-1``).
    batch_size
        Samples per step.
    validation_data
        ``(X_val, y_val)``, evaluated in eval mode after each epoch (``val_*`` keys).
    validation_split
        Fraction of ``(X, y)`` (``0 <= f < 1``, Keras's name) held out of training and
        used as the validation data, instead of ``validation_data``. Unlike Keras, which
        takes the last samples, the split is drawn at random and is the same on every
        backend and every call: seeded by ``generator`` when that is an int, else by 0
        (a Generator passed as ``generator`` is not advanced by it). Integer class labels
        ``(N,)`` are split stratified (each class keeps its proportion in both parts), as
        :func:`xpnet.data.train_test_split` does with ``stratify=True``.
    metrics
        Metric names or callables (:mod:`xpnet.metrics`). ``"auto"`` (default):
        ``("accuracy",)`` for ``CrossEntropyLoss``, ``BCELoss`` and
        ``BCEWithLogitsLoss`` (accuracy then thresholds logits at 0), none otherwise.
    callbacks
        :class:`~xpnet.callbacks.Callback` instances, called in order.
    scheduler
        A learning-rate scheduler stepped once at the end of every epoch, before the
        user's callbacks (so a checkpoint saves the stepped state); a
        ``ReduceLROnPlateau`` receives ``val_loss`` when validating, else ``loss``.
    shuffle
        Visit the samples in a new order every epoch (via :class:`xpnet.data.DataLoader`).
    drop_last
        Skip a last, smaller batch.
    generator
        Shuffling order: a ``numpy.random.Generator`` (advanced by one
        ``permutation(N)`` per epoch; restore its state to resume), an int seed (a
        fresh generator, fast-forwarded past ``initial_epoch`` epochs so a resumed run
        with the same seed sees the same orders), or None (the generator of
        :func:`xpnet.manual_seed`).
    verbose
        ``"auto"``/1: a progress bar on a terminal, one line per epoch otherwise;
        2: one line per epoch; 0: silent.
    log_every
        Also report the running loss every this many steps (one host sync each); None
        reports once per epoch.
    initial_epoch
        Number of epochs already done when resuming (a checkpoint's ``epoch``): with
        ``epochs=4`` and ``initial_epoch=2`` epochs 3 and 4 run (callback hooks get their
        0-based indices 2 and 3).
    validate_data
        Check the data's values once at entry (finite inputs, class labels in range;
        one host sync per dataset). Shapes, backend, device and dtype are always checked.
    nan_guard
        Add a :class:`~xpnet.callbacks.NaNGuard` unless ``callbacks`` has one: on a
        non-finite epoch loss restore the last good weights and raise
        :class:`~xpnet.callbacks.NonFiniteLossError`.
    validation_batch_size
        Batch size of the validation pass.
    distributed
        ``"auto"`` (default): data-parallel when this process is one of several launched
        together (``mpiexec -n N``; see :mod:`xpnet.distributed`), ``batch_size`` then
        being the global batch; ``True``: the data-parallel path even on one process;
        ``False``: this process trains alone. See ``docs/distributed.md``.

    Returns
    -------
    History
        ``history.history["loss"]``, ``["val_loss"]``, each metric and ``"val_<metric>"``,
        ``"lr"`` (the rate used in the epoch), ``"time"`` (seconds), ``"max_batch_loss"``;
        ``history.epoch`` lists the numbers of the epochs run, 1-based as on screen
        (``[3, 4]`` for ``initial_epoch=2, epochs=4``).

    Raises
    ------
    TypeError, ValueError
        Bad data (namespace, device, dtype, shapes, non-finite values, labels out of range)
        or arguments, before any step.
    NonFiniteLossError
        The loss diverged (with ``nan_guard``); ``exc.history`` holds the completed epochs.

    Notes
    -----
    Per step the loss and metric values stay on the device as 0-d arrays; at the end of
    the epoch they are stacked and copied to the host in one transfer, from which the
    epoch's loss (size-weighted mean of the batch losses), metrics, the largest batch
    loss and, on divergence, the first non-finite step are computed.
    """
    epochs = _check_int(epochs, "epochs", minimum=0)
    initial_epoch = _check_int(initial_epoch, "initial_epoch", minimum=0)
    batch_size = _check_int(batch_size, "batch_size", minimum=1)
    validation_batch_size = _check_int(validation_batch_size, "validation_batch_size", minimum=1)
    if log_every is not None:
        log_every = _check_int(log_every, "log_every", minimum=1)
    callbacks = _check_fit_objects(model, optimizer, callbacks, loss_fn)
    dp = data_parallel_for(distributed, model, loss_fn, batch_size)
    mode = resolve_mode(verbose) if dp is None or dp.is_main else "silent"
    X, y, validation_data = _host_cast_all(model, X, y, validation_data, "fit")
    X, y, validation_data = _split_validation(X, y, validation_split, validation_data, generator)
    xp, validation_data = _check_fit_data(model, loss_fn, X, y, validation_data, validate_data)
    metric_fns = _resolve_metrics(metrics, loss_fn)
    loader, gen = _train_loader(X, y, batch_size, shuffle, drop_last, generator, initial_epoch, dp)
    if dp is not None:
        callbacks = dp.callbacks(callbacks)  # files are written by rank 0 only
        dp.sync_model(model)

    history = History()
    all_cbs = _arrange_callbacks(callbacks, nan_guard=nan_guard, scheduler=scheduler, history=history)
    state = TrainState(epoch=initial_epoch, global_step=initial_epoch * len(loader),
                       scheduler=scheduler, generator=gen, loss_fn=loss_fn)
    params = {
        "epochs": epochs,
        "initial_epoch": initial_epoch,
        "steps": len(loader),
        "batch_size": batch_size,
        "samples": int(X.shape[0]),
        "do_validation": validation_data is not None,
        "metrics": [name for name, _ in metric_fns],
        "shuffle": bool(shuffle),
        "world_size": 1 if dp is None else dp.world,
    }
    for cb in all_cbs:
        cb.set_context(model=model, optimizer=optimizer, params=params, state=state)
    progress = ProgressReporter(mode, epochs=epochs, steps=len(loader))
    if dp is not None:
        progress.message(dp.describe(xp))
    runner = EpochRunner(
        model, loss_fn, optimizer, loader, xp=xp, metric_fns=metric_fns, callbacks=all_cbs,
        state=state, progress=progress, log_every=log_every, validation=validation_data,
        validation_batch_size=validation_batch_size, sync=dp,
    )
    with _indices_checked(model, validate_data):
        return _train(runner, history, range(initial_epoch, epochs))


# --------------------------------------------------------------------------- fit's phases


def _check_fit_objects(model: Any, optimizer: Any, callbacks: Iterable[Any], loss_fn: Any) -> list[Callback]:
    """Type checks of what fit was given besides the data; returns the callbacks as a list."""
    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be an xpnet.Module, got {type(model).__name__}")
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction not in ("mean", "sum"):
        raise ValueError(
            f"fit: the loss must reduce to one number per batch (reduction='mean' or 'sum'), got "
            f"{type(loss_fn).__name__}(reduction={reduction!r}). Hint: {type(loss_fn).__name__}() "
            f"trains on the batch mean; reduction='none' is for per-sample losses outside fit"
        )
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"fit: optimizer must have a step() method, got {type(optimizer).__name__}")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"fit: callbacks must be xpnet.callbacks.Callback instances, got {type(cb).__name__}"
            )
    return callbacks


def _split_validation(
    X: Any, y: Any, fraction: Any, validation_data: Any, generator: Any
) -> tuple[Any, Any, Any]:
    """``validation_split``: ``(X_train, y_train, (X_val, y_val))``, or the inputs unchanged."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not (
        0.0 <= float(fraction) < 1.0
    ):
        raise ValueError(f"fit: validation_split must be a fraction in [0, 1), got {fraction!r}")
    if float(fraction) == 0.0:
        return X, y, validation_data
    if validation_data is not None:
        raise ValueError("fit: pass validation_data or validation_split, not both")
    from .data.preprocessing import train_test_split

    for label, a in (("X", X), ("y", y)):
        if not _backend.is_array(a) or a.ndim < 1:
            raise TypeError(f"fit: validation_split needs arrays with a sample axis; {label} is not")
    n = int(X.shape[0])
    n_val = int(np.ceil(float(fraction) * n))
    if not 1 <= n_val <= n - 1:
        raise ValueError(
            f"fit: validation_split={fraction!r} of {n} samples leaves {n_val} for validation "
            f"and {n - n_val} for training; both need at least one"
        )
    xp = _backend.namespace_of(y)
    # Stratify integer class labels (one host copy of y); float targets are split plainly.
    stratify = y.ndim == 1 and xp.isdtype(y.dtype, "integral")
    if stratify:  # a class with a single sample cannot be on both sides: split plainly
        stratify = bool(np.unique(_backend.to_numpy(y), return_counts=True)[1].min() >= 2)
    seed = generator if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool) else 0
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=n_val, seed=int(seed), stratify=stratify)
    return Xtr, ytr, (Xva, yva)


def _check_fit_data(
    model: Module, loss_fn: Any, X: Any, y: Any, validation_data: Any, values: bool
) -> tuple[Any, tuple[Any, Any] | None]:
    """Validate the training and validation data; returns ``(xp, validation pair or None)``."""
    who = "fit"
    xp = _validate_dataset(model, loss_fn, X, y, who=who, what="training", values=values)
    if validation_data is None:
        return xp, None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(
            f"fit: validation_data must be a pair (X_val, y_val), got {type(validation_data).__name__}"
        )
    Xv, yv = validation_data
    _validate_dataset(model, loss_fn, Xv, yv, who=who, what="validation", values=values)
    if _backend.namespace_of(Xv) is not xp or _backend.device_of(Xv) != _backend.device_of(X):
        raise ValueError("fit: validation_data must be on the training data's backend and device")
    return xp, (Xv, yv)


def _train_loader(
    X: Any, y: Any, batch_size: int, shuffle: bool, drop_last: bool, generator: Any,
    initial_epoch: int, dp: Any = None,
) -> tuple[Any, np.random.Generator | None]:
    """The epoch's batches: a seeded host-side order, fast-forwarded when resuming from a seed.

    With ``dp`` (data-parallel) the same order on every rank, each taking its shard.
    """
    from .data import DataLoader  # lazy: data sits above training in the dependency graph

    n = int(X.shape[0])
    gen: np.random.Generator | None = None
    if shuffle:
        gen = resolve_generator(generator)
        if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
            # A seed names the whole run: skip the orders of the epochs already done.
            for _ in range(initial_epoch):
                gen.permutation(n)
    # The data's values were checked by fit (or the caller opted out): no second sync.
    make = DataLoader if dp is None else dp.loader
    loader = make(X, y, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                  generator=gen, validate=False)
    if len(loader) == 0:
        raise ValueError(
            f"fit: drop_last=True with batch_size={batch_size} > {n} samples leaves no batch"
        )
    return loader, gen


def _arrange_callbacks(
    callbacks: list[Callback], *, nan_guard: bool, scheduler: Any, history: History
) -> list[Callback]:
    """Every callback in the order fit calls them at an epoch's end.

    NaNGuard first, so no other callback (a checkpoint) sees bad weights; then the
    scheduler, so a checkpoint saves the state the next epoch starts from; then the user's
    callbacks; the History last, to record what they added.
    """
    guards = [cb for cb in callbacks if isinstance(cb, NaNGuard)]
    others = [cb for cb in callbacks if not isinstance(cb, NaNGuard)]
    if nan_guard and not guards:
        guards = [NaNGuard()]
    sched_cbs = [] if scheduler is None else [LRSchedulerCallback(scheduler)]
    return [*guards, *sched_cbs, *others, history]


def _note_restores(callbacks: list[Callback], progress: ProgressReporter) -> None:
    """Say which epoch's weights an EarlyStopping put back (1-based, as on screen)."""
    for cb in callbacks:
        if isinstance(cb, EarlyStopping) and cb.restore_best_weights and cb.best_weights is not None:
            progress.message(f"restored the weights of epoch {cb.best_epoch} "
                             f"(best {cb.monitor} {cb.best:.4f})")


def _train(runner: EpochRunner, history: History, epochs: range) -> History:
    """The epoch loop: run epochs until the last one or until a callback stops training."""
    all_cbs, state, progress = runner.callbacks, runner.state, runner.progress
    saved_modes = _modes(runner.model)
    logs: dict[str, Any] = {}
    try:
        runner.loss_fn = _unvalidated(runner.loss_fn)
        for cb in all_cbs:
            cb.on_train_begin({})
        for epoch in epochs:
            logs, stopped = runner.run_epoch(epoch)
            stoppers = [cb for cb in all_cbs if cb.stop_training]
            if stopped or stoppers:
                reason = type(stoppers[0]).__name__ if stoppers else "a callback"
                state.stop_reason = history.stop_reason = reason
                history.stopped_epoch = epoch + 1  # numbers the user sees are 1-based
                progress.message(
                    f"epoch {epoch + 1}/{progress.epochs}: training stopped by {reason}"
                )
                break
        for cb in all_cbs:
            cb.on_train_end(dict(logs))
        _note_restores(all_cbs, progress)
    except NonFiniteLossError as exc:
        exc.history = history
        raise
    finally:
        progress.close()
        _restore_modes(saved_modes)
    return history
