"""xpnet's notes go through one logger, "xpnet": applications silence or redirect them;
the command line attaches its own terminal handler, the library none."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest

from xpnet import _log
from xpnet.callbacks import EarlyStopping
from xpnet.cli import main
from xpnet.losses import CrossEntropyLoss
from xpnet.models import mlp
from xpnet.optim import SGD
from xpnet.training import fit

LOGGER = logging.getLogger("xpnet")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def records():
    """A handler of the application's own on the "xpnet" logger (a redirect)."""
    h = _Records()
    level = LOGGER.level
    LOGGER.addHandler(h)
    LOGGER.setLevel(logging.INFO)
    yield h
    LOGGER.removeHandler(h)
    LOGGER.setLevel(level)


def _early_stopping_fit(verbose):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = mlp([2, 4, 2], generator=0)
    # lr=0: the loss never improves, so patience 1 stops after the second epoch.
    return fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.0), X, y, epochs=5,
               callbacks=[EarlyStopping(monitor="loss", patience=1)], verbose=verbose, generator=0)


def test_fit_notes_are_log_records_not_prints(records, capsys):
    _early_stopping_fit(verbose=2)
    out = capsys.readouterr().out
    assert "epoch 2/5  loss" in out  # the per-epoch lines are the progress display
    assert "training stopped by EarlyStopping" not in out
    assert any("epoch 2/5: training stopped by EarlyStopping" in m for m in records.messages)
    records.messages.clear()
    _early_stopping_fit(verbose=0)  # silent is silent
    assert records.messages == []


def test_without_any_logging_setup_notes_still_reach_the_user(monkeypatch):
    monkeypatch.setattr(logging.root, "handlers", [])  # a script that never set up logging
    stream = io.StringIO()
    _log.info("xpnet: a note", stream=stream)
    assert stream.getvalue() == "xpnet: a note\n"
    monkeypatch.setattr(LOGGER, "level", logging.WARNING)  # ... unless it silenced xpnet
    _log.info("xpnet: hidden", stream=stream)
    assert "hidden" not in stream.getvalue()


def test_the_cli_prints_to_the_terminal_and_leaves_no_handler(capsys, tmp_path):
    before = list(LOGGER.handlers)
    assert main(["train", "xor", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "xpnet: xor (classification" in out and "xpnet: mlp 2-8-2 tanh" in out
    assert LOGGER.handlers == before
    assert main(["train", "xor", "--epochs", "2", "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("train accuracy")


def test_an_application_can_redirect_the_cli_lines(records, capsys):
    assert main(["train", "xor", "--epochs", "1"]) == 0
    assert any(m.startswith("xpnet: xor (classification") for m in records.messages)


def test_log_every_reports_the_running_loss(capsys):
    # 120 iris samples -> 108 after the validation split: 7 batches of 16.
    assert main(["train", "iris", "--epochs", "1", "--log-every", "3"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1  step 3/7  loss" in out and "epoch 1/1  step 6/7  loss" in out
