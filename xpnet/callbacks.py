"""Callbacks for :func:`xpnet.training.fit`: hooks into the training loop.

A callback subclasses :class:`Callback` and overrides the hooks it needs. Before training
``fit`` gives every callback its context (``self.model``, ``self.optimizer``,
``self.params`` and ``self.state``, a :class:`TrainState`); a callback asks training to
stop by setting ``self.stop_training = True``.

Hooks and what ``logs`` holds (all host Python numbers unless noted):

``on_train_begin(logs)``
    ``{}``.
``on_epoch_begin(epoch, logs)``
    ``epoch`` is the 0-based epoch index (``initial_epoch`` when resuming); ``logs = {}``.
``on_batch_begin(batch, logs)`` / ``on_batch_end(batch, logs)``
    ``batch`` is the 0-based step inside the epoch; ``on_batch_end`` receives
    ``{"loss": <0-d array on the device>, "size": n}``. The loss is *not* synced: calling
    ``float()`` on it every step stalls a GPU pipeline, so do it only every N steps.
``on_epoch_end(epoch, logs)``
    ``{"loss", <metrics>, "max_batch_loss", "val_loss", "val_<metrics>", "lr", "time"}``
    as floats (validation keys only with ``validation_data``).
``on_train_end(logs)``
    The last epoch's logs; not called when training ends with an exception.

Every hook runs on the host between steps; none of the callbacks here syncs per step.
"""

from __future__ import annotations

import csv
import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import _backend
from .module import Module

__all__ = [
    "Callback",
    "TrainState",
    "History",
    "BestEpoch",
    "EarlyStopping",
    "LossThreshold",
    "ModelCheckpoint",
    "LRSchedulerCallback",
    "NaNGuard",
    "NonFiniteLossError",
    "CSVLogger",
    "host_state_dict",
    "load_host_state_dict",
]

Logs = dict[str, Any]

# Names whose larger values are better; everything else (losses, errors) is minimised.
_MAX_NAMES = ("acc", "accuracy", "binary_accuracy", "auc", "precision", "recall", "f1")


# --------------------------------------------------------------------------- helpers


def host_state_dict(model: Module) -> OrderedDict[str, np.ndarray]:
    """A host (NumPy) *copy* of ``model.state_dict()``: one device sync per parameter.

    The copy is independent of the parameters: NumPy arrays and CPU torch tensors would
    otherwise share memory with a host view, and the optimizer updates in place.
    """
    return OrderedDict(
        (k, np.array(_backend.to_numpy(v), copy=True)) for k, v in model.state_dict().items()
    )


def load_host_state_dict(model: Module, state: Mapping[str, np.ndarray]) -> None:
    """Load a :func:`host_state_dict` copy back, keeping the model's backend and device.

    Copies again, so training after the load never writes into ``state`` (a NumPy model
    would otherwise adopt the stored arrays themselves).
    """
    model.load_state_dict({k: np.array(v, copy=True) for k, v in state.items()})


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    base = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if base in _MAX_NAMES or base.endswith("accuracy") else "min"


def _monitored(logs: Mapping[str, Any] | None, monitor: str, who: str) -> float:
    logs = logs or {}
    if monitor not in logs or logs[monitor] is None:
        hint = (
            "pass validation_data=(X_val, y_val) to fit, or monitor='loss'"
            if monitor.startswith("val_")
            else "monitor one of the logged keys"
        )
        raise ValueError(
            f"{who}: monitored quantity {monitor!r} is not in the epoch logs "
            f"(available: {sorted(logs)}). Hint: {hint}"
        )
    return float(logs[monitor])


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


# --------------------------------------------------------------------------- base


