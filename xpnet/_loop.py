"""One training epoch, phase by phase: the steps, the epoch's host sync, validation.

:func:`xpnet.fit` checks its arguments and data, arranges the callbacks, and then runs
:class:`EpochRunner` once per epoch. Each phase is one method, so the hot step loop
(:meth:`EpochRunner.run_steps`) reads at a glance and the once-per-epoch work (the
transfer of every step's loss and metrics, validation) stays out of it.

Also here: the small pieces shared with :func:`xpnet.evaluate` (mode save/restore, the
loss-validation switch, size-weighted reductions, the one-transfer host copies).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _backend
from .callbacks import Callback, TrainState
from .module import Module
from .progress import ProgressReporter

Array = Any
MetricFns = Sequence[tuple[str, Callable[[Array, Array], Array]]]


# --------------------------------------------------------------------------- modes and switches


def _modes(model: Module) -> list[tuple[Module, bool]]:
    return [(m, m.training) for m in model.modules()]


def _restore_modes(saved: list[tuple[Module, bool]]) -> None:
    # Per module, so a model with a frozen (eval-mode) submodule comes back exactly as it was.
    # Going back to training mode needs no cache clearing, so the flag alone is restored.
    for m, flag in saved:
        object.__setattr__(m, "training", flag)


def _unvalidated(loss_fn: Any) -> Any:
    """The loss without its own per-call value checks (they sync), for data checked once.

    A shallow copy with ``validate=False``: the caller's loss object is never modified, so
    a loss shared with a callback, another thread or the user's own code keeps checking.
    """
    if not getattr(loss_fn, "validate", False):
        return loss_fn
    quiet = copy.copy(loss_fn)
    quiet.validate = False
    return quiet


# --------------------------------------------------------------------------- reductions and transfers


def _metric_value(fn: Any, row: np.ndarray, sizes: np.ndarray, total: int) -> float:
    """Epoch / dataset value of a metric from its per-batch host values."""
    if getattr(fn, "counted", False):
        # Counts are whole numbers, exact in the float32 log below 2**24 per batch.
        return float(np.sum(row)) / total
    return float(np.dot(row, sizes) / total)


def _current_lr(optimizer: Any) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        return None
    lr = groups[0].get("lr")
    return None if lr is None else float(lr)


def _reduce(loss_fn: Any, values: np.ndarray, sizes: np.ndarray, total: int) -> float:
    """Dataset loss from batch losses: what the loss would give on all samples at once.

    A "mean" loss averages per batch, so batches are weighted by their size; a "sum" loss
    is summed.
    """
    if getattr(loss_fn, "reduction", "mean") == "sum":
        return float(np.sum(values))
    return float(np.dot(values, sizes) / total)


def _stack_host(xp: Any, rows: list[list[Any]]) -> np.ndarray:
    """Bring lists of 0-d device arrays to the host in a single transfer: (len(rows), S)."""
    # A common floating dtype: integer counts (exact accuracies) are whole numbers that a
    # float dtype holds exactly, while casting a float metric to int would truncate it.
    vals = [v for row in rows for v in row]
    dt = next((v.dtype for v in vals if xp.isdtype(v.dtype, "real floating")), vals[0].dtype)
    flat = [v if v.dtype == dt else xp.astype(v, dt) for row in rows for v in row]
    host = _backend.to_numpy(xp.stack(flat)).astype(np.float64)
    return host.reshape(len(rows), -1)


def _exact_int_limit(xp: Any, dtype: Any) -> float:
    """Largest n such that every integer in [0, n] is exact in floating ``dtype``."""
    return 2.0 / float(xp.finfo(dtype).eps)


def _totals_host(xp: Any, totals: Sequence[Any]) -> list[np.ndarray]:
    """Running device totals (0-d integer arrays, or None) as 1-element float64 host rows."""
    if not totals:
        return []
    if any(t is None for t in totals):  # an epoch without steps
        return [np.zeros(1) for _ in totals]
    vals = list(totals)
    dt = vals[0].dtype
    vals = [v if v.dtype == dt else xp.astype(v, dt) for v in vals]
    host = _backend.to_numpy(xp.stack(vals)).astype(np.float64)
    return [host[k : k + 1] for k in range(len(vals))]


class _StepLog:
    """Per-step 0-d device values (loss, metrics) of one epoch, kept on the device.

    Values are appended as they come (no sync). Every ``_CHUNK`` steps the pending 0-d
    arrays are stacked into one 1-D device array, so a long epoch (batch size 1 on
    MNIST is 60 000 steps) holds a few hundred arrays instead of one per step.
    :meth:`host` copies a range of steps of every row to the host in one transfer.
    """

    _CHUNK = 1024

    def __init__(self, xp: Any, rows: int) -> None:
        self.xp = xp
        self.rows = rows
        self.dtype: Any = None
        self.chunks: list[list[Any]] = [[] for _ in range(rows)]  # 1-D arrays
        self.pending: list[list[Any]] = [[] for _ in range(rows)]  # 0-d arrays
        self.count = 0

    def append(self, values: Sequence[Any]) -> None:
        if self.dtype is None:
            self.dtype = values[0].dtype
        for r, v in enumerate(values):
            self.pending[r].append(v if v.dtype == self.dtype else self.xp.astype(v, self.dtype))
        self.count += 1
        if len(self.pending[0]) >= self._CHUNK:
            for r in range(self.rows):
                self.chunks[r].append(self.xp.stack(self.pending[r]))
                self.pending[r] = []

    def host(self, start: int = 0, extra: Sequence[Any] = ()) -> np.ndarray:
        """Steps ``start ..`` of every row as a float64 host array ``(rows, steps)``; one sync.

        ``extra`` 0-d arrays (the counted metrics' epoch totals) travel in the same
        transfer when they are exact in the log's dtype; they come back as one more
        column-less tail: ``(table, extra_values)`` is returned then.
        """
        xp = self.xp
        per_row = []
        for r in range(self.rows):
            parts = list(self.chunks[r])
            if self.pending[r]:
                parts.append(xp.stack(self.pending[r]))
            row = parts[0] if len(parts) == 1 else xp.concat(parts)
            per_row.append(row[start:] if start else row)
        both = per_row[0] if self.rows == 1 else xp.reshape(xp.stack(per_row), (-1,))
        if extra:
            tail = xp.stack([v if v.dtype == self.dtype else xp.astype(v, self.dtype) for v in extra])
            both = xp.concat([both, tail])
        flat = _backend.to_numpy(both).astype(np.float64)
        if extra:
            k = len(extra)
            return flat[:-k].reshape(self.rows, -1), flat[-k:]
        return flat.reshape(self.rows, -1)


def evaluate_pass(
    model: Module,
    loss_fn: Any,
    X: Any,
    y: Any,
    *,
    xp: Any,
    batch_size: int,
    metric_fns: MetricFns,
) -> dict[str, float]:
    """Eval-mode pass over (X, y) in order; one host sync at the end."""
    n = int(X.shape[0])
    saved = _modes(model)
    losses: list[Any] = []
    mvals: list[list[Any]] = [[] for _ in metric_fns]
    sizes: list[int] = []
    try:
        model.eval()
        loss_fn = _unvalidated(loss_fn)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            xb, yb = X[start:stop, ...], y[start:stop, ...]
            out = model(xb)
            if loss_fn is not None:
                losses.append(loss_fn(out, yb)[0])
            for j, (_, fn) in enumerate(metric_fns):
                mvals[j].append(fn(out, yb))
            sizes.append(stop - start)
    finally:
        _restore_modes(saved)
    rows = ([losses] if loss_fn is not None else []) + mvals
    result: dict[str, float] = {}
    if not rows:
        return result
    host = _stack_host(xp, rows)
    w = np.asarray(sizes, dtype=np.float64)
    i = 0
    if loss_fn is not None:
        result["loss"] = _reduce(loss_fn, host[0], w, n)
        i = 1
    for j, (name, fn) in enumerate(metric_fns):
        result[name] = _metric_value(fn, host[i + j], w, n)
    return result


# --------------------------------------------------------------------------- one epoch


@dataclass
class _EpochLog:
    """What the steps of one epoch leave on the device, read once at its end."""

    steplog: _StepLog
    totals: list[Any]  # running 0-d integer totals of the counted metrics (accuracy)
    sizes: list[int] = field(default_factory=list)


class EpochRunner:
    """Runs epochs of :func:`xpnet.fit`: the steps, the epoch's sync, validation, callbacks.

    Parameters
    ----------
    model, loss_fn, optimizer, loader
        What :func:`xpnet.fit` was given (``loader`` yields ``(xb, yb)`` batches).
    xp
        The data's namespace.
    metric_fns
        ``(name, fn)`` pairs; counted metrics (``fn.counted``) accumulate exact integer
        totals on the device, the others log one 0-d value per step.
    callbacks
        Every callback in call order (the guard, the scheduler, the user's, the History).
    state
        The :class:`~xpnet.callbacks.TrainState` shared with the callbacks.
    progress
        The progress reporter.
    log_every
        Report the running loss every this many steps (one sync each), or None.
    validation
        ``(X_val, y_val)`` or None, and ``validation_batch_size``.
    sync
        A :class:`xpnet.distributed.DataParallel` when several processes train together:
        it sums the gradients before each optimizer step and the logged values at the
        epoch's end. None for one process.
    """

    def __init__(
        self,
        model: Module,
        loss_fn: Any,
        optimizer: Any,
        loader: Any,
        *,
        xp: Any,
        metric_fns: MetricFns,
        callbacks: Sequence[Callback],
        state: TrainState,
        progress: ProgressReporter,
        log_every: int | None,
        validation: tuple[Any, Any] | None,
        validation_batch_size: int,
        sync: Any = None,
    ) -> None:
        self.model, self.loss_fn, self.optimizer, self.loader = model, loss_fn, optimizer, loader
        self.xp = xp
        self.metric_fns = list(metric_fns)
        self.callbacks = list(callbacks)
        self.state = state
        self.progress = progress
        self.log_every = log_every
        self.validation = validation
        self.validation_batch_size = validation_batch_size
        self.sync = sync  # data-parallel (xpnet.distributed.DataParallel) or None
        self.counted = [(n, f) for n, f in self.metric_fns if getattr(f, "counted", False)]
        self.plain = [(n, f) for n, f in self.metric_fns if not getattr(f, "counted", False)]
        self.batch_begin = self._hooks("on_batch_begin")
        self.batch_end = self._hooks("on_batch_end")

    def _hooks(self, name: str) -> list[Callable[..., None]]:
        """Bound hooks of the callbacks that override ``name`` (the others cost nothing)."""
        base = getattr(Callback, name)
        return [getattr(cb, name) for cb in self.callbacks if getattr(type(cb), name) is not base]

    # ------------------------------------------------------------------ the epoch

    def run_epoch(self, epoch: int) -> tuple[dict[str, Any], bool]:
        """One epoch: steps, sync, validation, ``on_epoch_end``. Returns ``(logs, stopped)``.

        ``stopped`` is True when a batch callback asked to stop in the middle of the epoch.
        """
        state = self.state
        state.epoch = epoch
        state.batch_losses = None
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})
        self.progress.epoch_begin(epoch)
        lr = _current_lr(self.optimizer)
        t0 = time.perf_counter()
        log = _EpochLog(_StepLog(self.xp, 1 + len(self.plain)), [None] * len(self.counted))
        stopped = self.run_steps(log)
        logs = self.epoch_logs(log)
        if self.validation is not None:
            logs.update(self.validation_logs(logs))
        logs["lr"] = lr
        logs["time"] = time.perf_counter() - t0
        self.progress.epoch_end(epoch, logs)
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        return logs, stopped

    def run_steps(self, log: _EpochLog) -> bool:
        """The epoch's training steps; per-step values stay on the device. True if stopped."""
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        counted, plain, totals, sizes = self.counted, self.plain, log.totals, log.sizes
        batch_begin, batch_end = self.batch_begin, self.batch_end
        per_batch = bool(batch_begin or batch_end)
        live = self.progress.mode != "silent"  # the per-step progress call does nothing when silent
        log_every, logged = self.log_every, 0
        sync = self.sync
        model.train()
        for step, (xb, yb) in enumerate(self.loader):
            if per_batch:
                for h in batch_begin:
                    h(step, {})
                model.train()  # a batch hook may have switched modes
            out = model(xb)
            loss, dy = loss_fn(out, yb)
            # Metrics read the output before backward, which may reuse buffers.
            for k, (_, fn) in enumerate(counted):
                c = fn(out, yb)
                totals[k] = c if totals[k] is None else totals[k] + c
            log.steplog.append([loss, *[fn(out, yb) for _, fn in plain]] if plain else (loss,))
            model.zero_grad()
            # dL/d(input) is never used here: backward_params skips computing it.
            model.backward_params(dy)
            if sync is not None:
                sync.reduce_gradients(step, xb.shape[0])  # the one collective of the step
            optimizer.step()
            sizes.append(xb.shape[0])
            if log_every is not None and (step + 1) % log_every == 0:
                logged = self._report_running_loss(log, logged, step + 1)
            elif live:
                self.progress.step(step + 1)
            if per_batch:
                self.state.global_step += 1  # hooks may read it
            if batch_end:
                for h in batch_end:
                    h(step, {"loss": loss, "size": sizes[-1]})
                stop = any(cb.stop_training for cb in self.callbacks)
                if sync is not None:
                    stop = sync.agree_to_stop(stop)  # every rank leaves the loop together
                if stop:
                    return True
        if not per_batch:
            self.state.global_step += len(sizes)
        return False

    def _report_running_loss(self, log: _EpochLog, logged: int, done: int) -> int:
        """The ``log_every`` report: the mean loss of the steps since the last one (a sync)."""
        part = log.steplog.host(logged)[0]
        w_part = np.asarray(log.sizes[logged:done], dtype=np.float64)
        if self.sync is not None:
            part, _, w_part = self.sync.reduce_logs(part[None, :], [], w_part)
            part = part[0]
        self.progress.step(done, _reduce(self.loss_fn, part, w_part, int(w_part.sum())))
        return done

    def epoch_logs(self, log: _EpochLog) -> dict[str, Any]:
        """The epoch's sync: every step's loss and per-batch metric in one transfer.

        The counted metrics' totals share that transfer when they are exact in the log's
        dtype (up to 2**24 samples for float32), else they take a second one.
        """
        xp, totals = self.xp, log.totals
        w = np.asarray(log.sizes, dtype=np.float64)
        seen = int(w.sum())
        if totals and log.sizes and seen <= _exact_int_limit(xp, log.steplog.dtype):
            host, tail = log.steplog.host(extra=totals)
            counts = [tail[k : k + 1] for k in range(len(totals))]
        else:
            host = log.steplog.host()
            counts = _totals_host(xp, totals)
        if self.sync is not None:  # every rank's shard values -> the global batches'
            host, counts, w = self.sync.reduce_logs(host, counts, w)
            seen = int(w.sum())
        self.state.batch_losses = host[0]
        logs: dict[str, Any] = {"loss": _reduce(self.loss_fn, host[0], w, seen)}
        c = p = 0
        for name, fn in self.metric_fns:
            if getattr(fn, "counted", False):
                logs[name] = _metric_value(fn, counts[c], w, seen)
                c += 1
            else:
                logs[name] = _metric_value(fn, host[1 + p], w, seen)
                p += 1
        logs["max_batch_loss"] = float(np.max(host[0]))
        return logs

    def validation_logs(self, logs: dict[str, Any]) -> dict[str, float]:
        """``val_*`` values of the epoch; NaN without a pass when the training loss diverged."""
        if math.isfinite(logs["loss"]):
            Xv, yv = self.validation
            val = evaluate_pass(self.model, self.loss_fn, Xv, yv, xp=self.xp,
                                batch_size=self.validation_batch_size, metric_fns=self.metric_fns)
        else:  # diverged: the weights are garbage, do not spend a pass on them
            val = {"loss": math.nan, **{name: math.nan for name, _ in self.metric_fns}}
        return {f"val_{k}": v for k, v in val.items()}
