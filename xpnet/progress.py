"""Progress reporting for the training loop.

Three modes, chosen by :func:`resolve_mode` from ``fit(verbose=...)``:

``"bar"``
    A progress bar on a terminal (and in a Jupyter notebook): with tqdm installed, a
    ``tqdm.auto`` bar with the step rate, the time left and the running loss, as wide as
    the terminal; without it a plain carriage-return bar
    ``epoch 3/10 [=====>....] 12/40 ...``. Either is redrawn at most every 0.1 s and
    finished by the epoch's summary line.
``"line"``
    One line per epoch, for log files and notebooks' captured output::

        epoch 3/10  loss 0.1234  acc 0.9500  val_loss 0.2000  val_acc 0.9300  lr 0.01  1.2s

    With ``log_every=N`` also one ``step`` line every N steps.
``"silent"``
    Nothing.

Notes besides the display (training stopped early, a data-parallel run's layout) go
through the ``"xpnet"`` logger (:mod:`xpnet._log`), so an application can silence or
redirect them.

The reporter only formats Python numbers it is given: it never touches an array, so it
cannot cause a device synchronisation. The training loop decides when the loss comes to
the host (once per epoch, plus once per ``log_every`` steps when asked).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from . import _log

__all__ = ["ProgressReporter", "resolve_mode", "format_logs", "format_value"]

# Keys shortened in printed lines (the History keeps the full names).
_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc"}
# Keys that are diagnostics, not worth a column in the epoch line.
_HIDDEN = {"time", "lr", "max_batch_loss"}
_BAR_WIDTH = 24
# Redrawing a terminal line costs far more than a tiny training step; 10 Hz looks live.
_MIN_REDRAW_S = 0.1


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (whose stdout is not a terminal, but shows widgets)."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001 - an unusual IPython
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _tqdm_class(stream: TextIO) -> Any:
    """``tqdm.auto.tqdm`` for the notebook's stdout, ``tqdm.tqdm`` elsewhere; None without tqdm."""
    try:
        if stream is sys.stdout and _in_notebook():
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def resolve_mode(verbose: int | bool | str, stream: TextIO | None = None) -> str:
    """Map ``verbose`` to ``"bar"``, ``"line"`` or ``"silent"``.

    Parameters
    ----------
    verbose
        ``0``/``False``: silent. ``"auto"``, ``1`` or ``True``: a bar when ``stream`` is a
        terminal or a notebook's output, else one line per epoch. ``2``: one line per
        epoch always.
    stream
        Output stream; default ``sys.stdout`` (looked up at call time).
    """
    if verbose is False or verbose == 0:
        return "silent"
    if verbose == 2:
        return "line"
    if verbose is True or verbose == 1 or verbose == "auto":
        stream = sys.stdout if stream is None else stream
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError):  # closed or exotic streams
            tty = False
        return "bar" if tty or (stream is sys.stdout and _in_notebook()) else "line"
    raise ValueError(f"verbose must be 0, 1, 2, True, False or 'auto', got {verbose!r}")


def format_value(value: Any) -> str:
    """Four decimals for ordinary magnitudes, scientific notation for tiny or huge ones."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0.0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4f}"
    return f"{v:.3e}"


def format_logs(logs: Mapping[str, Any]) -> str:
    """``loss 0.1234  acc 0.9500  val_loss ...  lr 0.01  1.2s`` from an epoch's logs."""
    parts = []
    keys = [k for k in logs if k not in _HIDDEN]
    # Training values first, then validation values, each in the order they were logged.
    for k in [k for k in keys if not k.startswith("val_")] + [k for k in keys if k.startswith("val_")]:
        parts.append(f"{_SHORT.get(k, k)} {format_value(logs[k])}")
    if "lr" in logs and logs["lr"] is not None:
        parts.append(f"lr {logs['lr']:.3g}")
    if "time" in logs:
        parts.append(f"{logs['time']:.1f}s")
    return "  ".join(parts)


