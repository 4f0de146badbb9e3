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

__all__ = ["Backend", "DEFAULT_BACKENDS", "KNOWN_BACKENDS", "get_backend", "available_backends", "requested_backends"]

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


class BackendUnavailable(RuntimeError):
    """A backend's library is missing or its device is not usable here."""


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

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Move host data (or an array of any backend) here, optionally casting on the host."""
        return _backend.asarray(data, self.xp, device=self.device, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return _backend.to_numpy(x)

    def move(self, module: Any, dtype: Any = None) -> Any:
        """``module.to(self.xp, device=self.device, dtype=dtype)``."""
        return module.to(self.xp, device=self.device, dtype=dtype)

    def dtype(self, name: str) -> Any:
        return _backend.resolve_dtype(self.xp, name)

    def check(self, x: Any, *, dtype: Any = None, shape: tuple[int, ...] | None = None) -> Any:
        """Assert ``x`` is an array of this namespace on this device (and dtype/shape); return it."""
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


def get_backend(name: str) -> Backend:
    """Build the :class:`Backend` for an id; raise :class:`BackendUnavailable` if it is not usable."""
    base, _, dev = name.partition(":")
    try:
        if base == "numpy":
            xp = _backend.get_namespace("numpy")
            return Backend("numpy", xp, "cpu")
        if base == "array_api_strict":
            import array_api_strict

            xp = _backend.get_namespace("array_api_strict")
            device = array_api_strict.Device(dev or "CPU_DEVICE")
            return Backend(name, xp, device, supports_float64=dev not in ("no_float64",))
        if base == "torch":
            import torch

            xp = _backend.get_namespace("torch")
            device = torch.device(dev or "cpu")
            torch.zeros(1, device=device)
            return Backend(name, xp, device)
        if base == "cupy":
            import cupy

            xp = _backend.get_namespace("cupy")
            # Without a GPU `import cupy` works and the first allocation raises.
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise BackendUnavailable("cupy: no CUDA device")
            probe = cupy.zeros(1) + 1
            device = probe.device
            return Backend(name, xp, device)
        if base == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
            xp = _backend.get_namespace("jax")
            return Backend("jax", xp, jax.devices()[0])
    except BackendUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any import or device failure means "skip"
        raise BackendUnavailable(f"{name}: {type(exc).__name__}: {exc}") from exc
    raise ValueError(f"unknown backend {name!r}; expected one of {KNOWN_BACKENDS}")


def requested_backends(option: str | None = None) -> tuple[str, ...]:
    """Backend ids from an option string, else ``$XPNET_BACKENDS``, else :data:`DEFAULT_BACKENDS`.

    ``"all"`` means every known backend.
    """
    text = option or os.environ.get("XPNET_BACKENDS", "")
    if not text.strip():
        return DEFAULT_BACKENDS
    if text.strip() == "all":
        return KNOWN_BACKENDS
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n.partition(":")[0] not in {k.partition(":")[0] for k in KNOWN_BACKENDS}]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; expected names from {KNOWN_BACKENDS}")
    return names


def available_backends(names: tuple[str, ...] | list[str] | None = None) -> list[Backend]:
    """The usable backends among ``names`` (default :data:`DEFAULT_BACKENDS`), skipping the rest."""
    out = []
    for n in names or DEFAULT_BACKENDS:
        try:
            out.append(get_backend(n))
        except BackendUnavailable:
            continue
    return out
