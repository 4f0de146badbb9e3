"""Training curves and decision boundaries as image files (needs matplotlib).

matplotlib is an optional extra: ``pip install 'xpnet[plot]'``. It is imported only when
a function here is called, with the non-interactive Agg backend, so plotting works on
headless machines and never opens a window.

Every function accepts a model on any backend: inputs for the model are created on the
model's own backend and device, and results come back to the host for drawing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _backend

__all__ = ["plot_history", "plot_decision_boundary", "plot_training", "training_figure",
           "plot_curves", "curve_label", "pyplot"]

_INSTALL_HINT = "plotting needs matplotlib, which is not installed: pip install 'xpnet[plot]'"


def _pyplot() -> Any:
    """Import matplotlib's pyplot on the Agg backend, or raise a clear ImportError."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    # Agg renders to files only; switching is a no-op when pyplot already uses it.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, for figures of your own.

    Raises
    ------
    ImportError
        When matplotlib is not installed, with the install command.
    """
    return _pyplot()


def _history_dict(history: Any) -> dict[str, list[float]]:
    """``{"loss": [...], "val_loss": [...], ...}`` from a History object or a mapping."""
    data = getattr(history, "history", history)
    if not isinstance(data, Mapping):
        raise TypeError(
            f"plot_history: expected a History (from xpnet.fit) or a dict of lists, got "
            f"{type(history).__name__}"
        )
    out = {}
    for key, values in data.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            continue
        try:
            out[str(key)] = [math.nan if v is None else float(v) for v in values]
        except (TypeError, ValueError):
            continue
    return out


def _epochs_of(history: Any, n: int) -> list[int]:
    """x values of the curves: the History's epoch numbers (1-based, as printed), else 1..n."""
    epochs = getattr(history, "epoch", None)
    if isinstance(epochs, Sequence) and len(epochs) == n:
        return [int(e) for e in epochs]
    return list(range(1, n + 1))


# Names of the curves in the legends: what each History key measures.
_CURVE_NAMES = {"loss": "train loss", "val_loss": "validation loss",
                "accuracy": "train accuracy", "val_accuracy": "validation accuracy"}
_NOT_CURVES = ("lr", "epoch", "seconds", "time", "max_batch_loss")


def curve_label(key: str) -> str:
    """Legend text of a History key: ``"val_loss"`` -> ``"validation loss"``."""
    if key in _CURVE_NAMES:
        return _CURVE_NAMES[key]
    if key.startswith("val_"):
        return "validation " + key[4:].replace("_", " ")
    return "train " + key.replace("_", " ")


def _curve_keys(h: Mapping[str, list[float]]) -> tuple[list[str], list[str]]:
    """``(loss keys, metric keys)`` of a history dict."""
    keys = [k for k in h if k not in _NOT_CURVES]
    return [k for k in keys if k.endswith("loss")], [k for k in keys if not k.endswith("loss")]


