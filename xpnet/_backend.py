"""Backend layer: array namespaces, devices, dtypes, and moving data between them.

Everything numeric in xpnet is written against the Array API namespace of its input
arrays. This module is the single place that knows how to *find* that namespace, how to
name a backend (``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``, ``"jax"``),
and how to move host (NumPy) data onto a backend and back. It is the bottom of the
dependency graph: nothing here imports another xpnet module.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "namespace_of",
    "device_of",
    "get_namespace",
    "backend_name",
    "resolve_dtype",
    "dtype_name",
    "asarray",
    "to_numpy",
    "to_device",
    "resolve_device",
    "resolve_float_dtype",
    "supports_float64",
    "default_device",
    "supports_inplace",
    "check_same_backend",
    "is_array",
]

Namespace = Any
Array = Any

# array_namespace() costs about a microsecond; the result depends only on the array
# type for every backend we support, so a per-type cache turns it into a dict lookup.
# This matters for tiny models (XOR) where a step is a few dozen microseconds.
_NS_BY_TYPE: dict[type, Namespace] = {}

_BACKEND_MODULES = {
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
    "array_api_strict": "array_api_strict",
    "jax": "jax.numpy",
}
# Raw libraries whose array-api-compat wrapper is what namespace_of() returns for
# their arrays; mapping them by name avoids creating a probe array.
_COMPAT_WRAPPERS = {
    "numpy": "array_api_compat.numpy",
    "torch": "array_api_compat.torch",
    "cupy": "array_api_compat.cupy",
}
_ALIASES = {"np": "numpy", "cp": "cupy", "pytorch": "torch", "strict": "array_api_strict"}


def is_array(x: object) -> bool:
    """Return True when ``x`` is an array of a namespace xpnet can work with."""
    return array_api_compat.is_array_api_obj(x)


def namespace_of(*arrays: Array) -> Namespace:
    """Return the Array API namespace shared by ``arrays``.

    Parameters
    ----------
    *arrays
        One or more arrays. Python scalars and ``None`` are ignored.

    Raises
    ------
    TypeError
        When an argument is not an array, or when arrays come from different namespaces
        (for example a NumPy input to a model moved to torch).
    """
    # Fast path for one array, or two of the same type (a layer's input, a loss's pair):
    # one dict lookup instead of the loop below.
    t = type(arrays[0]) if arrays else None
    if len(arrays) <= 2 and (len(arrays) == 1 or type(arrays[1]) is t):
        ns = _NS_BY_TYPE.get(t)
        if ns is not None:
            return ns
    xp = None
    first = None
    for a in arrays:
        if a is None or isinstance(a, (int, float, bool)):
            continue
        t = type(a)
        ns = _NS_BY_TYPE.get(t)
        if ns is None:
            try:
                ns = array_api_compat.array_namespace(a)
            except TypeError as exc:
                raise TypeError(
                    f"expected an array of an Array API namespace (numpy, cupy, torch, "
                    f"array_api_strict, ...), got {t.__module__}.{t.__qualname__}. "
                    f"Hint: convert it with xpnet.asarray(data, backend=...)."
                ) from exc
            _NS_BY_TYPE[t] = ns
        if xp is None:
            xp, first = ns, a
        elif ns is not xp:
            raise TypeError(
                f"arrays from different backends cannot be mixed: got "
                f"{backend_name(xp)} ({type(first).__name__}) and {backend_name(ns)} "
                f"({t.__name__}). Hint: put both on one backend: model.to({backend_name(xp)!r}) "
                f"moves a model to the input's backend, xpnet.asarray(x, backend={backend_name(ns)!r}) "
                f"moves an input to the model's."
            )
    if xp is None:
        raise TypeError("expected at least one array, got none")
    return xp


def device_of(x: Array) -> Any:
    """Return the device an array lives on (``"cpu"`` for NumPy)."""
    # ``.device`` is the standard attribute (NumPy 2, CuPy, torch, array-api-strict all
    # have it) and costs ~40 ns; array_api_compat.device costs ~0.4 µs and is the
    # fallback for arrays that lack the attribute.
    dev = getattr(x, "device", None)
    return dev if dev is not None else array_api_compat.device(x)


def get_namespace(backend: str | Namespace) -> Namespace:
    """Return the Array API namespace for a backend name or namespace.

    Parameters
    ----------
    backend
        ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"`` or ``"jax"`` (case
        insensitive), or a namespace / module such as ``numpy`` or ``torch``.

    Raises
    ------
    ValueError
        For an unknown backend name.
    ImportError
        When the backend's library is not installed.
    """
    if isinstance(backend, str):
        key = backend.strip().lower()
        key = _ALIASES.get(key, key)
        if key not in _BACKEND_MODULES:
            hint = ""
            if key.split(":")[0] in ("cuda", "gpu", "cpu", "mps"):
                hint = (
                    f". Hint: {backend!r} is a device, not a backend: "
                    f"model.to('torch', device={backend!r}) or model.to('cupy')"
                )
            raise ValueError(
                f"unknown backend {backend!r}; expected one of "
                f"{sorted(_BACKEND_MODULES)} or an array namespace{hint}"
            )
        try:
            module = importlib.import_module(_BACKEND_MODULES[key])
        except ImportError as exc:
            extra = {"cupy": " (pip install 'xpnet[cuda12]' or 'xpnet[cuda13]')"}.get(key, "")
            raise ImportError(
                f"backend {key!r} needs the {key} package, which is not installed{extra}"
            ) from exc
        backend = module
    # A raw module (numpy, torch, cupy) maps to its array-api-compat wrapper; an
    # already-compliant namespace (array_api_strict, compat wrappers) maps to itself.
    name = getattr(backend, "__name__", "")
    if name.startswith("array_api_compat.") or name == "array_api_strict":
        return backend
    wrapper = _COMPAT_WRAPPERS.get(name)
    if wrapper is not None and sys.modules.get(name) is backend:
        # No probe array: allocating one would touch the *current* device, i.e. GPU 0
        # on every CuPy rank of a data-parallel run, once per moved parameter.
        return importlib.import_module(wrapper)
    try:
        probe = backend.asarray([0.0])
    except Exception as exc:  # noqa: BLE001 - any failure means "not a namespace"
        raise TypeError(
            f"expected a backend name or an array namespace, got {backend!r}"
        ) from exc
    return namespace_of(probe)


def backend_name(xp: Namespace) -> str:
    """Short backend name of a namespace: ``"numpy"``, ``"torch"``, ..."""
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    if array_api_compat.is_torch_namespace(xp):
        return "torch"
    if array_api_compat.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    if array_api_compat.is_jax_namespace(xp):
        return "jax"
    return getattr(xp, "__name__", repr(xp))


# Dtype names the Array API standard defines: the only names resolve_dtype looks up.
_DTYPE_NAMES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
_DTYPE_NAME_RE = re.compile(r"(?<![a-z0-9])(bool|u?int(?:8|16|32|64)|b?float(?:16|32|64)|complex(?:64|128))(?![0-9])")


def resolve_dtype(xp: Namespace, dtype: Any) -> Any:
    """Turn ``"float32"``, ``"float64"``, a NumPy dtype or an ``xp`` dtype into ``xp``'s dtype."""
    if dtype is None:
        return xp.float32
    if isinstance(dtype, str):
        name = dtype if dtype in _DTYPE_NAMES else None
    elif isinstance(dtype, (np.dtype, type)) and dtype in (np.float32, np.float64, np.float16):
        name = np.dtype(dtype).name
    else:
        name = None
        for cand in ("float32", "float64", "float16", "int64", "int32", "bool"):
            if hasattr(xp, cand) and dtype == getattr(xp, cand):
                return dtype
    if name is None or not hasattr(xp, name):
        hint = ""
        if "128" in str(dtype) and "complex" not in str(dtype) or "longdouble" in str(dtype):
            hint = " (float128/long double is a NumPy extension that no other backend has)"
        raise TypeError(
            f"unsupported dtype {dtype!r}{hint}; expected 'float32' or 'float64' "
            f"(or the backend's own float dtype)"
        )
    return getattr(xp, name)


