"""Softmax and LogSoftmax along one dimension."""

from __future__ import annotations

from .. import functional as F
from ._base import Array, _Activation, _namespace_of, _resolve_dim

__all__ = ['Softmax', 'LogSoftmax']


class Softmax(_Activation):
    """``y = exp(x) / Σ_dim exp(x)``, computed stably as ``exp(x - max)``.

    Parameters
    ----------
    dim
        Axis to normalise (default ``None`` means -1, the class axis of ``(N, C)``). ``axis=`` is accepted
        as an alias.

    Shape
    -----
    Any shape with at least one dimension; output has the input's shape.

    Notes
    -----
    Stores y. Backward (Jacobian ``diag(y) - y yᵀ`` applied to dy):
    ``dx = y ⊙ (dy - Σ_dim dy ⊙ y)``. Followed by a log and NLL it is less accurate than
    :class:`~xpnet.losses.CrossEntropyLoss` on logits, which fuses both.
    """

    def __init__(self, dim: int | None = None, *, axis: int | None = None) -> None:
        super().__init__()
        self.dim = _resolve_dim(type(self).__name__, dim, axis)

    def forward(self, x: Array) -> Array:
        F._check_dim(x, self.dim, type(self).__name__)
        y = F._softmax(x, self.dim, xp=_namespace_of(x))
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        y = self.pop_saved()
        self._check_dy(dy, y)
        xp = _namespace_of(dy)
        return y * (dy - xp.sum(dy * y, axis=self.dim, keepdims=True))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(_Activation):
    """``y = x - log Σ_dim exp(x)``, with the max subtracted first (stable).

    Parameters
    ----------
    dim
        Axis to normalise (default ``None`` means -1); ``axis=`` is accepted as an alias.

    Shape
    -----
    Any shape with at least one dimension; output has the input's shape.

    Notes
    -----
    Stores y. Backward: ``dx = dy - softmax(x) ⊙ Σ_dim dy`` with ``softmax(x) = exp(y)``.
    """

    def __init__(self, dim: int | None = None, *, axis: int | None = None) -> None:
        super().__init__()
        self.dim = _resolve_dim(type(self).__name__, dim, axis)

    def forward(self, x: Array) -> Array:
        F._check_dim(x, self.dim, type(self).__name__)
        y = F._log_softmax(x, self.dim, xp=_namespace_of(x))
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        y = self.pop_saved()
        self._check_dy(dy, y)
        xp = _namespace_of(dy)
        return dy - xp.exp(y) * xp.sum(dy, axis=self.dim, keepdims=True)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
