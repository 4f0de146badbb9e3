"""Built-in datasets, all offline: logic gates, synthetic 2-D sets, sine regression, and
three small UCI sets (digits, iris, breast cancer) from scikit-learn's bundled files.

Every loader returns a :class:`Dataset` with host (NumPy) arrays: ``X`` float64 of shape
``(n, d)`` and ``y`` either int64 class labels ``(n,)`` or float64 regression targets
``(n, 1)``. Synthetic sets are drawn from a seeded :class:`numpy.random.Generator`, so the
same ``seed`` gives the same data on every machine. Nothing is ever downloaded: MNIST and
Fashion-MNIST load from files the user has (``load_dataset("mnist", path=...)``).
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Dataset", "DATASETS", "load_dataset", "list_datasets"]

_UCI = (
    "Dua, D. and Graff, C. (2019). UCI Machine Learning Repository "
    "[http://archive.ics.uci.edu/ml]. Irvine, CA: University of California, School of "
    "Information and Computer Science"
)
_SKLEARN_COPY = "loaded from the copy bundled with scikit-learn (BSD-3-Clause package)"


@dataclass(eq=False)
class Dataset:
    """A dataset held on the host as NumPy arrays.

    Attributes
    ----------
    X
        Features, shape ``(n, d)`` (images are flattened; see ``feature_shape``); float64
        unless :func:`load_dataset` was given another ``dtype``.
    y
        int64 class labels ``(n,)`` for classification, floating targets ``(n, 1)`` (in
        ``X``'s dtype) for regression, or ``None`` for unlabelled data read with
        ``load_file(..., target=None)``.
    task
        ``"classification"``, ``"regression"`` (or ``None`` when unlabelled).
    num_classes
        Number of classes for classification (labels are ``0 .. num_classes-1``), else None.
    name
        Short name, as accepted by :func:`load_dataset` where applicable.
    description
        One-line human description.
    feature_shape
        Shape of one sample before flattening (``(8, 8)`` for digits, ``(2,)`` for XOR).
    source
        Where the data comes from and whom to credit (citation / licence).
    target_names, feature_names
        Optional names of the classes and of the columns.
    """

    X: np.ndarray
    y: np.ndarray | None
    task: str | None
    num_classes: int | None
    name: str
    description: str
    feature_shape: tuple[int, ...]
    source: str = ""
    target_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"{self.y.dtype}{tuple(self.y.shape)}"
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, X={self.X.dtype}{tuple(self.X.shape)}, "
            f"y={y}, num_classes={self.num_classes}, feature_shape={self.feature_shape})"
        )


# ----------------------------------------------------------------------------- helpers


def _rng(seed: int | np.random.Generator, who: str) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{who}: seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def _check_n(n: Any, who: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{who}: n_samples must be an int >= {minimum}, got {n!r}")
    return int(n)


def _check_noise(noise: Any, who: str) -> float:
    noise = float(noise)
    if not (noise >= 0.0 and math.isfinite(noise)):
        raise ValueError(f"{who}: noise must be a finite number >= 0, got {noise!r}")
    return noise


def _classification(
    X: np.ndarray, y: np.ndarray, num_classes: int, name: str, description: str, source: str,
    **extra: Any,
) -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float64)
    return Dataset(
        X=X,
        y=np.ascontiguousarray(y, dtype=np.int64),
        task="classification",
        num_classes=num_classes,
        name=name,
        description=description,
        feature_shape=extra.pop("feature_shape", (X.shape[1],)),
        source=source,
        **extra,
    )


def _shuffled(rng: np.random.Generator, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Synthetic sets come out interleaved, not in class blocks, as sklearn's make_moons does.
    perm = rng.permutation(X.shape[0])
    return X[perm], y[perm]


# ----------------------------------------------------------------------------- logic gates

_GATE_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
_GATES = {
    "xor": (0, 1, 1, 0),
    "and": (0, 0, 0, 1),
    "or": (0, 1, 1, 1),
    "nand": (1, 1, 1, 0),
    "nor": (1, 0, 0, 0),
}


def _gate(name: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        outputs = _GATES[name]
        return _classification(
            _GATE_INPUTS.copy(),
            np.array(outputs),
            2,
            name,
            f"{name.upper()} truth table: 4 rows, inputs in {{0, 1}}^2, label = {name.upper()}(x1, x2)"
            + (" (not linearly separable)" if name == "xor" else " (linearly separable)"),
            "Boolean truth table (no external source)",
        )

    load.__doc__ = f"The 4-row {name.upper()} truth table."
    return load


# ----------------------------------------------------------------------------- synthetic


def _linear(n_samples: int = 100, *, seed: int = 0, margin: float = 0.1) -> Dataset:
    """``n_samples`` points uniform in [-1, 1]², labelled by the side of a fixed line.

    The line is ``0.6 x1 - 0.8 x2 + 0.1 = 0`` (label 1 on the positive side); points
    closer to it than ``margin`` are redrawn, so the classes are separable with that margin.
    """
    who = "load_dataset('linear')"
    n = _check_n(n_samples, who, 2)
    margin = float(margin)
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"{who}: margin must be in [0, 0.5), got {margin}")
    rng = _rng(seed, who)
    w, b = np.array([0.6, -0.8]), 0.1
    pts: list[np.ndarray] = []
    have = 0
    while have < n:
        cand = rng.uniform(-1.0, 1.0, size=(2 * (n - have) + 8, 2))
        cand = cand[np.abs(cand @ w + b) >= margin]
        pts.append(cand)
        have += cand.shape[0]
    X = np.concatenate(pts)[:n]
    y = (X @ w + b > 0).astype(np.int64)
    return _classification(
        X, y, 2, "linear",
        f"{n} points uniform in [-1, 1]^2, 2 classes separated by the line "
        f"0.6*x1 - 0.8*x2 + 0.1 = 0 with margin {margin} (seed {seed})",
        "synthetic (xpnet)",
    )


def _spirals(
    n_samples: int = 200, *, noise: float = 0.05, seed: int = 0, turns: float = 1.5,
    num_classes: int = 2,
) -> Dataset:
    """Interleaved spirals: ``num_classes`` arms of ``turns`` turns each, radius 0.1 .. 1.

    A point at arm position ``t ~ U(0, 1)`` of arm ``k`` sits at radius ``0.1 + 0.9 t``
    and angle ``2π (turns t + k / num_classes)``, plus N(0, noise²) on each coordinate.
    """
    who = "load_dataset('spirals')"
    n = _check_n(n_samples, who, 2)
    noise = _check_noise(noise, who)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{who}: num_classes must be an int >= 2, got {num_classes!r}")
    if not float(turns) > 0:
        raise ValueError(f"{who}: turns must be > 0, got {turns!r}")
    rng = _rng(seed, who)
    counts = [n // num_classes + (1 if k < n % num_classes else 0) for k in range(num_classes)]
    Xs, ys = [], []
    for k, n_k in enumerate(counts):
        t = rng.uniform(0.0, 1.0, size=n_k)
        angle = 2.0 * math.pi * (float(turns) * t + k / num_classes)
        radius = 0.1 + 0.9 * t
        Xs.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        ys.append(np.full(n_k, k))
    X = np.concatenate(Xs)
    X = X + noise * rng.standard_normal(X.shape)
    X, y = _shuffled(rng, X, np.concatenate(ys))
    return _classification(
        X, y, num_classes, "spirals",
        f"{num_classes} interleaved spirals, {turns} turns, {n} points, noise {noise} (seed {seed})",
        "synthetic (xpnet)",
    )


def _moons(n_samples: int = 200, *, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaving half circles, as ``sklearn.datasets.make_moons`` (but default noise 0.1)."""
    who = "load_dataset('moons')"
    n = _check_n(n_samples, who, 2)
    noise = _check_noise(noise, who)
    rng = _rng(seed, who)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0.0, math.pi, n_out)
    t_in = np.linspace(0.0, math.pi, n_in)
    X = np.concatenate([
        np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
        np.stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)], axis=1),
    ])
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    X = X + noise * rng.standard_normal(X.shape)
    X, y = _shuffled(rng, X, y)
    return _classification(
        X, y, 2, "moons", f"two interleaving half moons, {n} points, noise {noise} (seed {seed})",
        "synthetic (xpnet), same construction as scikit-learn's make_moons",
    )


