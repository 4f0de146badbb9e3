"""Backends available for testing, as objects that move host data and check results.

A :class:`Backend` names one namespace *and* one device. ``array_api_strict:device1`` is
array-api-strict on its non-default device: running a test there catches a forgotten
``device=`` or a NumPy call on a CPU-only machine, long before it would fail on a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _backend

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Float64Unavailable",
    "DEFAULT_BACKENDS",
    "INSTALL_HINTS",
    "KNOWN_BACKENDS",
    "get_backend",
    "available_backends",
    "requested_backends",
    "required_backends",
]

#: Every backend id this module understands.
KNOWN_BACKENDS = (
    "numpy",
    "array_api_strict",
    "array_api_strict:device1",
    "torch",
    "cupy",
    "jax",
    "array_api_strict:no_float64",
)
#: What the test fixture runs when nothing is requested (jax and no_float64 are opt-in).
DEFAULT_BACKENDS = ("numpy", "array_api_strict", "array_api_strict:device1", "torch", "cupy")


#: How to get each backend's library, for the one-line summary of a missing backend.
INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "array_api_strict": "pip install array-api-strict",
    "torch": "pip install torch  (CPU wheel: pip install torch==2.13.0)",
    "cupy": "pip install 'xpnet[cuda12]' or 'xpnet[cuda13]' on a machine with an NVIDIA GPU",
    "jax": "pip install jax",
}


class BackendUnavailable(RuntimeError):
    """A backend's library is missing or its device is not usable here."""


class Float64Unavailable(BackendUnavailable):
    """The backend's device has no float64, and a test asked for it.

    The pytest plugin turns this into a skip of that one test, so that the suite runs on
    float32-only devices (array-api-strict's ``no_float64``, Apple MPS) and says why.
    """