def resolve_float_dtype(xp: Namespace, dtype: Any) -> Any:
    """Like :func:`resolve_dtype`, but only real floating dtypes (what parameters may hold)."""
    dt = resolve_dtype(xp, dtype)
    if dtype_name(dt) not in ("float32", "float64", "float16"):
        raise TypeError(
            f"parameters must be floating point, got dtype {dtype!r}; expected 'float32' or 'float64'"
        )
    return dt


def dtype_name(dtype: Any) -> str:
    """Portable name of a dtype (``"float32"``, ``"uint8"``), whatever namespace it belongs to."""
    text = str(dtype)
    m = _DTYPE_NAME_RE.search(text)
    return m.group(1) if m else text


def supports_float64(xp: Namespace, device: Any = None) -> bool:
    """Whether ``device`` of ``xp`` can hold float64 arrays (probed by creating one).

    Some devices cannot (array-api-strict's ``no_float64`` device, Apple MPS, some
    accelerators); callers fall back to float32 with a warning.
    """
    try:
        xp.zeros((1,), dtype=xp.float64, device=resolve_device(xp, device))
    except Exception:  # noqa: BLE001 - any failure means "no float64 here"
        return False
    return True


def default_device(xp: Namespace) -> Any:
    """The default device of a namespace (``"cpu"`` for NumPy)."""
    return xp.__array_namespace_info__().default_device()


