"""``Linear`` and ``Identity``: torch's layout and initialization, so weights copy across unchanged."""

from __future__ import annotations

import numbers
from typing import Any

from .. import _backend, init
from .._fusion import KernelSource
from ..module import Module
from ..random import resolve_generator
from ._util import _check_dy, _grad_product, _host_param, _like

__all__ = ["Linear", "Identity"]

Array = Any


def _grad_product_source(p: str, a: str, b: str) -> list[str]:
    """``_grad_product(p, a, b)`` as source, with its common case inlined: after
    ``zero_grad``, the product written into the gradient buffer checked at an earlier
    step (the condition is :func:`~xpnet.layers._util._grad_product`'s own)."""
    p, o = f"{{{p}}}", "{out}"  # the parameter's field, and a local for its _grad_out
    return [
        f"if {p}.requires_grad:",
        f"    {o} = {p}._grad_out",
        f"    if {o} is not None and {p}.grad is None and {o}[0] is {p}.data and {o}[1] is {p}.grad_buffer:",
        f"        {p}.grad = {o}[2]({a}, {b}, out={o}[1])",
        "    else:",
        f"        {{gp}}({p}, {a}, {b})",
    ]


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

    _chainable = True

    def forward(self, x: Array) -> Array:
        w = self.weight.data
        if not _like(x, w):
            _backend.check_same_backend(x, w, who="Linear")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: expected input of shape (*, {self.in_features}), got "
                f"{tuple(x.shape)}. Hint: flatten images with Flatten() or check in_features"
            )
        y, _ = self._kernel_forward(x, None)
        self.save_for_backward(x)
        return y

    def backward(self, dy: Array) -> Array:
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy: Array) -> None:
        """Accumulate ``dW`` and ``db`` only; skips ``dx = δ W``, a third of the products."""
        self._backward(dy, need_dx=False)

    def _backward(self, dy: Array, *, need_dx: bool) -> Array | None:
        x = self.pop_saved()
        shape = dy.shape
        if len(shape) != x.ndim or shape[-1] != self.out_features or shape[:-1] != x.shape[:-1]:
            _check_dy("Linear", dy, x, (*x.shape[:-1], self.out_features))  # raises
        elif not _like(dy, x):
            _check_dy("Linear", dy, x)
        return self._kernel_backward(dy, x, None, need_dx)

    # The chain kernels (Module._chainable): the arithmetic of forward and backward.

    def _kernel_forward(self, x: Array, xp: Any, out: Array | None = None) -> tuple[Array, Array]:
        # out: a buffer of the output's shape to write into (NumPy/CuPy matmul's out=).
        w = self.weight.data
        y = x @ w.T if out is None else _backend.matmul_out(type(x))(x, w.T, out=out)
        bias = self.bias
        if bias is not None:
            y += bias.data  # y is our own fresh array: no temporary for the sum
        return y, x

    def _kernel_backward(self, dy: Array, x: Array, xp: Any, need_dx: bool, out: Array | None = None) -> Array | None:
        if x.ndim == 2:
            x2, dy2 = x, dy
        elif x.ndim == 1:
            x2, dy2 = x[None, :], dy[None, :]
        else:
            xp = _backend.namespace_of(x)
            x2 = xp.reshape(x, (-1, self.in_features))
            dy2 = xp.reshape(dy, (-1, self.out_features))
        weight, bias = self.weight, self.bias
        if weight.requires_grad:
            _grad_product(weight, dy2.T, x2)  # dW = δᵀ x
        if bias is not None and bias.requires_grad:
            ones = self._ones_cache  # (the check of _ones, inlined: this runs every step)
            if (
                ones is None or ones.shape[0] != dy2.shape[0] or type(ones) is not type(dy2)
                or ones.dtype != dy2.dtype
            ):
                ones = self._ones(dy2)
            _grad_product(bias, ones, dy2)  # db = 1ᵀ δ
        if not need_dx:
            return None
        return dy @ weight.data if out is None else _backend.matmul_out(type(dy))(dy, weight.data, out=out)

    def _kernel_source(self, like: Array, xp: Any) -> KernelSource:
        """The kernels above as source for Sequential's fused chain (:mod:`xpnet._fusion`):
        the same operations in the same order, for a 2-D input."""
        consts: dict[str, Any] = {"W": self.weight, "gp": _grad_product}
        forward = ["{y} = {x} @ {W}.data.T"]
        params = _grad_product_source("W", "{dy}.T", "{x}")
        if self.bias is not None:  # (assigning a bias changes the structure: a new chain)
            consts["B"] = self.bias
            forward.append("{y} += {B}.data")
            params += _grad_product_source("B", "{ones}", "{dy}")
        return KernelSource(
            forward=tuple(forward),
            backward=(*params, "{dx} = {dy} @ {W}.data"),
            backward_params=tuple(params),
            saves=("x",),
            consts=consts,
        )

    def _ones(self, dy2: Array) -> Array:
        """A cached ``ones(N)`` like ``dy2``: ``db = Σ_batch δ`` is computed as ``1ᵀ δ``.

        One matrix-vector product is 2-10x faster on NumPy than ``xp.sum(δ, axis=0)``
        (whose Python-level dispatch alone costs ~2 µs, and whose axis-0 reduction of a
        short-row array is slow); the result differs only by summation order.
        """
        ones = self._ones_cache
        # Array type and dtype compared here; the device changes only through to(),
        # whose clear_saved() drops the cache.
        if (
            ones is None or ones.shape[0] != dy2.shape[0] or type(ones) is not type(dy2)
            or ones.dtype != dy2.dtype
        ):
            xp = _backend.namespace_of(dy2)
            ones = xp.ones((dy2.shape[0],), dtype=dy2.dtype, device=_backend.device_of(dy2))
            self.__dict__["_ones_cache"] = ones
        return ones

    _ones_cache: Array | None = None  # the instance's own, once _ones made one

    def clear_saved(self) -> None:
        """Forget the stored passes (and the cached ``ones`` vector of ``db = 1ᵀ δ``)."""
        super().clear_saved()
        self.__dict__.pop("_ones_cache", None)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """``y = x``; backward passes ``dy`` through."""

    def forward(self, x: Array) -> Array:
        _backend.namespace_of(x)
        self.save_for_backward(None)
        return x

    def backward(self, dy: Array) -> Array:
        self.pop_saved()
        return dy
