"""The per-step fast paths of ``xpnet._backend``: the same results as the standard calls.

``scalar`` (cached 0-d operands), ``take_flat``, ``sumsq``, ``rsum`` and ``rmax`` exist
because NumPy's generic entry points cost as much as the operation on the small arrays
of a training step; each must give exactly what the portable expression gives, on every
backend (the non-NumPy ones take the portable expression itself).
"""

import math

import numpy as np
import pytest

from xpnet import _backend


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("value", [0.5, 1.0, 1.0 - 0.9, 2.0 / 3.0, 1e-8, 1e30, 0.0, -0.0, -2.5])
def test_scalar_operand_gives_the_python_floats_results(backend, dtype, value):
    host = np.random.default_rng(1).standard_normal((5, 3)).astype(dtype)
    x = backend.asarray(host, dtype=dtype)
    c = _backend.scalar(x, value)
    with np.errstate(divide="ignore"):  # x / ±0: the infinities' signs are compared too
        pairs = ((x * c, x * value), (c - x, value - x), (x / c, x / value), (x + c, x + value))
    for got, want in pairs:
        backend.check(got, dtype=dtype, shape=(5, 3))
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    y = backend.asarray(host.copy(), dtype=dtype)  # (NumPy: asarray may not copy)
    if _backend.supports_inplace(y):
        y *= c  # in place: the array keeps its dtype
        backend.check(y, dtype=dtype)
        np.testing.assert_array_equal(backend.to_numpy(y), host * np.asarray(value, dtype))


def test_scalar_keeps_the_sign_of_zero():
    x = np.array([-0.0, 0.0, 1.0], np.float32)
    pos, neg = _backend.scalar(x, 0.0), _backend.scalar(x, -0.0)
    assert math.copysign(1.0, float(pos)) == 1.0
    assert math.copysign(1.0, float(neg)) == -1.0
    np.testing.assert_array_equal(np.signbit(np.maximum(x, neg)), np.signbit(np.maximum(x, -0.0)))


def test_scalar_is_cached_read_only_and_bounded(monkeypatch):
    x32, x64 = np.ones(3, np.float32), np.ones(3, np.float64)
    a = _backend.scalar(x32, 0.25)
    assert _backend.scalar(x32, 0.25) is a  # the cached operand
    assert a.dtype == np.float32 and a.shape == () and not a.flags.writeable
    assert _backend.scalar(x64, 0.25).dtype == np.float64  # one per dtype
    monkeypatch.setattr(_backend, "_SCALARS", {})
    monkeypatch.setattr(_backend, "_SCALARS_MAX", 4)
    for k in range(10):  # a schedule's ever-new values cannot grow the cache without bound
        _backend.scalar(x32, 1.0 + k)
        assert len(_backend._SCALARS) <= 4


def test_scalar_passes_everything_else_through():
    x = np.ones(3, np.float32)
    arr = np.ones(3, np.float32)
    assert _backend.scalar(x, arr) is arr  # arrays are operands already
    assert _backend.scalar(x, 2) == 2 and type(_backend.scalar(x, 2)) is int
    assert type(_backend.scalar(np.ones(3, np.int64), 0.5)) is float  # no truncation to int
    assert type(_backend.scalar([1.0], 0.5)) is float


def test_take_flat_and_sumsq_match_the_portable_expressions(backend):
    rng = np.random.default_rng(2)
    host = rng.standard_normal((6, 4)).astype("float64")
    x = backend.asarray(host, dtype="float64")
    xp = backend.xp
    idx = _backend.asarray(np.array([0, 5, 11, 23, 7]), xp, device=backend.device)
    got = _backend.take_flat(x, idx, xp=xp)
    backend.check(got, dtype="float64", shape=(5,))
    np.testing.assert_array_equal(backend.to_numpy(got), host.reshape(-1)[[0, 5, 11, 23, 7]])
    ss = _backend.sumsq(x, xp=xp)
    np.testing.assert_allclose(float(backend.to_numpy(ss)), float(np.sum(host * host)), rtol=1e-14)


@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, True), (0, False)])
def test_rsum_and_rmax_match_the_standard_reductions(backend, axis, keepdims):
    host = np.random.default_rng(3).standard_normal((7, 5)).astype("float32")
    x = backend.asarray(host, dtype="float32")
    xp = backend.xp
    for fast, std in ((_backend.rsum, xp.sum), (_backend.rmax, xp.max)):
        got = fast(x, axis, keepdims, xp=xp)
        want = std(x, axis=axis, keepdims=keepdims)
        np.testing.assert_array_equal(np.asarray(backend.to_numpy(got)), np.asarray(backend.to_numpy(want)))


def test_out_namespace_is_the_namespace_whose_functions_take_out(backend):
    x = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float64")
    xp = _backend.out_namespace(x)
    if not _backend.supports_out(_backend.namespace_of(x)):
        assert xp is None  # torch, array-api-strict: the portable expressions
        return
    out = backend.asarray(np.zeros((2, 3)), dtype="float64")
    got = xp.multiply(x, 2.0, out=out)
    assert got is out
    backend.check(got, dtype="float64", shape=(2, 3))
    np.testing.assert_array_equal(backend.to_numpy(got), 2.0 * np.arange(6.0).reshape(2, 3))
    for name in ("subtract", "multiply", "divide", "sqrt", "maximum", "add"):
        # The NumPy shortcut returns numpy itself: the very functions of the standard namespace.
        assert getattr(xp, name) is getattr(_backend.namespace_of(x), name)


def test_astype_function_copies_like_the_standard_astype(backend):
    x = backend.asarray(np.array([[0.0, -1.5], [2.0, np.nan]]), dtype="float32")
    mask = x <= 0.0
    xp = _backend.namespace_of(x)
    got = _backend.astype_function(x, xp)(mask, x.dtype)
    want = xp.astype(mask, x.dtype)
    backend.check(got, dtype="float32", shape=(2, 2))
    np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    assert got is not mask
