"""Load a user's own data file into a :class:`~xpnet.data.Dataset`: ``.npz``, ``.csv``, IDX.

:func:`load_file` picks the reader from the path: a directory is read as MNIST-layout IDX
files, ``.npz`` as NumPy arrays (never unpickling anything), ``.csv`` / ``.tsv`` /
``.txt`` as numeric text, and any other file whose content is IDX (raw or gzip) as an
image file with a matching label file.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import Dataset
from .idx import _read_bytes, images_to_dataset, load_mnist, parse_idx

__all__ = ["load_file"]

PathLike = str | os.PathLike


class _Default:
    """Marker for "the format's default target" (last CSV column, npz key "y", matching IDX file)."""

    def __repr__(self) -> str:
        return "<default>"


DEFAULT_TARGET: Any = _Default()

_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None}
_TASKS = (None, "classification", "regression")


def _labelled(
    X: np.ndarray, y: np.ndarray | None, *, task: str | None, who: str, name: str,
    description: str, source: str, feature_shape: tuple[int, ...] | None = None,
    feature_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Flatten ``X`` to float64 ``(n, d)`` and turn ``y`` into labels or regression targets.

    With ``task=None`` the task is inferred by :func:`_infer_task`; labels -1/+1 become
    classes 0/1 (with a ``UserWarning`` saying so).
    """
    if task not in _TASKS:
        raise ValueError(f"{who}: task must be None, 'classification' or 'regression', got {task!r}")
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"{who}: expected at least one sample, got X of shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{who}: X must be numeric, got dtype {X.dtype}")
    n = X.shape[0]
    shape = tuple(int(d) for d in X.shape[1:]) if feature_shape is None else feature_shape
    Xf = np.ascontiguousarray(X.reshape(n, -1), dtype=np.float64)
    if not np.all(np.isfinite(Xf)):
        r, c = np.argwhere(~np.isfinite(Xf))[0]
        raise ValueError(
            f"{who}: X has a non-finite value ({Xf[r, c]}) at sample {r}, feature {c}; "
            f"missing values are not supported, clean or impute them first"
        )
    common = dict(name=name, description=description, feature_shape=shape, source=source,
                  feature_names=feature_names)
    if y is None:
        return Dataset(X=Xf, y=None, task=None, num_classes=None, **common)
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{who}: y must be numeric, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(f"{who}: X has {n} samples but y has {y.shape[0]}")
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise ValueError(f"{who}: y must have shape (n,) or (n, 1), got {y.shape}")
    yv = y.reshape(n)
    if yv.dtype.kind == "f" and not np.all(np.isfinite(yv)):
        i = int(np.argwhere(~np.isfinite(yv))[0, 0])
        raise ValueError(f"{who}: y has a non-finite value ({yv[i]}) at sample {i}")
    whole = yv.dtype.kind in "biu" or bool(np.all(yv == np.round(yv)))
    if task is None:
        task = _infer_task(yv, whole, who)
    if task == "regression":
        return Dataset(X=Xf, y=yv.astype(np.float64).reshape(n, 1), task=task, num_classes=None, **common)
    if not whole:
        raise ValueError(
            f"{who}: task='classification' needs whole-number labels, got values such as "
            f"{float(yv[yv != np.round(yv)][0])}"
        )
    labels = yv.astype(np.int64)
    if labels.size and set(np.unique(labels).tolist()) == {-1, 1}:
        # The SVM / perceptron convention: -1 is the negative class.
        warnings.warn(f"{who}: labels -1/+1 read as binary classes 0/1 (-1 -> 0, +1 -> 1)",
                      UserWarning, stacklevel=3)
        labels = (labels > 0).astype(np.int64)
        common["description"] = f"{common['description']}; labels -1/+1 mapped to classes 0/1"
        return Dataset(X=Xf, y=labels, task="classification", num_classes=2,
                       target_names=("-1", "1"), **common)
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"{who}: class labels must be 0 .. num_classes-1, got {int(labels.min())}. Hint: remap "
            f"them (e.g. -1/+1 -> 0/1) or pass task='regression'"
        )
    return Dataset(X=Xf, y=labels, task="classification", num_classes=int(labels.max()) + 1, **common)


