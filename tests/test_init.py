"""Initializers: torch's gains and bounds, seeded determinism, identical weights on every backend."""

import math

import numpy as np
import pytest

import xpnet
from xpnet import init


def test_calculate_gain_matches_torch_values():
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish2")


def test_calculate_gain_agrees_with_torch():
    torch = pytest.importorskip("torch")
    for name in ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))


def test_fans_follow_torch_layout():
    assert init.calculate_fan_in_and_fan_out((30, 20)) == (20, 30)
    assert init.calculate_fan_in_and_fan_out((8, 4, 3, 3)) == (36, 72)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.calculate_fan_in_and_fan_out((5,))


@pytest.mark.parametrize(
    "fn, expected_std",
    [
        (lambda s, g: init.xavier_uniform(s, generator=g), math.sqrt(2 / (400 + 300))),
        (lambda s, g: init.xavier_normal(s, generator=g), math.sqrt(2 / (400 + 300))),
        (lambda s, g: init.xavier_uniform(s, gain=4.0, generator=g), 4 * math.sqrt(2 / 700)),
        (lambda s, g: init.kaiming_uniform(s, nonlinearity="relu", generator=g), math.sqrt(2 / 400)),
        (lambda s, g: init.kaiming_normal(s, nonlinearity="relu", generator=g), math.sqrt(2 / 400)),
        (lambda s, g: init.kaiming_normal(s, mode="fan_out", nonlinearity="relu", generator=g), math.sqrt(2 / 300)),
        (lambda s, g: init.lecun_normal(s, generator=g), math.sqrt(1 / 400)),
        (lambda s, g: init.lecun_uniform(s, generator=g), math.sqrt(1 / 400)),
        (lambda s, g: init.fan_in_uniform(s, generator=g), 1 / math.sqrt(400) / math.sqrt(3)),
    ],
)
def test_variance_of_each_scheme(fn, expected_std):
    w = fn((300, 400), np.random.default_rng(0))
    assert w.shape == (300, 400) and w.dtype == np.float64
    # 120k samples: the sample std is within ~0.5% of the true one; 2% is a safe bound.
    assert w.std() == pytest.approx(expected_std, rel=0.02)
    # The sample mean has std expected_std / sqrt(120000) ≈ 0.003 * expected_std.
    assert abs(w.mean()) < 0.02 * expected_std


def test_uniform_bounds_exact():
    w = init.xavier_uniform((50, 70), generator=1)
    assert np.abs(w).max() <= math.sqrt(6 / 120)
    k = init.kaiming_uniform((50, 70), a=math.sqrt(5), generator=1)
    assert np.abs(k).max() <= 1 / math.sqrt(70)  # torch Linear's kaiming_uniform_(a=√5)


def test_zero_constant_and_errors():
    assert not init.zeros((2, 3)).any()
    np.testing.assert_array_equal(init.constant((2, 2), 0.5), 0.5)
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform((2,), 1.0, 0.0)
    with pytest.raises(ValueError, match="fan_in' or 'fan_out"):
        init.kaiming_normal((2, 2), mode="fan_avg")
    with pytest.raises(TypeError, match="Generator"):
        init.normal((2,), generator="seed")


# Independent reference: the documented formula, drawn with NumPy's own Generator calls
# (xpnet's contract: host-side draws from numpy.random.default_rng(seed)), on every backend.
_REFERENCE_DRAWS = {
    # weight (4, 6): fan_in 6, fan_out 4
    "xavier_uniform_": lambda g: g.uniform(-math.sqrt(6 / 10), math.sqrt(6 / 10), size=(4, 6)),
    "xavier_normal_": lambda g: g.normal(0.0, math.sqrt(2 / 10), size=(4, 6)),
    "kaiming_uniform_": lambda g: g.uniform(-math.sqrt(6 / 6), math.sqrt(6 / 6), size=(4, 6)),  # relu gain √2
    "kaiming_normal_": lambda g: g.normal(0.0, math.sqrt(2 / 6), size=(4, 6)),
    "normal_": lambda g: g.normal(0.0, 1.0, size=(4, 6)),
    "zeros_": lambda g: np.zeros((4, 6)),
}


@pytest.mark.parametrize("scheme", sorted(_REFERENCE_DRAWS))
def test_initializers_equal_the_documented_draw_on_every_backend(backend, scheme):
    layer = backend.move(xpnet.Linear(6, 4, generator=99), dtype="float64")
    kw = {"nonlinearity": "relu"} if scheme.startswith("kaiming") else {}
    if scheme != "zeros_":
        kw["generator"] = 11
    getattr(init, scheme)(layer.weight, **kw)
    backend.check(layer.weight.data, dtype="float64", shape=(4, 6))
    expected = _REFERENCE_DRAWS[scheme](np.random.default_rng(11))
    # The bound is computed in another order here (gain * sqrt(6 / fans) vs sqrt(6 / 10)):
    # one or two float64 roundings apart, while a wrong formula or draw is off by O(1).
    np.testing.assert_allclose(backend.to_numpy(layer.weight.data), expected, rtol=4e-16, atol=0)


def test_same_seed_same_weights_different_seed_different():
    a = init.xavier_uniform((4, 4), generator=7)
    b = init.xavier_uniform((4, 4), generator=7)
    c = init.xavier_uniform((4, 4), generator=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_manual_seed_makes_models_reproducible():
    xpnet.manual_seed(123)
    w1 = xpnet.Linear(3, 2).weight.data.copy()
    xpnet.manual_seed(123)
    w2 = xpnet.Linear(3, 2).weight.data.copy()
    np.testing.assert_array_equal(w1, w2)


@pytest.mark.parametrize("scheme", ["xavier_uniform_", "kaiming_normal_", "normal_", "fan_in_uniform_"])
def test_inplace_init_gives_identical_weights_on_every_backend(backend, scheme):
    ref = xpnet.Linear(6, 4, generator=0)
    getattr(init, scheme)(ref.weight, generator=11)
    other = backend.move(xpnet.Linear(6, 4, generator=99), dtype="float32")
    getattr(init, scheme)(other.weight, generator=11)
    backend.check(other.weight.data, dtype="float32", shape=(4, 6))
    # exact equality: the draw happens on the host in float64 and is cast there.
    np.testing.assert_array_equal(backend.to_numpy(other.weight.data), ref.weight.data)


def test_seeded_model_identical_on_every_backend(backend):
    ref = xpnet.Sequential(xpnet.Linear(5, 7, generator=3), xpnet.Linear(7, 2, generator=4))
    other = xpnet.Sequential(xpnet.Linear(5, 7, generator=3), xpnet.Linear(7, 2, generator=4))
    backend.move(other, dtype="float64")
    for (_n, a), (_, b) in zip(ref.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(backend.to_numpy(b.data), a.data.astype(np.float64))
