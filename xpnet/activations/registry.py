"""Activation lookup by name: :data:`ACTIVATIONS` and :func:`get_activation`."""

from __future__ import annotations

import re
from typing import Any

from ..layers import Identity
from ..module import Module
from .hard import Hardsigmoid, Hardswish, Hardtanh, ReLU6
from .logistic import Heaviside, LogSigmoid, Sigmoid, Softsign, Tanh, Tanhshrink
from .rectified import CELU, ELU, SELU, LeakyReLU, PReLU, ReLU
from .smooth import GELU, Mish, SiLU, Softplus
from .softmax import LogSoftmax, Softmax

__all__ = ["ACTIVATIONS", "get_activation"]


# ---------------------------------------------------------------------------------------
# lookup by name
# ---------------------------------------------------------------------------------------

#: Canonical activation names accepted by :func:`get_activation`.
ACTIVATIONS: dict[str, type[Module]] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "prelu": PReLU,
    "relu6": ReLU6,
    "elu": ELU,
    "selu": SELU,
    "celu": CELU,
    "gelu": GELU,
    "silu": SiLU,
    "mish": Mish,
    "softplus": Softplus,
    "softmax": Softmax,
    "log_softmax": LogSoftmax,
    "log_sigmoid": LogSigmoid,
    "softsign": Softsign,
    "tanhshrink": Tanhshrink,
    "hardtanh": Hardtanh,
    "hardsigmoid": Hardsigmoid,
    "hardswish": Hardswish,
    "heaviside": Heaviside,
    "identity": Identity,
}
# Spellings that map to a canonical name once lower-cased with '_', '-' and spaces removed
# (so "LeakyReLU", "leaky-relu" and "leaky_relu" all work).
_ALIASES = {
    **{re.sub(r"[_\- ]", "", k): k for k in ACTIVATIONS},
    "swish": "silu",
    "step": "heaviside",
    "linear": "identity",
    "logistic": "sigmoid",
}


def get_activation(name: str | Module | type[Module], **kwargs: Any) -> Module:
    """Build an activation module from its name.

    Parameters
    ----------
    name
        One of the keys of :data:`ACTIVATIONS` (``"relu"``, ``"leaky_relu"``,
        ``"gelu"``, ``"hardswish"``, ``"log_sigmoid"``, ``"identity"``, ...) (case, ``_`` and ``-`` are ignored; torch class names
        such as ``"LeakyReLU"`` and the aliases ``"swish"``, ``"step"``, ``"linear"``,
        ``"logistic"`` work too). A module instance is returned as is; a module class is
        instantiated with ``kwargs``.
    **kwargs
        Constructor arguments, e.g. ``negative_slope=0.1`` or ``approximate="tanh"``.

    Returns
    -------
    Module
        A new activation module.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones).
    """
    if isinstance(name, Module):
        if kwargs:
            raise ValueError(
                f"get_activation: got a module instance {name!r} and keyword arguments "
                f"{sorted(kwargs)}; pass a name or a class to construct with arguments"
            )
        return name
    if isinstance(name, type) and issubclass(name, Module):
        return name(**kwargs)
    if not isinstance(name, str):
        raise ValueError(
            f"get_activation: expected an activation name such as 'relu', got {name!r}"
        )
    key = _ALIASES.get(re.sub(r"[_\- ]", "", name.strip().lower()))
    if key is None:
        raise ValueError(
            f"get_activation: unknown activation {name!r}; valid names are "
            f"{sorted(ACTIVATIONS)} (aliases: 'swish', 'step', 'linear', 'logistic')"
        )
    return ACTIVATIONS[key](**kwargs)
