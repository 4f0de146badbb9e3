"""Layers, one family per file, re-exported here and from :mod:`xpnet`.

- :mod:`~xpnet.layers.linear`: ``Linear``, ``Identity``
- :mod:`~xpnet.layers.flatten`: ``Flatten``
- :mod:`~xpnet.layers.dropout`: ``Dropout``
- :mod:`~xpnet.layers.containers`: ``Sequential``

Layouts and defaults are torch's, so weights copy across unchanged.
"""

from __future__ import annotations

from .containers import Sequential
from .dropout import Dropout
from .flatten import Flatten
from .linear import Identity, Linear

__all__ = ["Linear", "Sequential", "Identity", "Flatten", "Dropout"]
