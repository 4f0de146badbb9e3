"""xpnet.functional: values and derivatives vs torch, erf accuracy, stability at ±1e4."""

import math
import warnings

import numpy as np
import pytest

import xpnet.functional as F
from xpnet.testing import numeric_grad

# torch oracle, float64: both sides evaluate the same formulas up to rounding order
# (a few ulps, ~1e-15 relative); 1e-10 leaves room for reductions and erf.
RTOL_F64 = 1e-10
# Absolute floor for results that are ~0 where torch itself cancels: torch's GELU forms
# 1 + erf(x/√2), which loses everything below ~1e-16 absolute for x << 0.
ATOL_F64 = 1e-13
# float32: unit roundoff 6e-8 times a handful of operations (erf: ~7 ulps, see below).
RTOL_F32 = 1e-5
ATOL_F32 = 1e-6
# The brief's erf contract: float64 absolute error vs math.erf (correctly rounded libm).
ERF_ATOL_F64 = 1e-14
# float32 erf: rounding of x² inside exp(-x²) costs up to ~6.25 * 6e-8 ≈ 4e-7 absolute.
ERF_ATOL_F32 = 1e-6
# erfc in float64 relative to math.erfc: 1 - erf cancels near |x| = 2.5 (~1e-12).
ERFC_RTOL_F64 = 1e-11
# Finite differences (central, eps 1e-6, float64): truncation + rounding ~1e-9.
FD_RTOL = 1e-5
FD_ATOL = 1e-7

LARGE = np.array([-1e4, -1e3, -100.0, -30.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 5.0, 30.0, 100.0, 1e3, 1e4])


def host(shape, seed=0, *, off_kink=True):
    r = np.random.default_rng(seed).standard_normal(shape) * 2.0
    # keep inputs at least 0.1 from the ReLU/ELU/step kink at 0
    return r + 0.1 * np.sign(r) if off_kink else r


def tolerances(dtype):
    return (RTOL_F64, ATOL_F64) if dtype == "float64" else (RTOL_F32, ATOL_F32)


# name -> (ours forward, ours backward(dy, x, y), torch forward(torch, tx))
def _torch_fn(name):
    def f(torch, t):
        tf = torch.nn.functional
        return {
            "sigmoid": lambda: torch.sigmoid(t),
            "tanh": lambda: torch.tanh(t),
            "relu": lambda: torch.relu(t),
            "leaky_relu": lambda: tf.leaky_relu(t, 0.2),
            "elu": lambda: tf.elu(t, 0.7),
            "gelu": lambda: tf.gelu(t),
            "gelu_tanh": lambda: tf.gelu(t, approximate="tanh"),
            "silu": lambda: tf.silu(t),
            "softplus": lambda: tf.softplus(t),
            "softplus_beta": lambda: tf.softplus(t, beta=2.0, threshold=3.0),
            "softmax": lambda: torch.softmax(t, dim=-1),
            "softmax_dim0": lambda: torch.softmax(t, dim=0),
            "log_softmax": lambda: torch.log_softmax(t, dim=-1),
            "logsigmoid": lambda: tf.logsigmoid(t),
        }[name]()

    return f


