"""Where the estimators' arrays live: the input's namespace, the compute backend, the host.

scikit-learn's Array API convention: with ``sklearn.config_context(array_api_dispatch=True)``
an estimator keeps inputs on their own namespace and device and answers in that
namespace; without it every input is converted to NumPy. The estimators here add one
twist, their ``backend``/``device`` parameters: the network may run elsewhere (say on
CuPy) while the caller still gets arrays of the namespace it passed in.

Three places therefore matter:

* the *input* namespace and device (``Place``), where results go back;
* the *compute* namespace and device, where the network and the training data live;
* the host, for the few things that are decided there: class labels (strings, label
  encoding), sample weights (their per-batch sums are Python floats, no device sync)
  and the shuffling permutation (drawn from a seeded NumPy generator, as in xpnet).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np
import sklearn

from .. import _backend

__all__ = ["Place", "input_place", "compute_place", "to_host", "to_place", "float_dtype_for"]


@dataclass(frozen=True)
class Place:
    """A backend (by name, so that estimators pickle) and a device of that backend."""

    backend: str
    device: Any = None

    @property
    def xp(self) -> Any:
        return _backend.get_namespace(self.backend)


HOST = Place("numpy", "cpu")


def dispatch_enabled() -> bool:
    """Whether scikit-learn's ``array_api_dispatch`` is on."""
    return bool(sklearn.get_config().get("array_api_dispatch", False))


def _is_foreign_array(a: Any) -> bool:
    return array_api_compat.is_array_api_obj(a) and not isinstance(a, np.ndarray)


def input_place(X: Any) -> Place:
    """Namespace and device that results for ``X`` are returned in.

    With dispatch on, an array of any namespace keeps its own; otherwise (and for lists,
    DataFrames, NumPy arrays) the answer is NumPy on the host.
    """
    if dispatch_enabled() and _is_foreign_array(X):
        xp = _backend.namespace_of(X)
        return Place(_backend.backend_name(xp), _backend.device_of(X))
    return HOST


def compute_place(backend: Any, device: Any, default: Place) -> Place:
    """Where the network runs: the ``backend``/``device`` parameters, else ``default``."""
    if backend is None:
        if device is None:
            return default
        xp = default.xp
        return Place(default.backend, _backend.resolve_device(xp, device))
    xp = _backend.get_namespace(backend)
    name = _backend.backend_name(xp)
    if device is None:
        dev = _backend.default_device(xp)
    else:
        dev = _backend.resolve_device(xp, device)
    return Place(name, dev)


def to_host(a: Any) -> Any:
    """``a`` as host data: arrays of other namespaces are copied to NumPy, the rest kept.

    Lists, DataFrames and Series are left for scikit-learn's own validation, which
    knows their conventions (column names, nullable dtypes).
    """
    if _is_foreign_array(a):
        return _backend.to_numpy(a)
    return a


def float_dtype_for(place: Place, requested: Any, data_dtype: Any) -> str:
    """The floating dtype to train in, as a name.

    ``requested`` (the ``dtype`` parameter) wins; otherwise float32 data stays float32
    and anything else becomes float64, as scikit-learn's MLP does, unless the compute
    device has no float64 (Apple MPS), where float32 is used.
    """
    if requested is not None:
        name = _backend.dtype_name(requested)
        if name not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32', 'float64' or None, got {requested!r}")
        return name
    name = _backend.dtype_name(data_dtype)
    if name == "float32":
        return "float32"
    if not _backend.supports_float64(place.xp, place.device):
        return "float32"
    return "float64"


def to_place(a: Any, place: Place, dtype: Any = None) -> Any:
    """Copy or move ``a`` (host data or any array) to ``place``, optionally casting.

    Same namespace: a device move and an ``astype`` (no copy when nothing changes).
    Another namespace: through the host, exactly (``xpnet.asarray``).
    """
    xp = place.xp
    if array_api_compat.is_array_api_obj(a) and _backend.namespace_of(a) is xp:
        out = _backend.to_device(a, place.device) if place.device is not None else a
        if dtype is not None:
            target = _backend.resolve_dtype(xp, dtype)
            if out.dtype != target:
                out = xp.astype(out, target)
        return out
    host = _backend.to_numpy(a) if array_api_compat.is_array_api_obj(a) else np.asarray(a)
    return _backend.asarray(host, xp, device=place.device, dtype=dtype)
