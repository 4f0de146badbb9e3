"""The IDX file format (MNIST, Fashion-MNIST): reading, writing, and the MNIST file layout.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the
values in C order, big-endian::

    byte 0-1   0x00 0x00
    byte 2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
               0x0D float32, 0x0E float64
    byte 3     number of dimensions, ndim
    4 .. 4+4*ndim   the dimensions, each a big-endian uint32
    rest       prod(dims) values of the dtype, big-endian

Files may be gzip-compressed (``.gz``); that is detected from the content, not the name.
Nothing here downloads anything: :func:`load_mnist` reads files the user already has.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .. import _backend
from .datasets import Dataset

__all__ = ["load_idx", "save_idx", "load_mnist", "has_mnist_split", "IDX_DTYPES", "mnist_file_names"]

#: IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_BY_NAME = {dt.newbyteorder("=").name: code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"

PathLike = str | os.PathLike


def _read_bytes(path: Path, who: str) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{who}: {path} is a corrupt or truncated gzip file ({type(exc).__name__}: {exc})"
            ) from exc
    return raw


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into a native-endian NumPy array.

    Raises
    ------
    ValueError
        Bad magic number, unknown dtype code, or a size that does not match the header.
    """
    who = "load_idx"
    if len(raw) < 4:
        raise ValueError(
            f"{who}: {source} is truncated: expected at least a 4-byte IDX header, got "
            f"{len(raw)} bytes"
        )
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{who}: {source} is not an IDX file: bad magic number 0x{raw[:4].hex()} "
            f"(an IDX file starts with 0x0000 then a dtype code and ndim). Hint: MNIST files "
            f"are named like train-images-idx3-ubyte[.gz]"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {d.name}" for c, d in IDX_DTYPES.items())
        raise ValueError(f"{who}: {source} has unknown IDX dtype code 0x{code:02X}; expected one of {known}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{who}: {source} is truncated: the header declares {ndim} dimensions, which need "
            f"{header} header bytes, got {len(raw)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "corrupt (trailing bytes)"
        raise ValueError(
            f"{who}: {source} is {what}: shape {dims} of {dtype.newbyteorder('=').name} needs "
            f"{expected} data bytes after the {header}-byte header, got {got}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header)
    # astype to native byte order copies, so the result is writeable and owns its memory.
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def load_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    Parameters
    ----------
    path
        File path; gzip compression is detected from the file's first bytes.

    Returns
    -------
    numpy.ndarray
        The array, with the file's shape and dtype (uint8, int8, int16, int32, float32 or
        float64) in native byte order.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an IDX file (bad magic number), unknown dtype code, truncated or corrupt data;
        the message gives the expected and the actual size.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"load_idx: no such file: {p}")
    return parse_idx(_read_bytes(p, "load_idx"), source=str(p))


def save_idx(path: PathLike, array: Any) -> Path:
    """Write an array as an IDX file; gzip-compress it when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path
        Destination. Written atomically (a temporary file in the same folder, then renamed).
    array
        Array of any backend (copied to the host), dtype uint8, int8, int16, int32,
        float32 or float64, at most 255 dimensions of at most 2**32 - 1 each.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        A dtype IDX cannot store (cast first, e.g. int64 labels to uint8 or int32).
    ValueError
        Too many dimensions, or a dimension too large for the header.
    """
    a = np.asarray(_backend.to_numpy(array))
    name = a.dtype.name
    if name not in _CODE_BY_NAME:
        raise TypeError(
            f"save_idx: IDX cannot store dtype {name}; expected one of {sorted(_CODE_BY_NAME)}. "
            f"Hint: cast first, e.g. labels.astype('uint8')"
        )
    if a.ndim > 255:
        raise ValueError(f"save_idx: IDX allows at most 255 dimensions, got {a.ndim}")
    if any(d > 0xFFFFFFFF for d in a.shape):
        raise ValueError(f"save_idx: every dimension must be < 2**32, got shape {a.shape}")
    code = _CODE_BY_NAME[name]
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()
    p = Path(path).expanduser()
    if p.suffix == ".gz":
        # mtime=0 makes the compressed bytes reproducible.
        payload = gzip.compress(payload, mtime=0)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


_KIND_PREFIX = {"train": "train", "t10k": "t10k", "test": "t10k"}


def mnist_file_names(kind: str, what: str) -> list[str]:
    """Candidate file names for MNIST-layout ``what`` ("images" or "labels") of ``kind``.

    The official names (``train-images-idx3-ubyte``), gzipped, and the dotted variant
    some mirrors use (``train-images.idx3-ubyte``).
    """
    prefix = _KIND_PREFIX[kind]
    idx = "idx3" if what == "images" else "idx1"
    bases = [f"{prefix}-{what}-{idx}-ubyte", f"{prefix}-{what}.{idx}-ubyte"]
    return [name for base in bases for name in (base, base + ".gz")]


def _find(directory: Path, names: list[str]) -> Path | None:
    for name in names:
        cand = directory / name
        if cand.is_file():
            return cand
    return None


