"""Activation modules: torch's names and defaults, explicit forward and backward.

Each module computes its output with :mod:`xpnet.functional` and, in training mode only,
keeps what its backward needs (the output where σ′ is written with it: sigmoid, tanh,
ReLU, softmax; the input otherwise). ``backward(dy)`` consumes that stored pass and
raises ``RuntimeError`` without one, exactly like :class:`~xpnet.Linear`.

>>> from xpnet.activations import get_activation
>>> get_activation("leaky_relu", negative_slope=0.1)
LeakyReLU(negative_slope=0.1)
"""

from __future__ import annotations

import re
from typing import Any

from . import _backend
from . import functional as F
from .layers import Identity
from .module import Module

__all__ = [
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Softplus",
    "Softmax",
    "LogSoftmax",
    "Heaviside",
    "get_activation",
    "ACTIVATIONS",
]

Array = Any

_namespace_of = _backend.namespace_of


class _Activation(Module):
    """Parameter-free elementwise module: stores a forward pass, backward consumes it."""

    def _check_dy(self, dy: Array, ref: Array) -> None:
        # Elementwise products would broadcast a mis-shaped dy silently: (N,) with (N, 1).
        if dy.shape != ref.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: expected dy of shape {tuple(ref.shape)} "
                f"(the forward output's), got {tuple(dy.shape)}"
            )


class Sigmoid(_Activation):
    """Logistic sigmoid ``y = 1 / (1 + exp(-x))``.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward: ``1 / (1 + exp(-max(x, lo)))`` with ``lo = log(smallest normal)`` of the dtype
    (no overflow; :func:`xpnet.functional.sigmoid`). Stores the output y. Backward: ``dx = dy ⊙ y (1 - y)``.
    """

    def forward(self, x: Array) -> Array:
        y = F._sigmoid(x, xp=_namespace_of(x))
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        y = self.pop_saved()
        self._check_dy(dy, y)
        return dy * y * (1.0 - y)


