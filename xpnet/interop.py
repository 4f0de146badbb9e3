"""Weights in the safetensors format, under torch's ``state_dict`` names.

xpnet's parameter and buffer names and layouts are torch's (``Sequential`` children
``0``, ``1``, ...; ``Linear.weight`` ``(out_features, in_features)``; BatchNorm's
``running_mean``, ``running_var``, ``num_batches_tracked``), so a file written here loads
into the equivalent ``torch.nn`` model with
``model.load_state_dict(safetensors.torch.load_file(path))``, and a file torch wrote
(``safetensors.torch.save_file(model.state_dict(), path)``) loads into the equivalent
xpnet model with :func:`load_safetensors`.

Needs the ``safetensors`` package (``pip install safetensors``); nothing else of xpnet does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _backend
from .module import Module

__all__ = ["save_safetensors", "load_safetensors", "state_to_safetensors"]

PathLike = str | os.PathLike


def _safetensors_numpy() -> Any:
    try:
        import safetensors.numpy as stn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading and writing .safetensors files needs the safetensors package: "
            "pip install safetensors (or pip install 'xpnet[safetensors]')"
        ) from exc
    return stn


def state_to_safetensors(
    state: Mapping[str, Any], path: PathLike, *, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write a state dict (arrays of any backend) to ``path`` as safetensors.

    The arrays are copied to the host, C-contiguous, with their dtypes unchanged.
    ``metadata`` values that are not strings are stored as JSON; ``"format": "pt"`` is
    added, as ``safetensors.torch.save_file`` writes it.
    """
    if not isinstance(state, Mapping) or not state:
        raise ValueError("save_safetensors: the state dict is empty; nothing to write")
    tensors = {}
    for name, value in state.items():
        if not _backend.is_array(value):
            raise TypeError(f"save_safetensors: {name!r} is a {type(value).__name__}, not an array")
        tensors[str(name)] = np.ascontiguousarray(_backend.to_numpy(value))
    meta = {"format": "pt"}
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    _safetensors_numpy().save_file(tensors, os.fspath(path), metadata=meta)


def save_safetensors(model: Module, path: PathLike, *, metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s parameters and buffers to ``path`` in the safetensors format.

    Parameters
    ----------
    model
        Any :class:`~xpnet.Module`, on any backend and device (the values are copied
        to the host).
    path
        The file to write (conventionally ``*.safetensors``).
    metadata
        Extra string metadata for the file's header (non-strings are stored as JSON).

    Notes
    -----
    The names are ``model.state_dict()``'s, which are torch's for the same architecture:
    ``torch_model.load_state_dict(safetensors.torch.load_file(path))`` loads the file into
    the equivalent ``torch.nn`` model.
    """
    if not isinstance(model, Module):
        raise TypeError(f"save_safetensors: model must be an xpnet.Module, got {type(model).__name__}")
    state_to_safetensors(model.state_dict(), path, metadata=metadata)


def load_safetensors(model: Module, path: PathLike, *, strict: bool = True) -> dict[str, str]:
    """Load a safetensors file's weights into ``model`` (keeping its backend and device).

    Parameters
    ----------
    model
        The module to fill; its parameter and buffer names must match the file's
        (torch's names for the same architecture).
    path
        A ``.safetensors`` file, e.g. written by ``safetensors.torch.save_file``.
    strict
        Require the names to match exactly (see :meth:`xpnet.Module.load_state_dict`).

    Returns
    -------
    dict
        The file's string metadata.

    Raises
    ------
    KeyError, ValueError, TypeError
        Names, shapes or dtypes that do not match the model (from ``load_state_dict``).
    """
    if not isinstance(model, Module):
        raise TypeError(f"load_safetensors: model must be an xpnet.Module, got {type(model).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_safetensors: no such file: {path!r}")
    stn = _safetensors_numpy()
    state = stn.load_file(path)
    model.load_state_dict(state, strict=strict)
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        return dict(f.metadata() or {})
