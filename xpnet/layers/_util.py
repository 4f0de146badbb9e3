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


def _grad_product(p: Parameter, a: Array, b: Array) -> None:
    """Accumulate the gradient product ``a @ b`` into ``p.grad``.

    ``a`` and ``b`` have ``p.data``'s array type, dtype and device (the calling layer
    checked its input and ``dy`` against its weight). After ``zero_grad()`` (the usual
    case) the product becomes ``p.grad``: on backends whose matmul takes ``out=`` (NumPy,
    CuPy) it is written straight into ``p.grad_buffer``, the parameter's view of the
    optimizer's flat gradient buffer, so the optimizer finds it in place and nothing is
    gathered or allocated. Elsewhere it is a fresh array (the optimizer copies it into
    its buffer).
    """
    out = p._grad_out
    # The common case first: after zero_grad, a buffer checked at an earlier step (its
    # checks hold while p.data and the buffer are the same objects: an array's shape,
    # dtype and device do not change).
    if out is not None and p.grad is None and out[0] is p.data and out[1] is p.grad_buffer:
        p.grad = out[2](a, b, out=out[1])
        return
    if p.grad is not None:
        p.accumulate_grad(a @ b)
        return
    buf = p.grad_buffer
    if buf is None:
        p.grad = a @ b
        return
    mm = None
    if buf.shape == p.data.shape and _like(buf, a):
        mm = _backend.matmul_out(type(buf))
    if mm is None:
        p._grad_out = None
        p.grad = a @ b
        return
    p._grad_out = (p.data, buf, mm)
    p.grad = mm(a, b, out=buf)


def _check_dy(who: str, dy: Array, ref: Array, shape: tuple[int, ...] | None = None) -> None:
    """``dy`` must have the forward's backend, dtype and device (and ``shape`` if given).

    ``ref`` is an array the forward stored. A float64 ``dy`` into a float32 model would
    otherwise silently produce float64 gradients, an error only at ``opt.step()``.
    """
    if shape is not None and tuple(dy.shape) != tuple(shape):
        raise ValueError(f"{who}.backward: expected dy of shape {tuple(shape)}, got {tuple(dy.shape)}")
    if _like(dy, ref):
        return
    _backend.namespace_of(dy, ref)  # mixed backends: TypeError naming both
    if dy.dtype != ref.dtype:
        name = _backend.dtype_name(ref.dtype)
        raise TypeError(
            f"{who}.backward: dy has dtype {_backend.dtype_name(dy.dtype)} but the forward ran in "
            f"{name}. Hint: pass the gradient the loss returned for this model's output, or "
            f"xpnet.asarray(dy, dtype={name!r})"
        )
    if _backend.device_of(dy) != _backend.device_of(ref):
        raise ValueError(
            f"{who}.backward: dy is on {_backend.device_of(dy)!r} but the forward ran on "
            f"{_backend.device_of(ref)!r}"
        )
