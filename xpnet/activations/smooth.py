"""Smooth activations: GELU, SiLU, Mish, Softplus."""

from __future__ import annotations

from .. import functional as F
from ._base import Array, Namespace, _Activation, _namespace_of

__all__ = ["GELU", "SiLU", "Mish", "Softplus"]


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

    _chainable = True

    def _kernel_forward(self, x: Array, xp: Namespace, out: Array | None = None) -> tuple[Array, tuple[Array, Array]]:
        if self.approximate == "tanh":
            t = F._gelu_tanh_inner(x, xp=xp)
            return (0.5 * x) * (1.0 + t), (x, t)
        cdf = F._norm_cdf(x, xp=xp)
        return x * cdf, (x, cdf)

    def _kernel_backward(
        self, dy: Array, ctx: tuple[Array, Array], xp: Namespace, need_dx: bool, out: Array | None = None
    ) -> Array:
        x, aux = ctx
        if self.approximate == "tanh":
            return F._gelu_tanh_backward(dy, x, aux)
        return F._gelu_backward(dy, x, aux, xp=xp)

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

    _chainable = True

    def _kernel_forward(self, x: Array, xp: Namespace, out: Array | None = None) -> tuple[Array, tuple[Array, Array]]:
        s = F._silu_sigmoid(x, xp=xp)
        return x * s, (x, s)

    def _kernel_backward(
        self, dy: Array, ctx: tuple[Array, Array], xp: Namespace, need_dx: bool, out: Array | None = None
    ) -> Array:
        x, s = ctx
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


class Mish(_Activation):
    """``y = x tanh(softplus(x))`` (Misra, 2019; torch's ``Mish``).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward with ``sp = max(x, 0) + log1p(exp(-|x|))`` (softplus without overflow) and
    ``t = tanh(sp)``: ``y = x t``. Stores x and t. Backward (torch's formula):
    ``dx = dy ⊙ (t + x σ(x) (1 - t²))``, with torch's σ (see :class:`SiLU`).
    """

    def forward(self, x: Array) -> Array:
        xp = _namespace_of(x)
        t = xp.tanh(xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x))))
        self.save_for_backward((x, t))
        return x * t

    def backward(self, dy: Array) -> Array:
        x, t = self.pop_saved()
        self._check_dy(dy, x)
        s = F._silu_sigmoid(x, xp=_namespace_of(dy))
        return dy * (t + x * s * (1.0 - t * t))
