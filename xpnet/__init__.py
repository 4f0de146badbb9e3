"""xpnet: explicit backpropagation, written once against the Array API, on any backend."""

from __future__ import annotations

from . import init
from ._backend import asarray, backend_name, get_namespace, namespace_of, to_numpy
from .layers import Dropout, Flatten, Identity, Linear, Sequential
from .module import Module, Parameter
from .random import default_generator, get_rng_state, manual_seed, set_rng_state

__version__ = "0.1.0"
