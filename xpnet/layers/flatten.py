"""``Flatten``: reshape ``(N, *dims)`` to ``(N, prod(dims))``, and back in backward."""

from __future__ import annotations

import math
from typing import Any

from .. import _backend
from ..module import Module

__all__ = ["Flatten"]

Array = Any


class Flatten(Module):
    """Flatten dimensions ``start_dim..end_dim`` (torch defaults 1 and -1).

    Shape
    -----
    Input ``(N, *dims)``, output ``(N, prod(dims))`` with the defaults.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Array) -> Array:
        xp = _backend.namespace_of(x)
        shape = tuple(x.shape)
        nd = len(shape)
        start = self.start_dim % nd if nd else 0
        end = self.end_dim % nd if nd else 0
        if nd == 0 or start > end:
            raise ValueError(
                f"Flatten: cannot flatten dims {self.start_dim}..{self.end_dim} of an input "
                f"with shape {shape}"
            )
        new = shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :]
        self.save_for_backward(shape)
        return xp.reshape(x, new)

    def backward(self, dy: Array) -> Array:
        shape = self.pop_saved()
        return _backend.namespace_of(dy).reshape(dy, shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