class Tanh(_Activation):
    """Hyperbolic tangent.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward ``y = tanh(x)``, stores y. Backward: ``dx = dy ⊙ (1 - y²)``.
    """

    def forward(self, x: Array) -> Array:
        y = _namespace_of(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        y = self.pop_saved()
        self._check_dy(dy, y)
        return dy * (1.0 - y * y)


class ReLU(_Activation):
    """Rectified linear unit ``y = max(x, 0)``.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward ``y = max(x, 0)`` (NaN propagates), stores y. Backward:
    ``dx = dy ⊙ 1[not y <= 0]`` (the derivative at 0 is taken as 0, and dy passes
    through at NaN, as torch).
    """

    def forward(self, x: Array) -> Array:
        y = _namespace_of(x).maximum(x, 0.0)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        y = self.pop_saved()
        self._check_dy(dy, y)
        return F._relu_backward(dy, y, xp=_namespace_of(dy))


class LeakyReLU(_Activation):
    """``y = x`` for ``x > 0``, else ``negative_slope * x``.

    Parameters
    ----------
    negative_slope
        Slope for negative inputs (torch's default 0.01).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward ``max(x, s x)`` (``min`` for s > 1): the same values as torch's
    ``where(x > 0, x, s x)``. Stores x. Backward: ``dx = dy`` where ``x > 0``, else
    ``negative_slope * dy``.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Array) -> Array:
        y = F._leaky_relu(x, self.negative_slope, xp=_namespace_of(x))
        self.save_for_backward(x)
        return y

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        return dy * F._leaky_relu_factor(x, self.negative_slope, xp=_namespace_of(dy))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Activation):
    """Exponential linear unit: ``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``.

    Parameters
    ----------
    alpha
        Saturation value for negative inputs (torch's default 1.0).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward ``max(x, 0) + alpha expm1(min(x, 0))`` (finite for any x). Stores x.
    Backward: ``dx = dy ⊙ alpha exp(x)`` where ``x <= 0``, else ``dy`` (also at NaN, as
    torch).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Array) -> Array:
        y = F._elu(x, self.alpha, xp=_namespace_of(x))
        self.save_for_backward(x)
        return y

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        return dy * F._elu_factor(x, self.alpha, xp=_namespace_of(dy))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(_Activation):
    """Gaussian error linear unit ``y = x Φ(x)``.

    Parameters
    ----------
    approximate
        ``"none"`` (default): exact, with the portable :func:`xpnet.functional.erfc`.
        ``"tanh"``: torch's ``0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³)))``.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Exact: stores x and Φ(x); backward ``dx = dy ⊙ (Φ(x) + x φ(x))`` with
    ``φ(x) = exp(-x²/2)/√(2π)``. Tanh form: stores x and ``t = tanh(·)``; backward
    ``dx = dy ⊙ (0.5(1 + t) + 0.5x(1 - t²)√(2/π)(1 + 3·0.044715x²))``.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        F._check_approximate(approximate, "GELU")
        self.approximate = approximate

    def forward(self, x: Array) -> Array:
        xp = _namespace_of(x)
        if self.approximate == "tanh":
            t = F._gelu_tanh_inner(x, xp=xp)
            y = (0.5 * x) * (1.0 + t)
            self.save_for_backward((x, t))
        else:
            cdf = F._norm_cdf(x, xp=xp)
            y = x * cdf
            self.save_for_backward((x, cdf))
        return y

    def backward(self, dy: Array) -> Array:
        x, aux = self.pop_saved()
        self._check_dy(dy, x)
        if self.approximate == "tanh":
            return F._gelu_tanh_backward(dy, x, aux)
        return F._gelu_backward(dy, x, aux, xp=_namespace_of(dy))

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_Activation):
    """Sigmoid linear unit (swish) ``y = x σ(x)``.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Stores x and ``s = σ(x)`` (torch's ``1/(1 + exp(-x))``: exactly 0 where exp(-x)
    overflows, so the far negative tail is -0 as in torch). Backward:
    ``dx = dy ⊙ s (1 + x (1 - s))``.
    """

    def forward(self, x: Array) -> Array:
        s = F._silu_sigmoid(x, xp=_namespace_of(x))
        self.save_for_backward((x, s))
        return x * s

    def backward(self, dy: Array) -> Array:
        x, s = self.pop_saved()
        self._check_dy(dy, x)
        return F._silu_backward(dy, x, s)


class Softplus(_Activation):
    """``y = log(1 + exp(beta x)) / beta``, reverting to ``x`` where ``beta x > threshold``.

    Parameters
    ----------
    beta
        Sharpness (torch's default 1.0).
    threshold
        Above ``beta x > threshold`` the output is x (torch's default 20.0).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward ``(max(z, 0) + log1p(exp(-|z|))) / beta`` with ``z = beta x`` (finite for any
    x). Stores x. Backward: ``dx = dy ⊙ σ(beta x)`` (``dy`` above the threshold).
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        F._check_beta(beta, "Softplus")
        self.beta = float(beta)
        self.threshold = float(threshold)

    def forward(self, x: Array) -> Array:
        y = F._softplus(x, self.beta, self.threshold, xp=_namespace_of(x))
        self.save_for_backward(x)
        return y

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        return F._softplus_backward(dy, x, self.beta, self.threshold, xp=_namespace_of(dy))

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


def _resolve_dim(cls: str, dim: int | None, axis: int | None) -> int:
    if axis is not None:
        if dim is not None and dim != axis:
            raise ValueError(f"{cls}: got both dim={dim!r} and axis={axis!r}; pass one of them")
        dim = axis
    if dim is None:
        dim = -1
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ValueError(f"{cls}: dim must be an int, got {dim!r}")
    return dim


class Softmax(_Activation):
    """``y = exp(x) / Σ_dim exp(x)``, computed stably as ``exp(x - max)``.

    Parameters
    ----------
    dim
        Axis to normalise (default ``None`` means -1, the class axis of ``(N, C)``). ``axis=`` is accepted
        as an alias.

    Shape
    -----
    Any shape with at least one dimension; output has the input's shape.

    Notes
    -----
    Stores y. Backward (Jacobian ``diag(y) - y yᵀ`` applied to dy):
    ``dx = y ⊙ (dy - Σ_dim dy ⊙ y)``. Followed by a log and NLL it is less accurate than
    :class:`~xpnet.losses.CrossEntropyLoss` on logits, which fuses both.
    """

    def __init__(self, dim: int | None = None, *, axis: int | None = None) -> None:
        super().__init__()
        self.dim = _resolve_dim(type(self).__name__, dim, axis)

    def forward(self, x: Array) -> Array:
        F._check_dim(x, self.dim, type(self).__name__)
        y = F._softmax(x, self.dim, xp=_namespace_of(x))
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        y = self.pop_saved()
        self._check_dy(dy, y)
        xp = _namespace_of(dy)
        return y * (dy - xp.sum(dy * y, axis=self.dim, keepdims=True))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(_Activation):
    """``y = x - log Σ_dim exp(x)``, with the max subtracted first (stable).

    Parameters
    ----------
    dim
        Axis to normalise (default ``None`` means -1); ``axis=`` is accepted as an alias.

    Shape
    -----
    Any shape with at least one dimension; output has the input's shape.

    Notes
    -----
    Stores y. Backward: ``dx = dy - softmax(x) ⊙ Σ_dim dy`` with ``softmax(x) = exp(y)``.
    """

    def __init__(self, dim: int | None = None, *, axis: int | None = None) -> None:
        super().__init__()
        self.dim = _resolve_dim(type(self).__name__, dim, axis)

    def forward(self, x: Array) -> Array:
        F._check_dim(x, self.dim, type(self).__name__)
        y = F._log_softmax(x, self.dim, xp=_namespace_of(x))
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        y = self.pop_saved()
        self._check_dy(dy, y)
        xp = _namespace_of(dy)
        return dy - xp.exp(y) * xp.sum(dy, axis=self.dim, keepdims=True)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Heaviside(_Activation):
    """Perceptron step: ``y = 1`` where ``x > 0``, else 0 (0 at x = 0, as
    ``torch.heaviside(x, values=0)``, which also maps NaN to 0).

    Shape
    -----
    Any shape; output has the input's shape and dtype.

    Notes
    -----
    The derivative is 0 almost everywhere and undefined at 0; backward returns zeros, so
    gradient descent through a step learns nothing (the perceptron uses its own rule).
    Stores the output, only to check the shape of dy.
    """

    def forward(self, x: Array) -> Array:
        y = F._heaviside(x, xp=_namespace_of(x))
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        self._check_dy(dy, self.pop_saved())
        return _namespace_of(dy).zeros_like(dy)


# ---------------------------------------------------------------------------------------
# lookup by name
# ---------------------------------------------------------------------------------------

#: Canonical activation names accepted by :func:`get_activation`.
ACTIVATIONS: dict[str, type[Module]] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "gelu": GELU,
    "silu": SiLU,
    "softplus": Softplus,
    "softmax": Softmax,
    "log_softmax": LogSoftmax,
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
        One of ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"elu"``,
        ``"gelu"``, ``"silu"``, ``"softplus"``, ``"softmax"``, ``"log_softmax"``,
        ``"heaviside"``, ``"identity"`` (case, ``_`` and ``-`` are ignored; torch class names
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
