"""The base class of parameter-free activations and shared argument checks."""

from __future__ import annotations

from typing import Any

from .. import _backend
from ..module import Module

Array = Any
Namespace = Any

_namespace_of = _backend.namespace_of


class _Activation(Module):
    """Parameter-free elementwise module: stores a forward pass, backward consumes it."""

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
