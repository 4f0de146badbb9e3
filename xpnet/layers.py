"""Layers: ``Linear``, ``Sequential``, ``Identity``, ``Flatten``, ``Dropout``.

Layouts and defaults are torch's, so weights copy across unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from . import _backend, init
from .module import Module, Parameter
from .random import resolve_generator

__all__ = ["Linear", "Sequential", "Identity", "Flatten", "Dropout"]

Array = Any


def _host_param(values: Any, dtype: Any) -> Parameter:
    # values: a float64 NumPy array from xpnet.init (host side, cast here)
    name = "float32" if dtype is None else _backend.dtype_name(dtype)
    if name not in ("float32", "float64", "float16"):
        raise TypeError(f"parameters must be floating point, got dtype {dtype!r}")
    return Parameter(values.astype(name))


def _like(x: Array, w: Array) -> bool:
    """True when ``x`` has ``w``'s array type, dtype and ``.device``: a few attribute reads.

    This is the common case of a layer call; anything else (including arrays without a
    ``.device`` attribute) goes through :func:`xpnet._backend.check_same_backend`, which
    raises the error with the hint or accepts.
    """
    if type(x) is not type(w) or x.dtype != w.dtype:
        return False
    dev = getattr(w, "device", None)
    return dev is not None and getattr(x, "device", None) == dev


class Linear(Module):
    """Affine layer ``y = x Wᵀ + b``.

    Parameters
    ----------
    in_features, out_features
        Sizes of each input and output sample.
    bias
        Learn an additive bias (default True).
    dtype
        ``"float32"`` (default) or ``"float64"``.
    generator
        ``numpy.random.Generator`` or int seed for the initial weights; default the
        generator seeded by :func:`xpnet.manual_seed`.

    Shape
    -----
    Input ``(*, in_features)``, output ``(*, out_features)``. ``weight`` is
    ``(out_features, in_features)`` and ``bias`` is ``(out_features,)``, as in torch.

    Notes
    -----
    Forward: ``z = x Wᵀ + b``. Backward, with δ = dL/dz (one row per sample)::

        dW = δᵀ x        (the lecture's δ hᵀ, summed over the batch)
        db = Σ_batch δ
        dx = δ W         (Wᵀ δ per sample: the δ recursion before the σ′ factor)

    Initialization is torch's: weight and bias from U(-1/√in, 1/√in).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: Any = None,
        generator: init.Generator = None,
    ) -> None:
        super().__init__()
        for label, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"Linear: {label} must be a positive int, got {n!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        g = resolve_generator(generator)
        self.weight = _host_param(
            init.fan_in_uniform((self.out_features, self.in_features), generator=g), dtype
        )
        if bias:
            self.bias = _host_param(
                init.fan_in_uniform((self.out_features,), fan_in=self.in_features, generator=g), dtype
            )
        else:
            self.register_parameter("bias", None)
        self._cache: Array | None = None

    def forward(self, x: Array) -> Array:
        w = self.weight.data
        if not _like(x, w):
            _backend.check_same_backend(x, w, who="Linear")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: expected input of shape (*, {self.in_features}), got "
                f"{tuple(x.shape)}. Hint: flatten images with Flatten() or check in_features"
            )
        y = x @ w.T
        bias = self.bias
        if bias is not None:
            y += bias.data  # y is our own fresh array: no temporary for the sum
        # A plain write: Module.__setattr__'s registration logic is not needed here.
        self.__dict__["_cache"] = x if self.training else None
        return y

    def backward(self, dy: Array) -> Array:
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy: Array) -> None:
        """Accumulate ``dW`` and ``db`` only; skips ``dx = δ W``, a third of the products."""
        self._backward(dy, need_dx=False)

    def _backward(self, dy: Array, *, need_dx: bool) -> Array | None:
        x = self.__dict__["_cache"]
        if x is None:
            raise self._missing_cache()
        self.__dict__["_cache"] = None
        if tuple(dy.shape) != (*x.shape[:-1], self.out_features):
            raise ValueError(
                f"Linear.backward: expected dy of shape {(*x.shape[:-1], self.out_features)}, "
                f"got {tuple(dy.shape)}"
            )
        if not _like(dy, x):
            # dy must match the stored forward: a float64 dy on a float32 model would
            # otherwise silently produce float64 gradients (an error only at opt.step()).
            _backend.namespace_of(dy, x)  # mixed backends: TypeError naming both
            if dy.dtype != x.dtype:
                raise TypeError(
                    f"Linear.backward: dy has dtype {_backend.dtype_name(dy.dtype)} but the forward "
                    f"ran in {_backend.dtype_name(x.dtype)}. Hint: pass the gradient the loss "
                    f"returned for this model's output, or xpnet.asarray(dy, dtype="
                    f"{_backend.dtype_name(x.dtype)!r})"
                )
            if _backend.device_of(dy) != _backend.device_of(x):
                raise ValueError(
                    f"Linear.backward: dy is on {_backend.device_of(dy)!r} but the forward ran on "
                    f"{_backend.device_of(x)!r}"
                )
        if x.ndim == 2:
            x2, dy2 = x, dy
        elif x.ndim == 1:
            x2, dy2 = x[None, :], dy[None, :]
        else:
            xp = _backend.namespace_of(x)
            x2 = xp.reshape(x, (-1, self.in_features))
            dy2 = xp.reshape(dy, (-1, self.out_features))
        weight, bias = self.weight, self.bias
        # After zero_grad() (the usual case) the fresh product simply becomes .grad.
        if weight.requires_grad:
            if weight.grad is None:
                weight.grad = dy2.T @ x2
            else:
                weight.accumulate_grad(dy2.T @ x2)
        if bias is not None and bias.requires_grad:
            if bias.grad is None:
                bias.grad = self._ones(dy2) @ dy2
            else:
                bias.accumulate_grad(self._ones(dy2) @ dy2)
        return dy @ weight.data if need_dx else None

    def _ones(self, dy2: Array) -> Array:
        """A cached ``ones(N)`` like ``dy2``: ``db = Σ_batch δ`` is computed as ``1ᵀ δ``.

        One matrix-vector product is 2-10x faster on NumPy than ``xp.sum(δ, axis=0)``
        (whose Python-level dispatch alone costs ~2 µs, and whose axis-0 reduction of a
        short-row array is slow); the result differs only by summation order.
        """
        ones = self.__dict__.get("_ones_cache")
        if ones is None or ones.shape[0] != dy2.shape[0] or not _like(ones, dy2):
            xp = _backend.namespace_of(dy2)
            ones = xp.ones((dy2.shape[0],), dtype=dy2.dtype, device=_backend.device_of(dy2))
            self.__dict__["_ones_cache"] = ones
        return ones

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """``y = x``; backward passes ``dy`` through."""

    def forward(self, x: Array) -> Array:
        _backend.namespace_of(x)
        self._cache = True if self.training else None
        return x

    def backward(self, dy: Array) -> Array:
        if self.__dict__.get("_cache") is None:
            raise self._missing_cache()
        self._cache = None
        return dy


