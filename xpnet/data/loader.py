"""Mini-batch iteration over arrays of any backend.

:class:`DataLoader` slices (or, when shuffling, gathers) batches from arrays that already
live on their backend and device. The shuffling permutation is drawn on the host from a
seeded :class:`numpy.random.Generator` and moved to the device once per epoch, so every
backend sees exactly the same batches for the same seed (DESIGN §2.7).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _backend
from ..random import resolve_generator

__all__ = ["DataLoader"]

Array = Any


def _as_array(a: Any, who: str, what: str) -> Array:
    """Accept an array of any namespace; turn host sequences (lists, tuples) into NumPy."""
    if isinstance(a, np.generic):
        return np.asarray(a)  # NumPy scalars pass as floats elsewhere; make them 0-d arrays
    if _backend.is_array(a):
        return a
    if isinstance(a, (list, tuple)):
        return np.asarray(a)
    raise TypeError(
        f"{who}: {what} must be an array (numpy, torch, cupy, array_api_strict, ...) or a "
        f"list, got {type(a).__module__}.{type(a).__qualname__}"
    )


def _check_batch_size(batch_size: Any, who: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _check_finite(xp: Any, X: Array, y: Array | None, who: str) -> None:
    """One host sync: are all floating values of ``X`` (and ``y``) finite?"""
    parts = [(what, a) for what, a in (("X", X), ("y", y))
             if a is not None and xp.isdtype(a.dtype, ("real floating", "complex floating"))]
    if not parts:
        return  # integer and bool arrays are always finite
    flags = xp.stack([xp.all(xp.isfinite(a)) for _, a in parts])
    ok = _backend.to_numpy(flags)  # the one transfer for this loader
    for (what, a), good in zip(parts, ok):
        if not good:
            host = np.asarray(_backend.to_numpy(a)).reshape(a.shape[0], -1)
            rows = np.flatnonzero(~np.all(np.isfinite(host), axis=1))
            raise ValueError(
                f"{who}: {what} contains NaN or infinite values ({rows.size} of "
                f"{host.shape[0]} samples, first at index {int(rows[0])}). Hint: drop or "
                f"impute them first, or pass validate=False if you mean to iterate them"
            )


class DataLoader:
    """Iterate over ``(xb, yb)`` mini-batches of arrays of any backend.

    Parameters
    ----------
    X
        Inputs, shape ``(n, ...)``: an array of any Array API backend (NumPy, torch, CuPy,
        array-api-strict, ...) on any device, or a list (converted to NumPy).
    y
        Targets, shape ``(n, ...)``, on the same backend and device as ``X``; ``None``
        makes the loader yield ``xb`` alone.
    batch_size
        Samples per batch (positive int, default 32).
    shuffle
        Visit the samples in a new random order each epoch (default False: in order).
    drop_last
        Skip the last batch when it has fewer than ``batch_size`` samples.
    generator
        Where the shuffling order comes from: a :class:`numpy.random.Generator` (used
        and advanced by the loader), an int seed (a private generator is made from it once,
        when the loader is built), or ``None`` (the process-wide generator of
        :func:`xpnet.manual_seed`, looked up at each epoch, as torch does).
    validate
        Check once, when the loader is built, that ``X`` (and ``y`` when it is floating)
        holds no NaN or infinity; a ``ValueError`` names the first bad sample. This costs
        one host synchronisation per loader (DESIGN §2.4: value checks run once per
        dataset). Pass ``False`` when the data was already checked;
        :func:`xpnet.training.fit` does, because it validates the data itself.

    Raises
    ------
    ValueError
        Mismatched sample counts or devices, no samples, a bad ``batch_size``, or
        (``validate=True``) non-finite values.
    TypeError
        ``X`` / ``y`` not arrays, different backends, or a bad ``generator``.

    Notes
    -----
    **Batches.** Without shuffling a batch is the contiguous slice
    ``X[i*batch_size:(i+1)*batch_size]`` (a view on backends with views, no copy). With
    shuffling, each call to ``iter(loader)`` (one epoch) draws exactly one permutation
    ``generator.permutation(n)`` on the host, moves it to the arrays' device once as an
    int64 index array, and gathers each batch with ``xp.take(X, idx_batch, axis=0)``.
    Batches are therefore in ``X``'s own namespace, device and dtype.

    **Determinism.** The order depends only on the generator state, never on the
    backend: the same seed gives identical batches on NumPy, torch, CuPy and
    array-api-strict. A generator passed by the caller advances by exactly one
    ``permutation(n)`` draw per epoch (and is not touched when ``shuffle=False``); the
    training loop and checkpoints rely on this, so saving the generator state between
    epochs and restoring it replays the same remaining epochs bit for bit.

    The permutation is drawn when ``iter()`` is called, not at the first ``next()``.

    Examples
    --------
    >>> import numpy as np
    >>> loader = DataLoader(np.zeros((10, 2)), np.arange(10), batch_size=4, shuffle=True,
    ...                     generator=0)
    >>> len(loader)
    3
    >>> [tuple(xb.shape) for xb, yb in loader]
    [(4, 2), (4, 2), (2, 2)]
    """

    def __init__(
        self,
        X: Array,
        y: Array | None = None,
        *,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: np.random.Generator | int | None = None,
        validate: bool = True,
    ) -> None:
        who = "DataLoader"
        X = _as_array(X, who, "X")
        if y is not None:
            y = _as_array(y, who, "y")
        self.batch_size = _check_batch_size(batch_size, who)
        # namespace_of raises a TypeError naming both backends when X and y differ.
        xp = _backend.namespace_of(X, y) if y is not None else _backend.namespace_of(X)
        if X.ndim < 1:
            raise ValueError(f"{who}: X must have a sample axis (ndim >= 1), got a 0-d array")
        n = int(X.shape[0])
        if n == 0:
            raise ValueError(f"{who}: X has no samples (shape {tuple(X.shape)})")
        if y is not None:
            if y.ndim < 1:
                raise ValueError(f"{who}: y must have a sample axis (ndim >= 1), got a 0-d array")
            if int(y.shape[0]) != n:
                raise ValueError(
                    f"{who}: X and y must have the same number of samples (first dimension), "
                    f"got X {tuple(X.shape)} and y {tuple(y.shape)}"
                )
            dx, dy = _backend.device_of(X), _backend.device_of(y)
            if dx != dy:
                raise ValueError(
                    f"{who}: X is on device {dx!r} but y is on {dy!r}. Hint: move both to "
                    f"one device, e.g. xpnet.asarray(y, {_backend.backend_name(xp)!r}, device={dx!r})"
                )
        if validate:
            _check_finite(xp, X, y, who)
        self.X = X
        self.y = y
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._xp = xp
        self._device = _backend.device_of(X)
        self.num_samples = n
        # An int seed becomes one generator for the loader's lifetime, so successive epochs
        # differ; None is resolved per epoch so a later xpnet.manual_seed() takes effect.
        if generator is None:
            self.generator: np.random.Generator | None = None
        else:
            try:
                self.generator = resolve_generator(generator)
            except TypeError as exc:
                raise TypeError(f"{who}: generator: {exc}") from None

    def __len__(self) -> int:
        """Number of batches per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        # Draw (and transfer) the epoch's permutation now, eagerly, so the generator's
        # state after iter() does not depend on how far the epoch is consumed.
        if self.shuffle:
            gen = self.generator if self.generator is not None else resolve_generator(None)
            perm = gen.permutation(self.num_samples)
            idx = _backend.asarray(perm.astype(np.int64), self._xp, device=self._device)
            return self._gathered(idx)
        return self._sliced()

    def _bounds(self) -> Iterator[tuple[int, int]]:
        bs, n = self.batch_size, self.num_samples
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            if self.drop_last and stop - start < bs:
                return
            yield start, stop

    def _sliced(self) -> Iterator[Any]:
        X, y = self.X, self.y
        for start, stop in self._bounds():
            # The trailing ellipsis keeps this a standard multi-axis index for any ndim.
            xb = X[start:stop, ...]
            yield xb if y is None else (xb, y[start:stop, ...])

    def _gathered(self, idx: Array) -> Iterator[Any]:
        xp, X, y = self._xp, self.X, self.y
        for start, stop in self._bounds():
            ib = idx[start:stop]
            xb = xp.take(X, ib, axis=0)
            yield xb if y is None else (xb, xp.take(y, ib, axis=0))

    def __repr__(self) -> str:
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"backend={_backend.backend_name(self._xp)!r}, device={self._device!r})"
        )