def _sine(
    n_samples: int = 200, *, noise: float = 0.0, seed: int = 0, low: float = -math.pi,
    high: float = math.pi,
) -> Dataset:
    """Regression ``y = sin(x) + ε`` on ``n_samples`` evenly spaced ``x`` in [low, high], ε ~ N(0, noise²)."""
    who = "load_dataset('sine')"
    n = _check_n(n_samples, who, 1)
    noise = _check_noise(noise, who)
    if not float(low) < float(high):
        raise ValueError(f"{who}: need low < high, got low={low}, high={high}")
    rng = _rng(seed, who)
    x = np.linspace(float(low), float(high), n)
    y = np.sin(x)
    if noise:
        y = y + noise * rng.standard_normal(n)
    return Dataset(
        X=x.reshape(n, 1),
        y=y.reshape(n, 1).astype(np.float64),
        task="regression",
        num_classes=None,
        name="sine",
        description=f"y = sin(x) on {n} evenly spaced x in [{low:.4g}, {high:.4g}], noise {noise} (seed {seed})",
        feature_shape=(1,),
        source="synthetic (xpnet)",
    )


# ----------------------------------------------------------------------------- UCI via sklearn


def _sklearn_datasets(name: str) -> Any:
    try:
        import sklearn.datasets as skd
    except ImportError as exc:
        raise ImportError(
            f"load_dataset({name!r}) needs scikit-learn, which ships this dataset offline; "
            f'install it with: pip install "xpnet[datasets]"'
        ) from exc
    return skd


