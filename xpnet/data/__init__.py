"""Data: mini-batch loading on any backend, offline datasets, file readers, preprocessing.

Everything here is host-side code (NumPy is allowed). Datasets are NumPy arrays on the
host; move them with :func:`xpnet.asarray` and iterate with :class:`DataLoader`, whose
seeded host-side shuffling gives the same batches on every backend. See ``docs/data.md``.
"""

from __future__ import annotations

from .datasets import DATASETS, Dataset, list_datasets, load_dataset
from .files import load_file
from .idx import has_mnist_split, load_idx, load_mnist, save_idx
from .loader import DataLoader
from .preprocessing import MinMaxScaler, StandardScaler, one_hot, train_test_split

__all__ = [
    "DATASETS",
    "DataLoader",
    "Dataset",
    "MinMaxScaler",
    "StandardScaler",
    "list_datasets",
    "has_mnist_split",
    "load_dataset",
    "load_file",
    "load_idx",
    "load_mnist",
    "one_hot",
    "save_idx",
    "train_test_split",
]
