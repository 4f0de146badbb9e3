"""S-shaped activations and the perceptron step: Sigmoid, Tanh, LogSigmoid, Softsign,
Tanhshrink, Heaviside."""

from __future__ import annotations

from typing import Any

from .. import _backend
from .. import functional as F
from .._fusion import KernelSource
from ._base import Array, Namespace, _Activation, _namespace_of

__all__ = ["Sigmoid", "Tanh", "LogSigmoid", "Softsign", "Tanhshrink", "Heaviside"]


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

    _chainable = True
    _kernel_inplace = True
    _ctx_holds_output = True

    #: The last input's (dtype, array type, device, lo, 1): F._sigmoid_from's constants,
    #: kept here because a shared cache's lookup cost as much as the clamp itself.
    _sigmoid_consts: tuple[Any, ...] | None = None

    def _kernel_forward(self, x: Array, xp: Namespace, out: Array | None = None) -> tuple[Array, tuple[Array, Array]]:
        c = self._sigmoid_consts
        if c is None or c[1] is not type(x) or c[0] != x.dtype or c[2] != getattr(x, "device", None):
            dev = getattr(x, "device", None)
            c = (x.dtype, type(x), dev, *F._sigmoid_consts(x, xp))
            if dev is not None:  # (an array without .device is looked up every time)
                self.__dict__["_sigmoid_consts"] = c
        y = F._sigmoid_from(x, c[3], c[4], xp, out)
        return y, (y, c[4])

    def _kernel_backward(
        self, dy: Array, ctx: tuple[Array, Array], xp: Namespace, need_dx: bool, out: Array | None = None
    ) -> Array:
        # one: a 0-d array of y's dtype; NumPy converts a Python 1.0 on every call.
        y, one = ctx
        if out is None:
            return dy * y * (one - y)
        xp.multiply(dy, y, out=out)  # out is dy: the same products, in the same order
        xp.subtract(one, y, out=y)
        return xp.multiply(out, y, out=out)

    def _kernel_source(self, like: Array, xp: Namespace) -> KernelSource:
        # The kernels' fresh-array forms (Sequential's fused chain, xpnet._fusion).
        lo, one = F._sigmoid_consts(like, xp)
        return KernelSource(
            forward=("{y} = {one} / ({one} + {exp}(-{maximum}({x}, {lo})))",),
            backward=("{dx} = {dy} * {y} * ({one} - {y})",),
            saves=("y",),
            consts={"lo": lo, "one": one, "exp": xp.exp, "maximum": xp.maximum},
        )


class Tanh(_Activation):
    """Hyperbolic tangent.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward ``y = tanh(x)``, stores y. Backward: ``dx = dy ⊙ (1 - y²)``.
    """

    _chainable = True
    _kernel_inplace = True
    _ctx_holds_output = True

    def _kernel_forward(self, x: Array, xp: Namespace, out: Array | None = None) -> tuple[Array, Array]:
        y = xp.tanh(x) if out is None else xp.tanh(x, out=out)
        return y, y

    def _kernel_backward(self, dy: Array, y: Array, xp: Namespace, need_dx: bool, out: Array | None = None) -> Array:
        one = _backend.scalar(y, 1.0)
        if out is None:
            return dy * (one - y * y)
        xp.multiply(y, y, out=y)  # y is no longer needed: it holds 1 - y² (same order)
        xp.subtract(one, y, out=y)
        return xp.multiply(dy, y, out=out)

    def _kernel_source(self, like: Array, xp: Namespace) -> KernelSource:
        # The kernels' fresh-array forms (Sequential's fused chain, xpnet._fusion).
        return KernelSource(
            forward=("{y} = {tanh}({x})",),
            backward=("{dx} = {dy} * ({one} - {y} * {y})",),
            saves=("y",),
            consts={"tanh": xp.tanh, "one": _backend.scalar(like, 1.0)},
        )


class Heaviside(_Activation):
    """Perceptron step: ``y = 1`` where ``x > 0``, ``values`` where ``x == 0``, else 0
    (``torch.heaviside(x, values)``, which also maps NaN to 0).

    Parameters
    ----------
    values
        The output at ``x == 0`` (default 0.0, the perceptron's convention).

    Shape
    -----
    Any shape; output has the input's shape and dtype.

    Notes
    -----
    The derivative is 0 almost everywhere and undefined at 0; backward returns zeros, so
    gradient descent through a step learns nothing (the perceptron uses its own rule).
    Stores the output, only to check the shape of dy.
    """

    def __init__(self, values: float = 0.0) -> None:
        super().__init__()
        self.values = float(values)

    def forward(self, x: Array) -> Array:
        y = F._heaviside(x, self.values, xp=_namespace_of(x))
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array) -> Array:
        self._check_dy(dy, self.pop_saved())
        return _namespace_of(dy).zeros_like(dy)

    def extra_repr(self) -> str:
        return "" if self.values == 0.0 else f"values={self.values}"


class LogSigmoid(_Activation):
    """``y = log σ(x) = min(x, 0) - log1p(exp(-|x|))`` (finite for any x; torch's
    ``LogSigmoid``).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Stores x. Backward: ``dx = dy ⊙ σ(-x)``, with σ(-x) from ``exp(-|x|)`` (stable).
    """

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return F._logsigmoid(x, xp=_namespace_of(x))

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        return dy * F._sigmoid_neg(x, xp=_namespace_of(dy))


class Softsign(_Activation):
    """``y = x / (1 + |x|)`` (torch's ``Softsign``).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Stores x. Backward: ``dx = dy / (1 + |x|)²``. At ±inf the forward is NaN (inf/inf),
    as torch; the gradient there is 0 (the limit), where torch's composite autograd
    gives NaN.
    """

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return x / (1.0 + _namespace_of(x).abs(x))

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        d = 1.0 + _namespace_of(dy).abs(x)
        return dy / (d * d)


class Tanhshrink(_Activation):
    """``y = x - tanh(x)`` (torch's ``Tanhshrink``).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Stores ``t = tanh(x)``. Backward: ``dx = dy ⊙ t²``.
    """

    def forward(self, x: Array) -> Array:
        t = _namespace_of(x).tanh(x)
        self.save_for_backward(t)
        return x - t

    def backward(self, dy: Array) -> Array:
        t = self.pop_saved()
        self._check_dy(dy, t)
        return dy * (t * t)
