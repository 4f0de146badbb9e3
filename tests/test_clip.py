"""Gradient clipping agrees with torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import _backend
from xpnet.clip import clip_grad_norm_, clip_grad_value_

# float64: a handful of reductions over < 20 entries, ~1e-16 each; float32: the same at
# u = 6e-8, and torch may sum in a different order (measured < 3e-7 relative).
RTOL = {"float64": 1e-12, "float32": 1e-5}
SHAPES = [(3, 4), (4,), (2, 2)]


def _setup(backend, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    host = [rng.standard_normal(s) * scale for s in SHAPES]
    params = []
    for h in host:
        p = xpnet.Parameter(backend.asarray(np.zeros(h.shape), dtype=dtype))
        p.grad = backend.asarray(h, dtype=dtype)
        params.append(p)
    return params, [h.astype(dtype) for h in host]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(backend, dtype, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params, host = _setup(backend, dtype)
    tparams = []
    for h in host:
        tp = torch.zeros(h.shape, dtype=getattr(torch, dtype), requires_grad=True)
        tp.grad = torch.from_numpy(h.copy())
        tparams.append(tp)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    backend.check(total, dtype=dtype, shape=())
    rtol = RTOL[dtype]
    np.testing.assert_allclose(_backend.to_numpy(total), ttotal.numpy(), rtol=rtol)
    for p, tp in zip(params, tparams):
        backend.check(p.grad, dtype=dtype, shape=tuple(tp.shape))
        np.testing.assert_allclose(_backend.to_numpy(p.grad), tp.grad.numpy(), rtol=rtol, atol=rtol)
    if max_norm == 0.5:  # clipped: the new norm is max_norm (up to the 1e-6 guard)
        new = clip_grad_norm_(params, 1e9, norm_type=norm_type)
        np.testing.assert_allclose(_backend.to_numpy(new), max_norm, rtol=1e-5)


def test_norm_type_strings_and_single_parameter(backend):
    params, host = _setup(backend, "float64")
    total = clip_grad_norm_(params[0], 1e9, norm_type="inf")
    np.testing.assert_allclose(_backend.to_numpy(total), np.max(np.abs(host[0])), rtol=1e-15)


def test_parameters_without_grad_are_ignored(backend):
    params, host = _setup(backend, "float64")
    params[1].grad = None
    total = clip_grad_norm_(iter(params), 1e9)
    expected = math.sqrt(sum(float(np.sum(h * h)) for i, h in enumerate(host) if i != 1))
    np.testing.assert_allclose(_backend.to_numpy(total), expected, rtol=1e-14)
    for p in params:
        p.grad = None
    zero = clip_grad_norm_(params, 1.0)
    backend.check(zero, dtype="float64", shape=())
    assert float(_backend.to_numpy(zero)) == 0.0


def test_empty_parameter_list_returns_a_backend_neutral_zero():
    # Not a NumPy array: that would leak NumPy into a CuPy or torch program.
    total = clip_grad_norm_([], 1.0)
    assert type(total) is float and total == 0.0


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nonfinite_norm(backend):
    params, _ = _setup(backend, "float32")
    bad = np.zeros((4,))
    bad[0] = np.inf
    params[1].grad = backend.asarray(bad, dtype="float32")
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(params, 1.0)  # default: no check, no host sync
    assert math.isinf(float(_backend.to_numpy(total)))


def test_rebinds_read_only_gradients():
    p = xpnet.Parameter(np.zeros(3))
    g = np.array([3.0, 4.0, 0.0])
    g.setflags(write=False)
    p.grad = g
    total = clip_grad_norm_([p], 1.0)
    assert float(total) == 5.0
    np.testing.assert_array_equal(g, [3.0, 4.0, 0.0])  # not written
    np.testing.assert_allclose(p.grad, [0.6, 0.8, 0.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_clip_grad_value_matches_torch(backend, dtype):
    torch = pytest.importorskip("torch")
    params, host = _setup(backend, dtype, scale=2.0)
    params.append(xpnet.Parameter(backend.asarray(np.zeros(2), dtype=dtype)))  # no grad: skipped
    clip_grad_value_(params, 0.75)
    for p, h in zip(params, host):
        tp = torch.zeros(h.shape, dtype=getattr(torch, dtype), requires_grad=True)
        tp.grad = torch.from_numpy(h.copy())
        torch.nn.utils.clip_grad_value_([tp], 0.75)
        backend.check(p.grad, dtype=dtype, shape=h.shape)
        np.testing.assert_array_equal(_backend.to_numpy(p.grad), tp.grad.numpy())
    assert params[-1].grad is None
    assert float(np.max(np.abs(_backend.to_numpy(params[0].grad)))) == 0.75


def test_argument_errors():
    p = xpnet.Parameter(np.zeros(2))
    p.grad = np.ones(2)
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        clip_grad_value_([p], -0.1)
    with pytest.raises(TypeError, match="expected Parameters"):
        clip_grad_norm_([np.ones(2)], 1.0)


class _NoLinalg:
    """A namespace without the optional linalg extension (delegates everything else)."""

    def __init__(self, xp):
        self._xp = xp

    def __getattr__(self, name):
        if name == "linalg":
            raise AttributeError(name)
        return getattr(self._xp, name)


@pytest.mark.parametrize("ord", [math.inf, -math.inf, 2.0, 1.0, 0.0, 3.0])
def test_vector_norm_without_the_linalg_extension(backend, ord):
    from xpnet.clip import _vector_norm

    host = np.array([[3.0, -4.0, 0.0], [1.0, 0.5, -2.0]])
    got = _vector_norm(backend.asarray(host, dtype="float64"), ord, xp=_NoLinalg(backend.xp))
    backend.check(got, dtype="float64", shape=())
    np.testing.assert_allclose(backend.to_numpy(got), np.linalg.norm(host.ravel(), ord=ord), rtol=1e-14)
