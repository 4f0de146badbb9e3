"""Activation modules: gradcheck, torch oracle, stability, the cache protocol, names."""

import warnings

import numpy as np
import pytest

from xpnet import Identity, Linear, Sequential
from xpnet.activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    Heaviside,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    get_activation,
)
from xpnet.testing import gradcheck

# torch.autograd oracle, float64: same formulas up to rounding order (~1e-15 relative);
# 1e-10 leaves room for reductions (softmax) and the portable erf (GELU).
RTOL_F64 = 1e-10
# Absolute floor for outputs ~0 where torch cancels (GELU's 1 + erf(x/√2) for x << 0).
ATOL_F64 = 1e-13
# float32: unit roundoff 6e-8 times a handful of operations.
RTOL_F32 = 1e-5
ATOL_F32 = 1e-6


def host(shape, seed=0):
    r = np.random.default_rng(seed).standard_normal(shape) * 2.0
    return r + 0.1 * np.sign(r)  # at least 0.1 away from the kinks at 0


def torch_module(torch, name):
    nn = torch.nn
    return {
        "Sigmoid": nn.Sigmoid(),
        "Tanh": nn.Tanh(),
        "ReLU": nn.ReLU(),
        "LeakyReLU": nn.LeakyReLU(),
        "LeakyReLU(0.2)": nn.LeakyReLU(0.2),
        "LeakyReLU(1.5)": nn.LeakyReLU(1.5),
        "LeakyReLU(-0.3)": nn.LeakyReLU(-0.3),
        "ELU": nn.ELU(),
        "ELU(0.5)": nn.ELU(alpha=0.5),
        "GELU": nn.GELU(),
        "GELU(tanh)": nn.GELU(approximate="tanh"),
        "SiLU": nn.SiLU(),
        "Softplus": nn.Softplus(),
        "Softplus(2, 3)": nn.Softplus(beta=2.0, threshold=3.0),
        "Softmax": nn.Softmax(dim=-1),
        "Softmax(0)": nn.Softmax(dim=0),
        "LogSoftmax": nn.LogSoftmax(dim=-1),
        "LogSoftmax(0)": nn.LogSoftmax(dim=0),
    }[name]


MODULES = {
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "ReLU": ReLU,
    "LeakyReLU": LeakyReLU,
    "LeakyReLU(0.2)": lambda: LeakyReLU(0.2),
    # slopes outside [0, 1] take the other branch-free form (min instead of max)
    "LeakyReLU(1.5)": lambda: LeakyReLU(1.5),
    "LeakyReLU(-0.3)": lambda: LeakyReLU(-0.3),
    "ELU": ELU,
    "ELU(0.5)": lambda: ELU(alpha=0.5),
    "GELU": GELU,
    "GELU(tanh)": lambda: GELU(approximate="tanh"),
    "SiLU": SiLU,
    "Softplus": Softplus,
    "Softplus(2, 3)": lambda: Softplus(beta=2.0, threshold=3.0),
    "Softmax": Softmax,
    "Softmax(0)": lambda: Softmax(dim=0),
    "LogSoftmax": LogSoftmax,
    "LogSoftmax(0)": lambda: LogSoftmax(axis=0),
    "Heaviside": Heaviside,
}


def input_for(name, shape, seed=0):
    x = host(shape, seed)
    if name == "Softplus(2, 3)":
        # beta x = threshold (x = 1.5) is a kink of torch's definition: stay 0.05 away.
        x[np.abs(x - 1.5) < 0.05] += 0.1
    return x


@pytest.mark.parametrize("name", sorted(MODULES))
def test_gradcheck(backend, name):
    m = MODULES[name]()
    x = backend.asarray(input_for(name, (3, 4)), dtype="float64")
    backend.check(m(x), dtype="float64", shape=(3, 4))
    res = gradcheck(m, x)
    assert set(res.max_abs_err) == {"input"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(set(MODULES) - {"Heaviside"}))