@dataclass(frozen=True)
class Backend:
    """One namespace on one device, with helpers to move data and check results.

    Attributes
    ----------
    name
        Id such as ``"numpy"`` or ``"array_api_strict:device1"``.
    xp
        The Array API namespace.
    device
        The device arrays are created on.
    supports_float64
        False for devices without double precision.
    """

    name: str
    xp: Any = field(repr=False)
    device: Any
    supports_float64: bool = True

    def _need(self, dtype: Any) -> None:
        """Raise :class:`Float64Unavailable` when ``dtype`` is float64 and the device lacks it."""
        if self.supports_float64 or dtype is None:
            return
        name = dtype if isinstance(dtype, str) else _backend.dtype_name(dtype)
        if name == "float64":
            raise Float64Unavailable(f"{self.name} has no float64 (the test asked for it)")

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Move host data (or an array of any backend) here, optionally casting on the host.

        Raises :class:`Float64Unavailable` when the result would be float64 on a device
        without it (the plugin then skips the test instead of failing it).
        """
        self._need(dtype)
        if dtype is None and not self.supports_float64:
            self._need(getattr(data, "dtype", None))
        return _backend.asarray(data, self.xp, device=self.device, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return _backend.to_numpy(x)

    def move(self, module: Any, dtype: Any = None) -> Any:
        """``module.to(self.xp, device=self.device, dtype=dtype)``."""
        self._need(dtype)
        if dtype is None and not self.supports_float64:
            for p in getattr(module, "parameters", list)():
                self._need(p.data.dtype)
        return module.to(self.xp, device=self.device, dtype=dtype)

    def dtype(self, name: str) -> Any:
        self._need(name)
        return _backend.resolve_dtype(self.xp, name)

    def check(self, x: Any, *, dtype: Any = None, shape: tuple[int, ...] | None = None) -> Any:
        """Assert ``x`` is an array of this namespace on this device (and dtype/shape); return it."""
        assert not isinstance(x, np.generic), (
            f"expected a 0-d array of {self.name}, got the NumPy scalar {type(x).__name__} "
            f"(NumPy reductions return scalars: wrap them with xp.asarray)"
        )
        ns = _backend.namespace_of(x)
        assert ns is self.xp, f"expected an array of {self.name}, got {_backend.backend_name(ns)}"
        dev = _backend.device_of(x)
        assert dev == self.device, f"expected device {self.device!r}, got {dev!r}"
        if dtype is not None:
            want = _backend.dtype_name(self.dtype(dtype) if isinstance(dtype, str) else dtype)
            assert _backend.dtype_name(x.dtype) == want, f"expected dtype {want}, got {x.dtype}"
        if shape is not None:
            assert tuple(x.shape) == tuple(shape), f"expected shape {tuple(shape)}, got {tuple(x.shape)}"
        return x

    def __str__(self) -> str:
        return self.name


_CACHE: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """Build the :class:`Backend` for an id; raise :class:`BackendUnavailable` if it is not usable.

    Results are cached: probing a GPU (and importing torch or CuPy) once per process is
    enough, and the test fixture calls this for every parametrized test.
    """
    cached = _CACHE.get(name)
    if cached is None:
        cached = _CACHE[name] = _build_backend(name)
    return cached


def _build_backend(name: str) -> Backend:
    base, _, dev = name.partition(":")
    try:
        if base == "numpy":
            return Backend("numpy", _backend.get_namespace("numpy"), "cpu")
        if base == "array_api_strict":
            import array_api_strict

            xp = _backend.get_namespace("array_api_strict")
            device = array_api_strict.Device(dev or "CPU_DEVICE")
            return Backend(name, xp, device, supports_float64=_backend.supports_float64(xp, device))
        if base == "torch":
            import torch

            xp = _backend.get_namespace("torch")
            # The device a tensor reports: torch.device("cuda") != torch.device("cuda:0"),
            # so "torch:cuda" must become the index the probe lands on, or every device
            # assertion fails for the wrong reason.
            device = torch.zeros(1, device=torch.device(dev or "cpu")).device
            return Backend(name, xp, device, supports_float64=_backend.supports_float64(xp, device))
        if base == "cupy":
            import cupy

            xp = _backend.get_namespace("cupy")
            # Without a GPU `import cupy` works and the first allocation raises.
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise BackendUnavailable("cupy: no CUDA device")
            device = (cupy.zeros(1) + 1).device
            return Backend(name, xp, device)
        if base == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
            return Backend("jax", _backend.get_namespace("jax"), jax.devices()[0])
    except BackendUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any import or device failure means "unusable"
        raise BackendUnavailable(f"{name}: {type(exc).__name__}: {exc}") from exc
    raise ValueError(f"unknown backend {name!r}; expected one of {KNOWN_BACKENDS}")


def _parse_names(text: str, *, what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    known = {k.partition(":")[0] for k in KNOWN_BACKENDS}
    unknown = [n for n in names if n.partition(":")[0] not in known]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown} in {what}; expected names from {KNOWN_BACKENDS}")
    return names


def requested_backends(option: str | None = None) -> tuple[str, ...]:
    """Backend ids from an option string, else ``$XPNET_BACKENDS``, else :data:`DEFAULT_BACKENDS`.

    ``"all"`` means every known backend.
    """
    text = option or os.environ.get("XPNET_BACKENDS", "")
    if not text.strip():
        return DEFAULT_BACKENDS
    if text.strip() == "all":
        return KNOWN_BACKENDS
    return _parse_names(text, what="--backends / $XPNET_BACKENDS")


def required_backends(option: str | None = None) -> tuple[str, ...]:
    """Backends that must be usable: ``--require-backends`` or ``$XPNET_REQUIRE_BACKENDS``.

    A GPU validation run sets ``cupy,torch:cuda`` here, so that a GPU that cannot be
    used fails the run at once instead of letting it go green on the CPU backends.
    """
    text = option or os.environ.get("XPNET_REQUIRE_BACKENDS", "")
    return _parse_names(text, what="--require-backends / $XPNET_REQUIRE_BACKENDS") if text.strip() else ()


def available_backends(names: tuple[str, ...] | list[str] | None = None) -> list[Backend]:
    """The usable backends among ``names`` (default :data:`DEFAULT_BACKENDS`), skipping the rest."""
    out = []
    for n in names or DEFAULT_BACKENDS:
        try:
            out.append(get_backend(n))
        except BackendUnavailable:
            continue
    return out