#: Task inference limits: whole-number targets are read as class labels only when they are
#: non-negative, take at most this many distinct values, and stay below MAX_LABEL.
MAX_INFERRED_CLASSES = 100
MAX_LABEL = 1000


def _infer_task(yv: np.ndarray, whole: bool, who: str) -> str:
    """``"classification"`` or ``"regression"`` for ``task=None``; ambiguous data raises.

    - bool labels, or whole numbers that are >= 0, at most :data:`MAX_INFERRED_CLASSES`
      distinct and all < :data:`MAX_LABEL`: classification;
    - exactly the two values -1 and +1: classification (mapped to 0/1 by the caller);
    - floats that are not all whole numbers: regression;
    - floats that are whole numbers with more than :data:`MAX_INFERRED_CLASSES` distinct
      values (counts, prices): regression;
    - anything else (negative whole numbers, large ids, an integer dtype with many values):
      ``ValueError`` asking for an explicit task.
    """
    if yv.dtype.kind == "b" or yv.size == 0:
        return "classification"
    if not whole:
        return "regression"
    values = np.unique(yv)
    lo, hi, k = int(values[0]), int(values[-1]), int(values.size)
    if k == 2 and lo == -1 and hi == 1:
        return "classification"
    if lo >= 0 and k <= MAX_INFERRED_CLASSES and hi < MAX_LABEL:
        return "classification"
    if yv.dtype.kind == "f" and k > MAX_INFERRED_CLASSES:
        return "regression"
    raise ValueError(
        f"{who}: cannot tell whether the targets are class labels or regression values "
        f"({k} distinct whole numbers from {lo} to {hi}; class labels are inferred only for "
        f"0 <= label < {MAX_LABEL} with at most {MAX_INFERRED_CLASSES} classes). Hint: pass "
        f"task='classification' or task='regression' (xpnet train: --task classification|regression)"
    )


# ----------------------------------------------------------------------------- npz


def _load_npz(path: Path, target: Any, task: str | None) -> Dataset:
    who = f"load_file({path.name!r})"
    key = "y" if isinstance(target, _Default) else target
    if key is not None and not isinstance(key, str):
        raise TypeError(f"{who}: for .npz files target must be a key name or None, got {key!r}")
    if not zipfile.is_zipfile(path):
        # np.load would otherwise try the file as a pickle and blame pickling.
        raise ValueError(f"{who}: not a readable .npz file (not a zip archive); write it with np.savez")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if "X" not in keys:
                raise ValueError(f"{who}: expected arrays 'X' and {key!r}, found keys {keys}")
            if key is not None and key not in keys:
                raise ValueError(
                    f"{who}: no target array {key!r}; found keys {keys}. Hint: pass target=<key>, "
                    f"or target=None for unlabelled data"
                )
            X = npz["X"]
            y = npz[key] if key is not None else None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{who}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    except ValueError as exc:
        if "max_header_size" in str(exc) or "Header info length" in str(exc):
            raise ValueError(f"{who}: {npy_header_problem(exc)}") from None
        if "pickle" in str(exc):
            raise ValueError(
                f"{who}: the file holds object (pickled) arrays, which are never loaded for "
                f"safety; save plain numeric arrays with np.savez(path, X=X, y=y)"
            ) from exc
        raise
    return _labelled(X, y, task=task, who=who, name=path.stem, description=f"arrays from {path}",
                     source=f"user file {path}")


# ----------------------------------------------------------------------------- csv


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def npy_header_problem(exc: Exception) -> str:
    """One sentence for NumPy's refusal of an oversized ``.npy`` header."""
    m = re.search(r"Header info length \((\d+)\)", str(exc))
    size = f" of {int(m.group(1)):,} bytes" if m else ""
    return (
        f"an array header{size} is larger than NumPy reads from untrusted files (10,000 "
        f"bytes); the file is damaged or was not written by np.save/np.savez"
    )