class ProgressReporter:
    """Prints training progress in one of the modes of :func:`resolve_mode`.

    Parameters
    ----------
    mode
        ``"bar"``, ``"line"`` or ``"silent"``.
    epochs
        Total number of epochs (for ``epoch 3/10``).
    steps
        Steps per epoch (for the bar).
    stream
        Where to write; default ``sys.stdout`` at construction time.
    """

    def __init__(self, mode: str, *, epochs: int, steps: int, stream: TextIO | None = None) -> None:
        if mode not in ("bar", "line", "silent"):
            raise ValueError(f"ProgressReporter: mode must be 'bar', 'line' or 'silent', got {mode!r}")
        self.mode = mode
        self.epochs = int(epochs)
        self.steps = int(steps)
        self.stream = sys.stdout if stream is None else stream
        self._epoch = 0
        self._t0 = 0.0
        self._last_draw = -math.inf
        self._last_loss: float | None = None
        self._open_line = False
        self._tqdm_cls = _tqdm_class(self.stream) if mode == "bar" else None
        self._tqdm: Any = None

    # ------------------------------------------------------------------ helpers

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _prefix(self) -> str:
        return f"epoch {self._epoch + 1}/{self.epochs}"

    def _bar(self, step: int) -> str:
        total = max(self.steps, 1)
        frac = min(step / total, 1.0)
        done = int(frac * _BAR_WIDTH)
        arrow = ">" if done < _BAR_WIDTH else ""
        fill = "=" * done + arrow + "." * (_BAR_WIDTH - done - len(arrow))
        text = f"{self._prefix()} [{fill}] {step}/{self.steps}"
        if self._last_loss is not None:
            text += f"  loss {format_value(self._last_loss)}"
        return text + f"  {time.perf_counter() - self._t0:.1f}s"

    # ------------------------------------------------------------------ events

    def epoch_begin(self, epoch: int) -> None:
        """Start an epoch (0-based index)."""
        self._epoch = int(epoch)
        self._t0 = time.perf_counter()
        self._last_loss = None
        self._last_draw = -math.inf
        if self.mode == "bar" and self._tqdm_cls is not None:
            self._close_tqdm()
            self._tqdm = self._tqdm_cls(
                total=self.steps, desc=self._prefix(), unit="step", file=self.stream,
                leave=False, dynamic_ncols=True, mininterval=_MIN_REDRAW_S,
            )
            self._open_line = True
        elif self.mode == "bar":
            self._draw(0, force=True)

    def _close_tqdm(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()  # leave=False: the bar's line is cleared
            self._tqdm = None

    def step(self, step: int, loss: float | None = None) -> None:
        """``step`` steps of this epoch are done; ``loss`` is a host float when just synced.

        Called every step with ``loss=None`` (cheap: the bar redraws at most every 0.1 s)
        and at each ``log_every`` boundary with the interval's mean loss.
        """
        if self.mode == "silent":
            return
        if loss is not None:
            self._last_loss = float(loss)
        if self._tqdm is not None:
            self._tqdm.update(step - self._tqdm.n)
            if loss is not None:  # a log_every boundary: always shown, as the plain bar does
                self._tqdm.set_postfix_str(f"loss {format_value(loss)}", refresh=True)
        elif self.mode == "bar":
            self._draw(step, force=loss is not None)
        elif loss is not None:
            self._write(f"{self._prefix()}  step {step}/{self.steps}  loss {format_value(loss)}\n")

    def _draw(self, step: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < _MIN_REDRAW_S:
            return
        self._last_draw = now
        self._write("\r" + self._bar(step) + "\x1b[K")
        self._open_line = True

    def epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """Print the epoch's summary line (both bar and line modes)."""
        if self.mode == "silent":
            return
        line = f"epoch {int(epoch) + 1}/{self.epochs}  {format_logs(logs)}"
        self._close_tqdm()
        if self.mode == "bar":
            self._write("\r" + line + "\x1b[K\n")
        else:
            self._write(line + "\n")
        self._open_line = False

    def message(self, text: str) -> None:
        """A note (early stop, restored weights) on its own line, through the ``"xpnet"``
        logger (:mod:`xpnet._log`; to this reporter's stream when logging is not set up)."""
        if self.mode == "silent":
            return
        self.close()
        _log.info(text, stream=self.stream)

    def close(self) -> None:
        """End a bar left open by an interrupted epoch so the next output starts a line."""
        self._close_tqdm()
        if self._open_line and self.mode == "bar":
            self._write("\n")
        self._open_line = False
