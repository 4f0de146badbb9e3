"""The cnn() builder, its description, and trajectory parity of a CNN across backends."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import Conv2d, MaxPool2d, Unflatten
from xpnet.losses import CrossEntropyLoss
from xpnet.models import (
    cnn,
    cnn_config,
    config_in_features,
    config_out_features,
    mlp,
    model_config,
    model_from_config,
    parameter_count,
)
from xpnet.testing import check_parity, gradcheck
from xpnet.testing.parity import PARITY_FLOAT32_RTOL, PARITY_FLOAT64_RTOL

STEPS = 12


@pytest.fixture(scope="module")
def digits():
    from xpnet.data import load_dataset

    ds = load_dataset("digits")
    X = (ds.X[:256] - 4.9) / 6.0  # roughly standardized pixels
    return np.asarray(X, dtype=np.float64), np.asarray(ds.y[:256])


def _small_cnn(g):
    return cnn((1, 8, 8), 10, channels=(4, 6), hidden=(16,), generator=g)


def test_cnn_layers_shapes_and_description():
    model = cnn((1, 8, 8), 10, generator=0)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Unflatten", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                     "Flatten", "Linear", "ReLU", "Linear"]
    assert model[1].weight.shape == (32, 1, 3, 3) and model[8].weight.shape == (128, 64 * 2 * 2)
    y = model(np.zeros((3, 64), dtype=np.float32))
    assert y.shape == (3, 10) and y.dtype == np.float32
    cfg = model_config(model)
    assert cfg["type"] == "cnn" and config_in_features(cfg) == 64 and config_out_features(cfg) == 10
    clone = model_from_config(cfg, generator=1)
    clone.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(clone(np.ones((2, 64), dtype=np.float32)),
                                  model(np.ones((2, 64), dtype=np.float32)))
    # the same seed gives the same network; the mlp path of model_from_config still works
    assert parameter_count(cnn((1, 8, 8), 10, generator=0)) == parameter_count(model)
    m = mlp([4, 3, 2], generator=0)
    assert config_in_features(model_config(m)) == 4 and type(model_from_config(model_config(m))[0]).__name__ == "Linear"


def test_cnn_image_input_and_tiny_images():
    model = cnn((3, 5, 5), 4, channels=(2, 2, 2), hidden=(), flat_input=False, generator=0)
    assert not any(isinstance(m, Unflatten) for m in model)
    # 5 -> 2 -> 1, and no pooling once the image is one pixel
    assert sum(isinstance(m, MaxPool2d) for m in model) == 2
    assert sum(isinstance(m, Conv2d) for m in model) == 3
    assert model(np.zeros((2, 3, 5, 5), dtype=np.float32)).shape == (2, 4)


def test_cnn_gradcheck(backend):
    model = backend.move(cnn((1, 6, 6), 3, channels=(2,), hidden=(4,), generator=0), dtype="float64")
    x = backend.asarray(np.random.default_rng(0).standard_normal((2, 36)), dtype="float64")
    gradcheck(model, x)


def test_cnn_config_errors():
    with pytest.raises(ValueError, match=r"input_shape must be \(channels, height, width\)"):
        cnn_config((8, 8), 10)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        cnn((1, 8, 8), 10, kernel_size=2)
    with pytest.raises(ValueError, match="channels needs at least one entry"):
        cnn((1, 8, 8), 10, channels=())
    with pytest.raises(ValueError, match="dropout must be in"):
        cnn((1, 8, 8), 10, dropout=1.0)
    with pytest.raises(ValueError, match="unknown model type"):
        model_from_config({"type": "rnn"})
    with pytest.raises(ValueError, match="Unflatten: dim 1"):
        cnn((1, 8, 8), 10, generator=0)(np.zeros((2, 63), dtype=np.float32))


# --------------------------------------------------------------------------- parity


def test_cnn_trains_identically_on_numpy_and_array_api_strict(digits):
    # array-api-strict runs NumPy's kernels on the same numbers: the trajectories agree to
    # float64 rounding (in practice bit for bit); device1 proves no array left the device.
    X, y = digits
    report = check_parity(_small_cnn, CrossEntropyLoss(), lambda p: xpnet.optim.Adam(p, lr=1e-3),
                          X, y, backends=("array_api_strict", "array_api_strict:device1"),
                          steps=STEPS, batch_size=16, dtype="float64")
    assert report.passed and report.steps_run == STEPS
    assert report.max_rel <= PARITY_FLOAT64_RTOL


@pytest.mark.parametrize("dtype, rtol", [("float64", PARITY_FLOAT64_RTOL), ("float32", PARITY_FLOAT32_RTOL)])
def test_cnn_trains_identically_on_numpy_and_torch(digits, dtype, rtol):
    # torch uses its own kernels (different summation order): float64 within the library's
    # documented 1e-10, float32 within PARITY_FLOAT32_RTOL (docs/parity.md).
    pytest.importorskip("torch")
    X, y = digits
    report = check_parity(_small_cnn, CrossEntropyLoss(), lambda p: xpnet.optim.Adam(p, lr=1e-3),
                          X, y, backends=("torch",), steps=STEPS, batch_size=16, dtype=dtype)
    assert report.passed and report.backends == ["numpy", "torch"]
    assert report.max_rel <= rtol
    losses = [r.losses["numpy"] for r in report.rows]
    assert losses[-1] < losses[0]  # it really trains
