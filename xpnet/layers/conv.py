"""``Conv2d``: torch's layout, defaults and initialization; im2col + one GEMM, written once."""

from __future__ import annotations

import numbers
from typing import Any

from .. import _backend, init
from ..module import Module
from ..random import resolve_generator
from ._spatial import (
    _check_dy,
    _check_input,
    _col2im,
    _crop,
    _out_size,
    _pad2d,
    _pair,
    _stack_taps,
    _tap_slices,
    _too_small,
    _workspace,
)
from ._util import _host_param, _like

__all__ = ["Conv2d"]

Array = Any

_PADDING_MODES = ("zeros",)


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in torch) over ``(N, C, H, W)`` inputs.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and of the output; both divisible by ``groups``.
    kernel_size
        ``k`` or ``(kH, kW)``.
    stride
        ``s`` or ``(sH, sW)`` (default 1).
    padding
        ``p`` or ``(pH, pW)`` zeros added on both sides of each spatial axis, or
        ``"valid"`` (no padding) or ``"same"`` (output as large as the input; stride 1
        only; an odd total puts the extra zero at the bottom/right, as torch).
    dilation
        Spacing between kernel taps, ``d`` or ``(dH, dW)`` (default 1).
    groups
        Split the channels into ``groups`` independent convolutions (default 1;
        ``groups=in_channels`` is a depthwise convolution).
    bias
        Learn a per-output-channel bias (default True).
    padding_mode
        Only ``"zeros"`` (torch's default) is supported.
    dtype
        ``"float32"`` (default) or ``"float64"``.
    generator
        ``numpy.random.Generator`` or int seed for the initial weights; default the
        generator seeded by :func:`xpnet.manual_seed`.

    Shape
    -----
    Input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
    ``H_out = ⌊(H + 2 pH − dH (kH − 1) − 1) / sH⌋ + 1`` (same for W). ``weight`` is
    ``(C_out, C_in / groups, kH, kW)`` and ``bias`` ``(C_out,)``, as in torch.

    Notes
    -----
    Forward, for output channel ``o`` in group ``g`` and kernel tap ``(i, j)``::

        y[n, o, h, w] = b[o] + Σ_{c ∈ g, i, j} W[o, c, i, j] · x̃[n, c, sH·h + dH·i, sW·w + dW·j]

    where ``x̃`` is the zero-padded input. It is computed as im2col then one matrix
    product: each of the ``kH·kW`` taps is a strided slice of ``x̃`` (laid out
    channels-first, ``(C, N, H̃, W̃)``), the taps are stacked into the column matrix
    ``X_col`` of shape ``(C·kH·kW, N·H_out·W_out)`` and ``Y = W_mat X_col + b`` with
    ``W_mat = W.reshape(C_out, C_in·kH·kW)`` (one product per group).

    Backward, with δ = dL/dy reshaped like ``Y``::

        dW  = δ X_colᵀ                      (reshaped to the weight's shape)
        db  = Σ_{n, h, w} δ
        dX_col = W_matᵀ δ
        dx  = col2im(dX_col)                (each tap's rows added back into the slice
                                             it was read from, then the padding cropped)

    The Python loops run over the ``kH·kW`` taps only. Memory: ``X_col`` (``kH·kW`` times
    the input) is kept from forward to backward. Initialization is torch's
    (``kaiming_uniform_(a=√5)``): weight and bias from ``U(−1/√fan_in, 1/√fan_in)``,
    ``fan_in = C_in / groups · kH · kW``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        dtype: Any = None,
        generator: init.Generator = None,
    ) -> None:
        super().__init__()
        who = "Conv2d"
        for label, n in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"{who}: {label} must be a positive int, got {n!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{who}: in_channels ({in_channels}) and out_channels ({out_channels}) must both "
                f"be divisible by groups ({groups})"
            )
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"{who}: padding_mode {padding_mode!r} is not supported; supported: "
                f"{', '.join(map(repr, _PADDING_MODES))}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _pair(kernel_size, "kernel_size", who, minimum=1)
        self.stride = _pair(stride, "stride", who, minimum=1)
        self.dilation = _pair(dilation, "dilation", who, minimum=1)
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding == "valid":
                self.padding: tuple[int, int] | str = (0, 0)
                self._pads = (0, 0, 0, 0)
            elif padding == "same":
                if self.stride != (1, 1):
                    raise ValueError(f"{who}: padding='same' needs stride 1, got stride={stride!r}")
                self.padding = "same"
                th = self.dilation[0] * (self.kernel_size[0] - 1)
                tw = self.dilation[1] * (self.kernel_size[1] - 1)
                self._pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
            else:
                raise ValueError(f"{who}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        else:
            ph, pw = _pair(padding, "padding", who, minimum=0)
            self.padding = (ph, pw)
            self._pads = (ph, ph, pw, pw)
        kh, kw = self.kernel_size
        cg = self.in_channels // self.groups
        g = resolve_generator(generator)
        self.weight = _host_param(init.fan_in_uniform((self.out_channels, cg, kh, kw), generator=g), dtype)
        if bias:
            self.bias = _host_param(
                init.fan_in_uniform((self.out_channels,), fan_in=cg * kh * kw, generator=g), dtype
            )
        else:
            self.register_parameter("bias", None)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(N, C_out, H_out, W_out)`` for an input of shape ``(N, C_in, H, W)``."""
        n, _, h, w = input_shape
        t, b, left, r = self._pads
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        return (n, self.out_channels, _out_size(h, t + b, kh, sh, dh), _out_size(w, left + r, kw, sw, dw))

    def forward(self, x: Array) -> Array:
        w = self.weight.data
        if not _like(x, w):
            _backend.check_same_backend(x, w, who="Conv2d")
        _check_input(x, "Conv2d", self.in_channels)
        xp = _backend.namespace_of(x)
        n, c, h, wd = x.shape
        out_shape = self.output_shape(tuple(x.shape))
        ho, wo = out_shape[2:]
        if ho <= 0 or wo <= 0:
            raise _too_small("Conv2d", tuple(x.shape), self._pads, self.kernel_size, self.dilation)
        taps = _tap_slices(self.kernel_size, self.stride, self.dilation, (ho, wo))
        # Channels-first (C, N, H, W): the tap stack then reshapes to X_col without a copy,
        # and the product is one GEMM whose result is already (C_out, N·H_out·W_out).
        xpad = _pad2d(xp.permute_dims(x, (1, 0, 2, 3)), self._pads, 0.0, xp=xp)
        g, o = self.groups, self.out_channels
        k = (c // g) * len(taps)
        # The columns go into the layer's buffer when no earlier pass still holds it
        # (_spatial._workspace); the stacked copy itself is the same either way.
        shape = (c, len(taps), n, ho, wo)
        buf = None if self.__dict__["_saved"] else _workspace(self, "cols", shape, x, xp=xp)
        cols = _stack_taps(xpad, taps, buf, xp=xp)
        if g == 1:
            cols = xp.reshape(cols, (k, n * ho * wo))
            y = xp.reshape(w, (o, k)) @ cols
        else:
            cols = xp.reshape(cols, (g, k, n * ho * wo))
            y = xp.reshape(xp.reshape(w, (g, o // g, k)) @ cols, (o, n * ho * wo))
        bias = self.bias
        if bias is not None:
            y += bias.data[:, None]  # y is our own fresh array
        self.save_for_backward((cols, tuple(x.shape), tuple(xpad.shape[-2:]), taps))
        return xp.permute_dims(xp.reshape(y, (o, n, ho, wo)), (1, 0, 2, 3))

    def backward(self, dy: Array) -> Array:
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy: Array) -> None:
        """Accumulate ``dW`` and ``db`` only; skips ``dX_col = W_matᵀ δ`` and the col2im."""
        self._backward(dy, need_dx=False)

    def _backward(self, dy: Array, *, need_dx: bool) -> Array | None:
        cols, x_shape, padded, taps = self.pop_saved()
        n, c, h, wd = x_shape
        out_shape = self.output_shape(x_shape)
        _check_dy("Conv2d", dy, cols, out_shape)
        xp = _backend.namespace_of(dy)
        g, o = self.groups, self.out_channels
        ho, wo = out_shape[2:]
        m = n * ho * wo
        # (C_out, N·H_out·W_out); free when dy has the layout our forward produced
        d2 = xp.reshape(xp.permute_dims(dy, (1, 0, 2, 3)), (o, m))
        weight, bias = self.weight, self.bias
        if weight.requires_grad:
            if g == 1:
                dw = d2 @ xp.matrix_transpose(cols)
            else:
                dw = xp.reshape(d2, (g, o // g, m)) @ xp.matrix_transpose(cols)
            weight.accumulate_grad(xp.reshape(dw, tuple(weight.shape)))
        if bias is not None and bias.requires_grad:
            bias.accumulate_grad(xp.sum(d2, axis=1))
        if not need_dx:
            return None
        k = cols.shape[-2]
        if g == 1:
            wt = xp.matrix_transpose(xp.reshape(weight.data, (o, k)))
            # dX_col only feeds the col2im below: a buffer of the layer's own.
            buf = _workspace(self, "dcols", (k, m), d2, xp=xp)
            dcols = wt @ d2 if buf is None else _backend.matmul_out(type(d2))(wt, d2, out=buf)
        else:
            wg = xp.reshape(weight.data, (g, o // g, k))
            dcols = xp.matrix_transpose(wg) @ xp.reshape(d2, (g, o // g, m))
        dcols = xp.reshape(dcols, (c, len(taps), n, ho, wo))
        dxpad = _col2im([dcols[:, t, ...] for t in range(len(taps))], taps, padded, xp=xp)
        return xp.permute_dims(_crop(dxpad, self._pads, (h, wd)), (1, 0, 2, 3))

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
