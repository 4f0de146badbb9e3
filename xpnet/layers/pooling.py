"""Pooling: ``MaxPool2d``, ``AvgPool2d`` and ``AdaptiveAvgPool2d``, with torch's semantics.

Windows are read as ``kH·kW`` strided slices of the (padded) input, as in ``Conv2d``'s
im2col, and gradients go back by adding each tap into the slice it was read from.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .. import _backend
from ..module import Module
from ._spatial import (
    _check_dy,
    _check_input,
    _col2im,
    _crop,
    _host_const,
    _out_size,
    _pad2d,
    _pair,
    _tap_slices,
    _taps,
    _too_small,
)

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]

Array = Any


class _Pool2d(Module):
    """Window geometry shared by max and average pooling (torch's rules)."""

    _who = "Pool2d"

    def __init__(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool) -> None:
        super().__init__()
        who = self._who
        self.kernel_size = _pair(kernel_size, "kernel_size", who, minimum=1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", who, minimum=1)
        self.padding = _pair(padding, "padding", who, minimum=0)
        self.dilation = _pair(dilation, "dilation", who, minimum=1)
        self.ceil_mode = bool(ceil_mode)
        for p, k, d in zip(self.padding, self.kernel_size, self.dilation):
            if 2 * p > d * (k - 1) + 1:
                raise ValueError(
                    f"{who}: padding {self.padding} must be at most half of the (dilated) kernel "
                    f"size {self.kernel_size}, as in torch"
                )

    def _geometry(self, x: Array) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """Output size and the padding ``(top, bottom, left, right)`` that covers every window.

        With ``ceil_mode`` the last window may hang over the bottom/right edge; the extra
        rows and columns are padded too (their value never wins a max and counts as
        outside for the average's divisor).
        """
        _check_input(x, self._who)
        h, w = x.shape[2], x.shape[3]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        ho = _out_size(h, 2 * ph, kh, sh, dh, self.ceil_mode, ph)
        wo = _out_size(w, 2 * pw, kw, sw, dw, self.ceil_mode, pw)
        if ho <= 0 or wo <= 0:
            raise _too_small(self._who, tuple(x.shape), (ph, ph, pw, pw), self.kernel_size, self.dilation)
        bottom = max(ph, (ho - 1) * sh + dh * (kh - 1) + 1 - h - ph)
        right = max(pw, (wo - 1) * sw + dw * (kw - 1) + 1 - w - pw)
        return (ho, wo), (ph, bottom, pw, right)

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + f", ceil_mode={self.ceil_mode}"


class MaxPool2d(_Pool2d):
    """Maximum over each ``kH×kW`` window of every channel.

    Parameters
    ----------
    kernel_size
        ``k`` or ``(kH, kW)``.
    stride
        Default ``kernel_size`` (non-overlapping windows), as in torch.
    padding
        Implicit ``-inf`` padding on both sides, at most half the kernel size.
    dilation
        Spacing between window elements (default 1).
    ceil_mode
        Round the output size up, so a partial last window is kept (default False).

    Shape
    -----
    Input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)`` with
    ``H_out = ⌊(H + 2p − d(k − 1) − 1) / s⌋ + 1`` (⌈·⌉ with ``ceil_mode``, dropping a
    last window that would start in the right padding).

    Notes
    -----
    Forward: ``y[n, c, h, w] = max_{i, j} x̃[n, c, s·h + d·i, s·w + d·j]`` with ``x̃`` the
    ``-inf``-padded input. Backward: the whole ``dy[n, c, h, w]`` goes to the window's
    arg-max, the *first* maximum in row-major window order when several elements tie (as
    torch's CPU kernel picks it); overlapping windows add their contributions. A NaN in a
    window makes the output NaN, as in torch (torch then sends the gradient to the NaN;
    here it goes to the largest non-NaN element before it).
    The forward is a running maximum over the ``kH·kW`` strided tap views (elementwise
    ``where``), recording the winning tap index for the backward.
    """

    _who = "MaxPool2d"

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def forward(self, x: Array) -> Array:
        xp = _backend.namespace_of(x)
        out, pads = self._geometry(x)
        taps = _tap_slices(self.kernel_size, self.stride, self.dilation, out)
        views = _taps(_pad2d(x, pads, -math.inf, xp=xp), taps)
        # A running maximum over the taps in row-major window order whose arg-max moves
        # only to a strictly larger value: torch's rule, ties go to the first maximum.
        # Elementwise ops on (N, C, H_out, W_out) arrays, no (kH·kW)-fold stacked copy.
        y = views[0]
        dev = _backend.device_of(x)
        idx = xp.zeros(tuple(y.shape), dtype=xp.int32, device=dev) if self.training else None
        for t, v in enumerate(views[1:], start=1):
            if idx is not None:
                # where(v > y, t, idx) as max(idx, t·[v > y]): t exceeds every earlier tap
                # index, so the integers are the same; NumPy's where on a data-dependent
                # mask costs ~20x these elementwise operations.
                idx = xp.maximum(idx, xp.astype(v > y, xp.int32) * t)
            y = xp.maximum(y, v)  # propagates NaN
        if len(views) == 1:
            y = xp.asarray(y, copy=True)  # a 1x1 window: own the output, not a view of x
        self.save_for_backward((idx, y, tuple(x.shape), pads, taps))
        return y

    def backward(self, dy: Array) -> Array:
        idx, y, x_shape, pads, taps = self.pop_saved()
        _check_dy(self._who, dy, y, tuple(y.shape))
        xp = _backend.namespace_of(dy)
        dev = _backend.device_of(dy)
        if _backend.mask_multiplies(dy):
            parts = [dy * (idx == t) for t in range(len(taps))]  # see mask_multiplies
        else:
            zero = xp.zeros((), dtype=dy.dtype, device=dev)
            parts = [xp.where(idx == xp.asarray(t, dtype=xp.int32, device=dev), dy, zero) for t in range(len(taps))]
        padded = (x_shape[2] + pads[0] + pads[1], x_shape[3] + pads[2] + pads[3])
        return _crop(_col2im(parts, taps, padded, xp=xp), pads, x_shape[2:])


class AvgPool2d(_Pool2d):
    """Mean over each ``kH×kW`` window of every channel.

    Parameters
    ----------
    kernel_size
        ``k`` or ``(kH, kW)``.
    stride
        Default ``kernel_size``, as in torch.
    padding
        Implicit zero padding on both sides, at most half the kernel size.
    ceil_mode
        Round the output size up (default False).
    count_include_pad
        Count the zero padding in the divisor (default True, as in torch).
    divisor_override
        Divide every window sum by this number instead.

    Shape
    -----
    As :class:`MaxPool2d`.

    Notes
    -----
    Forward: ``y[n, c, h, w] = (1 / D[h, w]) Σ_{i, j} x̃[n, c, s·h + i, s·w + j]``.
    ``D`` is torch's divisor: the window's size clipped to the padded input (so a
    ``ceil_mode`` window hanging over the edge counts only what it covers), or with
    ``count_include_pad=False`` clipped to the input itself, or ``divisor_override``.
    Backward: every element of a window receives ``dy[n, c, h, w] / D[h, w]``,
    overlapping windows adding up.
    """

    _who = "AvgPool2d"

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        if divisor_override is not None and (
            not isinstance(divisor_override, numbers.Integral) or isinstance(divisor_override, bool) or divisor_override <= 0
        ):
            raise ValueError(f"AvgPool2d: divisor_override must be a positive int or None, got {divisor_override!r}")
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override
        self.__dict__["_consts"] = {}

    def _scale(self, x: Array, out: tuple[int, int], *, xp: Any) -> float | Array:
        """``1 / D``: a Python float when every window has the same divisor, else ``(H_out, W_out)``."""
        if self.divisor_override is not None:
            return 1.0 / self.divisor_override
        h, w = x.shape[2], x.shape[3]
        sizes = [
            _divisors(n, o, k, s, p, self.count_include_pad)
            for n, o, k, s, p in zip((h, w), out, self.kernel_size, self.stride, self.padding)
        ]
        if all(v == sizes[0][0] for v in sizes[0]) and all(v == sizes[1][0] for v in sizes[1]):
            return 1.0 / (sizes[0][0] * sizes[1][0])
        key = ("scale", h, w, out)
        return _host_const(
            self.__dict__["_consts"], key, lambda: [[1.0 / (a * b) for b in sizes[1]] for a in sizes[0]], x, xp=xp
        )

    def forward(self, x: Array) -> Array:
        xp = _backend.namespace_of(x)
        out, pads = self._geometry(x)
        taps = _tap_slices(self.kernel_size, self.stride, self.dilation, out)
        xpad = _pad2d(x, pads, 0.0, xp=xp)
        parts = _taps(xpad, taps)
        y = parts[0] + parts[1] if len(parts) > 1 else xp.asarray(parts[0], copy=True)
        for part in parts[2:]:
            y += part
        scale = self._scale(x, out, xp=xp)
        y *= scale
        self.save_for_backward((scale, y, tuple(x.shape), pads, taps))
        return y

    def backward(self, dy: Array) -> Array:
        scale, y, x_shape, pads, taps = self.pop_saved()
        _check_dy(self._who, dy, y, tuple(y.shape))
        xp = _backend.namespace_of(dy)
        g = dy * scale
        padded = (x_shape[2] + pads[0] + pads[1], x_shape[3] + pads[2] + pads[3])
        return _crop(_col2im([g] * len(taps), taps, padded, xp=xp), pads, x_shape[2:])

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", count_include_pad={self.count_include_pad}"
        return s + (f", divisor_override={self.divisor_override}" if self.divisor_override else "")


def _divisors(n: int, out: int, k: int, s: int, p: int, include_pad: bool) -> list[int]:
    """Per-output window length along one axis, as torch's avg_pool2d kernel counts it."""
    sizes = []
    for o in range(out):
        start = o * s - p
        end = min(start + k, n + p)
        size = end - start
        if not include_pad:
            size = min(end, n) - max(start, 0)
        sizes.append(max(size, 1))
    return sizes


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input size (torch's windows).

    Parameters
    ----------
    output_size
        ``(H_out, W_out)``, or one int for both; ``None`` in a position keeps the input's
        size there. ``AdaptiveAvgPool2d(1)`` is global average pooling.

    Shape
    -----
    Input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)``.

    Notes
    -----
    Output row ``i`` averages input rows ``⌊i·H/H_out⌋ … ⌈(i+1)·H/H_out⌉ − 1`` (torch's
    windows, which overlap when ``H_out`` does not divide ``H``); columns likewise. That
    is a pair of matrix products with host-built averaging matrices
    ``A_H (H_out×H)`` and ``A_W (W_out×W)``::

        y  = A_H x A_Wᵀ            (for each sample and channel)
        dx = A_Hᵀ dy A_W

    Global pooling (output 1×1) is ``y = mean(x, axis=(2, 3))`` and
    ``dx = dy / (H·W)`` broadcast over the window.
    """

    def __init__(self, output_size: int | None | tuple[int | None, int | None]) -> None:
        super().__init__()
        items = tuple(output_size) if isinstance(output_size, Sequence) else (output_size, output_size)
        if len(items) != 2 or not all(
            v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1) for v in items
        ):
            raise ValueError(
                f"AdaptiveAvgPool2d: output_size must be a positive int, None, or a pair of them, "
                f"got {output_size!r}"
            )
        self.output_size = items
        self.__dict__["_consts"] = {}

    def forward(self, x: Array) -> Array:
        _check_input(x, "AdaptiveAvgPool2d")
        xp = _backend.namespace_of(x)
        h, w = x.shape[2], x.shape[3]
        ho = h if self.output_size[0] is None else self.output_size[0]
        wo = w if self.output_size[1] is None else self.output_size[1]
        if (ho, wo) == (1, 1):
            y = xp.mean(x, axis=(2, 3), keepdims=True)
            mats = None
        else:
            consts = self.__dict__["_consts"]
            ah = _host_const(consts, ("h", h, ho), lambda: _avg_matrix(h, ho), x, xp=xp)
            aw = _host_const(consts, ("w", w, wo), lambda: _avg_matrix(w, wo), x, xp=xp)
            y = ah @ x @ xp.matrix_transpose(aw)
            mats = (ah, aw)
        self.save_for_backward((mats, tuple(x.shape), y))
        return y

    def backward(self, dy: Array) -> Array:
        mats, x_shape, y = self.pop_saved()
        _check_dy("AdaptiveAvgPool2d", dy, y, tuple(y.shape))
        xp = _backend.namespace_of(dy)
        if mats is None:
            zeros = xp.zeros(x_shape, dtype=dy.dtype, device=_backend.device_of(dy))
            return zeros + dy * (1.0 / (x_shape[2] * x_shape[3]))  # a fresh, writeable array
        ah, aw = mats
        return xp.matrix_transpose(ah) @ dy @ aw

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def _avg_matrix(n: int, out: int) -> list[list[float]]:
    """Host rows of ``A`` (``out × n``): row ``i`` averages torch's adaptive window ``i``."""
    rows = []
    for i in range(out):
        start, end = (i * n) // out, -((-(i + 1) * n) // out)
        rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(n)])
    return rows