class Flatten(Module):
    """Flatten dimensions ``start_dim..end_dim`` (torch defaults 1 and -1).

    Shape
    -----
    Input ``(N, *dims)``, output ``(N, prod(dims))`` with the defaults.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim
        self._cache: tuple[int, ...] | None = None

    def forward(self, x: Array) -> Array:
        xp = _backend.namespace_of(x)
        shape = tuple(x.shape)
        nd = len(shape)
        start = self.start_dim % nd if nd else 0
        end = self.end_dim % nd if nd else 0
        if nd == 0 or start > end:
            raise ValueError(
                f"Flatten: cannot flatten dims {self.start_dim}..{self.end_dim} of an input "
                f"with shape {shape}"
            )
        new = shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :]
        self._cache = shape if self.training else None
        return xp.reshape(x, new)

    def backward(self, dy: Array) -> Array:
        shape = self._cache
        if shape is None:
            raise self._missing_cache()
        self._cache = None
        return _backend.namespace_of(dy).reshape(dy, shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by 1/(1-p).

    The mask is drawn on the host from a NumPy generator and moved to the input's device,
    so every backend drops the same units for the same seed. Identity in eval mode.

    Notes
    -----
    Forward ``y = x ⊙ m / (1-p)``; backward ``dx = dy ⊙ m / (1-p)``.
    """

    def __init__(self, p: float = 0.5, *, generator: init.Generator = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self._generator = generator
        self._cache: Array | None = None

    def forward(self, x: Array) -> Array:
        xp = _backend.namespace_of(x)
        if not self.training or self.p == 0.0:
            self._cache = None
            return x
        keep = resolve_generator(self._generator).random(tuple(x.shape)) >= self.p
        scale = (keep / (1.0 - self.p)).astype(_backend.dtype_name(x.dtype))
        mask = _backend.asarray(scale, xp, device=_backend.device_of(x))
        self._cache = mask
        return x * mask

    def backward(self, dy: Array) -> Array:
        if self.p == 0.0 and self.training:
            return dy
        mask = self._cache
        if mask is None:
            raise self._missing_cache()
        self._cache = None
        return dy * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Chain of modules: forward in order, backward in reverse.

    ``Sequential(Linear(2, 3), Sigmoid(), Linear(3, 1))`` names its parameters
    ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ... as torch does. An ``OrderedDict`` of
    named modules is accepted too.
    """

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)
        self._layers = tuple(self._modules.values())

    def add_module(self, name: str, module: Module) -> None:
        super().add_module(name, module)
        object.__setattr__(self, "_layers", tuple(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def __getitem__(self, idx: int | slice) -> Module:
        if isinstance(idx, slice):
            return Sequential(*self._layers[idx])
        return self._layers[idx]

    def forward(self, x: Array) -> Array:
        for layer in self._layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: Array) -> Array:
        for layer in reversed(self._layers):
            dy = layer.backward(dy)
        return dy

    def backward_params(self, dy: Array) -> None:
        """Backward for the parameter gradients only; ``dL/dx`` of the input is not computed.

        The first module that has parameters gets ``backward_params`` (a
        :class:`Linear` then skips ``dx = δ W``); the parameter-free modules before it
        (``Flatten``, an input ``Dropout``) have nothing to learn from the gradient, so
        their backward is not run and their stored forward pass is dropped.
        """
        layers = self._layers
        k = 0
        while k < len(layers) and not layers[k]._parameters and not layers[k]._modules:
            k += 1
        for layer in reversed(layers[k + 1 :]):
            dy = layer.backward(dy)
        if k < len(layers):
            layers[k].backward_params(dy)
        for layer in layers[:k]:
            layer._clear_cache()