def resolve_device(xp: Namespace, device: Any) -> Any:
    """Turn a device name into ``xp``'s device object; pass device objects through.

    Accepts what a user would type: ``"cpu"`` for NumPy, ``"cuda:1"`` / ``"cpu"`` for
    torch, ``0`` / ``"cuda:0"`` for CuPy, ``"device1"`` / ``"CPU_DEVICE"`` for
    array-api-strict. ``None`` means the namespace's default device.

    Raises
    ------
    ValueError
        For a name the backend has no device for.
    """
    if device is None:
        return None
    name = backend_name(xp)
    text = device.strip() if isinstance(device, str) else None
    if name == "numpy":
        if text is not None and text.lower() != "cpu":
            raise ValueError(
                f"backend numpy has only the device 'cpu', got {device!r}. Hint: for a GPU use "
                f"model.to('cupy') or model.to('torch', device='cuda')"
            )
        return "cpu" if text is not None else device
    if name == "array_api_strict" and (text is not None):
        import array_api_strict

        lookup = {str(d).split("'")[1].lower(): d for d in xp.__array_namespace_info__().devices()}
        key = "cpu_device" if text.lower() == "cpu" else text.lower()
        if key not in lookup:
            raise ValueError(
                f"array_api_strict has no device {device!r}; expected one of "
                f"{sorted(k for k in lookup)}"
            )
        return array_api_strict.Device(str(lookup[key]).split("'")[1])
    if name == "torch" and (text is not None or isinstance(device, int)):
        import torch

        return torch.device(device)
    if name == "cupy" and (text is not None or isinstance(device, int)):
        import cupy

        index = device if isinstance(device, int) else text.split(":")[-1]
        try:
            return cupy.cuda.Device(int(index))
        except ValueError:
            raise ValueError(f"cupy devices are GPU indices such as 0 or 'cuda:0', got {device!r}") from None
    return device


