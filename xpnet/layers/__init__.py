"""Layers, one family per file, re-exported here and from :mod:`xpnet`.

- :mod:`~xpnet.layers.linear`: ``Linear``, ``Identity``
- :mod:`~xpnet.layers.flatten`: ``Flatten``, ``Unflatten``
- :mod:`~xpnet.layers.dropout`: ``Dropout``
- :mod:`~xpnet.layers.containers`: ``Sequential``, ``Residual``
- :mod:`~xpnet.layers.conv`: ``Conv2d``
- :mod:`~xpnet.layers.pooling`: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``
- :mod:`~xpnet.layers.normalization`: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``
- :mod:`~xpnet.layers.embedding`: ``Embedding``

Layouts and defaults are torch's, so weights copy across unchanged.
"""

from __future__ import annotations

from .containers import Residual, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "Linear",
    "Sequential",
    "Identity",
    "Flatten",
    "Unflatten",
    "Dropout",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "Embedding",
    "Residual",
]