def _sklearn_data_file(filename: str) -> Any:
    """Path of a data file shipped inside scikit-learn, found without importing it, or None.

    ``import sklearn.datasets`` pulls in scipy and most of scikit-learn: ~0.9 s, three
    quarters of ``xpnet train digits``'s wall time (measured, docs/performance.md), to
    read one 60 kB CSV file.
    """
    import importlib.util
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / filename
    return path if path.is_file() else None


def _digits() -> Dataset:
    """UCI optical handwritten digits: 1797 8x8 images, pixel values 0..16, 10 classes."""
    path = _sklearn_data_file("digits.csv.gz")
    if path is not None:
        # The file load_digits reads: 64 pixel columns and the label, one row per image.
        table = np.loadtxt(path, delimiter=",")
        data, target = table[:, :-1], table[:, -1].astype(int)
    else:
        bunch = _sklearn_datasets("digits").load_digits()
        data, target = bunch.data, bunch.target
    return _classification(
        data, target, 10, "digits",
        "UCI Optical Recognition of Handwritten Digits (test part): 1797 8x8 images, "
        "pixel values 0..16, 10 classes",
        "E. Alpaydin and C. Kaynak (1998), Optical Recognition of Handwritten Digits, "
        f"UCI Machine Learning Repository, CC BY 4.0; {_UCI}; {_SKLEARN_COPY}",
        feature_shape=(8, 8),
        target_names=tuple(str(t) for t in range(10)),
    )


def _iris() -> Dataset:
    """Fisher's iris: 150 flowers, 4 measurements (cm), 3 species."""
    bunch = _sklearn_datasets("iris").load_iris()
    return _classification(
        bunch.data, bunch.target, 3, "iris",
        "Fisher's iris: 150 flowers, 4 measurements in cm, 3 species",
        "R. A. Fisher (1936), Iris, UCI Machine Learning Repository, CC BY 4.0; "
        f"{_UCI}; {_SKLEARN_COPY}",
        target_names=tuple(str(t) for t in bunch.target_names),
        feature_names=tuple(str(f) for f in bunch.feature_names),
    )


def _breast_cancer() -> Dataset:
    """Breast Cancer Wisconsin (Diagnostic): 569 samples, 30 features, malignant (0) / benign (1)."""
    bunch = _sklearn_datasets("breast_cancer").load_breast_cancer()
    return _classification(
        bunch.data, bunch.target, 2, "breast_cancer",
        "Breast Cancer Wisconsin (Diagnostic): 569 samples, 30 real features, "
        "0 = malignant, 1 = benign",
        "W. Wolberg, O. Mangasarian, N. Street, W. Street (1995), Breast Cancer Wisconsin "
        f"(Diagnostic), UCI Machine Learning Repository, CC BY 4.0; {_UCI}; {_SKLEARN_COPY}",
        target_names=tuple(str(t) for t in bunch.target_names),
        feature_names=tuple(str(f) for f in bunch.feature_names),
    )


# ----------------------------------------------------------------------------- MNIST from a path


