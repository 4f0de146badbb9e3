"""Host-side random number generation.

All randomness in xpnet (initial weights, shuffling, dropout masks) is drawn on the host
from a seeded :class:`numpy.random.Generator` and then transferred to the backend. The same
seed therefore gives bit-identical starting weights and batches on NumPy, CuPy, torch and
array-api-strict; the backends then differ only by floating-point rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["manual_seed", "default_generator", "get_rng_state", "set_rng_state", "resolve_generator"]

_default = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the default generator (like ``torch.manual_seed``) and return it."""
    global _default
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: expected an int seed, got {type(seed).__name__}")
    _default = np.random.default_rng(int(seed))
    return _default


def default_generator() -> np.random.Generator:
    """The process-wide generator used when no ``generator=`` is passed."""
    return _default


def resolve_generator(generator: np.random.Generator | int | None) -> np.random.Generator:
    """Return ``generator`` itself, a new generator for an int seed, or the default one."""
    if generator is None:
        return _default
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"expected a numpy.random.Generator, an int seed or None, got {type(generator).__name__}"
    )


def get_rng_state(generator: np.random.Generator | None = None) -> dict[str, Any]:
    """JSON-serialisable state of a generator (default: the process-wide one)."""
    g = resolve_generator(generator)
    return g.bit_generator.state


def set_rng_state(state: dict[str, Any], generator: np.random.Generator | None = None) -> None:
    """Restore a state captured with :func:`get_rng_state`."""
    g = resolve_generator(generator)
    name = type(g.bit_generator).__name__
    if not isinstance(state, dict) or state.get("bit_generator") != name:
        raise ValueError(
            f"set_rng_state: expected a {name} state dict from get_rng_state(), got "
            f"{state.get('bit_generator') if isinstance(state, dict) else type(state).__name__}"
        )
    g.bit_generator.state = state
