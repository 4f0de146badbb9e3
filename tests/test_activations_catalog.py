"""The rest of torch's activation catalog (issue 13): torch oracle, gradcheck, edges, PReLU."""

import math

import numpy as np
import pytest

import xpnet
from xpnet.activations import (
    ACTIVATIONS,
    CELU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Heaviside,
    LogSigmoid,
    Mish,
    PReLU,
    ReLU6,
    Softsign,
    Tanhshrink,
    get_activation,
)
from xpnet.testing import gradcheck

torch = pytest.importorskip("torch")
tF = torch.nn.functional

# The torch oracle in float64 (issue 13): same formulas up to rounding order.
RTOL_F64 = 1e-9
RTOL_F32, ATOL_F32 = 1e-5, 1e-6

CASES = {
    "SELU": (SELU, lambda t: tF.selu(t)),
    "CELU": (CELU, lambda t: tF.celu(t)),
    "CELU(0.5)": (lambda: CELU(0.5), lambda t: tF.celu(t, 0.5)),
    "ReLU6": (ReLU6, lambda t: tF.relu6(t)),
    "Hardtanh": (Hardtanh, lambda t: tF.hardtanh(t)),
    "Hardtanh(-2, 0.5)": (lambda: Hardtanh(-2.0, 0.5), lambda t: tF.hardtanh(t, -2.0, 0.5)),
    "Hardsigmoid": (Hardsigmoid, lambda t: tF.hardsigmoid(t)),
    "Hardswish": (Hardswish, lambda t: tF.hardswish(t)),
    "Mish": (Mish, lambda t: tF.mish(t)),
    "LogSigmoid": (LogSigmoid, lambda t: tF.logsigmoid(t)),
    "Softsign": (Softsign, lambda t: tF.softsign(t)),
    "Tanhshrink": (Tanhshrink, lambda t: tF.tanhshrink(t)),
    "PReLU": (PReLU, lambda t: tF.prelu(t, torch.tensor([0.25], dtype=t.dtype))),
}
KINKS = (-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 3.0, 6.0)


def host(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 3.0
    for k in KINKS:  # finite differences and torch's branch choice need x off the kinks
        near = np.abs(x - k) < 0.05
        x[near] = k + 0.1
    return x


def _ours(backend, module, xh, dyh, dtype):
    m = module() if callable(module) and not isinstance(module, xpnet.Module) else module
    if m.__dict__["_parameters"]:
        backend.move(m, dtype=dtype)
    y = backend.check(m(backend.asarray(xh, dtype=dtype)), dtype=dtype, shape=xh.shape)
    dx = backend.check(m.backward(backend.asarray(dyh, dtype=dtype)), dtype=dtype, shape=xh.shape)
    return backend.to_numpy(y), backend.to_numpy(dx), m


def _theirs(fn, xh, dyh, dtype):
    tx = torch.tensor(xh, dtype=getattr(torch, dtype), requires_grad=True)
    ty = fn(tx)
    ty.backward(torch.tensor(dyh, dtype=getattr(torch, dtype)))
    return ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_forward_and_backward(backend, name, dtype):
    make, fn = CASES[name]
    xh, dyh = host((4, 6), 1), np.random.default_rng(2).standard_normal((4, 6))
    y, dx, _ = _ours(backend, make, xh, dyh, dtype)
    ty, tdx = _theirs(fn, xh, dyh, dtype)
    rtol, atol = (RTOL_F64, 0.0) if dtype == "float64" else (RTOL_F32, ATOL_F32)
    np.testing.assert_allclose(y, ty, rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, tdx, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(backend, name):
    m = CASES[name][0]()
    if m.__dict__["_parameters"]:
        backend.move(m, dtype="float64")
    gradcheck(m, backend.asarray(host((3, 4)), dtype="float64"))


EDGES = np.array([math.nan, 0.0, -3.0, 3.0, 6.0, -1.0, 1.0, 1e308, -1e308, math.inf, -math.inf, -800.0, 800.0])


@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_values_match_torch(backend, name):
    """NaN, ±inf, ±1e308 and the kinks: values and gradients as torch (NaN where torch's)."""
    make, fn = CASES[name]
    with np.errstate(all="ignore"):
        y, dx, _ = _ours(backend, make, EDGES, np.ones_like(EDGES), "float64")
    ty, tdx = _theirs(fn, EDGES, np.ones_like(EDGES), "float64")
    if name == "Softsign":
        # documented: the gradient at ±inf is the limit 0, torch's composite autograd NaN
        inf = np.isinf(EDGES)
        np.testing.assert_array_equal(dx[inf], 0.0)
        dx, tdx = dx[~inf], tdx[~inf]
    np.testing.assert_allclose(y, ty, rtol=RTOL_F64, atol=0, equal_nan=True)
    np.testing.assert_allclose(dx, tdx, rtol=RTOL_F64, atol=0, equal_nan=True)


def test_hardsigmoid_gradient_uses_torchs_float32_sixth(backend):
    _, dx, _ = _ours(backend, Hardsigmoid, np.array([0.5]), np.array([1.0]), "float64")
    assert dx[0] == float(np.float32(1.0) / np.float32(6.0)) != 1.0 / 6.0


# ---------------------------------------------------------------- PReLU


@pytest.mark.parametrize("shape, c", [((5, 4), 4), ((3, 4, 7), 4), ((3, 4, 2, 2), 1), ((6,), 1)])
def test_prelu_matches_torch_with_weight_gradient(backend, shape, c):
    xh, dyh = host(shape, 3), np.random.default_rng(4).standard_normal(shape)
    wh = np.linspace(0.1, 0.4, c)
    m = PReLU(c)
    m.weight.data = wh.copy()
    y, dx, m = _ours(backend, m, xh, dyh, "float64")
    tw = torch.tensor(wh, requires_grad=True)
    tx = torch.tensor(xh, requires_grad=True)
    ty = tF.prelu(tx, tw)
    ty.backward(torch.tensor(dyh))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=RTOL_F64)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=RTOL_F64)
    dw = backend.check(m.weight.grad, dtype="float64", shape=(c,))
    np.testing.assert_allclose(backend.to_numpy(dw), tw.grad.numpy(), rtol=RTOL_F64)


