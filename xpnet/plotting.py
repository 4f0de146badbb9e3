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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _backend

__all__ = ["plot_history", "plot_decision_boundary", "plot_training", "plot_curves", "pyplot"]

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
    epochs = getattr(history, "epoch", None)
    if isinstance(epochs, Sequence) and len(epochs) == n:
        return [int(e) + 1 for e in epochs]
    return list(range(1, n + 1))


def _draw_history(axes: Sequence[Any], history: Any) -> None:
    """Loss on ``axes[0]``; the other metrics (accuracy, ...) on ``axes[1]`` if given."""
    h = _history_dict(history)
    if not h:
        raise ValueError("plot_history: the history is empty (was the model trained?)")
    skip = ("lr", "epoch", "seconds", "time", "max_batch_loss")
    losses = [k for k in h if k.endswith("loss") and k not in skip]
    others = [k for k in h if not k.endswith("loss") and k not in skip]
    ax = axes[0]
    for key in losses:
        ax.plot(_epochs_of(history, len(h[key])), h[key], label=key, marker="." if len(h[key]) < 30 else None)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if losses and all(v > 0 for k in losses for v in h[k] if not math.isnan(v)):
        ax.set_yscale("log")
    ax.set_title("loss")
    if losses:
        ax.legend()
    ax.grid(True, alpha=0.3)
    if len(axes) > 1:
        ax = axes[1]
        for key in others:
            ax.plot(_epochs_of(history, len(h[key])), h[key], label=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title("metrics")
        if others:
            ax.legend()
        ax.grid(True, alpha=0.3)


def _model_xp(model: Any) -> tuple[Any, Any, Any]:
    params = list(model.parameters())
    if not params:
        raise ValueError("plot_decision_boundary: the model has no parameters")
    p = params[0].data
    return _backend.namespace_of(p), _backend.device_of(p), p.dtype


def _draw_boundary(ax: Any, model: Any, X: Any, y: Any, *, resolution: int = 200) -> None:
    X = _backend.to_numpy(X).astype(np.float64)
    y = _backend.to_numpy(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            f"plot_decision_boundary: needs 2-D inputs of shape (n, 2), got {X.shape}"
        )
    xp, device, dtype = _model_xp(model)
    pad_x = 0.1 * (X[:, 0].max() - X[:, 0].min() or 1.0)
    pad_y = 0.1 * (X[:, 1].max() - X[:, 1].min() or 1.0)
    gx = np.linspace(X[:, 0].min() - pad_x, X[:, 0].max() + pad_x, resolution)
    gy = np.linspace(X[:, 1].min() - pad_y, X[:, 1].max() + pad_y, resolution)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        out = model(_backend.asarray(grid, xp, device=device, dtype=_backend.dtype_name(dtype)))
    finally:
        if was_training:
            model.train()
    out = _backend.to_numpy(out).astype(np.float64)
    if out.ndim == 2 and out.shape[1] > 1:
        from matplotlib.colors import ListedColormap

        z = out.argmax(axis=1)
        levels = np.arange(out.shape[1] + 1) - 0.5
        import matplotlib

        palette = matplotlib.colormaps["tab10" if out.shape[1] <= 10 else "tab20"].colors
        cmap = ListedColormap(palette[: out.shape[1]])
        ax.contourf(xx, yy, z.reshape(xx.shape), levels=levels, cmap=cmap, alpha=0.3)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=out.shape[1] - 0.5,
                   edgecolors="k", linewidths=0.5, s=20)
    else:
        # One output: a probability (sigmoid) or a score; draw its 0.5 / 0 level set.
        z = out.reshape(xx.shape)
        threshold = 0.5 if z.min() >= 0.0 and z.max() <= 1.0 else 0.0
        cs = ax.contourf(xx, yy, z, levels=20, cmap="RdBu_r", alpha=0.4)
        ax.contour(xx, yy, z, levels=[threshold], colors="k", linewidths=1.5)
        ax.figure.colorbar(cs, ax=ax)
        ax.scatter(X[:, 0], X[:, 1], c=y.reshape(-1), cmap="RdBu_r", edgecolors="k",
                   linewidths=0.5, s=20)
    ax.set_title("decision boundary")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")


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
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    _draw_history(axes, history)
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
    model: Any, X: Any, y: Any, path: str | os.PathLike[str], *, resolution: int = 200
) -> str:
    """Colour the plane by the model's prediction and overlay the data points.

    Parameters
    ----------
    model
        A trained model with 2 inputs on any backend: ``C > 1`` outputs are read as class
        scores (argmax), one output as a probability or score (its 0.5 or 0 level set is
        drawn).
    X
        ``(n, 2)`` inputs (any backend or NumPy), in the coordinates the model expects.
    y
        ``(n,)`` labels or targets, used to colour the points.
    path
        Output image.
    resolution
        Grid points per axis.

    Returns
    -------
    str
        ``path``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    _draw_boundary(ax, model, X, y, resolution=resolution)
    return _save(fig, path, plt)


def plot_training(
    history: Any,
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    X: Any = None,
    y: Any = None,
) -> str:
    """One figure with the loss and metric curves and, for 2-D data, the decision boundary.

    This is what ``xpnet train --plot out.png`` writes. The boundary panel is added when
    ``model``, ``X`` and ``y`` are given and ``X`` has two features.
    """
    plt = _pyplot()
    with_boundary = model is not None and X is not None and y is not None and int(X.shape[-1]) == 2
    fig, axes = plt.subplots(1, 3 if with_boundary else 2, figsize=(15 if with_boundary else 10, 4))
    _draw_history(axes[:2], history)
    if with_boundary:
        _draw_boundary(axes[2], model, X, y)
    return _save(fig, path, plt)