@dataclass
class TrainState:
    """What ``fit`` shares with its callbacks while training.

    Attributes
    ----------
    epoch
        Current 0-based epoch.
    global_step
        Optimizer steps taken in this ``fit`` call, counting from
        ``initial_epoch * steps_per_epoch`` (so it continues across a resume).
    batch_losses
        Host float64 array of this epoch's per-step losses, set just before
        ``on_epoch_end`` (from the epoch's single device sync); ``None`` before.
    scheduler, generator, loss_fn
        The learning-rate scheduler (or None), the shuffling generator (or None) and the
        loss of this ``fit`` call.
    stop_reason
        Set by ``fit`` when a callback stopped training.
    """

    epoch: int = 0
    global_step: int = 0
    batch_losses: np.ndarray | None = None
    scheduler: Any = None
    generator: np.random.Generator | None = None
    loss_fn: Any = None
    stop_reason: str | None = None


class Callback:
    """Base class of training callbacks: override the hooks you need.

    Attributes
    ----------
    model, optimizer
        Set by ``fit`` before ``on_train_begin``.
    params
        ``{"epochs", "initial_epoch", "steps", "batch_size", "samples",
        "do_validation", "metrics"}``.
    state
        The :class:`TrainState` of the running ``fit``.
    stop_training
        Set to True to end training after the current step (from ``on_batch_end``) or
        epoch (from ``on_epoch_end``). ``fit`` resets it to False at the start.
    main_process_only
        Class attribute: True for callbacks that write files (checkpoints, CSV logs),
        which data-parallel ``fit`` runs on rank 0 only (:mod:`xpnet.distributed`).
    """

    main_process_only: bool = False

    def __init__(self) -> None:
        self.model: Module | None = None
        self.optimizer: Any = None
        self.params: dict[str, Any] = {}
        self.state: TrainState | None = None
        self.stop_training = False

    def set_context(
        self,
        *,
        model: Module,
        optimizer: Any = None,
        params: Mapping[str, Any] | None = None,
        state: TrainState | None = None,
    ) -> None:
        """Called by ``fit`` before training: attach the model, optimizer, params and state."""
        self.model = model
        self.optimizer = optimizer
        self.params = dict(params or {})
        self.state = state
        self.stop_training = False

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Start of ``fit``."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Start of epoch ``epoch`` (0-based)."""

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Before step ``batch`` of the epoch."""

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After step ``batch``; ``logs["loss"]`` is an unsynced 0-d device array."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """End of epoch ``epoch`` with the epoch's host-side logs."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """End of ``fit`` (normal completion or a callback's stop)."""


# --------------------------------------------------------------------------- history


class BestEpoch(NamedTuple):
    """Result of :meth:`History.best`: the epoch number (1-based) and its value."""

    epoch: int
    value: float


class History(Callback):
    """Per-epoch record of a training run, returned by ``fit``.

    Attributes
    ----------
    history
        ``{"loss": [...], "val_loss": [...], "accuracy": [...], "lr": [...],
        "time": [...], ...}``: one float per epoch for every numeric key of the epoch
        logs (``None`` where a key was missing in an epoch).
    epoch
        The numbers of the epochs recorded, 1-based as every epoch a user sees (``[1, 2,
        3]``; ``[3, 4]`` for a run resumed with ``initial_epoch=2``). Callback hooks
        receive 0-based indices: epoch number = index + 1.
    params
        The ``fit`` parameters (epochs, batch_size, steps, ...).
    stop_reason
        Name of the callback that stopped training early (``"EarlyStopping"``), else None.
    stopped_epoch
        Number (1-based) of the epoch after which training was stopped early, else None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float | None]] = {}
        self.epoch: list[int] = []
        self.stop_reason: str | None = None
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        n = len(self.epoch)
        self.epoch.append(int(epoch) + 1)
        for k, v in (logs or {}).items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                continue
            # A key first seen in a later epoch is padded so every list aligns with .epoch.
            self.history.setdefault(k, [None] * n).append(float(v))
        for values in self.history.values():
            if len(values) < n + 1:
                values.append(None)

    def best(self, key: str = "val_loss", mode: str = "auto") -> BestEpoch:
        """The epoch with the best value of ``key``: min for losses, max for accuracies.

        Parameters
        ----------
        key
            A recorded key (default ``"val_loss"``).
        mode
            ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).

        Returns
        -------
        BestEpoch
            ``(epoch, value)``; ties go to the earliest epoch; NaN never wins.

        Raises
        ------
        KeyError
            ``key`` was not recorded.
        ValueError
            No finite value was recorded.
        """
        if key not in self.history:
            raise KeyError(f"History.best: {key!r} not recorded; recorded keys: {sorted(self.history)}")
        mode = _resolve_mode(mode, key, "History.best")
        best: BestEpoch | None = None
        for ep, v in zip(self.epoch, self.history[key]):
            if v is None or not math.isfinite(v):
                continue
            if best is None or (v < best.value if mode == "min" else v > best.value):
                best = BestEpoch(ep, v)
        if best is None:
            raise ValueError(f"History.best: no finite value of {key!r} was recorded")
        return best

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: ``{"epoch", "history", "params", "stop_reason", "stopped_epoch",
        "epoch_base"}`` (``epoch_base`` 1: the epoch numbers are 1-based)."""
        params = {
            k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool, list, type(None)))
        }
        return {
            "epoch": list(self.epoch),
            "history": {k: list(v) for k, v in self.history.items()},
            "params": params,
            "stop_reason": self.stop_reason,
            "stopped_epoch": self.stopped_epoch,
            "epoch_base": 1,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a History from :meth:`to_dict` output (e.g. read back from JSON)."""
        h = cls()
        # Dicts written before epochs were numbered from 1 have no "epoch_base": 0-based.
        shift = 1 - int(data.get("epoch_base", 0))
        h.epoch = [int(e) + shift for e in data.get("epoch", [])]
        h.history = {k: [None if v is None else float(v) for v in vals] for k, vals in data.get("history", {}).items()}
        h.params = dict(data.get("params", {}))
        h.stop_reason = data.get("stop_reason")
        stopped = data.get("stopped_epoch")
        h.stopped_epoch = None if stopped is None else int(stopped) + shift
        return h

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


