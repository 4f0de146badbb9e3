"""The backend layer: namespace/device resolution, moving data, clear errors on mixing."""

import numpy as np
import pytest

import xpnet
from xpnet import _backend


def test_asarray_and_to_numpy_round_trip_is_exact(backend):
    host = np.random.default_rng(0).standard_normal((3, 4))
    for dtype in ("float32", "float64"):
        a = backend.asarray(host, dtype=dtype)
        backend.check(a, dtype=dtype, shape=(3, 4))
        back = xpnet.to_numpy(a)
        assert isinstance(back, np.ndarray)
        np.testing.assert_array_equal(back, host.astype(dtype))


def test_namespace_of_is_cached_and_consistent(backend):
    a = backend.asarray(np.ones(2))
    assert _backend.namespace_of(a) is backend.xp
    assert _backend.namespace_of(a, a) is backend.xp
    assert _backend.backend_name(backend.xp) == backend.name.partition(":")[0]


def test_get_namespace_by_name_and_module():
    import numpy

    assert _backend.get_namespace("numpy") is _backend.get_namespace(numpy)
    assert _backend.get_namespace("NumPy") is _backend.get_namespace("np")
    strict = pytest.importorskip("array_api_strict")
    assert _backend.get_namespace("array_api_strict") is strict
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        _backend.get_namespace("tensorflow")


def test_mixing_namespaces_names_both_and_the_fix():
    strict = pytest.importorskip("array_api_strict")
    a = np.ones(2)
    b = strict.ones(2)
    with pytest.raises(TypeError) as info:
        _backend.namespace_of(a, b)
    msg = str(info.value)
    assert "numpy" in msg and "array_api_strict" in msg and "model.to(" in msg


def test_non_array_input_is_a_type_error():
    with pytest.raises(TypeError, match="expected an array"):
        _backend.namespace_of([1.0, 2.0])


def test_mixing_devices_is_a_value_error():
    strict = pytest.importorskip("array_api_strict")
    w = strict.ones((2, 2), device=strict.Device("device1"))
    x = strict.ones((2, 2))
    with pytest.raises(ValueError, match="device1"):
        _backend.check_same_backend(x, w, who="Linear")


def test_dtype_mismatch_is_a_type_error_with_hint():
    with pytest.raises(TypeError, match=r"model.to\(dtype='float64'\)"):
        _backend.check_same_backend(np.ones(2), np.ones(2, dtype=np.float32), who="Linear")


def test_resolve_dtype_accepts_names_numpy_and_backend_dtypes(backend):
    xp = backend.xp
    assert _backend.resolve_dtype(xp, "float64") == xp.float64
    assert _backend.resolve_dtype(xp, np.float32) == xp.float32
    assert _backend.resolve_dtype(xp, xp.float64) == xp.float64
    with pytest.raises(TypeError, match="unsupported dtype"):
        _backend.resolve_dtype(xp, "complex257")


def test_cross_backend_asarray_goes_through_host(backend):
    src = backend.asarray(np.arange(6.0).reshape(2, 3))
    out = xpnet.asarray(src, "numpy")
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, np.arange(6.0).reshape(2, 3))


def test_asarray_keeps_caller_data_unchanged():
    host = np.arange(4.0)
    a = xpnet.asarray(host, dtype="float32")
    a += 1
    np.testing.assert_array_equal(host, np.arange(4.0))


def test_device_names_resolve_like_the_cli():
    strict = pytest.importorskip("array_api_strict")
    a = xpnet.asarray(np.ones(2), "array_api_strict", device="device1")
    assert a.device == strict.Device("device1")
    lin = xpnet.Linear(2, 2).to("array_api_strict", device="device1")
    assert lin.weight.device == strict.Device("device1")
    assert _backend.resolve_device(_backend.get_namespace("numpy"), "cpu") == "cpu"
    with pytest.raises(ValueError, match="no device 'gpu7'"):
        xpnet.asarray(np.ones(2), "array_api_strict", device="gpu7")
    with pytest.raises(ValueError, match="only the device 'cpu'"):
        xpnet.asarray(np.ones(2), "numpy", device="cuda:0")


def test_a_device_name_given_as_backend_gets_a_hint():
    with pytest.raises(ValueError, match=r"is a device, not a backend: model.to\('torch', device='cuda'\)"):
        xpnet.Linear(2, 2).to("cuda")


def test_to_numpy_unwraps_parameters_and_rejects_objects():
    lin = xpnet.Linear(2, 3)
    np.testing.assert_array_equal(xpnet.to_numpy(lin.weight), lin.weight.data)
    with pytest.raises(TypeError, match="expected an array or numeric host data"):
        xpnet.to_numpy(object())


def test_integer_input_gets_a_cast_hint_not_a_model_dtype_hint():
    with pytest.raises(TypeError, match=r"floating-point input .* xpnet.asarray\(x, dtype='float32'\)"):
        xpnet.Linear(2, 2)(np.ones((3, 2), dtype=np.int64))
