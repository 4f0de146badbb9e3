"""The base class of parameter-free activations and shared argument checks."""

from __future__ import annotations

from typing import Any

from .. import _backend
from ..module import Module

Array = Any
Namespace = Any

_namespace_of = _backend.namespace_of


class _Activation(Module):
    """Parameter-free elementwise module: stores a forward pass, backward consumes it.

    A subclass either implements :meth:`forward` and :meth:`backward` itself, or only the
    two kernels of the chain protocol (:attr:`xpnet.Module._chainable`)::

        _kernel_forward(x, xp, out=None) -> (y, ctx)       # ctx: what backward needs
        _kernel_backward(dy, ctx, xp, need_dx, out=None) -> dx

    (pure arithmetic: no checks, nothing stored) and sets ``_chainable = True``; this
    class then supplies ``forward``/``backward`` around them (namespace, the saved pass,
    the shape check of ``dy``), and :class:`~xpnet.Sequential` can run the kernels in one
    chain. ``ctx`` is an array of the output's shape, or a tuple starting with one.
    """

    def forward(self, x: Array) -> Array:
        y, ctx = self._kernel_forward(x, _namespace_of(x))
        self.save_for_backward(ctx)
        return y

    def backward(self, dy: Array) -> Array:
        ctx = self.pop_saved()
        self._check_dy(dy, ctx[0] if isinstance(ctx, tuple) else ctx)
        return self._kernel_backward(dy, ctx, _namespace_of(dy), True)

    def _kernel_forward(self, x: Array, xp: Namespace, out: Array | None = None) -> tuple[Array, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward() or _kernel_forward()")

    def _kernel_backward(self, dy: Array, ctx: Any, xp: Namespace, need_dx: bool, out: Array | None = None) -> Array:
        raise NotImplementedError(f"{type(self).__name__} must implement backward() or _kernel_backward()")

    def _check_dy(self, dy: Array, ref: Array) -> None:
        # Elementwise products would broadcast a mis-shaped dy silently: (N,) with (N, 1).
        if dy.shape != ref.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: expected dy of shape {tuple(ref.shape)} "
                f"(the forward output's), got {tuple(dy.shape)}"
            )


def _resolve_dim(cls: str, dim: int | None, axis: int | None) -> int:
    if axis is not None:
        if dim is not None and dim != axis:
            raise ValueError(f"{cls}: got both dim={dim!r} and axis={axis!r}; pass one of them")
        dim = axis
    if dim is None:
        dim = -1
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ValueError(f"{cls}: dim must be an int, got {dim!r}")
    return dim
