"""Preprocessing: deterministic train/test split, feature scalers, one-hot encoding.

``train_test_split`` draws its order on the host from a seeded generator (the same split
on every backend and machine). The scalers and :func:`one_hot` compute with the input
array's own namespace, so they work on NumPy host data and on device arrays alike; a
scaler fitted on one backend transforms arrays of any other (its statistics are moved,
once, to the input's backend, device and dtype).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _backend
from ..random import resolve_generator
from .loader import _as_array

__all__ = ["train_test_split", "StandardScaler", "MinMaxScaler", "one_hot"]

Array = Any


def _take_rows(a: Array, idx: np.ndarray) -> Array:
    """Rows ``idx`` of ``a`` in ``a``'s own namespace and device (host indices moved once)."""
    if isinstance(a, np.ndarray):
        return a[idx]
    xp = _backend.namespace_of(a)
    return xp.take(a, _backend.asarray(idx, xp, device=_backend.device_of(a)), axis=0)


# ----------------------------------------------------------------------------- split


def _stratified_counts(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Test samples per class, proportional to ``counts`` and summing to ``n_test``.

    Largest-remainder rounding (ties go to the earlier class), then every class keeps at
    least one sample on each side where the totals allow it.
    """
    n = int(counts.sum())
    ideal = counts * (n_test / n)
    take = np.floor(ideal).astype(np.int64)
    rest = n_test - int(take.sum())
    order = np.lexsort((np.arange(len(counts)), -(ideal - take)))
    take[order[:rest]] += 1
    # Move samples so no class is absent from train or test when the other side can spare one.
    for c in range(len(counts)):
        while take[c] == 0 and counts[c] >= 2:
            donors = np.flatnonzero(take > 1)
            if donors.size == 0:
                break
            d = donors[np.argmax(take[donors] - ideal[donors])]
            take[d] -= 1
            take[c] += 1
        while take[c] == counts[c] and counts[c] >= 2:
            recv = np.flatnonzero(take < counts - 1)
            if recv.size == 0:
                break
            r = recv[np.argmax(ideal[recv] - take[recv])]
            take[c] -= 1
            take[r] += 1
    return take


def train_test_split(
    X: Array,
    y: Array | None = None,
    test_size: float | int = 0.2,
    seed: int | np.random.Generator | None = 0,
    stratify: bool | Array | None = None,
) -> tuple[Array, ...]:
    """Split samples into a training and a test set, deterministically.

    Parameters
    ----------
    X
        Inputs ``(n, ...)``: NumPy or any backend (rows are gathered in that backend).
    y
        Targets ``(n, ...)``, same backend; optional.
    test_size
        Fraction of samples in the test set (``0 < test_size < 1``, rounded up as
        scikit-learn does) or an int count (``1 .. n-1``).
    seed
        Int seed (default 0), a :class:`numpy.random.Generator`, or ``None`` for the
        process-wide generator of :func:`xpnet.manual_seed`.
    stratify
        ``True`` keeps the class proportions of ``y`` (integer labels ``(n,)``) in both
        parts; an array of labels stratifies by those; ``None``/``False`` does not.

    Returns
    -------
    tuple
        ``(X_train, X_test, y_train, y_test)``, or ``(X_train, X_test)`` when ``y`` is None.
        Both parts are in random order.

    Raises
    ------
    ValueError
        Bad ``test_size``, mismatched lengths, or (stratified) a class with fewer than 2
        samples.
    """
    who = "train_test_split"
    X = _as_array(X, who, "X")
    if y is not None:
        y = _as_array(y, who, "y")
    if X.ndim < 1:
        raise ValueError(f"{who}: X must have a sample axis, got a 0-d array")
    n = int(X.shape[0])
    if y is not None and (y.ndim < 1 or int(y.shape[0]) != n):
        raise ValueError(f"{who}: X has {n} samples but y has shape {tuple(y.shape)}")
    if isinstance(test_size, bool):
        raise TypeError(f"{who}: test_size must be a float in (0, 1) or an int, got a bool")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        n_test = math.ceil(float(test_size) * n)
    else:
        raise ValueError(f"{who}: test_size must be a float in (0, 1) or an int count, got {test_size!r}")
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"{who}: the split leaves {n_test} test and {n - n_test} training samples out of "
            f"{n}; both need at least one"
        )
    rng = resolve_generator(seed)

    if stratify is None or stratify is False:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    else:
        if stratify is True:
            if y is None:
                raise ValueError(f"{who}: stratify=True needs y")
            labels = _backend.to_numpy(y)
        else:
            labels = _backend.to_numpy(_as_array(stratify, who, "stratify"))
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != (n,):
            raise ValueError(f"{who}: stratify labels must have shape ({n},), got {labels.shape}")
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if counts.min() < 2:
            bad = classes[np.argmin(counts)]
            # Plain numbers in the message, not numpy reprs such as np.int64(7).
            shown = bad.item() if isinstance(bad, np.generic) else bad
            raise ValueError(
                f"{who}: class {shown} has only {int(counts.min())} sample; stratified "
                f"splitting needs at least 2 per class. Hint: stratify=None (or, if these "
                f"are regression targets rather than class labels, do not stratify by them)"
            )
        take = _stratified_counts(counts, n_test)
        test_parts, train_parts = [], []
        for c in range(len(classes)):
            members = rng.permutation(np.flatnonzero(inverse == c))
            test_parts.append(members[: take[c]])
            train_parts.append(members[take[c]:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))

    out = [_take_rows(X, train_idx), _take_rows(X, test_idx)]
    if y is not None:
        out += [_take_rows(y, train_idx), _take_rows(y, test_idx)]
    return tuple(out)


# ----------------------------------------------------------------------------- scalers


class _Scaler:
    """Shared machinery: input checks and moving fitted statistics to the input's backend."""

    _stats: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._fitted = False
        self._moved: dict[tuple[Any, ...], tuple[Array, ...]] = {}
        self.n_features_in_: int | None = None
        self.n_samples_seen_: int | None = None
        self._feature_shape: tuple[int, ...] | None = None

    def _input(self, X: Any, who: str) -> tuple[Any, Array]:
        X = _as_array(X, who, "X")
        if X.ndim < 1:
            raise ValueError(f"{who}: X must have shape (n, features...), got a 0-d array")
        xp = _backend.namespace_of(X)
        if not xp.isdtype(X.dtype, "real floating"):
            if not xp.isdtype(X.dtype, ("integral", "bool")):
                raise TypeError(f"{who}: X must be real numbers, got dtype {X.dtype}")
            # Integer pixels (digits, MNIST) are scaled in float64 on every backend whose
            # device has it, so NumPy, torch and CuPy give the same dtype and statistics
            # (float32 only on devices without float64).
            wide = _backend.supports_float64(xp, _backend.device_of(X))
            X = xp.astype(X, xp.float64 if wide else xp.float32)
        return xp, X

    def _check_fitted(self, X: Array, who: str) -> None:
        if not self._fitted:
            raise RuntimeError(f"{who}: this {type(self).__name__} is not fitted; call fit(X) first")
        if tuple(X.shape[1:]) != self._feature_shape:
            raise ValueError(
                f"{who}: X has features of shape {tuple(X.shape[1:])}, but the scaler was fitted "
                f"on {self._feature_shape}"
            )

    def _stats_for(self, X: Array, xp: Any) -> tuple[Array, ...]:
        """The fitted statistics on X's namespace, device and dtype (cached per target)."""
        dev = _backend.device_of(X)
        key = (id(xp), repr(dev), _backend.dtype_name(X.dtype))
        got = self._moved.get(key)
        if got is None:
            name = _backend.dtype_name(X.dtype)
            got = tuple(
                _backend.asarray(_backend.to_numpy(getattr(self, s)), xp, device=dev, dtype=name)
                for s in self._stats
            )
            self._moved[key] = got
        return got

    def _set_fitted(self, n_samples: int, feature_shape: tuple[int, ...]) -> None:
        self._fitted = True
        self.n_samples_seen_ = int(n_samples)
        self._feature_shape = tuple(int(d) for d in feature_shape)
        self.n_features_in_ = math.prod(self._feature_shape)
        # The statistics already live where they were computed: seed the cache with them.
        ref = getattr(self, self._stats[0])
        xp = _backend.namespace_of(ref)
        key = (id(xp), repr(_backend.device_of(ref)), _backend.dtype_name(ref.dtype))
        self._moved = {key: tuple(getattr(self, s) for s in self._stats)}

    def fit_transform(self, X: Array) -> Array:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def fit(self, X: Array) -> _Scaler:  # pragma: no cover - overridden
        raise NotImplementedError(f"{type(self).__name__} must implement fit()")

    def transform(self, X: Array) -> Array:  # pragma: no cover - overridden
        raise NotImplementedError(f"{type(self).__name__} must implement transform()")

    def state_dict(self) -> dict[str, Any]:
        """Fitted statistics as host NumPy arrays (for checkpoints)."""
        if not self._fitted:
            raise RuntimeError(f"{type(self).__name__}.state_dict: not fitted")
        return {s.rstrip("_"): np.array(_backend.to_numpy(getattr(self, s))) for s in self._stats} | {
            "n_samples_seen": self.n_samples_seen_
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore statistics saved by :meth:`state_dict` (as NumPy arrays)."""
        missing = [s.rstrip("_") for s in self._stats if s.rstrip("_") not in state]
        if missing:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing {missing}")
        for s in self._stats:
            setattr(self, s, np.asarray(state[s.rstrip("_")], dtype=np.float64))
        self._set_fitted(int(state.get("n_samples_seen", 0)), getattr(self, self._stats[0]).shape)


class StandardScaler(_Scaler):
    """Standardise features: ``z = (x - mean) / std``, statistics over the sample axis.

    Parameters
    ----------
    with_mean
        Subtract the mean (default True).
    with_std
        Divide by the standard deviation (default True).

    Attributes
    ----------
    mean_, var_, scale_
        Per-feature mean, population variance (ddof=0, as scikit-learn) and the divisor,
        arrays on the backend/device/dtype of the data passed to :meth:`fit`. Features
        with zero variance get ``scale_ = 1`` (they map to 0, not NaN).

    Notes
    -----
    ``fit`` uses the first sample as a shift (``mean = x₀ + mean(x - x₀)``), so a constant
    feature has exactly zero variance on every backend, and the variance is accurate when
    the mean is large. ``transform`` accepts arrays of any backend: the statistics are
    moved to the input's namespace, device and dtype once and cached.
    """

    _stats = ("mean_", "scale_", "var_")

    def __init__(self, *, with_mean: bool = True, with_std: bool = True) -> None:
        super().__init__()
        self.with_mean = bool(with_mean)
        self.with_std = bool(with_std)
        self.mean_: Array | None = None
        self.var_: Array | None = None
        self.scale_: Array | None = None

    def fit(self, X: Array) -> StandardScaler:
        """Compute the per-feature mean and standard deviation of ``X`` ``(n, ...)``; returns self."""
        xp, X = self._input(X, "StandardScaler.fit")
        if X.shape[0] == 0:
            raise ValueError("StandardScaler.fit: X has no samples")
        shift = X[0, ...]
        d = X - shift
        m = xp.mean(d, axis=0)
        self.mean_ = shift + m
        self.var_ = xp.mean((d - m) ** 2, axis=0)
        std = xp.sqrt(self.var_)
        self.scale_ = xp.where(std == 0, xp.ones_like(std), std)
        self._set_fitted(X.shape[0], X.shape[1:])
        return self

    def transform(self, X: Array) -> Array:
        """Return ``(X - mean_) / scale_`` in ``X``'s namespace, device and dtype (``X`` is not modified)."""
        xp, X = self._input(X, "StandardScaler.transform")
        self._check_fitted(X, "StandardScaler.transform")
        mean, scale, _ = self._stats_for(X, xp)
        if self.with_mean:
            X = X - mean
        if self.with_std:
            X = X / scale
        return X

    def inverse_transform(self, Z: Array) -> Array:
        """Undo :meth:`transform`: ``Z * scale_ + mean_``."""
        xp, Z = self._input(Z, "StandardScaler.inverse_transform")
        self._check_fitted(Z, "StandardScaler.inverse_transform")
        mean, scale, _ = self._stats_for(Z, xp)
        if self.with_std:
            Z = Z * scale
        if self.with_mean:
            Z = Z + mean
        return Z

    def __repr__(self) -> str:
        return f"StandardScaler(with_mean={self.with_mean}, with_std={self.with_std})"


class MinMaxScaler(_Scaler):
    """Rescale each feature linearly to ``feature_range`` (default ``(0, 1)``).

    Attributes
    ----------
    data_min_, data_max_
        Per-feature minimum and maximum seen in :meth:`fit`.
    scale_, min_
        ``transform(x) = x * scale_ + min_``. A constant feature gets ``scale_`` from a
        range of 1, so it maps to ``feature_range[0]``.
    """

    _stats = ("scale_", "min_", "data_min_", "data_max_")

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        lo, hi = (float(v) for v in feature_range)
        if not lo < hi:
            raise ValueError(f"MinMaxScaler: feature_range must be (low, high) with low < high, got {feature_range}")
        self.feature_range = (lo, hi)
        self.scale_: Array | None = None
        self.min_: Array | None = None
        self.data_min_: Array | None = None
        self.data_max_: Array | None = None

    def fit(self, X: Array) -> MinMaxScaler:
        """Record the per-feature minimum and maximum of ``X``; returns self."""
        xp, X = self._input(X, "MinMaxScaler.fit")
        if X.shape[0] == 0:
            raise ValueError("MinMaxScaler.fit: X has no samples")
        lo, hi = self.feature_range
        self.data_min_ = xp.min(X, axis=0)
        self.data_max_ = xp.max(X, axis=0)
        rng = self.data_max_ - self.data_min_
        rng = xp.where(rng == 0, xp.ones_like(rng), rng)
        self.scale_ = (hi - lo) / rng
        self.min_ = lo - self.data_min_ * self.scale_
        self._set_fitted(X.shape[0], X.shape[1:])
        return self

    def transform(self, X: Array) -> Array:
        """Return ``X * scale_ + min_`` in ``X``'s namespace, device and dtype."""
        xp, X = self._input(X, "MinMaxScaler.transform")
        self._check_fitted(X, "MinMaxScaler.transform")
        scale, mn, _, _ = self._stats_for(X, xp)
        return X * scale + mn

    def inverse_transform(self, Z: Array) -> Array:
        """Undo :meth:`transform`: ``(Z - min_) / scale_``."""
        xp, Z = self._input(Z, "MinMaxScaler.inverse_transform")
        self._check_fitted(Z, "MinMaxScaler.inverse_transform")
        scale, mn, _, _ = self._stats_for(Z, xp)
        return (Z - mn) / scale

    def __repr__(self) -> str:
        return f"MinMaxScaler(feature_range={self.feature_range})"


# ----------------------------------------------------------------------------- one-hot


def one_hot(y: Array, num_classes: int | None = None, *, dtype: Any = None, validate: bool = True) -> Array:
    """One-hot encode integer class labels, in ``y``'s namespace and device.

    Parameters
    ----------
    y
        Integer labels ``(n,)`` of any backend (a list becomes NumPy).
    num_classes
        Number of columns; default ``max(y) + 1`` (read on the host).
    dtype
        Output dtype, ``"float32"`` (default, xpnet's default parameter dtype) or
        ``"float64"``, or a dtype of ``y``'s namespace.
    validate
        Check on the host that every label is in ``0 .. num_classes-1`` (default True;
        one device-to-host copy of ``y``).

    Returns
    -------
    array
        ``(n, num_classes)`` with a 1 in column ``y[i]`` of row ``i`` and 0 elsewhere.

    Raises
    ------
    TypeError
        Non-integer labels.
    ValueError
        ``y`` not 1-D, or a label out of range (its position and value are given).
    """
    who = "one_hot"
    y = _as_array(y, who, "y")
    xp = _backend.namespace_of(y)
    if y.ndim != 1:
        raise ValueError(f"{who}: expected labels of shape (n,), got {tuple(y.shape)}. Hint: y[:, 0] or reshape")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(
            f"{who}: expected integer class labels, got dtype {_backend.dtype_name(y.dtype)}. "
            f"Hint: xp.astype(y, xp.int64)"
        )
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1
    ):
        raise ValueError(f"{who}: num_classes must be a positive int, got {num_classes!r}")
    if validate or num_classes is None:
        host = _backend.to_numpy(y)
        if num_classes is None:
            if host.size == 0:
                raise ValueError(f"{who}: cannot infer num_classes from empty labels; pass num_classes")
            num_classes = int(host.max()) + 1
        bad = np.flatnonzero((host < 0) | (host >= num_classes))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{who}: labels must be in 0 .. {num_classes - 1}, got {host[i]} at position {i} "
                f"({bad.size} out of range)"
            )
    dev = _backend.device_of(y)
    classes = xp.arange(int(num_classes), dtype=y.dtype, device=dev)
    hit = xp.reshape(y, (-1, 1)) == xp.reshape(classes, (1, -1))
    return xp.astype(hit, _backend.resolve_dtype(xp, dtype))