def asarray(
    data: Any,
    backend: str | Namespace | None = None,
    *,
    device: Any = None,
    dtype: Any = None,
) -> Array:
    """Move host data (NumPy arrays, lists, scalars) or an array onto a backend and device.

    Parameters
    ----------
    data
        Host data or an array of any backend.
    backend
        Target backend name or namespace; default NumPy.
    device
        Target device (``"cuda:1"``, ``array_api_strict.Device("device1")``); default
        the namespace's default device.
    dtype
        ``"float32"``, ``"float64"`` or a dtype; default keeps the data's dtype.

    Returns
    -------
    array
        An array of ``backend`` on ``device``. Host data is copied exactly: the same
        numbers arrive on every backend.
    """
    xp = get_namespace("numpy" if backend is None else backend)
    if is_array(data) and namespace_of(data) is not xp:
        data = to_numpy(data)
    elif not is_array(data):
        data = np.asarray(data)
        # Python floats become float64 on the host; keep that unless dtype says otherwise.
    if isinstance(data, np.ndarray) and data.dtype.kind not in "biufc":
        raise TypeError(
            f"asarray: cannot move a NumPy array of dtype {data.dtype} (Python objects, "
            f"strings or records) onto a backend. Hint: convert it first, e.g. "
            f"np.asarray(X, dtype=np.float32); look for strings or None among the values"
        )
    target_dtype = None if dtype is None else resolve_dtype(xp, dtype)
    if isinstance(data, np.ndarray) and target_dtype is not None:
        # Cast on the host so every backend receives bit-identical values.
        data = data.astype(dtype_name(target_dtype), copy=False)
    kwargs = {}
    if device is not None:
        kwargs["device"] = resolve_device(xp, device)
    if target_dtype is not None:
        kwargs["dtype"] = target_dtype
    if array_api_compat.is_array_api_strict_namespace(xp) and isinstance(data, np.ndarray):
        # array_api_strict accepts buffers; a C-ordered array avoids negative strides.
        # (np.ascontiguousarray would turn a 0-d array into shape (1,).)
        data = np.asarray(data, order="C")
    try:
        return xp.asarray(data, **kwargs)
    except Exception as exc:
        # The usual cause on the accelerators: a device without float64 (MPS, some TPUs,
        # array-api-strict's no_float64). Probe only after the failure: no cost otherwise.
        wanted = dtype_name(target_dtype if target_dtype is not None else getattr(data, "dtype", ""))
        if wanted == "float64" and not supports_float64(xp, device):
            raise ValueError(
                f"asarray: the device {kwargs.get('device', default_device(xp))} of "
                f"{backend_name(xp)} has no float64. Hint: pass dtype='float32'"
            ) from exc
        raise


def to_device(x: Array, device: Any) -> Array:
    """Move an array to another device of the same backend."""
    if device is None:
        return x
    device = resolve_device(namespace_of(x), device)
    if device == device_of(x):
        return x
    return array_api_compat.to_device(x, device)


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend (or host data) to a NumPy array on the host.

    This synchronises with the device: call it in loops, metrics and logging only.
    """
    if isinstance(x, np.ndarray):
        return x
    data = getattr(x, "data", None)
    if data is not None and type(x).__name__ == "Parameter":
        x = data  # a Parameter: its array, not an object array holding it
    if not is_array(x):
        out = np.asarray(x)
        if out.dtype == object:
            raise TypeError(
                f"to_numpy: expected an array or numeric host data, got {type(x).__name__}"
            )
        return out
    if array_api_compat.is_numpy_array(x):
        return np.asarray(x)
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_array_api_strict_namespace(namespace_of(x)):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    if array_api_compat.is_jax_array(x):
        return np.asarray(x)
    return np.from_dlpack(x)


_OUT_BACKENDS = ("numpy", "cupy")
_SUPPORTS_OUT: dict[int, bool] = {}


def supports_out(xp: Namespace) -> bool:
    """Whether ``xp``'s functions accept ``out=`` (NumPy's and CuPy's ufuncs and matmul).

    The Array API has no ``out=``; where the backend offers it, the optimizers' update
    functions write their temporaries into a caller-provided ``scratch`` array and layers
    write gradient products straight into the optimizer's flat gradient buffer. Those
    fast paths perform the same operations in the same order as the portable ones, so
    the numbers are identical (tested).
    """
    key = id(xp)
    ok = _SUPPORTS_OUT.get(key)
    if ok is None:
        ok = _SUPPORTS_OUT[key] = backend_name(xp) in _OUT_BACKENDS
    return ok


_MATMUL_OUT: dict[type, Any] = {}


def matmul_out(kind: type) -> Any:
    """The library's own ``matmul`` taking ``out=`` for arrays of type ``kind``, else None.

    NumPy's and CuPy's; called directly, without the array-api-compat wrapper, whose
    argument handling costs more than a small product (~1 us of a 2 us call).
    """
    try:
        return _MATMUL_OUT[kind]
    except KeyError:
        pass
    fn = None
    if kind is np.ndarray:
        fn = np.matmul
    elif kind.__module__.split(".")[0] == "cupy":
        import cupy

        fn = cupy.matmul
    _MATMUL_OUT[kind] = fn
    return fn


_VIEW_BACKENDS = ("numpy", "cupy", "torch")
_VIEWS_ALIAS: dict[tuple[int, str], bool] = {}


def reuses_buffers(xp: Namespace) -> bool:
    """Whether a training step should write its large temporaries into reused buffers.

    True for NumPy: every allocation above glibc's mmap threshold (~128 KiB) maps fresh
    pages that fault in on first write, which doubled a batch-2048 step. CuPy allocates
    from a memory pool (no such cost) and keeps fresh arrays; other backends have no
    ``out=``.
    """
    return backend_name(xp) == "numpy"


def views_alias(xp: Namespace, device: Any = None) -> bool:
    """Whether a contiguous slice of a 1-D array, reshaped, shares its memory in ``xp``.

    The Array API leaves view semantics open. NumPy, CuPy and torch guarantee that
    ``flat[a:b]`` reshaped is a view that in-place writes go through (both ways), which
    lets an optimizer keep every parameter inside one flat buffer. For any other
    namespace this is probed once per namespace and device: a write through the view must
    show in the buffer and vice versa (a tiny array, one host read). Immutable namespaces
    (JAX) answer False.
    """
    name = backend_name(xp)
    if name in _VIEW_BACKENDS:
        return True
    key = (id(xp), repr(device))
    ok = _VIEWS_ALIAS.get(key)
    if ok is None:
        try:
            kw = {} if device is None else {"device": device}
            buf = xp.zeros((4,), dtype=xp.float32, **kw)
            view = xp.reshape(buf[1:3], (2, 1))
            view[...] = 1.0
            buf[2] = 2.0
            host = to_numpy(buf).tolist()
            ok = host == [0.0, 1.0, 2.0, 0.0] and float(to_numpy(view)[1, 0]) == 2.0
        except Exception:  # noqa: BLE001 - no in-place writes or no views: not usable
            ok = False
        _VIEWS_ALIAS[key] = ok
    return ok


def out_namespace(x: Array) -> Namespace | None:
    """``x``'s namespace when its functions accept ``out=`` (:func:`supports_out`), else None.

    For a NumPy array the ``numpy`` module itself, without the namespace lookup (~0.2 us
    of a per-step call): array_api_compat's NumPy namespace re-exports NumPy's ufuncs.
    """
    if type(x) is np.ndarray:
        return np
    xp = namespace_of(x)
    return xp if supports_out(xp) else None


def astype_function(x: Array, xp: Namespace) -> Any:
    """``xp.astype`` for arrays like ``x``; for NumPy arrays ``numpy.ndarray.astype``,
    the same copy without array_api_compat's argument and device checks (~0.3 us)."""
    return np.ndarray.astype if type(x) is np.ndarray else xp.astype