def _draw_curves(ax: Any, history: Any, h: Mapping[str, list[float]], keys: list[str],
                 title: str, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    for key in keys:
        ax.plot(_epochs_of(history, len(h[key])), h[key], label=curve_label(key),
                marker="." if len(h[key]) < 30 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if keys:
        ax.legend()
    ax.grid(True, alpha=0.3)


def _draw_history(axes: Sequence[Any], history: Any) -> None:
    """Loss on ``axes[0]``; the other metrics (accuracy, ...) on ``axes[1]`` if given."""
    h = _history_dict(history)
    if not h:
        raise ValueError("plot_history: the history is empty (was the model trained?)")
    losses, others = _curve_keys(h)
    _draw_curves(axes[0], history, h, losses, "loss", "loss")
    if losses and all(v > 0 for k in losses for v in h[k] if not math.isnan(v)):
        axes[0].set_yscale("log")
    if len(axes) > 1:
        _draw_curves(axes[1], history, h, others, "metrics", "value")


def _model_xp(model: Any) -> tuple[Any, Any, Any]:
    params = list(model.parameters())
    if not params:
        raise ValueError("plot_decision_boundary: the model has no parameters")
    p = params[0].data
    return _backend.namespace_of(p), _backend.device_of(p), p.dtype


def _model_outputs(model: Any, X: np.ndarray, transform: Any) -> np.ndarray:
    """The model's outputs (eval mode, on its own backend) for host inputs in data units."""
    xp, device, dtype = _model_xp(model)
    Xm = np.asarray(transform(X) if transform is not None else X, dtype=np.float64)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        out = model(_backend.asarray(Xm, xp, device=device, dtype=_backend.dtype_name(dtype)))
    finally:
        if was_training:
            model.train()
    return _backend.to_numpy(out).astype(np.float64)


def _draw_boundary(ax: Any, model: Any, X: Any, y: Any, *, resolution: int = 200,
                   transform: Any = None) -> None:
    X = _backend.to_numpy(X).astype(np.float64)
    y = _backend.to_numpy(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            f"plot_decision_boundary: needs 2-D inputs of shape (n, 2), got {X.shape}"
        )
    pad_x = 0.1 * (X[:, 0].max() - X[:, 0].min() or 1.0)
    pad_y = 0.1 * (X[:, 1].max() - X[:, 1].min() or 1.0)
    gx = np.linspace(X[:, 0].min() - pad_x, X[:, 0].max() + pad_x, resolution)
    gy = np.linspace(X[:, 1].min() - pad_y, X[:, 1].max() + pad_y, resolution)
    xx, yy = np.meshgrid(gx, gy)
    # The grid is in the data's units; the model sees it as it saw its training inputs.
    out = _model_outputs(model, np.stack([xx.ravel(), yy.ravel()], axis=1), transform)
    if out.ndim == 2 and out.shape[1] > 1:
        import matplotlib
        from matplotlib.colors import ListedColormap

        z = out.argmax(axis=1)
        levels = np.arange(out.shape[1] + 1) - 0.5
        palette = matplotlib.colormaps["tab10" if out.shape[1] <= 10 else "tab20"].colors
        cmap = ListedColormap(palette[: out.shape[1]])
        ax.contourf(xx, yy, z.reshape(xx.shape), levels=levels, cmap=cmap, alpha=0.3)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=out.shape[1] - 0.5,
                   edgecolors="k", linewidths=0.5, s=20, label="samples (colour: true class)")
    else:
        # One output: a probability (sigmoid) or a score; draw its 0.5 / 0 level set.
        z = out.reshape(xx.shape)
        threshold = 0.5 if z.min() >= 0.0 and z.max() <= 1.0 else 0.0
        cs = ax.contourf(xx, yy, z, levels=20, cmap="RdBu_r", alpha=0.4)
        ax.contour(xx, yy, z, levels=[threshold], colors="k", linewidths=1.5)
        ax.figure.colorbar(cs, ax=ax, label="model output")
        ax.scatter(X[:, 0], X[:, 1], c=y.reshape(-1), cmap="RdBu_r", edgecolors="k",
                   linewidths=0.5, s=20, label="samples (colour: target)")
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_title("decision boundary (shaded: predicted class)")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(loc="best", fontsize="small")


def _draw_predictions(ax: Any, model: Any, X: Any, y: Any, *, transform: Any = None) -> None:
    """Regression: predicted against true values, with the line where they are equal."""
    X = _backend.to_numpy(X).astype(np.float64)
    t = _backend.to_numpy(y).astype(np.float64).reshape(len(X), -1)
    pred = _model_outputs(model, X.reshape(len(X), -1), transform).reshape(len(X), -1)
    if pred.shape[1] != t.shape[1]:
        raise ValueError(f"plot_training: the model has {pred.shape[1]} outputs but y has "
                         f"{t.shape[1]} target columns")
    for j in range(t.shape[1]):
        name = "samples" if t.shape[1] == 1 else f"output {j}"
        ax.scatter(t[:, j], pred[:, j], s=12, alpha=0.7, label=name)
    lo, hi = float(min(t.min(), pred.min())), float(max(t.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1, label="prediction = target")
    ax.set_xlabel("target")
    ax.set_ylabel("prediction")
    ax.set_title("predictions vs targets")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)


def _save(fig: Any, path: str | os.PathLike[str], plt: Any) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        plt.close(fig)
        raise FileNotFoundError(f"cannot write plot {path!r}: directory {parent!r} does not exist")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except ValueError as exc:  # unknown extension
        raise ValueError(f"cannot write plot {path!r}: {exc}") from None
    finally:
        plt.close(fig)
    return path


def plot_history(history: Any, path: str | os.PathLike[str]) -> str:
    """Plot loss and metric curves (``loss``, ``val_loss``, ``accuracy``, ...) to a file.

    Parameters
    ----------
    history
        The :class:`~xpnet.training.History` returned by :func:`xpnet.fit`, or a dict
        mapping names to per-epoch values.
    path
        Output image; the extension picks the format (``.png``, ``.pdf``, ``.svg``).

    Returns
    -------
    str
        ``path``.
    """
    plt = _pyplot()
    with_metrics = bool(_curve_keys(_history_dict(history))[1])  # none for regression
    fig, axes = plt.subplots(1, 2 if with_metrics else 1, figsize=(10 if with_metrics else 5, 4),
                             squeeze=False)
    _draw_history(list(axes[0]), history)
    return _save(fig, path, plt)


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "loss",
    logy: bool = True,
) -> str:
    """Plot several named curves on one axis (e.g. one loss curve per optimizer)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), [float(v) for v in values], label=name)
    if logy and all(float(v) > 0 for vs in curves.values() for v in vs):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path, plt)


def plot_decision_boundary(
    model: Any, X: Any, y: Any, path: str | os.PathLike[str], *, resolution: int = 200,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> str:
    """Colour the plane by the model's prediction and overlay the data points.

    Parameters
    ----------
    model
        A trained model with 2 inputs on any backend: ``C > 1`` outputs are read as class
        scores (argmax), one output as a probability or score (its 0.5 or 0 level set is
        drawn).
    X
        ``(n, 2)`` inputs (any backend or NumPy) in the data's own units: the axes show
        these.
    y
        ``(n,)`` labels or targets, used to colour the points.
    path
        Output image.
    resolution
        Grid points per axis.
    transform
        What turns data-unit inputs into the model's inputs, e.g. the ``transform`` of the
        :class:`~xpnet.data.StandardScaler` fitted on the training data (host NumPy in,
        host NumPy out). Default: the model takes the data as it is.

    Returns
    -------
    str
        ``path``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    _draw_boundary(ax, model, X, y, resolution=resolution, transform=transform)
    return _save(fig, path, plt)


