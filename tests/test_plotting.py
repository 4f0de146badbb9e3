"""Plots, checked through their artists on the Agg backend (labels, data, axis ranges), not pixels."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import xpnet  # noqa: E402
from xpnet import plotting  # noqa: E402
from xpnet.data import StandardScaler  # noqa: E402
from xpnet.losses import CrossEntropyLoss, MSELoss  # noqa: E402
from xpnet.models import mlp  # noqa: E402
from xpnet.optim import Adam  # noqa: E402


def _legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


def _blobs_far_from_zero():
    """Two classes around x = (100, 200) and (110, 190): far from the standardized [-3, 3]."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    X = np.where(y[:, None] == 0, [100.0, 200.0], [110.0, 190.0]) + rng.standard_normal((80, 2))
    return X, y


def test_classification_figure_labels_and_boundary_in_data_units():
    X, y = _blobs_far_from_zero()
    sc = StandardScaler().fit(X)
    model = mlp([2, 8, 2], generator=0)
    hist = xpnet.fit(model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.05),
                     sc.transform(X).astype(np.float32), y, epochs=3, validation_split=0.25,
                     generator=0, verbose=0)
    fig = plotting.training_figure(hist, model=model, X=X, y=y, transform=sc.transform)
    loss_ax, metric_ax, boundary_ax = fig.axes[:3]
    assert _legend(loss_ax) == ["train loss", "validation loss"]
    assert _legend(metric_ax) == ["train accuracy", "validation accuracy"]
    for line in loss_ax.get_lines():
        assert list(line.get_xdata()) == hist.epoch == [1, 2, 3]  # epochs as printed
    assert boundary_ax.get_legend() is not None
    # The axes span the data in its own units (10% padding), not the standardized values.
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * (hi - lo)
    assert boundary_ax.get_xlim() == pytest.approx((lo[0] - pad[0], hi[0] + pad[0]))
    assert boundary_ax.get_ylim() == pytest.approx((lo[1] - pad[1], hi[1] + pad[1]))
    points = boundary_ax.collections[-1].get_offsets()
    assert np.allclose(points, X)
    plotting.pyplot().close(fig)


def test_regression_plots_predictions_against_targets_not_an_empty_panel():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (60, 1))
    t = np.sin(X)
    model = mlp([1, 16, 1], activation="tanh", generator=0)
    hist = xpnet.fit(model, MSELoss(), Adam(model.parameters(), lr=0.02), X.astype(np.float32),
                     t.astype(np.float32), epochs=4, generator=0, verbose=0)
    fig = plotting.training_figure(hist, model=model, X=X, y=t)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["loss", "predictions vs targets"]
    ax = fig.axes[1]
    assert _legend(ax) == ["samples", "prediction = target"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("target", "prediction")
    pts = ax.collections[0].get_offsets()
    expected = xpnet.predict(model, X.astype(np.float32))[:, 0]
    assert np.allclose(pts[:, 0], t[:, 0]) and np.allclose(pts[:, 1], expected, rtol=1e-5)
    plotting.pyplot().close(fig)
    # Without data, a regression run gets the loss panel alone (no empty metrics panel).
    fig = plotting.training_figure(hist)
    assert [ax.get_title() for ax in fig.axes] == ["loss"] and _legend(fig.axes[0]) == ["train loss"]
    plotting.pyplot().close(fig)


def test_curve_labels_name_what_they_measure():
    assert plotting.curve_label("val_loss") == "validation loss"
    assert plotting.curve_label("accuracy") == "train accuracy"
    assert plotting.curve_label("val_top2_accuracy") == "validation top2 accuracy"


@pytest.fixture
def figures(monkeypatch):
    """The figures the command line saves, inspected before they are written."""
    seen = []
    real = plotting._save

    def save(fig, path, plt):
        seen.append({"titles": [ax.get_title() for ax in fig.axes],
                     "legends": [_legend(ax) for ax in fig.axes],
                     "lims": [(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes],
                     "points": [np.asarray(ax.collections[-1].get_offsets()) if ax.collections else None
                                for ax in fig.axes]})
        return real(fig, path, plt)

    monkeypatch.setattr(plotting, "_save", save)
    return seen


def test_cli_plot_regression_and_boundary_in_data_units(tmp_path, figures, capsys):
    from xpnet.cli import main

    assert main(["train", "sine", "--epochs", "3", "--plot", str(tmp_path / "s.png"), "-q"]) == 0
    f = figures[-1]
    assert f["titles"] == ["loss", "predictions vs targets"]
    assert f["legends"][0] == ["train loss", "validation loss"]
    assert main(["train", "moons", "--epochs", "3", "--plot", str(tmp_path / "m.png"), "-q"]) == 0
    f = figures[-1]
    assert f["titles"][:2] == ["loss", "metrics"] and f["titles"][2].startswith("decision boundary")
    assert f["legends"][1] == ["train accuracy", "validation accuracy"]
    # The scattered test points are rows of the raw moons data (not standardized).
    raw = xpnet.data.load_dataset("moons").X
    pts = f["points"][2]
    assert len(pts) == 40 and all(np.any(np.all(np.isclose(raw, p), axis=1)) for p in pts)
    (x0, x1), _ = f["lims"][2]
    assert x0 < pts[:, 0].min() and x1 > pts[:, 0].max()
    assert (tmp_path / "s.png").exists() and (tmp_path / "m.png").exists()
