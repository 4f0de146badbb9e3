"""``Flatten`` and ``Unflatten``: reshapes of the batch, undone in backward."""

from __future__ import annotations

import math
from typing import Any

from .. import _backend
from ..module import Module

__all__ = ["Flatten", "Unflatten"]

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


class Unflatten(Module):
    """Reshape dimension ``dim`` into ``unflattened_size`` (torch's ``nn.Unflatten``).

    ``Unflatten(1, (1, 28, 28))`` turns a batch of flat pixel vectors ``(N, 784)`` into
    images ``(N, 1, 28, 28)``, so a convolutional net can take the same inputs as an MLP.

    Shape
    -----
    Input ``(*, D, *)`` with ``D = prod(unflattened_size)`` at ``dim``; output
    ``(*, *unflattened_size, *)``.
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]) -> None:
        super().__init__()
        size = tuple(int(s) for s in unflattened_size)
        if not size or any(s <= 0 for s in size):
            raise ValueError(f"Unflatten: unflattened_size must be positive ints, got {unflattened_size!r}")
        self.dim = int(dim)
        self.unflattened_size = size

    def forward(self, x: Array) -> Array:
        xp = _backend.namespace_of(x)
        shape = tuple(x.shape)
        nd = len(shape)
        if not -nd <= self.dim < nd or shape[self.dim] != math.prod(self.unflattened_size):
            raise ValueError(
                f"Unflatten: dim {self.dim} of an input of shape {shape} must have "
                f"{math.prod(self.unflattened_size)} = prod{self.unflattened_size} entries"
            )
        d = self.dim % nd
        self.save_for_backward(shape)
        return xp.reshape(x, shape[:d] + self.unflattened_size + shape[d + 1 :])

    def backward(self, dy: Array) -> Array:
        shape = self.pop_saved()
        return _backend.namespace_of(dy).reshape(dy, shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