# --------------------------------------------------------------------------- stopping


class EarlyStopping(Callback):
    """Stop when a monitored quantity has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor
        Epoch-log key to watch (default ``"val_loss"``; needs ``validation_data``).
    patience
        Epochs without improvement to tolerate; training stops at the ``patience``-th
        epoch in a row that does not improve (0 stops at the first).
    min_delta
        An improvement must beat the best value by more than this.
    mode
        ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names, else min).
    restore_best_weights
        Keep a host copy of the weights of the best epoch (one sync per improvement)
        and load them back through ``model.load_state_dict`` when training ends, whether
        it stopped early or ran all epochs.
    baseline
        Training also counts as not improving while the value has not beaten this.

    Attributes
    ----------
    best, best_epoch
        Best value seen and the number (1-based) of its epoch.
    stopped_epoch
        Number (1-based) of the epoch after which it stopped training, else None.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        baseline: float | None = None,
    ) -> None:
        super().__init__()
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.restore_best_weights = bool(restore_best_weights)
        self.baseline = baseline
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.baseline is not None:
            self.best = float(self.baseline)
        self.best_epoch: int | None = None
        self.best_weights: OrderedDict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, int(epoch) + 1, 0
            if self.restore_best_weights and self.model is not None:
                self.best_weights = host_state_dict(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = int(epoch) + 1
            self.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.model is not None:
            load_host_state_dict(self.model, self.best_weights)


class LossThreshold(Callback):
    """Stop as soon as a monitored loss falls below ``threshold``.

    The lecture's "train until the loss is below 0.04" criterion.

    Parameters
    ----------
    threshold
        Stop when ``logs[monitor] < threshold``.
    monitor
        ``"loss"`` (the epoch's mean training loss, default), ``"val_loss"``, or
        ``"max_batch_loss"``: the largest single-step loss of the epoch. With
        ``batch_size=1`` that is "every sample's loss is below the threshold", measured
        as each sample was visited (online learning, as in the lecture).

    Attributes
    ----------
    stopped_epoch
        Number (1-based) of the epoch in which the threshold was reached, else None.
    """

    def __init__(self, threshold: float, monitor: str = "loss") -> None:
        super().__init__()
        if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ValueError(f"LossThreshold: threshold must be a finite number, got {threshold!r}")
        self.threshold = float(threshold)
        self.monitor = monitor
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if _monitored(logs, self.monitor, "LossThreshold") < self.threshold:
            self.stopped_epoch = int(epoch) + 1
            self.stop_training = True


# --------------------------------------------------------------------------- NaN guard


class NonFiniteLossError(FloatingPointError):
    """Training diverged (non-finite loss, validation loss or weights); the model holds its last good weights.

    Attributes
    ----------
    epoch
        Number (1-based) of the epoch in which it happened.
    step
        0-based step inside that epoch of the first non-finite batch loss (None if
        unknown, or when only the validation loss or the weights were non-finite).
    loss
        The non-finite value (training or validation loss); for ``reason == "weights"``
        the epoch's (finite) training loss.
    restored_epoch
        The weights now in the model are those from the start of this epoch (1-based;
        i.e. after ``restored_epoch - 1`` completed epochs), or None when no finite state
        was available and nothing was restored.
    reason
        What was found non-finite: ``"loss"``, ``"val_loss"`` or ``"weights"``.
    names
        For ``reason == "weights"``, the state-dict names holding NaN or inf (else ``[]``).
    history
        The :class:`History` of the epochs that completed (attached by ``fit``).
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: int,
        step: int | None,
        loss: float,
        restored_epoch: int | None,
        reason: str = "loss",
        names: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.loss = loss
        self.restored_epoch = restored_epoch
        self.reason = reason
        self.names = list(names or [])
        self.history: History | None = None


def _nonfinite_names(state: Mapping[str, np.ndarray]) -> list[str]:
    """Names of the float/complex arrays in ``state`` that hold NaN or inf."""
    return [k for k, a in state.items() if a.dtype.kind in "fc" and not np.all(np.isfinite(a))]


class NaNGuard(Callback):
    """Stop when training diverges, restore the last good weights, raise.

    On by default in ``fit`` (``nan_guard=True``); pass your own instance in
    ``callbacks`` to keep a reference. At the end of every epoch it checks three things,
    in this order: the epoch's training loss, the validation loss (when ``fit`` validates)
    and the weights themselves (parameters and buffers). Checking the weights needs one
    host copy of them per epoch (one sync per parameter, never per step), which is also
    the copy the guard keeps: when everything is finite it becomes the "last good" state
    (the weights at the start of the next epoch). Before the first epoch one more copy
    is taken the same way. When anything is NaN or ±inf, the guard loads the last good
    copy back into the model and raises :class:`NonFiniteLossError` naming the epoch,
    what diverged and, for the training loss, the first step whose batch loss was not
    finite. ``fit`` puts the guard before every other callback, so a
    :class:`ModelCheckpoint` never sees the diverged weights.

    A finite training loss does not prove finite weights: the loss of a step is computed
    before that step's update, so one huge update (``lr=1e300``) leaves weights that are
    all inf or NaN after an epoch whose loss was finite. That is why the weights are
    checked directly.

    Only the weights are restored: optimizer state (momentum, Adam moments) may hold
    non-finite values; rebuild the optimizer, or reload a checkpoint, before retrying
    with a smaller learning rate.
    """

    def __init__(self) -> None:
        super().__init__()
        self.good_state: OrderedDict[str, np.ndarray] | None = None
        self.good_epoch: int | None = None
        # The epoch whose start the last end-of-epoch copy describes (skips a second copy).
        self._copied_for: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.good_state = None
        self.good_epoch = None
        self._copied_for = None

    def _snapshot(self, epoch: int) -> list[str]:
        """Copy the weights; keep them as the good state of ``epoch``'s start when finite."""
        snap = host_state_dict(self.model)
        bad = _nonfinite_names(snap)
        if not bad:
            self.good_state, self.good_epoch = snap, int(epoch)
        self._copied_for = int(epoch)
        return bad

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        if self.model is None or self._copied_for == int(epoch):
            return
        self._snapshot(epoch)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        loss = float(logs.get("loss", math.nan))
        reason, names, value = None, [], loss
        if not math.isfinite(loss):
            reason = "loss"
        elif "val_loss" in logs and not math.isfinite(float(logs["val_loss"])):
            reason, value = "val_loss", float(logs["val_loss"])
        elif self.model is not None:
            # The one host copy of the epoch: checks the weights and, when finite,
            # becomes the good state for the start of the next epoch.
            names = self._snapshot(epoch + 1)
            if names:
                reason = "weights"
        if reason is None:
            return
        self.stop_training = True
        step = None
        losses = self.state.batch_losses if self.state is not None and reason == "loss" else None
        if losses is not None:
            bad = np.flatnonzero(~np.isfinite(losses))
            step = int(bad[0]) if bad.size else None
        restored = None
        if self.good_state is not None and self.model is not None:
            load_host_state_dict(self.model, self.good_state)
            restored = self.good_epoch
        epochs = self.params.get("epochs")
        steps = self.params.get("steps")
        where = f"epoch {epoch + 1}" + (f"/{epochs}" if epochs else "")
        at = "" if step is None else f", first at step {step + 1}" + (f"/{steps}" if steps else "") + f" (index {step})"
        what = (
            f"restored the weights from the start of epoch {restored + 1}"
            if restored is not None
            else "no finite weights were available to restore"
        )
        if reason == "loss":
            head = f"training loss became {loss} in {where}{at}"
        elif reason == "val_loss":
            head = f"validation loss became {value} in {where} (training loss {loss:.6g})"
        else:
            shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            head = f"the weights {shown} hold NaN or inf after {where} (training loss {loss:.6g})"
        raise NonFiniteLossError(
            f"fit: {head}; {what}. Hint: lower the "
            f"learning rate, clip gradients (xpnet.clip), check the inputs are scaled, or "
            f"use a numerically stable loss (BCEWithLogitsLoss, CrossEntropyLoss on logits)",
            epoch=int(epoch) + 1,
            step=step,
            loss=value,
            restored_epoch=None if restored is None else restored + 1,
            reason=reason,
            names=names,
        )


# --------------------------------------------------------------------------- LR, checkpoints, CSV


def _is_plateau(scheduler: Any) -> bool:
    try:
        from .optim.lr_scheduler import ReduceLROnPlateau
    except ImportError:  # optimizers not installed in this build; fall back to the name
        ReduceLROnPlateau = None  # noqa: N806
    if ReduceLROnPlateau is not None and isinstance(scheduler, ReduceLROnPlateau):
        return True
    return any(c.__name__ == "ReduceLROnPlateau" for c in type(scheduler).__mro__)


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler once at the end of every epoch.

    ``fit(scheduler=...)`` uses this callback. A ``ReduceLROnPlateau`` receives the
    monitored value: ``monitor`` if given, else ``"val_loss"`` when validating, else
    ``"loss"``. Any other scheduler gets ``scheduler.step()``. The History's ``"lr"`` is
    the rate used *during* the epoch, read before this step.
    """

    def __init__(self, scheduler: Any, monitor: str | None = None) -> None:
        super().__init__()
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(
                f"LRSchedulerCallback: expected a scheduler with a step() method, got {type(scheduler).__name__}"
            )
        self.scheduler = scheduler
        self.monitor = monitor

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if _is_plateau(self.scheduler):
            logs = logs or {}
            key = self.monitor or ("val_loss" if "val_loss" in logs else "loss")
            self.scheduler.step(_monitored(logs, key, "LRSchedulerCallback"))
        else:
            self.scheduler.step()


class ModelCheckpoint(Callback):
    """Save a checkpoint at the end of epochs with :func:`xpnet.checkpoint.save_checkpoint`.

    With several processes training together (:mod:`xpnet.distributed`), rank 0 alone
    writes (``main_process_only``).

    Parameters
    ----------
    path
        File path; may contain ``{epoch}`` (1-based, i.e. epochs completed) and log keys,
        e.g. ``"ckpt/e{epoch:03d}-{val_loss:.4f}.npz"``.
    monitor, mode
        The quantity that decides "best" for ``save_best_only`` (mode as EarlyStopping).
    save_best_only
        Save only when ``monitor`` improved (the file is overwritten unless ``path`` is
        templated). Default False: save every epoch.
    save_optimizer
        Include the optimizer, the scheduler (``fit(scheduler=...)``) and the shuffling
        generator's state, so a run resumes bit for bit.
    hparams
        JSON-able hyperparameters stored in the checkpoint's metadata.
    allow_nonfinite
        Passed to :func:`~xpnet.checkpoint.save_checkpoint`: by default a model whose
        weights hold NaN or inf is never written (``CheckpointError`` instead); ``True``
        writes it anyway (to debug a divergence).

    Notes
    -----
    The checkpoint records ``epoch = epoch + 1`` (epochs completed) and the global step.
    Resume with::

        ckpt = load_checkpoint(path, model, optimizer, scheduler)
        xpnet.set_rng_state(ckpt.rng_state, gen)
        fit(..., generator=gen, initial_epoch=ckpt.epoch, epochs=total)

    Attributes
    ----------
    last_path
        Path of the last checkpoint written, else None.
    best
        Best monitored value seen.
    """

    main_process_only = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        save_optimizer: bool = True,
        hparams: Mapping[str, Any] | None = None,
        allow_nonfinite: bool = False,
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.allow_nonfinite = bool(allow_nonfinite)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.save_optimizer = bool(save_optimizer)
        self.hparams = dict(hparams) if hparams is not None else None
        self.best = math.inf if self.mode == "min" else -math.inf
        self.last_path: str | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf

    def _format_path(self, epoch: int, logs: Mapping[str, Any]) -> str:
        if "{" not in self.path:
            return self.path
        try:
            return self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"ModelCheckpoint: cannot fill path template {self.path!r} from epoch and "
                f"logs {sorted(logs)}: {exc}"
            ) from exc

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = dict(logs or {})
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        from .checkpoint import save_checkpoint  # lazy: checkpoint depends on optim
        from .random import get_rng_state

        st = self.state
        gen = st.generator if st is not None else None
        path = self._format_path(epoch, logs)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        save_checkpoint(
            path,
            self.model,
            self.optimizer if self.save_optimizer else None,
            scheduler=(st.scheduler if st is not None and self.save_optimizer else None),
            epoch=int(epoch) + 1,
            step=st.global_step if st is not None else 0,
            rng_state=(get_rng_state(gen) if gen is not None and self.save_optimizer else None),
            hparams=self.hparams,
            metrics=metrics,
            allow_nonfinite=self.allow_nonfinite,
        )
        self.last_path = path


class CSVLogger(Callback):
    """Append one CSV row per epoch: ``epoch`` (1-based) then every numeric log key (rank 0 only).

    Parameters
    ----------
    path
        CSV file; created with a header unless ``append`` and it already exists.
    separator
        Field separator.
    append
        Add to an existing file (for resumed runs) instead of overwriting it.
    """

    main_process_only = True

    def __init__(self, path: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.separator = separator
        self.append = bool(append)
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._keys = None
        if not self.append and os.path.exists(self.path):
            os.remove(self.path)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = [k for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        new_file = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter=self.separator)
            if new_file:
                w.writerow(["epoch", *self._keys])
            w.writerow([int(epoch) + 1, *(repr(float(logs[k])) if logs.get(k) is not None else "" for k in self._keys)])
