"""``Embedding``: a lookup table of rows, with a scatter-free backward for repeated indices."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .. import _backend, init
from ..module import Module
from ..random import resolve_generator
from ._util import _host_param

__all__ = ["Embedding"]

Array = Any


class Embedding(Module):
    """Lookup table ``y[..., :] = W[x[...], :]`` for integer indices ``x`` of any shape.

    Parameters
    ----------
    num_embeddings
        ``V``, the number of rows (the vocabulary size); indices lie in ``[0, V)``.
    embedding_dim
        ``D``, the size of each row.
    padding_idx
        A row (``-V <= padding_idx < V``; negative counts from the end) that starts at
        zero and never receives a gradient, as in torch: a padding token's embedding
        stays what it is.
    dtype
        ``"float32"`` (default) or ``"float64"``.
    generator
        ``numpy.random.Generator`` or int seed for the initial weights; default the
        generator seeded by :func:`xpnet.manual_seed`.
    validate
        Check in :meth:`forward` that the indices lie in ``[0, V)`` (default True). The
        check reads two numbers back from the device (a host synchronisation), so a
        training loop checks the whole dataset once with :meth:`check_indices` and then
        sets ``validate = False``. Without it, an index out of range is the backend's
        business: NumPy and torch raise ``IndexError`` / ``RuntimeError``, CuPy wraps around.

    Shape
    -----
    Input ``(*)`` of an integer dtype (``bool`` is refused), output ``(*, D)``; ``weight``
    is ``(V, D)``, torch's layout.

    Notes
    -----
    Forward ``y = take(W, x, axis=0)``. Backward: ``dW[v] = Σ_{i : x_i = v} dy_i``, the
    upstream rows summed for every occurrence of ``v``, and nothing for ``padding_idx``.
    Indices have no gradient, so :meth:`backward` returns ``None``.

    The Array API has no scatter-add, so the sum over repeated indices is computed two
    portable ways (``M`` = number of indices):

    * one-hot product ``dW = onehot(x)ᵀ dy``: exact sums (zeros add exactly), one GEMM
      of ``M·V·D`` multiply-adds and an ``M×V`` temporary; used while ``M·V`` is at most
      :attr:`onehot_max_elements`;
    * sort and segment sum beyond that: sort the indices, gather ``dy`` in that order,
      take the cumulative sum ``C`` (with a leading zero row), find each row's segment
      ``[lo_v, hi_v)`` with ``searchsorted`` and set ``dW[v] = C[hi_v] - C[lo_v]``.
      ``O(M log M + (M + V)·D)`` work and no ``M×V`` temporary; the difference of two
      prefix sums rounds to about ``ε·|C|`` instead of ``ε·|dW[v]|``.

    Initialization is torch's: ``W ~ N(0, 1)``, drawn on the host.
    """

    #: Largest ``M·V`` (indices × rows) for which backward builds the one-hot matrix.
    onehot_max_elements: int = 1 << 18

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        dtype: Any = None,
        generator: init.Generator = None,
        validate: bool = True,
    ) -> None:
        super().__init__()
        for label, n in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"Embedding: {label} must be a positive int, got {n!r}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        if padding_idx is not None:
            v = self.num_embeddings
            if not isinstance(padding_idx, numbers.Integral) or isinstance(padding_idx, bool) or not -v <= padding_idx < v:
                raise ValueError(
                    f"Embedding: padding_idx must be an int in [-{v}, {v}) (num_embeddings={v}), "
                    f"got {padding_idx!r}"
                )
            padding_idx = int(padding_idx) % v
        self.padding_idx = padding_idx
        self.validate = bool(validate)
        values = init.normal((self.num_embeddings, self.embedding_dim), generator=resolve_generator(generator))
        if padding_idx is not None:
            values[padding_idx] = 0.0
        self.weight = _host_param(values, dtype)

    # ------------------------------------------------------------------ checks

    def _check_dtype(self, x: Array) -> Any:
        if not _backend.is_array(x):
            raise TypeError(
                f"Embedding: expected an array of integer indices, got {type(x).__name__}. "
                f"Hint: xpnet.asarray(indices, backend=...) with an integer dtype"
            )
        xp = _backend.namespace_of(x, self.weight.data)
        if not xp.isdtype(x.dtype, "integral"):
            raise TypeError(
                f"Embedding: indices must have an integer dtype, got {_backend.dtype_name(x.dtype)}. "
                f"Hint: token ids are integers; cast with xp.astype(x, xp.int64)"
                + (" (rounding first if they are whole floats)" if xp.isdtype(x.dtype, "real floating") else "")
            )
        w = self.weight.data
        if _backend.device_of(x) != _backend.device_of(w):
            raise ValueError(
                f"Embedding: indices are on device {_backend.device_of(x)!r} but the weight is on "
                f"{_backend.device_of(w)!r}. Hint: move the indices or model.to(device=...)"
            )
        return xp

    def check_indices(self, x: Array) -> None:
        """Raise unless ``x`` holds integer indices in ``[0, num_embeddings)``.

        The entry-point check: one host synchronisation for the whole array (its min and
        max), so run it once per dataset rather than once per batch.

        Raises
        ------
        TypeError
            ``x`` is not an array of an integer dtype, or is of another backend.
        ValueError
            An index is negative or ``>= num_embeddings``, or ``x`` is on another device.
        """
        self._check_range(self._check_dtype(x), x)

    def _check_range(self, xp: Any, x: Array) -> None:
        if math.prod(x.shape) == 0:
            return
        lo, hi = (int(v) for v in _backend.to_numpy(xp.stack([xp.min(x), xp.max(x)])))
        if lo < 0 or hi >= self.num_embeddings:
            raise ValueError(
                f"Embedding: indices must be in [0, {self.num_embeddings}) for num_embeddings="
                f"{self.num_embeddings}, got values from {lo} to {hi}. Hint: build the table with "
                f"num_embeddings > {hi} (the vocabulary size), or remap the ids"
                + ("; negative ids are not allowed" if lo < 0 else "")
            )

    # ------------------------------------------------------------------ forward / backward

    def forward(self, x: Array) -> Array:
        xp = self._check_dtype(x)
        if self.validate:
            self._check_range(xp, x)
        shape = tuple(x.shape)
        idx = xp.reshape(x, (-1,))
        if _backend.dtype_name(idx.dtype) not in ("int32", "int64"):
            idx = xp.astype(idx, xp.int64)  # torch's take wants int32/int64
        y = xp.take(self.weight.data, idx, axis=0)
        self.save_for_backward((idx, shape))
        return xp.reshape(y, (*shape, self.embedding_dim))

    def backward(self, dy: Array) -> None:
        """Accumulate ``dW``; returns ``None`` (integer indices have no gradient)."""
        idx, shape = self.pop_saved()
        d = self.embedding_dim
        if tuple(dy.shape) != (*shape, d):
            raise ValueError(f"Embedding.backward: expected dy of shape {(*shape, d)}, got {tuple(dy.shape)}")
        w = self.weight
        xp = _backend.namespace_of(dy, w.data)
        if dy.dtype != w.data.dtype:
            raise TypeError(
                f"Embedding.backward: dy has dtype {_backend.dtype_name(dy.dtype)} but the weight is "
                f"{_backend.dtype_name(w.data.dtype)}"
            )
        if not w.requires_grad:
            return None
        dy2 = xp.reshape(dy, (-1, d))
        m, v = dy2.shape[0], self.num_embeddings
        if m * v <= self.onehot_max_elements:
            dw = self._onehot_sum(xp, idx, dy2)
        else:
            dw = self._segment_sum(xp, idx, dy2)
        if self.padding_idx is not None:
            dw = dw * self._keep_rows(xp, dw)
        w.accumulate_grad(dw)
        return None

    def backward_params(self, dy: Array) -> None:
        self.backward(dy)

    def _onehot_sum(self, xp: Any, idx: Array, dy2: Array) -> Array:
        rows = xp.arange(self.num_embeddings, dtype=idx.dtype, device=_backend.device_of(idx))
        onehot = xp.astype(idx[:, None] == rows[None, :], dy2.dtype)  # (M, V)
        return onehot.T @ dy2

    def _segment_sum(self, xp: Any, idx: Array, dy2: Array) -> Array:
        dev = _backend.device_of(idx)
        order = xp.argsort(idx)
        sorted_idx = xp.take(idx, order)
        csum = xp.cumulative_sum(xp.take(dy2, order, axis=0), axis=0, include_initial=True)  # (M+1, D)
        rows = xp.arange(self.num_embeddings, dtype=sorted_idx.dtype, device=dev)
        lo = xp.searchsorted(sorted_idx, rows, side="left")
        hi = xp.searchsorted(sorted_idx, rows, side="right")
        return xp.take(csum, hi, axis=0) - xp.take(csum, lo, axis=0)

    def _keep_rows(self, xp: Any, dw: Array) -> Array:
        """A cached ``(V, 1)`` mask: 1, and 0 at ``padding_idx``."""
        keep = self.__dict__.get("_keep_cache")
        if keep is None or keep.dtype != dw.dtype or type(keep) is not type(dw) or _backend.device_of(keep) != _backend.device_of(dw):
            rows = xp.arange(self.num_embeddings, device=_backend.device_of(dw))
            keep = xp.astype(rows != self.padding_idx, dw.dtype)[:, None]
            self.__dict__["_keep_cache"] = keep
        return keep

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
