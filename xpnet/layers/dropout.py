"""``Dropout``: inverted dropout with host-drawn masks (the same units on every backend)."""

from __future__ import annotations

from typing import Any

from .. import _backend, init
from ..module import Module
from ..random import resolve_generator

__all__ = ["Dropout"]

Array = Any


class Dropout(Module):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by 1/(1-p).

    The mask is drawn on the host from a NumPy generator and moved to the input's device,
    so every backend drops the same units for the same seed. Identity in eval mode.

    Parameters
    ----------
    p
        Probability of zeroing an element, in [0, 1).
    generator
        A :class:`numpy.random.Generator`, an int seed, or None (the process-wide
        generator of :mod:`xpnet.random`, read at each call so that
        :func:`xpnet.manual_seed` applies). An int seed builds one generator here, once:
        successive calls draw successive masks (a fresh generator per call would repeat
        the first mask forever), and two modules built with the same seed draw the same
        sequence.

    Notes
    -----
    Forward ``y = x ⊙ m / (1-p)``; backward ``dx = dy ⊙ m / (1-p)``.
    """

    def __init__(self, p: float = 0.5, *, generator: init.Generator = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        # Resolve an int seed once: resolving it per call reseeds and repeats the mask.
        self._generator = None if generator is None else resolve_generator(generator)

    # Chainable (Module._chainable): a Sequential of Linear, activations and Dropout
    # still runs as one chain. In eval mode, and with p = 0, the output is the input
    # itself; the chain's in-place buffers follow which arrays it made (containers.py).
    _chainable = True

    def forward(self, x: Array) -> Array:
        y, mask = self._kernel_forward(x, _backend.namespace_of(x))
        self.save_for_backward(mask)  # (nothing in eval mode)
        return y

    def backward(self, dy: Array) -> Array:
        return self._kernel_backward(dy, self.pop_saved(), None, True)

    def _kernel_forward(self, x: Array, xp: Any, out: Array | None = None) -> tuple[Array, Array | None]:
        if not self.training or self.p == 0.0:
            return x, None
        keep = resolve_generator(self._generator).random(tuple(x.shape)) >= self.p
        scale = (keep / (1.0 - self.p)).astype(_backend.dtype_name(x.dtype))
        mask = _backend.asarray(scale, xp, device=_backend.device_of(x))
        return x * mask, mask

    def _kernel_backward(self, dy: Array, mask: Array | None, xp: Any, need_dx: bool, out: Array | None = None) -> Array:
        return dy if mask is None else dy * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