def _mnist_loader(name: str) -> Callable[..., Dataset]:
    def load(path: str | os.PathLike | None = None, kind: str = "train") -> Dataset:
        if path is None:
            raise ValueError(
                f"load_dataset({name!r}) needs path= the folder holding the {name} IDX files "
                f"(train-images-idx3-ubyte[.gz], ...); xpnet never downloads data"
            )
        from .idx import load_mnist

        return load_mnist(path, kind, name=name)

    load.__doc__ = f"{name} from the user's own IDX files: ``path=`` folder, ``kind='train'|'t10k'``."
    return load


_REGISTRY: dict[str, Callable[..., Dataset]] = {
    **{g: _gate(g) for g in _GATES},
    "linear": _linear,
    "spirals": _spirals,
    "moons": _moons,
    "sine": _sine,
    "digits": _digits,
    "iris": _iris,
    "breast_cancer": _breast_cancer,
    "mnist": _mnist_loader("mnist"),
    "fashion_mnist": _mnist_loader("fashion_mnist"),
}

#: Names accepted by :func:`load_dataset`. ``"mnist"`` and ``"fashion_mnist"`` need ``path=``.
DATASETS: tuple[str, ...] = tuple(_REGISTRY)


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (MNIST variants need a ``path=``)."""
    return list(DATASETS)


_DTYPES = {"float32": np.float32, "float64": np.float64}


def load_dataset(name: str, *, dtype: str | None = None, **kwargs: Any) -> Dataset:
    """Load a built-in dataset by name, offline.

    Parameters
    ----------
    name
        One of :data:`DATASETS` (case-insensitive, ``-`` and ``_`` interchangeable):

        - ``"xor"``, ``"and"``, ``"or"``, ``"nand"``, ``"nor"``: the 4 truth-table rows.
        - ``"linear"``: ``n_samples=100`` points in 2-D, two classes separated by a line
          (``seed=0``, ``margin=0.1``).
        - ``"spirals"``: interleaved spirals (``n_samples=200, noise=0.05, seed=0,
          turns=1.5, num_classes=2``).
        - ``"moons"``: two half moons (``n_samples=200, noise=0.1, seed=0``).
        - ``"sine"``: regression ``y = sin(x)`` (``n_samples=200, noise=0.0, seed=0,
          low=-pi, high=pi``).
        - ``"digits"``, ``"iris"``, ``"breast_cancer"``: UCI sets from scikit-learn's
          bundled files (needs the ``datasets`` extra).
        - ``"mnist"``, ``"fashion_mnist"``: from the user's IDX files (``path=``,
          ``kind="train"|"t10k"``), see :func:`xpnet.data.load_mnist`.
    dtype
        Floating dtype of ``X`` (and of regression targets): ``"float32"``, ``"float64"``
        or ``None`` (default: float64). Pass the model's dtype (``"float32"`` for the
        usual float32 model) to skip a cast and halve the host memory; class labels stay
        int64 either way. Values are computed in float64 and rounded once.
    **kwargs
        The options listed above for that dataset.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown name (with the closest match), or a bad option value.
    TypeError
        An option the dataset does not take.
    ImportError
        scikit-learn missing for digits / iris / breast_cancer.
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: name must be a str, got {type(name).__name__}")
    if dtype is not None and not isinstance(dtype, str):
        dtype = getattr(dtype, "__name__", None) or str(dtype)  # np.float32 / np.dtype
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(
            f"load_dataset: dtype must be None, 'float32' or 'float64', got {dtype!r}"
        )
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"load_dataset: unknown dataset {name!r}; expected one of {list(DATASETS)}.{hint} "
            f"Own data: xpnet.data.load_file(path) reads .npz, .csv and IDX files"
        )
    builder = _REGISTRY[key]
    accepted = list(inspect.signature(builder).parameters)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"load_dataset({key!r}): unexpected option(s) {unknown}; it accepts "
            f"{accepted if accepted else 'no options'}"
        )
    ds = builder(**kwargs)
    if dtype is not None and dtype != "float64":
        ds.X = np.ascontiguousarray(ds.X, dtype=_DTYPES[dtype])
        if ds.y is not None and ds.y.dtype.kind == "f":
            ds.y = np.ascontiguousarray(ds.y, dtype=_DTYPES[dtype])
    return ds
