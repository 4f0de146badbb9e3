"""Fitted estimators in xpnet checkpoints: the network, its optimizer and the estimator's state.

The file is an ordinary :func:`xpnet.save_checkpoint` archive (no pickle): the network's
``state_dict``, the optimizer's state, and under ``hparams["sklearn"]`` the estimator's
class, its ``get_params()`` and the fitted attributes that are not weights (classes,
feature names, loss curve, iteration counters). :func:`load` rebuilds a fitted estimator
from it on any backend, ready for ``predict`` or more ``partial_fit``.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import LabelBinarizer

from .. import _backend
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..models import mlp_from_config, model_config
from . import _arrays
from ._arrays import Place

__all__ = ["save", "load"]

_FORMAT = 1
#: Fitted attributes stored as plain values (the weights travel as the model's state).
_SCALARS = ("n_features_in_", "n_outputs_", "n_layers_", "out_activation_", "loss_", "loss_curve_",
            "best_loss_", "validation_scores_", "best_validation_score_", "n_iter_", "t_",
            "_no_improvement_count")


def _device_text(device: Any) -> str | None:
    """A device as the text :func:`xpnet._backend.resolve_device` reads back."""
    if device is None:
        return None
    ident = getattr(device, "id", None)  # cupy.cuda.Device
    if isinstance(ident, int) and not isinstance(device, str):
        return f"cuda:{ident}"
    text = str(device)
    return text.split("'")[1] if "'" in text else text  # array_api_strict.Device('device1')


def _json_param(name: str, value: Any) -> Any:
    if name in ("backend",) and value is not None and not isinstance(value, str):
        return _backend.backend_name(value)
    if name == "device":
        return _device_text(value)
    if name == "dtype" and value is not None:
        return _backend.dtype_name(value)
    if name == "random_state" and not (value is None or isinstance(value, numbers.Integral)):
        return None  # a RandomState instance: its stream cannot be shared through a file
    if isinstance(value, tuple):
        return list(value)
    return value


def save(est: Any, path: str | os.PathLike[str]) -> Path:
    """Write the fitted estimator ``est`` to ``path`` (see ``BaseMLP.save_checkpoint``)."""
    fitted: dict[str, Any] = {k: getattr(est, k) for k in _SCALARS if hasattr(est, k)}
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        fitted["feature_names_in_"] = [str(n) for n in names]
    lb = getattr(est, "_label_binarizer", None)
    if lb is not None:
        fitted["classes_"] = est.classes_.tolist()
        fitted["classes_dtype"] = est.classes_.dtype.str
        fitted["y_type"] = lb.y_type_
    placed = est._input_place
    meta = {
        "format": _FORMAT,
        "estimator": type(est).__name__,
        "params": {k: _json_param(k, v) for k, v in est.get_params(deep=False).items()},
        "fitted": fitted,
        "input_place": [placed.backend, _device_text(placed.device)],
        "compute_place": [est._compute_place.backend, _device_text(est._compute_place.device)],
        "model_config": model_config(est.model_),
    }
    return save_checkpoint(path, est.model_, getattr(est, "_optimizer", None), epoch=int(est.n_iter_),
                           hparams={"sklearn": meta})


def _place(backend: str, device: str | None) -> Place:
    xp = _backend.get_namespace(backend)
    dev = _backend.resolve_device(xp, device) if device is not None else _backend.default_device(xp)
    return Place(backend, dev)


def load(cls: type, path: str | os.PathLike[str], *, backend: Any = None, device: Any = None) -> Any:
    """Rebuild a fitted ``cls`` from a checkpoint written by :func:`save`."""
    ckpt = load_checkpoint(path)
    meta = ckpt.hparams.get("sklearn")
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise CheckpointError(
            f"{path}: not a checkpoint of an xpnet.sklearn estimator (no hparams['sklearn']). "
            f"Hint: write it with estimator.save_checkpoint(path)"
        )
    if meta["estimator"] != cls.__name__:
        raise CheckpointError(f"{path}: holds a {meta['estimator']}, not a {cls.__name__}")
    params = dict(meta["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    est = cls(**params)
    if backend is None and device is None:
        compute = _place(*meta["compute_place"])
        est._input_place = _place(*meta["input_place"])
    else:
        saved = _place(*meta["compute_place"])
        compute = _arrays.compute_place(backend, device, saved if backend is None else _arrays.HOST)
        est._input_place = compute
    est._compute_place = compute
    fitted = meta["fitted"]
    for k in _SCALARS:
        if k in fitted:
            setattr(est, k, fitted[k])
    if "feature_names_in_" in fitted:
        est.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    if "classes_" in fitted:
        classes = np.asarray(fitted["classes_"], dtype=np.dtype(fitted["classes_dtype"]))
        lb = LabelBinarizer()
        if fitted["y_type"].startswith("multilabel"):
            lb.fit(np.eye(len(classes), dtype=int))
        else:
            lb.fit(classes)
        est._label_binarizer = lb
        est.classes_ = lb.classes_
    model = mlp_from_config(meta["model_config"], generator=0)
    model.load_state_dict(ckpt.model_state)
    est.model_ = model.to(compute.backend, device=compute.device)
    est._random_state = None
    if ckpt.optimizer_state is not None:
        est._optimizer = est._make_optimizer()
        est._optimizer.load_state_dict(ckpt.optimizer_state)
    return est