def test_matches_torch_autograd(backend, name, dtype):
    torch = pytest.importorskip("torch")
    xh, dyh = input_for(name, (4, 5), 1), np.random.default_rng(2).standard_normal((4, 5))
    tm = torch_module(torch, name)
    tx = torch.tensor(xh, dtype=getattr(torch, dtype), requires_grad=True)
    ty = tm(tx)
    ty.backward(torch.tensor(dyh, dtype=getattr(torch, dtype)))

    m = MODULES[name]()
    y = backend.check(m(backend.asarray(xh, dtype=dtype)), dtype=dtype, shape=(4, 5))
    dx = backend.check(m.backward(backend.asarray(dyh, dtype=dtype)), dtype=dtype, shape=(4, 5))
    rtol, atol = (RTOL_F64, ATOL_F64) if dtype == "float64" else (RTOL_F32, ATOL_F32)
    np.testing.assert_allclose(backend.to_numpy(y), ty.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(backend.to_numpy(dx), tx.grad.numpy(), rtol=rtol, atol=atol)


def test_heaviside_step_values_and_zero_gradient(backend):
    m = Heaviside()
    xh = np.array([[-3.0, -0.0, 0.0, 2e-30, 1.0]])
    y = backend.check(m(backend.asarray(xh, dtype="float32")), dtype="float32", shape=(1, 5))
    np.testing.assert_array_equal(backend.to_numpy(y), [[0, 0, 0, 1, 1]])
    dx = m.backward(backend.asarray(np.ones((1, 5)), dtype="float32"))
    backend.check(dx, dtype="float32", shape=(1, 5))
    np.testing.assert_array_equal(backend.to_numpy(dx), 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stable_forward_and_backward_at_1e4(backend, dtype):
    xh = np.array([[-1e4, -1e3, -50.0, -1.0, 1.0, 50.0, 1e3, 1e4]])
    x, dy = backend.asarray(xh, dtype=dtype), backend.asarray(np.ones_like(xh), dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        results = {}
        for name, make in MODULES.items():
            m = make()
            results[name] = (m(x), m.backward(dy))
    for name, (y, dx) in results.items():
        for arr in (y, dx):
            a = backend.to_numpy(backend.check(arr, dtype=dtype, shape=xh.shape))
            assert np.all(np.isfinite(a)), f"{name}: {a}"
    sig = backend.to_numpy(results["Sigmoid"][0])[0]
    # Sigmoid clamps its input at log(smallest normal) (one exp, no overflow): about the
    # smallest normal number at -1e4 instead of torch's 0.
    assert 0.0 <= sig[0] <= 2 * np.finfo(dtype).smallest_normal and sig[-1] == 1.0
    np.testing.assert_array_equal(backend.to_numpy(results["Softplus"][0])[0, -2:], [1e3, 1e4])
    np.testing.assert_array_equal(backend.to_numpy(results["ELU"][0])[0, 0], -1.0)


def test_sequential_mlp_gradcheck_with_parameters(backend):
    net = Sequential(Linear(3, 4, generator=0), Tanh(), Linear(4, 4, generator=1), GELU(), Linear(4, 2, generator=2), Sigmoid())
    backend.move(net, dtype="float64")
    x = backend.asarray(host((5, 3)), dtype="float64")
    res = gradcheck(net, x)
    assert {"input", "0.weight", "0.bias", "4.bias"} <= set(res.max_abs_err)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_cache_protocol(name):
    m = MODULES[name]()
    x, dy = host((2, 3)), np.ones((2, 3))
    with pytest.raises(RuntimeError, match=r"backward: no stored forward pass; call forward\(\)"):
        m.backward(dy)
    m(x)
    m.backward(dy)
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        m.backward(dy)  # each backward consumes its forward
    m.eval()
    m(x)
    assert not m._saved  # eval-mode forward stores nothing
    with pytest.raises(RuntimeError, match="eval mode"):
        m.backward(dy)
    m.train()
    m(x)
    m.eval()  # switching to eval drops a stored pass
    assert not m._saved


@pytest.mark.parametrize("name", sorted(MODULES))
def test_backward_rejects_misshaped_dy(name):
    m = MODULES[name]()
    m(host((4, 1)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(4, 1\)"):
        m.backward(np.ones(4))


def test_does_not_mutate_inputs(backend):
    xh, dyh = host((3, 4)), host((3, 4), 1)
    for name, make in MODULES.items():
        m = make()
        x, dy = backend.asarray(xh, dtype="float64"), backend.asarray(dyh, dtype="float64")
        m(x)
        m.backward(dy)
        np.testing.assert_array_equal(backend.to_numpy(x), xh, err_msg=name)
        np.testing.assert_array_equal(backend.to_numpy(dy), dyh, err_msg=name)


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    pairs = [
        (Sigmoid(), nn.Sigmoid()),
        (Tanh(), nn.Tanh()),
        (ReLU(), nn.ReLU()),
        (LeakyReLU(), nn.LeakyReLU()),
        (LeakyReLU(0.2), nn.LeakyReLU(0.2)),
        (ELU(), nn.ELU()),
        (GELU(), nn.GELU()),
        (GELU("tanh"), nn.GELU("tanh")),
        (SiLU(), nn.SiLU()),
        (Softplus(), nn.Softplus()),
        (Softplus(2, 3), nn.Softplus(2.0, 3.0)),
        (Softmax(dim=1), nn.Softmax(dim=1)),
        (LogSoftmax(dim=-1), nn.LogSoftmax(dim=-1)),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_constructor_validation():
    with pytest.raises(ValueError, match=r"approximate must be one of \('none', 'tanh'\)"):
        GELU("fast")
    with pytest.raises(ValueError, match="beta must be > 0"):
        Softplus(beta=0)
    with pytest.raises(ValueError, match="both dim=1 and axis=0"):
        Softmax(dim=1, axis=0)
    assert Softmax(axis=0).dim == 0 and LogSoftmax().dim == -1
    with pytest.raises(ValueError, match=r"dim must be an int in \[-2, 2\)"):
        Softmax(dim=3)(np.zeros((2, 2)))


def test_get_activation_names_aliases_and_errors():
    for name, cls in ACTIVATIONS.items():
        assert type(get_activation(name)) is cls
    assert isinstance(get_activation("identity"), Identity)
    assert isinstance(get_activation("LeakyReLU"), LeakyReLU)
    assert isinstance(get_activation("leaky-relu"), LeakyReLU)
    assert isinstance(get_activation("swish"), SiLU)
    assert isinstance(get_activation("step"), Heaviside)
    assert get_activation("leaky_relu", negative_slope=0.3).negative_slope == 0.3
    assert get_activation("gelu", approximate="tanh").approximate == "tanh"
    assert get_activation("softplus", beta=2.0).beta == 2.0
    m = ReLU()
    assert get_activation(m) is m
    assert isinstance(get_activation(ELU, alpha=0.5), ELU)
    for required in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "identity"):
        assert required in ACTIVATIONS
    with pytest.raises(ValueError, match=r"unknown activation 'relu7'; valid names are \[.*'gelu'.*'tanh'"):
        get_activation("relu7")
    with pytest.raises(ValueError, match="activation name"):
        get_activation(3)


def test_modules_work_in_a_training_step(backend):
    """A 2-3-1 sigmoid network takes a plain SGD step on every backend (the lecture's XOR)."""
    net = Sequential(Linear(2, 3, generator=0), Sigmoid(), Linear(3, 1, generator=1), Sigmoid())
    backend.move(net, dtype="float32")
    x = backend.asarray(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), dtype="float32")
    out = net(x)
    dout = out - backend.asarray(np.array([[0], [1], [1], [0]]), dtype="float32")
    net.zero_grad()
    backend.check(net.backward(dout), dtype="float32", shape=(4, 2))
    for p in net.parameters():
        backend.check(p.grad, dtype="float32", shape=p.shape)


def test_sigmoid_constants_follow_the_input_dtype_backend_and_device(backend):
    """Sigmoid keeps the 0-d constants of its last input's dtype, array type and device;
    one instance fed other inputs must compute with theirs (not the kept ones)."""
    import copy

    import xpnet
    import xpnet.functional as F
    from xpnet import _backend

    host = np.linspace(-100.0, 100.0, 12).reshape(3, 4)
    layer = xpnet.Sigmoid()
    default_device = backend.xp.asarray(host.astype(np.float32))  # same type, maybe another device
    for x in (host.astype(np.float32), backend.asarray(host, dtype="float32"), default_device,
              host, backend.asarray(host, dtype="float64"), host.astype(np.float32)):
        y = layer(x)
        assert _backend.namespace_of(y) is _backend.namespace_of(x) and y.dtype == x.dtype
        assert _backend.device_of(y) == _backend.device_of(x)
        np.testing.assert_array_equal(xpnet.to_numpy(y), xpnet.to_numpy(F.sigmoid(x)))
        _, one = layer.pop_saved()  # the constant σ′ = y (1 - y) will use: x's own
        assert type(one) is type(x) and one.dtype == x.dtype
        assert _backend.device_of(one) == _backend.device_of(x)
    assert "_sigmoid_consts" not in copy.deepcopy(layer).__dict__  # a per-process cache