def test_prelu_gradcheck_includes_weight(backend):
    m = PReLU(3, init=0.2)
    backend.move(m, dtype="float64")
    res = gradcheck(m, backend.asarray(host((4, 3, 2)), dtype="float64"))
    assert "weight" in res.max_abs_err


def test_prelu_trains_and_validates():
    m = PReLU(3)
    assert m.weight.shape == (3,) and str(m.weight.dtype) == "float32" and repr(m) == "PReLU(num_parameters=3)"
    net = xpnet.Sequential(xpnet.Linear(2, 3, generator=0), m, xpnet.Linear(3, 1, generator=1))
    opt = xpnet.optim.SGD(net.parameters(), lr=0.1)
    x = np.random.default_rng(0).standard_normal((8, 2)).astype("float32")
    _, g = xpnet.MSELoss()(net(x), np.zeros((8, 1), dtype="float32"))
    net.backward(g)
    before = m.weight.data.copy()
    opt.step()
    assert not np.array_equal(before, m.weight.data)
    with pytest.raises(ValueError, match="needs 3 channels on axis 1"):
        m(np.ones((2, 4), dtype="float32"))
    with pytest.raises(TypeError):
        m(np.ones((2, 3), dtype="float64"))
    with pytest.raises(ValueError, match="needs 3 channels"):
        m(np.ones(3, dtype="float32"))  # as torch: a 1-D input has one channel
    with pytest.raises(ValueError, match="positive int"):
        PReLU(0)


# ---------------------------------------------------------------- Heaviside values, names


@pytest.mark.parametrize("values", [0.0, 0.5, 1.0])
def test_heaviside_values_match_torch(backend, values):
    xh = np.array([math.nan, -0.0, 0.0, -2.0, 3.0, math.inf, -math.inf])
    m = Heaviside(values)
    y = backend.to_numpy(backend.check(m(backend.asarray(xh)), dtype="float64", shape=xh.shape))
    ty = torch.heaviside(torch.tensor(xh), torch.tensor(values, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(backend.to_numpy(xpnet.functional.heaviside(backend.asarray(xh), values)), ty)
    assert backend.to_numpy(m.backward(backend.asarray(np.ones(7)))).tolist() == [0.0] * 7


def test_names_resolve_and_reexported():
    for name in ("prelu", "selu", "celu", "relu6", "hardtanh", "hardsigmoid", "hardswish", "mish",
                 "log_sigmoid", "softsign", "tanhshrink"):
        assert type(get_activation(name)) is ACTIVATIONS[name]
    assert isinstance(get_activation("Hardswish"), Hardswish) and isinstance(get_activation("LogSigmoid"), LogSigmoid)
    for cls in (PReLU, SELU, CELU, ReLU6, Hardtanh, Hardsigmoid, Hardswish, Mish, LogSigmoid, Softsign, Tanhshrink):
        assert getattr(xpnet, cls.__name__) is cls and cls.__name__ in xpnet.__all__
    assert repr(Hardtanh(-2, 2)) == "Hardtanh(min_val=-2.0, max_val=2.0)" and repr(ReLU6()) == "ReLU6()"
    with pytest.raises(ValueError, match="max_val must be greater"):
        Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="alpha"):
        CELU(0.0)
