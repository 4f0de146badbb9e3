"""Helpers shared by the layer families: host-built parameters and the cheap same-backend test."""

from __future__ import annotations

from typing import Any

from .. import _backend
from ..module import Parameter

Array = Any


def _host_param(values: Any, dtype: Any) -> Parameter:
    # values: a float64 NumPy array from xpnet.init (host side, cast here)
    name = "float32" if dtype is None else _backend.dtype_name(dtype)
    if name not in ("float32", "float64", "float16"):
        raise TypeError(f"parameters must be floating point, got dtype {dtype!r}")
    return Parameter(values.astype(name))


def _like(x: Array, w: Array) -> bool:
    """True when ``x`` has ``w``'s array type, dtype and ``.device``: a few attribute reads.

    This is the common case of a layer call; anything else (including arrays without a
    ``.device`` attribute) goes through :func:`xpnet._backend.check_same_backend`, which
    raises the error with the hint or accepts.
    """
    if type(x) is not type(w) or x.dtype != w.dtype:
        return False
    dev = getattr(w, "device", None)
    return dev is not None and getattr(x, "device", None) == dev