def text_decode_problem(path: Path | str, exc: UnicodeDecodeError) -> str:
    """One sentence for a text file that is not UTF-8: Latin-1 text, or binary data."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    line = head[: exc.start].count(b"\n") + 1
    if b"\0" in head:
        return f"{path} is not a text file (it holds binary data, NUL bytes)"
    return (
        f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}). "
        f"Hint: convert it, e.g. iconv -f latin1 -t utf-8 {path} > converted.csv"
    )


def _read_rows(
    path: Path, who: str, delimiter: str | None, header: bool | None
) -> tuple[list[str] | None, list[tuple[int, list[str]]], int]:
    """``(column names or None, [(line number, cells), ...], first line)`` of a text table."""
    if delimiter is None:
        delimiter = _TEXT_SUFFIXES.get(path.suffix.lower()) or ","
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            for row in reader:
                if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                    continue  # blank lines and '#' comments
                rows.append((reader.line_num, [c.strip() for c in row]))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{who}: {text_decode_problem(path, exc)}") from None
    except csv.Error as exc:
        raise ValueError(f"{who}: not a readable text table ({exc}); is it a binary file?") from None
    if not rows:
        raise ValueError(f"{who}: the file has no data rows")
    first_line = rows[0][0]
    if header is None:
        # A header is a first row with no numeric cell; a partly numeric first row is data
        # (and its bad cell is reported later, with a hint).
        header = not any(_is_number(c) for c in rows[0][1])
    names: list[str] | None = None
    if header:
        names = rows[0][1]
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{who}: the file has a header but no data rows")
    ncols = len(names) if names is not None else len(rows[0][1])
    for line, row in rows:
        if len(row) != ncols:
            raise ValueError(
                f"{who}: ragged rows: line {line} has {len(row)} columns, expected {ncols} "
                f"(as {'the header' if names is not None else f'line {rows[0][0]}'})"
            )
    return names, rows, first_line


def _target_column(target: Any, names: list[str] | None, ncols: int, who: str) -> int | None:
    """Index of the label column (None: no labels)."""
    if target is None:
        return None
    if isinstance(target, _Default):
        target = -1
    if isinstance(target, str):
        if names is None:
            raise ValueError(f"{who}: target={target!r} names a column but the file has no header; pass a column index")
        if target not in names:
            raise ValueError(f"{who}: no column named {target!r}; columns are {names}")
        t = names.index(target)
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not -ncols <= target < ncols:
            raise ValueError(f"{who}: target column {target} is out of range for {ncols} columns")
        t = int(target) % ncols
    else:
        raise TypeError(f"{who}: target must be a column index, a column name or None, got {target!r}")
    if ncols < 2:
        raise ValueError(f"{who}: need at least one feature column besides the target, got {ncols} column(s)")
    return t


def _class_names(rows: list[tuple[int, list[str]]], t: int, task: str | None,
                 who: str) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """Labels written as text (``setosa``): class indices in sorted order of the names, as
    scikit-learn's ``LabelEncoder`` numbers them, and the names; None for numeric labels."""
    cells = [row[t] for _, row in rows]
    if all(_is_number(c) for c in cells):
        return None
    text = next(c for c in cells if not _is_number(c))
    if task == "regression":
        raise ValueError(
            f"{who}: the target column holds text such as {text!r}; regression needs numbers. "
            f"Hint: pass task='classification' (--task classification), or fix the column"
        )
    names, labels = np.unique(np.asarray(cells, dtype=str), return_inverse=True)
    return labels.astype(np.int64).reshape(-1), tuple(str(n) for n in names)


