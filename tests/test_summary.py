"""xpnet.summary: output shapes and parameter counts per layer, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet


def cnn() -> xpnet.Module:
    return xpnet.Sequential(
        xpnet.Conv2d(1, 4, 3, generator=0), xpnet.BatchNorm2d(4), xpnet.ReLU(), xpnet.MaxPool2d(2),
        xpnet.Flatten(), xpnet.Sequential(xpnet.Linear(4 * 13 * 13, 32, generator=1), xpnet.ReLU()),
        xpnet.Linear(32, 10, generator=2),
    )


def test_summary_rows_shapes_and_counts(backend):
    model = backend.move(cnn())
    model[6].weight.requires_grad = False
    model.train()
    s = xpnet.summary(model, (2, 1, 28, 28))
    assert s.input_shape == (2, 1, 28, 28) and s.output_shape == (2, 10)
    rows = {r.name: r for r in s.rows}
    assert list(rows) == ["0", "1", "2", "3", "4", "5", "5.0", "5.1", "6"]
    assert rows["0"].output_shape == (2, 4, 26, 26) and rows["0"].params == 4 * 9 + 4
    assert rows["3"].output_shape == (2, 4, 13, 13) and rows["4"].output_shape == (2, 676)
    assert rows["5"].params == 0 and rows["5.0"].params == 676 * 32 + 32 and rows["5.0"].depth == 1
    assert rows["6"].params == 330 and rows["6"].trainable == 10
    assert s.total_params == 40 + 8 + 676 * 32 + 32 + 330 == 22042
    assert s.trainable_params == 22042 - 320 and s.non_trainable_params == 320
    assert s.buffer_values == 4 + 4 + 1 and s.param_bytes == 22042 * 4
    text = str(s)
    for needle in ("5.0 (Linear)", "[2, 4, 26, 26]", "21,664", "Total params: 22,042",
                   "Non-trainable params: 320"):
        assert needle in text, needle
    # The model is as it was: train mode, its own forward, nothing kept for a backward.
    assert model.training and all(m.training for m in model.modules())
    assert all("forward" not in vars(m) for m in model.modules())
    with pytest.raises(RuntimeError):
        model[0].backward(backend.asarray([[0.0]], dtype="float32"))


def test_summary_counts_match_torch():
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    s = xpnet.summary(xpnet.models.mlp([64, 256, 10]), (1, 64))
    assert s.total_params == sum(p.numel() for p in t.parameters()) == 19210


def test_summary_errors():
    with pytest.raises(TypeError):
        xpnet.summary("model", (1, 2))
    with pytest.raises(ValueError):
        xpnet.summary(xpnet.models.mlp([2, 3]), ())
    with pytest.raises(ValueError):
        xpnet.summary(xpnet.models.mlp([2, 3]), (1, 5))  # the model's own shape error


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_summary_shows_the_shapes_of_a_chained_mlp(mode):
    # Sequential runs Linear, activations and Dropout as one chain of kernels; the summary
    # still sees every layer's output, whatever mode the model was in and stays in.
    net = xpnet.Sequential(xpnet.Linear(4, 8), xpnet.ReLU(), xpnet.Dropout(0.5), xpnet.Linear(8, 2))
    getattr(net, mode)()
    x = np.ones((3, 4), np.float32)
    net(x)  # the chain's plan exists before the summary
    rep = xpnet.summary(net, (1, 4))
    assert [row.output_shape for row in rep.rows] == [(1, 8), (1, 8), (1, 8), (1, 2)]
    assert net.training is (mode == "train")
    assert net._chain(x) is not None  # and afterwards the chain runs again
    assert all("forward" not in m.__dict__ for m in net.modules())