def _task_of(history: Any, y: Any, task: str | None) -> str:
    if task is not None:
        if task not in ("classification", "regression"):
            raise ValueError(f"plot_training: task must be 'classification' or 'regression', got {task!r}")
        return task
    if y is not None:
        kind = _backend.to_numpy(y).dtype.kind
        return "classification" if kind in "biu" else "regression"
    return "classification" if _curve_keys(_history_dict(history))[1] else "regression"


def training_figure(
    history: Any,
    *,
    model: Any = None,
    X: Any = None,
    y: Any = None,
    task: str | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Any:
    """The figure :func:`plot_training` writes, for you to inspect or save yourself.

    Panels: the loss curves (``train loss``, ``validation loss``); for classification the
    metric curves (``train accuracy``, ...) and, with ``model``, ``X`` and ``y`` of two
    features, the decision boundary in the data's units; for regression with ``model``,
    ``X`` and ``y``, the predictions against the targets.

    Parameters
    ----------
    history
        A :class:`~xpnet.callbacks.History` or a dict of per-epoch lists.
    model, X, y
        The trained model and (test) data in the data's own units.
    task
        ``"classification"`` or ``"regression"``; default: classification for integer
        ``y`` (or, without ``y``, when the history has metrics), else regression.
    transform
        Data units -> the model's inputs (e.g. a fitted StandardScaler's ``transform``).

    Returns
    -------
    matplotlib.figure.Figure
        Close it with ``pyplot().close(fig)`` when done.
    """
    plt = _pyplot()
    task = _task_of(history, y, task)
    have_data = model is not None and X is not None and y is not None
    boundary = have_data and task == "classification" and int(X.shape[-1]) == 2
    second = "metrics" if task == "classification" else ("predictions" if have_data else None)
    n = 1 + (second is not None) + boundary
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    axes = list(axes[0])
    _draw_history(axes[:2] if second == "metrics" else axes[:1], history)
    if second == "predictions":
        _draw_predictions(axes[1], model, X, y, transform=transform)
    if boundary:
        _draw_boundary(axes[-1], model, X, y, transform=transform)
    return fig


def plot_training(
    history: Any,
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    X: Any = None,
    y: Any = None,
    task: str | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> str:
    """Write the :func:`training_figure` to an image file; returns ``path``.

    This is what ``xpnet train --plot out.png`` writes: loss curves, then the accuracy
    curves and (2-D data) the decision boundary for classification, or the predictions
    against the targets for regression. Arguments as for :func:`training_figure`.
    """
    fig = training_figure(history, model=model, X=X, y=y, task=task, transform=transform)
    return _save(fig, path, _pyplot())