def mask_multiplies(x: Array) -> bool:
    """Whether ``x * mask`` may stand for ``where(mask, x, 0)`` in a sum of such parts.

    True for a finite floating NumPy ``x``: NumPy's ``where`` on a data-dependent mask
    costs ~4 ns per element, 20x a multiply. The products are the same numbers (``x·1 =
    x``, ``x·0 = ±0``, and a -0 added to the +0 a sum starts from is +0); an inf or NaN
    would make ``x·0`` NaN, hence the check (one pass, no device sync on NumPy).
    """
    return type(x) is np.ndarray and x.dtype.kind == "f" and bool(np.isfinite(x).all())


def supports_inplace(x: Array) -> bool:
    """True when ``x`` may be updated in place (``x -= y``); False for JAX and read-only arrays."""
    if type(x) is np.ndarray:  # the per-step case: 50 ns instead of 350 ns
        return x.flags.writeable
    return array_api_compat.is_writeable_array(x)


# ---------------------------------------------------------------------- hot-path reductions
#
# ``np.sum``/``np.max`` dispatch through Python (``_wrapreduction``) before calling the
# ufunc's ``reduce``: ~0.8 us of a 1.7 us call on the small arrays of a training step,
# and ``np.mean`` adds ~2 us more. The functions below call ``reduce`` directly for a
# floating NumPy array: the very function ``np.sum``/``np.max`` end in, with the same
# arguments, so the results are identical (tested); every other array goes through
# the standard ``xp.sum``/``xp.max``.


def rsum(x: Array, axis: int | None = None, keepdims: bool = False, *, xp: Namespace) -> Array:
    """``xp.sum(x, axis=axis, keepdims=keepdims)`` for a real floating ``x``."""
    if type(x) is np.ndarray and x.dtype.kind == "f":
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return xp.sum(x, axis=axis, keepdims=keepdims)