def _numeric(rows: list[tuple[int, list[str]]], names: list[str] | None, keep: list[int],
             first_line: int, who: str) -> np.ndarray:
    """The columns ``keep`` as a float64 matrix; the first bad cell is reported with a hint."""
    header = names is not None
    table = [[row[j] for j in keep] for _, row in rows]
    try:
        data = np.array(table, dtype=np.float64).reshape(len(rows), len(keep))
    except ValueError:
        data = None
    if data is not None and np.all(np.isfinite(data)):
        return data
    for line, row in rows:
        for j in keep:
            cell = row[j]
            if not _is_number(cell) or not np.isfinite(float(cell)):
                hint = (
                    " Hint: if the first row is a header, pass header=True."
                    if not header and line == first_line
                    else " Only numeric cells are supported (no missing values, NaN or inf)."
                )
                col = f" ({names[j]!r})" if names is not None else ""
                raise ValueError(
                    f"{who}: line {line}, column {j + 1}{col}: cannot read "
                    f"{cell!r} as a finite number.{hint}"
                )
    raise AssertionError("unreachable: a non-numeric cell was found above")


def _load_text(
    path: Path, target: Any, task: str | None, delimiter: str | None, header: bool | None
) -> Dataset:
    who = f"load_file({path.name!r})"
    names, rows, first_line = _read_rows(path, who, delimiter, header)
    ncols = len(rows[0][1])
    t = _target_column(target, names, ncols, who)
    if t is None:
        data = _numeric(rows, names, list(range(ncols)), first_line, who)
        return _labelled(data, None, task=task, who=who, name=path.stem,
                         description=f"{ncols} numeric columns from {path}",
                         source=f"user file {path}",
                         feature_names=tuple(names) if names else None)
    keep = [j for j in range(ncols) if j != t]
    text_labels = _class_names(rows, t, task, who)
    X = _numeric(rows, names, keep, first_line, who)
    y = text_labels[0] if text_labels is not None else _numeric(rows, names, [t], first_line, who)[:, 0]
    col = f" ({names[t]!r})" if names is not None else ""
    ds = _labelled(
        X, y, task=task or ("classification" if text_labels else None), who=who, name=path.stem,
        description=f"{len(keep)} features and target column {t + 1}{col} from {path}",
        source=f"user file {path}",
        feature_names=tuple(names[j] for j in keep) if names else None,
    )
    if text_labels is not None:
        ds.target_names = text_labels[1]
        ds.num_classes = len(text_labels[1])
        ds.description += f"; class names {', '.join(text_labels[1][:5])}{', ...' if len(text_labels[1]) > 5 else ''} numbered 0..{len(text_labels[1]) - 1} in sorted order"
    return ds


# ----------------------------------------------------------------------------- IDX


def _label_candidates(path: Path) -> list[Path]:
    name = path.name
    out = []
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1")):
        if a in name:
            base = name.replace(a, b)
            stem = base[:-3] if base.endswith(".gz") else base
            out += [path.with_name(stem), path.with_name(stem + ".gz")]
    return out


def _load_idx_pair(path: Path, raw: bytes, target: Any, task: str | None, scale: bool) -> Dataset:
    who = f"load_file({path.name!r})"
    images = parse_idx(raw, source=str(path))
    if images.ndim < 1:
        raise ValueError(f"{who}: expected an IDX array with a sample axis, got a 0-d array")
    if target is None:
        X = images.reshape(images.shape[0], -1).astype(np.float64)
        if scale and images.dtype == np.uint8:
            X /= 255.0
        return _labelled(X, None, task=task, who=who, name=path.stem,
                         description=f"IDX array from {path}", source=f"user file {path}",
                         feature_shape=tuple(images.shape[1:]))
    if isinstance(target, _Default):
        cands = _label_candidates(path)
        label_path = next((c for c in cands if c.is_file()), None)
        if label_path is None:
            tried = ", ".join(c.name for c in cands) or "(no name derivable: the file name has no 'images-idx3')"
            raise FileNotFoundError(
                f"{who}: no label file next to {path.name}; looked for {tried}. Hint: pass "
                f"target=<label file path>, or target=None for images only"
            )
    else:
        label_path = Path(target).expanduser()
        if not label_path.is_file():
            raise FileNotFoundError(f"{who}: label file {label_path} does not exist")
    labels = parse_idx(_read_bytes(label_path, "load_idx"), source=str(label_path))
    if task == "regression":
        return _labelled(images, labels, task=task, who=who, name=path.stem,
                         description=f"IDX arrays from {path} and {label_path.name}",
                         source=f"user files {path}, {label_path}")
    return images_to_dataset(
        images, labels, name=path.stem, scale=scale, who=who,
        description=f"IDX images {path} with labels {label_path.name}",
        source=f"user files {path}, {label_path}",
    )


