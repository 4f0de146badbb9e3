"""Piecewise-linear "hard" activations: Hardtanh, ReLU6, Hardsigmoid, Hardswish."""

from __future__ import annotations

from ._base import Array, _Activation, _namespace_of

__all__ = ["Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish"]

# torch's hardsigmoid_backward multiplies by a float32 1/6 (``scalar_t(1.0f / 6.0f)``),
# also in float64: 0.1666666716337204, not 1/6. Using the same constant keeps the
# float64 gradients equal to torch's to the last bits.
_HARDSIGMOID_SLOPE = 0.1666666716337204


class Hardtanh(_Activation):
    """``y = clamp(x, min_val, max_val)`` (torch's ``Hardtanh``).

    Parameters
    ----------
    min_val, max_val
        The clamp bounds (torch's defaults -1 and 1); ``max_val > min_val``.

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Forward ``min(max(x, min_val), max_val)`` (NaN propagates). Stores x. Backward:
    ``dx = dy`` where ``min_val < x < max_val``, else 0 (0 at the bounds and at NaN, as
    torch).
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__()
        if not max_val > min_val:
            raise ValueError(f"{type(self).__name__}: max_val must be greater than min_val, got {min_val!r}, {max_val!r}")
        self.min_val = float(min_val)
        self.max_val = float(max_val)

    def forward(self, x: Array) -> Array:
        xp = _namespace_of(x)
        self.save_for_backward(x)
        return xp.minimum(xp.maximum(x, self.min_val), self.max_val)

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        xp = _namespace_of(dy)
        return dy * xp.astype((x > self.min_val) & (x < self.max_val), dy.dtype)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """``y = min(max(x, 0), 6)``: :class:`Hardtanh` on [0, 6] (torch's ``ReLU6``).

    Notes
    -----
    Backward: ``dx = dy`` where ``0 < x < 6``, else 0 (as torch).
    """

    def __init__(self) -> None:
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        return ""


class Hardsigmoid(_Activation):
    """``y = min(max(x + 3, 0), 6) / 6`` (torch's ``Hardsigmoid``).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Stores x. Backward: ``dx = dy / 6`` where ``-3 < x < 3``, else 0 (also at NaN);
    the 1/6 is torch's float32 constant 0.1666666716337204, in every dtype.
    """

    def forward(self, x: Array) -> Array:
        xp = _namespace_of(x)
        self.save_for_backward(x)
        return xp.minimum(xp.maximum(x + 3.0, 0.0), 6.0) / 6.0

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        xp = _namespace_of(dy)
        return dy * (xp.astype((x > -3.0) & (x < 3.0), dy.dtype) * _HARDSIGMOID_SLOPE)


class Hardswish(_Activation):
    """``y = x · min(max(x + 3, 0), 6) / 6`` (torch's ``Hardswish``).

    Shape
    -----
    Any shape; output has the input's shape.

    Notes
    -----
    Stores x. Backward, as torch: ``dx = 0`` where ``x <= -3``, ``dy (x/3 + 1/2)`` where
    ``-3 < x < 3``, else ``dy`` (also at NaN).
    """

    def forward(self, x: Array) -> Array:
        xp = _namespace_of(x)
        self.save_for_backward(x)
        return x * xp.minimum(xp.maximum(x + 3.0, 0.0), 6.0) / 6.0

    def backward(self, dy: Array) -> Array:
        x = self.pop_saved()
        self._check_dy(dy, x)
        xp = _namespace_of(dy)
        mid = xp.where(x < 3.0, x / 3.0 + 0.5, 1.0)
        return dy * xp.where(x <= -3.0, 0.0, mid)