def rmax(x: Array, axis: int | None = None, keepdims: bool = False, *, xp: Namespace) -> Array:
    """``xp.max(x, axis=axis, keepdims=keepdims)`` for a real floating ``x``."""
    if type(x) is np.ndarray and x.dtype.kind == "f":
        return np.maximum.reduce(x, axis=axis, keepdims=keepdims)
    return xp.max(x, axis=axis, keepdims=keepdims)


def take_flat(x: Array, idx: Array, *, xp: Namespace) -> Array:
    """``xp.take(xp.reshape(x, (-1,)), idx)``: the elements of ``x`` at flat indices ``idx``.

    NumPy's method form skips ~0.7 us of Python-level dispatch (np.take and the reshape
    function); the same gather.
    """
    if type(x) is np.ndarray:
        return x.take(idx)
    return xp.take(xp.reshape(x, (-1,)), idx)


def sumsq(x: Array, *, xp: Namespace) -> Array:
    """``Σ x²`` over all elements of a real floating ``x``, as one dot product (0-d).

    NumPy's ``vdot`` reads a contiguous array in place; elsewhere the flattened array
    times itself. Both are the dot product of the flattened array with itself.
    """
    if type(x) is np.ndarray:
        return np.vdot(x, x)
    flat = xp.reshape(x, (-1,))
    return flat @ flat


# A Python float operand costs NumPy ~0.3 us per operation to convert (NEP 50's weak
# scalar), about as much as the operation itself on the small arrays of a training
# step; a 0-d array of the array's own dtype is the same operand (the weak float takes
# that dtype), so the results are identical. Cached per (dtype, value); cleared when
# full, so that a learning-rate schedule's ever-new values cannot grow it.
_SCALARS: dict[tuple[Any, float], Array] = {}
_SCALARS_MAX = 1024


def scalar(x: Array, value: float) -> Any:
    """``value`` as the operand of an operation with ``x``: for a Python float and a
    floating NumPy ``x`` a cached read-only 0-d array of ``x``'s dtype, otherwise
    ``value`` itself (so arrays and other backends pass through unchanged)."""
    # (Anything but a Python float, an array among them, passes through.)
    if type(value) is not float or type(x) is not np.ndarray:
        return value
    # 0.0 and -0.0 compare and hash equal: a zero's key carries its sign.
    key = (x.dtype, value) if value else (x.dtype, value, math.copysign(1.0, value))
    c = _SCALARS.get(key)
    if c is None:
        if x.dtype.kind != "f":
            return value
        if len(_SCALARS) >= _SCALARS_MAX:
            _SCALARS.clear()
        c = np.asarray(value, dtype=x.dtype)
        c.flags.writeable = False
        _SCALARS[key] = c
    return c


def check_same_backend(x: Array, ref: Array, *, who: str) -> Namespace:
    """Check that input ``x`` can be combined with ``ref`` (a parameter) and return ``xp``.

    Raises
    ------
    TypeError
        Different namespaces, or different dtypes.
    ValueError
        Different devices.
    """
    xp = namespace_of(x, ref)
    dx, dr = device_of(x), device_of(ref)
    if dx != dr:
        raise ValueError(
            f"{who}: input is on device {dx!r} but the parameters are on {dr!r}. "
            f"Hint: model.to({backend_name(xp)!r}, device={dx!r}) or move the input."
        )
    if x.dtype != ref.dtype:
        if dtype_name(x.dtype) not in ("float16", "float32", "float64"):
            raise TypeError(
                f"{who}: expected a floating-point input of dtype {dtype_name(ref.dtype)}, got "
                f"{dtype_name(x.dtype)}. Hint: xpnet.asarray(x, dtype={dtype_name(ref.dtype)!r})"
            )
        raise TypeError(
            f"{who}: input dtype {dtype_name(x.dtype)} does not match the parameters' "
            f"dtype {dtype_name(ref.dtype)}. Hint: model.to(dtype={dtype_name(x.dtype)!r}) "
            f"or xpnet.asarray(x, dtype={dtype_name(ref.dtype)!r})."
        )
    return xp