# ----------------------------------------------------------------------------- entry point


def load_file(
    path: PathLike,
    *,
    target: Any = DEFAULT_TARGET,
    task: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    kind: str = "train",
    scale: bool = True,
) -> Dataset:
    """Load a data file (or an MNIST folder) into a :class:`~xpnet.data.Dataset`.

    Parameters
    ----------
    path
        - a directory: MNIST / Fashion-MNIST IDX files (:func:`~xpnet.data.load_mnist`,
          split chosen by ``kind``);
        - ``.npz``: arrays ``X`` (``(n, ...)``) and ``y``, read with ``allow_pickle=False``;
        - ``.csv`` / ``.tsv`` / ``.txt``: numeric text, one sample per line, optional header;
        - any other file whose content is IDX (raw or gzip): images, with labels from the
          matching ``...-labels-idx1-ubyte[.gz]`` file next to it.
    target
        Where the labels are. CSV: a column index (default ``-1``, the last column) or a
        header name. npz: the array key (default ``"y"``). IDX: the label file (default
        found from the image file's name). ``None``: no labels (``Dataset.y`` is None).
    task
        ``"classification"`` or ``"regression"``; default inferred from the targets:

        - whole numbers ``0 <= label < 1000`` with at most 100 distinct values (or bool):
          class labels;
        - exactly the values -1 and +1: binary classes, mapped -1 -> 0 and +1 -> 1 (a
          ``UserWarning`` says so; ``target_names`` is ``("-1", "1")``);
        - text (a CSV column such as ``setosa``, ``versicolor``): class names, numbered
          in sorted order as scikit-learn's ``LabelEncoder`` does (``"setosa"`` -> 0);
          ``target_names`` holds the names, index = class;
        - numbers that are not all whole, or more than 100 distinct whole numbers in a
          float column (counts, prices): regression targets;
        - anything else (negative whole numbers, labels >= 1000, an integer array with
          more than 100 values): ``ValueError`` asking for an explicit ``task``.
    delimiter
        CSV field separator; default ``","`` (``"\\t"`` for ``.tsv``).
    header
        Whether the first CSV row holds column names; default: yes when none of its cells
        is a number.
    kind
        For a directory: ``"train"`` or ``"t10k"``.
    scale
        Divide uint8 IDX images by 255 (default True).

    Returns
    -------
    Dataset
        ``X`` float64 ``(n, d)``; ``y`` int64 ``(n,)`` or float64 ``(n, 1)``.

    Raises
    ------
    FileNotFoundError
        Missing file, folder or label file (the names looked for are listed).
    ValueError
        Unknown format, ragged CSV rows or non-numeric cells (line and column given),
        missing npz keys, pickled arrays, corrupt IDX data, mismatched sample counts.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        return load_mnist(p, kind)
    if not p.exists():
        raise FileNotFoundError(f"load_file: no such file or directory: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p, target, task)
    if suffix in _TEXT_SUFFIXES:
        return _load_text(p, target, task, delimiter, header)
    with open(p, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b" or head == b"\x00\x00":
        return _load_idx_pair(p, _read_bytes(p, "load_idx"), target, task, scale)
    raise ValueError(
        f"load_file: cannot tell the format of {p.name}; expected a folder of MNIST IDX files, "
        f".npz, .csv/.tsv/.txt, or an IDX file (raw or .gz)"
    )