CASES = {
    "sigmoid": (F.sigmoid, lambda dy, x, y: F.sigmoid_backward(dy, y)),
    "tanh": (F.tanh, lambda dy, x, y: F.tanh_backward(dy, y)),
    "relu": (F.relu, lambda dy, x, y: F.relu_backward(dy, y)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda dy, x, y: F.leaky_relu_backward(dy, x, 0.2)),
    "elu": (lambda x: F.elu(x, 0.7), lambda dy, x, y: F.elu_backward(dy, x, 0.7)),
    "gelu": (F.gelu, lambda dy, x, y: F.gelu_backward(dy, x)),
    "gelu_tanh": (
        lambda x: F.gelu(x, approximate="tanh"),
        lambda dy, x, y: F.gelu_backward(dy, x, approximate="tanh"),
    ),
    "silu": (F.silu, lambda dy, x, y: F.silu_backward(dy, x)),
    "softplus": (F.softplus, lambda dy, x, y: F.softplus_backward(dy, x)),
    "softplus_beta": (
        lambda x: F.softplus(x, beta=2.0, threshold=3.0),
        lambda dy, x, y: F.softplus_backward(dy, x, beta=2.0, threshold=3.0),
    ),
    "softmax": (F.softmax, lambda dy, x, y: F.softmax_backward(dy, y)),
    "softmax_dim0": (lambda x: F.softmax(x, dim=0), lambda dy, x, y: F.softmax_backward(dy, y, dim=0)),
    "log_softmax": (F.log_softmax, lambda dy, x, y: F.log_softmax_backward(dy, y)),
    "logsigmoid": (F.logsigmoid, lambda dy, x, y: F.logsigmoid_backward(dy, x)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_matches_torch_autograd(backend, name, dtype):
    torch = pytest.importorskip("torch")
    fwd, bwd = CASES[name]
    xh, dyh = host((3, 5), 1), host((3, 5), 2, off_kink=False)
    if name == "softplus_beta":
        xh = xh * 0.9  # beta x = 3 is the threshold kink: |2 x| from 3 by more than 0.1
        xh[np.abs(2 * xh - 3.0) < 0.1] += 0.2
    tx = torch.tensor(xh, dtype=getattr(torch, dtype), requires_grad=True)
    ty = _torch_fn(name)(torch, tx)
    ty.backward(torch.tensor(dyh, dtype=getattr(torch, dtype)))

    x, dy = backend.asarray(xh, dtype=dtype), backend.asarray(dyh, dtype=dtype)
    y = backend.check(fwd(x), dtype=dtype, shape=(3, 5))
    dx = backend.check(bwd(dy, x, y), dtype=dtype, shape=(3, 5))
    rtol, atol = tolerances(dtype)
    np.testing.assert_allclose(backend.to_numpy(y), ty.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(backend.to_numpy(dx), tx.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_helpers_match_finite_differences(backend, name):
    fwd, bwd = CASES[name]
    xh, dyh = host((2, 4), 3), host((2, 4), 4, off_kink=False)
    x, dy = backend.asarray(xh, dtype="float64"), backend.asarray(dyh, dtype="float64")
    dx = backend.check(bwd(dy, x, fwd(x)), dtype="float64", shape=(2, 4))
    num = numeric_grad(lambda a: float(np.sum(backend.to_numpy(fwd(a)) * dyh)), x)
    np.testing.assert_allclose(backend.to_numpy(dx), num, rtol=FD_RTOL, atol=FD_ATOL)


def _erf_grid():
    dense = np.linspace(-7.0, 7.0, 28001)
    tails = np.linspace(-40.0, 40.0, 801)
    split = np.nextafter(2.5, [-np.inf, np.inf])  # both sides of the series/CF switch
    special = [0.0, -0.0, 6.0, -6.0, 2.5, -2.5, *split, *-split, 1e-300, -1e-300, 1e4, -1e4, 1e300, -1e300]
    return np.concatenate([dense, tails, special])


def test_erf_accuracy_float64(backend):
    xh = _erf_grid()
    ref = np.array([math.erf(v) for v in xh])
    got = backend.to_numpy(backend.check(F.erf(backend.asarray(xh, dtype="float64")), dtype="float64", shape=xh.shape))
    err = np.abs(got - ref)
    assert err.max() < ERF_ATOL_F64, f"max |erf - math.erf| = {err.max():.3g} at x = {xh[np.argmax(err)]!r}"
    # odd function, signed zero preserved
    assert np.signbit(got[xh == 0.0]).tolist() == np.signbit(xh[xh == 0.0]).tolist()


def test_erfc_relative_accuracy_float64(backend):
    xh = _erf_grid()
    ref = np.array([math.erfc(v) for v in xh])
    got = backend.to_numpy(F.erfc(backend.asarray(xh, dtype="float64")))
    normal = ref > 1e-300  # math.erfc underflows beyond ~26.5
    rel = np.abs(got[normal] - ref[normal]) / ref[normal]
    assert rel.max() < ERFC_RTOL_F64
    np.testing.assert_array_equal(got[~normal] < 1e-300, True)


def test_erf_float32_is_sane(backend):
    xh = np.concatenate([np.linspace(-6.0, 6.0, 12001), [0.0, 1e4, -1e4, 3e38, -3e38]]).astype(np.float32)
    got = backend.to_numpy(backend.check(F.erf(backend.asarray(xh, dtype="float32")), dtype="float32"))
    ref = np.array([math.erf(float(v)) for v in xh])
    assert np.abs(got - ref).max() < ERF_ATOL_F32
    assert np.all(np.abs(got) <= 1.0)
    assert np.all(np.diff(got[:12001]) >= 0)  # monotone, no seams at the branch switch


def test_erf_special_values(backend):
    xh = np.array([np.inf, -np.inf, np.nan])
    got = backend.to_numpy(F.erf(backend.asarray(xh, dtype="float64")))
    assert got[0] == 1.0 and got[1] == -1.0 and np.isnan(got[2])
    gotc = backend.to_numpy(F.erfc(backend.asarray(xh, dtype="float64")))
    assert gotc[0] == 0.0 and gotc[1] == 2.0 and np.isnan(gotc[2])


def test_erf_matches_torch(backend):
    torch = pytest.importorskip("torch")
    xh = np.linspace(-5, 5, 201)
    got = backend.to_numpy(F.erf(backend.asarray(xh, dtype="float64")))
    np.testing.assert_allclose(got, torch.erf(torch.tensor(xh)).numpy(), rtol=0, atol=ERF_ATOL_F64)
    gotc = backend.to_numpy(F.erfc(backend.asarray(xh, dtype="float64")))
    np.testing.assert_allclose(gotc, torch.special.erfc(torch.tensor(xh)).numpy(), rtol=ERFC_RTOL_F64)


ELEMENTWISE = [n for n in CASES if "softmax" not in n]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stable_at_large_magnitudes(backend, dtype):
    """No overflow/invalid warnings, finite values and derivatives, at up to ±1e4."""
    torch = pytest.importorskip("torch")
    x = backend.asarray(LARGE, dtype=dtype)
    dy = backend.asarray(np.ones_like(LARGE), dtype=dtype)
    rows = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1.0, -3.0]])
    xr = backend.asarray(rows, dtype=dtype)
    dyr = backend.asarray(np.array([[1.0, -2.0, 0.5]] * 3), dtype=dtype)
    rtol, atol = tolerances(dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        outs = {}
        for name in ELEMENTWISE:
            fwd, bwd = CASES[name]
            y = fwd(x)
            outs[name] = (y, bwd(dy, x, y), LARGE)
        for name in ("softmax", "log_softmax"):
            fwd, bwd = CASES[name]
            y = fwd(xr)
            outs[name] = (y, bwd(dyr, xr, y), rows)
        outs["erf"] = (F.erf(x), None, LARGE)
        outs["heaviside"] = (F.heaviside(x), F.heaviside_backward(dy, x), LARGE)
    for name, (y, dx, inp) in outs.items():
        yh = backend.to_numpy(backend.check(y, dtype=dtype, shape=inp.shape))
        assert np.all(np.isfinite(yh)), f"{name}: non-finite output {yh}"
        if dx is not None:
            dxh = backend.to_numpy(backend.check(dx, dtype=dtype, shape=inp.shape))
            assert np.all(np.isfinite(dxh)), f"{name}: non-finite derivative {dxh}"
        if name in CASES:
            tx = torch.tensor(inp, dtype=getattr(torch, dtype))
            np.testing.assert_allclose(yh, _torch_fn(name)(torch, tx).numpy(), rtol=rtol, atol=atol, err_msg=name)
    # exact limits
    sig = backend.to_numpy(outs["sigmoid"][0])
    # sigmoid clamps its input at log(smallest normal) (one exp, no overflow): at -1e4 it
    # gives about the smallest normal number instead of torch's 0.
    assert 0.0 <= sig[0] <= 2 * np.finfo(dtype).smallest_normal and sig[-1] == 1.0
    sp = backend.to_numpy(outs["softplus"][0])
    assert sp[0] == 0.0 and sp[-1] == 1e4
    np.testing.assert_array_equal(backend.to_numpy(outs["heaviside"][0]), (LARGE > 0).astype(dtype))
    np.testing.assert_array_equal(backend.to_numpy(outs["heaviside"][1]), 0.0)
    ls = backend.to_numpy(outs["log_softmax"][0])
    np.testing.assert_allclose(ls[0], [0.0, -2e4, -1e4], rtol=rtol)
    np.testing.assert_allclose(np.exp(ls[1]), 1 / 3, rtol=rtol)


INF_SAFE = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softplus_beta", "logsigmoid"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_infinite_inputs_match_torch(backend, dtype):
    """±inf in, torch's values out: the branch-free blends never form 0 * inf."""
    torch = pytest.importorskip("torch")
    xh = np.array([-np.inf, -1e4, -2.0, 0.5, 1e4, np.inf])
    x, dy = backend.asarray(xh, dtype=dtype), backend.asarray(np.ones(6), dtype=dtype)
    rtol, atol = tolerances(dtype)
    for name in INF_SAFE:
        fwd, bwd = CASES[name]
        tx = torch.tensor(xh, dtype=getattr(torch, dtype), requires_grad=True)
        ty = _torch_fn(name)(torch, tx)
        ty.backward(torch.ones_like(ty))
        y = fwd(x)
        # assert_allclose requires infinities to match exactly and NaNs in the same places
        np.testing.assert_allclose(backend.to_numpy(y), ty.detach().numpy(), rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(backend.to_numpy(bwd(dy, x, y)), tx.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    terf = torch.erf(torch.tensor(xh, dtype=getattr(torch, dtype))).numpy()
    np.testing.assert_allclose(backend.to_numpy(F.erf(x)), terf, rtol=rtol, atol=atol)


def test_heaviside_follows_torch_values_zero(backend):
    torch = pytest.importorskip("torch")
    xh = np.array([-2.0, -0.0, 0.0, 1e-30, 3.0, np.nan])
    got = backend.to_numpy(backend.check(F.heaviside(backend.asarray(xh, dtype="float64")), dtype="float64"))
    t = torch.tensor(xh)
    np.testing.assert_array_equal(got, torch.heaviside(t, torch.zeros((), dtype=t.dtype)).numpy())
    dy = backend.asarray(np.ones(6), dtype="float64")
    dx = backend.check(F.heaviside_backward(dy), dtype="float64", shape=(6,))
    np.testing.assert_array_equal(backend.to_numpy(dx), 0.0)


def test_functional_argument_errors():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="approximate must be one of"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="approximate must be one of"):
        F.gelu_backward(x, x, approximate="erf")
    with pytest.raises(ValueError, match=r"dim must be an int in \[-2, 2\)"):
        F.softmax(x, dim=2)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        F.log_softmax(np.zeros(()))
    with pytest.raises(TypeError, match="different backends"):
        import array_api_strict as xps

        F.sigmoid_backward(np.ones(3), xps.ones(3))


def test_functional_does_not_mutate_inputs(backend):
    xh, dyh = host((3, 4), 5), host((3, 4), 6)
    for name, (fwd, bwd) in CASES.items():
        x, dy = backend.asarray(xh, dtype="float64"), backend.asarray(dyh, dtype="float64")
        bwd(dy, x, fwd(x))
        np.testing.assert_array_equal(backend.to_numpy(x), xh, err_msg=name)
        np.testing.assert_array_equal(backend.to_numpy(dy), dyh, err_msg=name)
