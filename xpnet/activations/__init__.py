"""Activation modules: torch's names and defaults, explicit forward and backward.

Each module computes its output and, in training mode only, keeps what its backward
needs (the output where σ′ is written with it: sigmoid, tanh, ReLU, softmax; the input
otherwise). ``backward(dy)`` consumes that stored pass and raises ``RuntimeError``
without one, exactly like :class:`~xpnet.Linear`.

One family per file: :mod:`~xpnet.activations.rectified` (ReLU, LeakyReLU, PReLU, ELU,
SELU, CELU), :mod:`~xpnet.activations.hard` (Hardtanh, ReLU6, Hardsigmoid, Hardswish),
:mod:`~xpnet.activations.smooth` (GELU, SiLU, Mish, Softplus),
:mod:`~xpnet.activations.logistic` (Sigmoid, Tanh, LogSigmoid, Softsign, Tanhshrink,
Heaviside), :mod:`~xpnet.activations.softmax` (Softmax, LogSoftmax) and
:mod:`~xpnet.activations.registry` (lookup by name). Import them from here.

>>> from xpnet.activations import get_activation
>>> get_activation("leaky_relu", negative_slope=0.1)
LeakyReLU(negative_slope=0.1)
"""

from __future__ import annotations

from .hard import Hardsigmoid, Hardswish, Hardtanh, ReLU6
from .logistic import Heaviside, LogSigmoid, Sigmoid, Softsign, Tanh, Tanhshrink
from .rectified import CELU, ELU, SELU, LeakyReLU, PReLU, ReLU
from .registry import ACTIVATIONS, get_activation
from .smooth import GELU, Mish, SiLU, Softplus
from .softmax import LogSoftmax, Softmax

__all__ = [
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ReLU6",
    "ELU",
    "SELU",
    "CELU",
    "GELU",
    "SiLU",
    "Mish",
    "Softplus",
    "Softmax",
    "LogSoftmax",
    "LogSigmoid",
    "Softsign",
    "Tanhshrink",
    "Hardtanh",
    "Hardsigmoid",
    "Hardswish",
    "Heaviside",
    "get_activation",
    "ACTIVATIONS",
]
