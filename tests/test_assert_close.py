"""assert_close: cross-backend comparison with dtype-aware tolerances and useful messages."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xpnet.testing.assertions import (
    DEFAULT_TOLERANCES,
    FLOAT32_RTOL,
    FLOAT64_ATOL,
    FLOAT64_RTOL,
    assert_close,
    default_tolerances,
    diff_stats,
)


def _host(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_same_values_pass_on_every_backend(backend):
    host = _host()
    for dt in ("float32", "float64") if backend.supports_float64 else ("float32",):
        x = backend.check(backend.asarray(host, dtype=dt), dtype=dt, shape=(3, 4))
        expected = host.astype(dt)
        assert_close(x, expected)
        assert_close(expected, x)


def test_namespace_difference_is_reported(backend):
    from xpnet.testing import get_backend

    x = backend.asarray(_host())
    # compare with an array of another namespace: host NumPy, or strict for the numpy backend
    other = get_backend("array_api_strict").asarray(_host()) if backend.name == "numpy" else _host()
    assert_close(x, other)  # values only: passes
    with pytest.raises(AssertionError, match="namespace: actual"):
        assert_close(x, other, check_namespace=True)


def test_device_difference_is_reported():
    import array_api_strict

    from xpnet.testing import get_backend

    b0, b1 = get_backend("array_api_strict"), get_backend("array_api_strict:device1")
    a, b = b0.asarray(_host()), b1.asarray(_host())
    assert_close(a, b)
    with pytest.raises(AssertionError, match=r"device: actual .*CPU_DEVICE.*, expected .*device1"):
        assert_close(a, b, check_device=True)
    assert isinstance(b1.device, array_api_strict.Device)


def test_default_tolerances_are_dtype_aware():
    assert default_tolerances("float64") == (FLOAT64_RTOL, FLOAT64_ATOL)
    assert default_tolerances("float32")[0] == FLOAT32_RTOL
    # mixed precision: the least precise dtype decides
    assert default_tolerances("float32", "float64") == DEFAULT_TOLERANCES["float32"]
    assert default_tolerances("int64") == (0.0, 0.0)
    x = np.array([1.0, 2.0])
    # a float32-sized error passes in float32 but not in float64
    assert_close((x * (1 + 3e-7)).astype("float32"), x.astype("float32"))
    with pytest.raises(AssertionError, match=r"(?s)not close \(rtol=1e-10, atol=1e-12\).*2 / 2"):
        assert_close(x * (1 + 3e-7), x)
    # float64 accepts pure rounding noise
    assert_close(x * (1 + 1e-14), x)


def test_failure_message_names_worst_index_values_and_counts():
    expected = np.zeros((3, 4)) + 1.0
    actual = expected.copy()
    actual[1, 2] = 1.5  # worst
    actual[2, 3] = 1.001  # also off
    with pytest.raises(AssertionError) as info:
        assert_close(actual, expected)
    msg = str(info.value)
    assert "mismatched elements: 2 / 12" in msg
    assert "worst mismatch at index (1, 2): actual 1.5, expected 1.0" in msg
    assert "abs diff 5.000e-01" in msg
    assert "rel diff 5.000e-01" in msg
    assert re.search(r"greatest abs diff: 5\.000e-01 at index \(1, 2\)", msg)


def test_dtype_and_shape_checks_and_overrides():
    a = np.ones(3, dtype="float32")
    with pytest.raises(AssertionError, match="dtype: actual float32, expected float64"):
        assert_close(a, np.ones(3))
    assert_close(a, np.ones(3), check_dtype=False)
    with pytest.raises(AssertionError, match=r"shape: actual \(3,\), expected \(1, 3\)"):
        assert_close(np.ones(3), np.ones((1, 3)))
    assert_close(np.ones(3), np.ones((1, 3)), check_shape=False)  # broadcasts
    with pytest.raises(AssertionError, match="not broadcastable"):
        assert_close(np.ones(3), np.ones(4), check_shape=False)
    # explicit tolerances win
    assert_close(np.array([1.0]), np.array([1.1]), rtol=0.2)
    with pytest.raises(AssertionError, match="rtol=0, atol=0"):
        assert_close(np.array([1.0]), np.array([1.0 + 1e-15]), rtol=0, atol=0)
    with pytest.raises(AssertionError, match="^context: arrays are not close"):
        assert_close(np.array([1.0]), np.array([2.0]), msg="context")


def test_nan_inf_and_integer_handling():
    inf = np.array([np.inf, -np.inf, 1.0])
    assert_close(inf, inf.copy())
    with pytest.raises(AssertionError, match="mismatched elements: 1 / 3"):
        assert_close(np.array([np.inf, -np.inf, 1.0]), np.array([-np.inf, -np.inf, 1.0]))
    nan = np.array([np.nan, 1.0])
    with pytest.raises(AssertionError, match="actual nan"):
        assert_close(nan, nan.copy())
    assert_close(nan, nan.copy(), equal_nan=True)
    assert_close(np.array([1, 2, 3]), [1, 2, 3])
    with pytest.raises(AssertionError, match=r"(?s)rtol=0, atol=0\).*1 / 3.*actual 3.0, expected 4.0"):
        assert_close(np.array([1, 2, 3]), np.array([1, 2, 4]))
    assert_close(np.array([True, False]), np.array([True, False]))


def test_torch_vs_numpy_float32(backend):
    """One matmul on every backend agrees with NumPy at the float32 default tolerance."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((16, 64)).astype("float32"), rng.standard_normal((64, 8)).astype("float32")
    got = backend.check(backend.asarray(a) @ backend.asarray(b), dtype="float32", shape=(16, 8))
    assert_close(got, a @ b)


def test_diff_stats_normwise():
    s = diff_stats(np.array([1e-9, 2.0]), np.array([0.0, 2.0]))
    assert s.max_abs == pytest.approx(1e-9)
    assert s.norm_rel == pytest.approx(5e-10)
    assert s.ref_max == 2.0
    assert diff_stats(np.array([np.nan]), np.array([1.0])).max_abs == float("inf")


def test_nan_equals_nan_only_when_asked():
    """NaN == NaN is opt-in (equal_nan, as in torch.testing): two NaNs agree on nothing."""
    both = (np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    s = diff_stats(*both)
    assert s.max_abs == s.max_rel == s.norm_rel == float("inf")
    s = diff_stats(*both, equal_nan=True)
    assert (s.max_abs, s.max_rel, s.norm_rel, s.ref_max) == (0.0, 0.0, 0.0, 1.0)
    # equal_nan never excuses a NaN against a number, in either direction, nor inf vs -inf
    for a, e in (([np.nan], [1.0]), ([1.0], [np.nan]), ([np.inf], [-np.inf])):
        assert diff_stats(np.array(a), np.array(e), equal_nan=True).max_abs == float("inf")
        with pytest.raises(AssertionError, match="mismatched elements: 1 / 1"):
            assert_close(np.array(a), np.array(e), equal_nan=True)
    # the same infinity is equal without equal_nan
    assert diff_stats(np.array([np.inf]), np.array([np.inf])).max_abs == 0.0
    with pytest.raises(AssertionError, match="mismatched elements: 1 / 2"):
        assert_close(*both)
    assert_close(*both, equal_nan=True)
