"""Rectifiers: ReLU, LeakyReLU, PReLU, and the exponential family ELU, SELU, CELU."""

from __future__ import annotations

import math
from typing import Any

from .. import _backend
from .. import functional as F
from .. import init as _init
from .._fusion import KernelSource
from ..layers._util import _host_param, _like
from ._base import Array, Namespace, _Activation, _namespace_of

__all__ = ["ReLU", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU"]


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

    _chainable = True
    _kernel_inplace = True
    _ctx_holds_output = True

    def _kernel_forward(self, x: Array, xp: Namespace, out: Array | None = None) -> tuple[Array, Array]:
        zero = _backend.scalar(x, 0.0)
        y = xp.maximum(x, zero) if out is None else xp.maximum(x, zero, out=out)
        return y, y

    def _kernel_backward(self, dy: Array, y: Array, xp: Namespace, need_dx: bool, out: Array | None = None) -> Array:
        if out is None:
            return F._relu_backward(dy, y, xp=xp)
        # y becomes the 0/1 factor of _relu_backward, 1[not y <= 0] (a bool written as
        # float: NaN -> 1), then dy times it: the same products, nothing allocated.
        xp.less_equal(y, _backend.scalar(y, 0.0), out=y)
        xp.subtract(_backend.scalar(y, 1.0), y, out=y)
        return xp.multiply(dy, y, out=out)

    def _kernel_source(self, like: Array, xp: Namespace) -> KernelSource:
        # The kernels' fresh-array forms (Sequential's fused chain, xpnet._fusion); the
        # comparison with a 0-d zero of y's dtype is the comparison with 0.
        return KernelSource(
            forward=("{y} = {maximum}({x}, {zero})",),
            backward=("{dx} = {dy} * {astype}(~({y} <= {zero}), {dtype})",),
            saves=("y",),
            consts={"maximum": xp.maximum, "astype": _backend.astype_function(like, xp),
                    "zero": _backend.scalar(like, 0.0), "dtype": like.dtype},
        )


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

    _chainable = True

    def _kernel_forward(self, x: Array, xp: Namespace, out: Array | None = None) -> tuple[Array, Array]:
        return F._leaky_relu(x, self.negative_slope, xp=xp), x

    def _kernel_backward(self, dy: Array, x: Array, xp: Namespace, need_dx: bool, out: Array | None = None) -> Array:
        return dy * F._leaky_relu_factor(x, self.negative_slope, xp=xp)

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


class PReLU(_Activation):
    """Parametric ReLU: ``y = x`` for ``x > 0``, else ``a x`` with a learned slope ``a``.

    Parameters
    ----------
    num_parameters
        1 (one slope shared by all channels, torch's default) or the number of channels C
        (one slope per channel along axis 1; as torch, a 1-D input has one channel).
    init
        Initial slope (torch's default 0.25).
    dtype
        Dtype of the weight (default float32, as the layers); move it with ``to()``.

    Shape
    -----
    Any shape; with ``num_parameters = C`` the input is ``(N, C, *)``.

    Notes
    -----
    Forward ``y = max(x, 0) + a min(x, 0)`` (torch's ``where(x > 0, x, a x)``). Stores x.
    Backward: ``dx = dy`` where ``x > 0``, else ``a dy`` (also at NaN, as torch);
    ``da = Σ dy ⊙ min(x, 0)`` over every axis but the channel axis (all axes for one
    shared slope).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype: Any = None) -> None:
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, int) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = num_parameters
        self.weight = _host_param(_init.constant((num_parameters,), init), dtype)

    def _slope(self, x: Array, xp: Namespace) -> Array:
        """The weight shaped to broadcast along the channel axis of ``x``."""
        w, c = self.weight.data, self.num_parameters
        if c == 1:
            return w  # (1,) broadcasts against anything with ndim >= 1
        if x.ndim < 2 or x.shape[1] != c:
            raise ValueError(
                f"PReLU: num_parameters={c} needs {c} channels on axis 1, got an input of "
                f"shape {tuple(x.shape)}. Hint: PReLU() shares one slope across channels"
            )
        return xp.reshape(w, (c,) + (1,) * (x.ndim - 2))

    def forward(self, x: Array) -> Array:
        w = self.weight.data
        if not _like(x, w):
            _backend.check_same_backend(x, w, who="PReLU")
        xp = _namespace_of(x)
        a = self._slope(x, xp)
        self.save_for_backward(x)
        return xp.maximum(x, 0.0) + a * xp.minimum(x, 0.0)

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        xp = _namespace_of(dy)
        a = self._slope(x, xp)
        m = xp.astype(x > 0, dy.dtype)
        if self.weight.requires_grad:
            t = dy * xp.minimum(x, 0.0)
            if self.num_parameters == 1:
                da = xp.reshape(xp.sum(t), (1,))
            else:
                da = xp.sum(t, axis=tuple(i for i in range(x.ndim) if i != 1))
            self.weight.accumulate_grad(da)
        return dy * (m + (1.0 - m) * a)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


def _scaled_elu(x: Array, alpha: float, scale: float, input_scale: float, *, xp: Namespace) -> Array:
    """torch's generalised ELU: ``scale x`` for x > 0, else ``alpha scale expm1(x input_scale)``."""
    return scale * xp.maximum(x, 0.0) + (alpha * scale) * xp.expm1(xp.minimum(x, 0.0) * input_scale)


def _scaled_elu_factor(x: Array, alpha: float, scale: float, input_scale: float, *, xp: Namespace) -> Array:
    """Its derivative, as torch's elu_backward: ``alpha scale input_scale exp(x input_scale)``
    where ``x <= 0``, else ``scale`` (also at NaN)."""
    neg = (alpha * scale * input_scale) * xp.exp(xp.minimum(x, 0.0) * input_scale)
    return xp.where(x <= 0, neg, scale)


class SELU(_Activation):
    """Scaled ELU: ``scale (max(x, 0) + α expm1(min(x, 0)))`` with SNN's constants.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    ``α = 1.6732632423543772``, ``scale = 1.0507009873554805`` (torch's; Klambauer et al.,
    2017). Stores x. Backward: ``dx = dy scale`` where ``x > 0`` (and at NaN), else
    ``dy α scale exp(x)``. Pair it with :func:`xpnet.init.lecun_normal_` weights.
    """

    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return _scaled_elu(x, self.alpha, self.scale, 1.0, xp=_namespace_of(x))

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        return dy * _scaled_elu_factor(x, self.alpha, self.scale, 1.0, xp=_namespace_of(dy))


class CELU(_Activation):
    """Continuously differentiable ELU: ``max(x, 0) + α expm1(min(x, 0) / α)``.

    Parameters
    ----------
    alpha
        Saturation value for negative inputs (torch's default 1.0); must be nonzero.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Stores x. Backward: ``dx = dy`` where ``x > 0`` (and at NaN), else
    ``dy exp(x / α)`` (computed as torch, ``exp(x · (1/α))``).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if alpha == 0 or not math.isfinite(alpha):
            raise ValueError(f"CELU: alpha must be a finite nonzero number, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return _scaled_elu(x, self.alpha, 1.0, 1.0 / self.alpha, xp=_namespace_of(x))

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        return dy * _scaled_elu_factor(x, self.alpha, 1.0, 1.0 / self.alpha, xp=_namespace_of(dy))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