_MNIST_INFO = {
    "mnist": (
        "MNIST handwritten digits (LeCun, Cortes & Burges), 28x28 grey images, 10 classes",
        "MNIST database, Y. LeCun, C. Cortes, C. J. C. Burges, http://yann.lecun.com/exdb/mnist/ "
        "(read from the user's own copy; its terms are the distributor's)",
    ),
    "fashion_mnist": (
        "Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017), 28x28 grey images of clothing, 10 classes",
        "Fashion-MNIST, H. Xiao, K. Rasul, R. Vollgraf (2017), arXiv:1708.07747, Zalando "
        "Research, MIT licence (read from the user's own copy)",
    ),
}


def images_to_dataset(
    images: np.ndarray, labels: np.ndarray, *, name: str, description: str, source: str,
    scale: bool = True, num_classes: int | None = None, who: str = "load_mnist",
) -> Dataset:
    """Build a classification :class:`Dataset` from an image array ``(n, *shape)`` and labels ``(n,)``."""
    if images.ndim < 2:
        raise ValueError(f"{who}: images must have shape (n, ...), got {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{who}: labels must have shape (n,), got {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{who}: {images.shape[0]} images but {labels.shape[0]} labels; the image and "
            f"label files do not belong together"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{who}: labels must be integers, got dtype {labels.dtype}")
    y = labels.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{who}: labels must be >= 0, got {y.min()}")
    inferred = int(y.max()) + 1 if y.size else 0
    if num_classes is None:
        num_classes = inferred
    elif inferred > num_classes:
        raise ValueError(f"{who}: labels must be < {num_classes}, got {inferred - 1}")
    n = images.shape[0]
    X = images.reshape(n, -1).astype(np.float64)
    if scale and images.dtype == np.uint8:
        X /= 255.0
    return Dataset(
        X=X,
        y=y,
        task="classification",
        num_classes=num_classes,
        name=name,
        description=description,
        feature_shape=tuple(int(d) for d in images.shape[1:]),
        source=source,
    )


def has_mnist_split(directory: PathLike, kind: str = "t10k") -> bool:
    """Whether ``directory`` holds both the image and the label file of split ``kind``.

    Returns False when neither file is there. Raises ``FileNotFoundError`` when only one
    of the pair is (a half-copied download), naming the one that is missing, since
    silently falling back to another split would be worse.
    """
    d = Path(directory).expanduser()
    if kind not in _KIND_PREFIX:
        raise ValueError(f"has_mnist_split: kind must be 'train' or 't10k' (or 'test'), got {kind!r}")
    found = {what: _find(d, mnist_file_names(kind, what)) for what in ("images", "labels")}
    if all(p is None for p in found.values()):
        return False
    missing = [what for what, p in found.items() if p is None]
    if missing:
        have = next(p for p in found.values() if p is not None)
        raise FileNotFoundError(
            f"load_mnist: {d} has the {kind} file {have.name} but no {kind} {missing[0]} file; "
            f"looked for {', '.join(mnist_file_names(kind, missing[0]))}. Hint: copy the missing "
            f"file there, or remove {have.name}"
        )
    return True


def load_mnist(directory: PathLike, kind: str = "train", *, name: str = "mnist") -> Dataset:
    """Load MNIST or Fashion-MNIST from IDX files the user already has on disk.

    Parameters
    ----------
    directory
        Folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (optionally
        ``.gz``; the ``train-images.idx3-ubyte`` spelling is accepted too).
    kind
        ``"train"`` (60 000 samples) or ``"t10k"`` (alias ``"test"``, 10 000 samples).
    name
        ``"mnist"`` or ``"fashion_mnist"``: both use the same file names; this only sets
        the dataset's name, description and attribution.

    Returns
    -------
    Dataset
        ``X`` float64 ``(n, 784)`` scaled to [0, 1], ``y`` int64 ``(n,)``, 10 classes,
        ``feature_shape=(28, 28)``.

    Raises
    ------
    FileNotFoundError
        The folder or a file is missing; the message lists every name looked for.
    ValueError
        Unknown ``kind``, corrupt files, or image and label counts that differ.
    """
    who = "load_mnist"
    if kind not in _KIND_PREFIX:
        raise ValueError(f"{who}: kind must be 'train' or 't10k' (or 'test'), got {kind!r}")
    if name not in _MNIST_INFO:
        raise ValueError(f"{who}: name must be one of {sorted(_MNIST_INFO)}, got {name!r}")
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(
            f"{who}: {d} is not a directory. Hint: point it at the folder holding the "
            f"{name} IDX files (xpnet never downloads data)"
        )
    found = {}
    for what in ("images", "labels"):
        names = mnist_file_names(kind, what)
        path = _find(d, names)
        if path is None:
            raise FileNotFoundError(
                f"{who}: no {kind} {what} file in {d}; looked for {', '.join(names)}. "
                f"Hint: download {name} yourself and unpack or keep the .gz files there"
            )
        found[what] = path
    images = load_idx(found["images"])
    labels = load_idx(found["labels"])
    description, source = _MNIST_INFO[name]
    return images_to_dataset(
        images,
        labels,
        name=name,
        description=f"{description}; {_KIND_PREFIX[kind]} split read from {d}",
        source=source,
        num_classes=10,
    )
