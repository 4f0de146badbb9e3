"""Helpers shared by the 2-D spatial layers (conv, pooling): argument parsing, output sizes,
padding, strided tap slices (im2col) and adding taps back (col2im).

Every helper works on the *last two* axes of its array, so ``Conv2d`` can run them on a
channels-first ``(C, N, H, W)`` buffer (which makes its product one GEMM) and the pooling
layers on the input's own ``(N, C, H, W)`` layout. Nothing loops over batch, channels or
pixels in Python: the loops below run over the ``kH·kW`` kernel taps only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .. import _backend
from ._util import _check_dy  # noqa: F401 - re-exported for conv and pooling

Array = Any
Pair = tuple[int, int]


def _pair(value: Any, name: str, who: str, *, minimum: int) -> Pair:
    """An int or a pair of ints, each ``>= minimum``, as a pair (torch's ``_pair``)."""
    items = (value, value) if not isinstance(value, Sequence) or isinstance(value, str) else tuple(value)
    if len(items) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum for v in items
    ):
        raise ValueError(
            f"{who}: {name} must be an int >= {minimum} or a pair of them, got {value!r}"
        )
    return int(items[0]), int(items[1])


def _out_size(size: int, pad_total: int, k: int, s: int, d: int, ceil_mode: bool = False, pad_left: int = 0) -> int:
    """Output length of a sliding window (torch's formula, ``ceil_mode`` included).

    With ``ceil_mode`` the last window may hang over the right edge, but it must start
    inside the input or the left padding (torch drops it otherwise).
    """
    span = size + pad_total - d * (k - 1) - 1
    if span < 0:
        return 0
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + pad_left:
        out -= 1
    return out


def _check_input(x: Array, who: str, channels: int | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{who}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}. "
            f"Hint: add the batch dimension with x[None] for a single image, or reshape a "
            f"flat batch to (N, C, H, W)"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{who}: expected {channels} input channels (dim 1 of (N, C, H, W)), got "
            f"{x.shape[1]} in an input of shape {tuple(x.shape)}. Hint: check in_channels, "
            f"or the layout (channels-last images need xp.permute_dims(x, (0, 3, 1, 2)))"
        )


def _too_small(who: str, x_shape: tuple[int, ...], pads: tuple[int, int, int, int], k: Pair, d: Pair) -> ValueError:
    eh, ew = d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1
    hp, wp = x_shape[-2] + pads[0] + pads[1], x_shape[-1] + pads[2] + pads[3]
    return ValueError(
        f"{who}: the kernel (effective size {eh}x{ew} with dilation) is larger than the padded "
        f"input ({hp}x{wp}: input {x_shape[-2]}x{x_shape[-1]} plus padding). Hint: use a "
        f"smaller kernel_size or dilation, more padding, or a larger input"
    )


def _pad2d(x: Array, pads: tuple[int, int, int, int], value: float, *, xp: Any) -> Array:
    """Pad the last two axes by ``(top, bottom, left, right)`` with the constant ``value``.

    One allocation and one copy on writeable backends; immutable ones (JAX) concatenate.
    """
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    *lead, h, w = x.shape
    dev = _backend.device_of(x)
    out = xp.full((*lead, h + top + bottom, w + left + right), value, dtype=x.dtype, device=dev)
    if _backend.supports_inplace(out):
        out[..., top : top + h, left : left + w] = x
        return out
    rows = [xp.full((*lead, n, w), value, dtype=x.dtype, device=dev) for n in (top, bottom)]
    x = xp.concat([rows[0], x, rows[1]], axis=-2)
    cols = [xp.full((*lead, h + top + bottom, n), value, dtype=x.dtype, device=dev) for n in (left, right)]
    return xp.concat([cols[0], x, cols[1]], axis=-1)


def _tap_slices(k: Pair, s: Pair, d: Pair, out: Pair) -> list[tuple[slice, slice]]:
    """The ``kH·kW`` strided windows: tap ``(i, j)`` reads rows ``i·dH + sH·oh``, cols ``j·dW + sW·ow``."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = k, s, d, out
    return [
        (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))
        for i in range(kh)
        for j in range(kw)
    ]


def _taps(xpad: Array, taps: list[tuple[slice, slice]]) -> list[Array]:
    """im2col's views: one strided slice of the last two axes per kernel tap."""
    return [xpad[..., hs, ws] for hs, ws in taps]


def _stack_taps(xpad: Array, taps: list[tuple[slice, slice]], out: Array | None, *, xp: Any) -> Array:
    """The taps stacked on a new axis 1, ``(C, kH·kW, *xpad.shape[1:-2], H_out, W_out)``:
    into ``out`` (a buffer of that shape, :func:`_workspace`) if given, else a new array."""
    if out is None:
        return xp.stack(_taps(xpad, taps), axis=1)
    for t, (hs, ws) in enumerate(taps):
        out[:, t] = xpad[..., hs, ws]
    return out


# ------------------------------------------------------------------ reused buffers
#
# A LeNet step allocates several MB of im2col columns per convolution; on NumPy every
# fresh array above glibc's mmap threshold (128 KiB) maps new pages that fault in on
# first write, and in a whole step (many large arrays alive at once) that made each
# convolution 2-3x slower than the same call run on its own (docs/performance.md,
# "Convolution"). As Sequential's chain does for its activations, the spatial layers
# keep such temporaries in buffers of their own and reuse them on the next call:
# only on NumPy (_backend.reuses_buffers: CuPy allocates from a pool), only for arrays
# that nobody outside the layer can hold, and for a saved one (the columns) only while
# no earlier pass of the layer is still waiting for its backward.

#: Arrays of fewer bytes are allocated as usual (the heap serves them without faults).
WORKSPACE_MIN_BYTES = 131072


def _workspace(module: Any, key: str, shape: tuple[int, ...], like: Array, *, xp: Any) -> Array | None:
    """The buffer ``key`` of ``shape`` and ``like``'s dtype kept on ``module``, or None
    where a fresh array is better (another backend, a small array)."""
    if not _backend.reuses_buffers(xp) or math.prod(shape) * like.dtype.itemsize < WORKSPACE_MIN_BYTES:
        return None
    buffers = module.__dict__.get("_xpnet_buffers")  # (a name no user module would pick)
    if buffers is None:
        buffers = module.__dict__["_xpnet_buffers"] = {}
    buf = buffers.get(key)
    if buf is None or buf.shape != shape or buf.dtype != like.dtype:
        buf = buffers[key] = xp.empty(shape, dtype=like.dtype, device=_backend.device_of(like))
    return buf


def _col2im(parts: Sequence[Array], taps: list[tuple[slice, slice]], padded: Pair, *, xp: Any) -> Array:
    """Add each tap's gradient back where its slice was read from (the adjoint of :func:`_taps`).

    ``parts[t]`` has the output's spatial shape; the result has the padded input's. Taps
    overlap when the stride is smaller than the (dilated) kernel, hence ``+=``.
    """
    first = parts[0]
    lead = tuple(first.shape[:-2])
    dx = xp.zeros((*lead, *padded), dtype=first.dtype, device=_backend.device_of(first))
    xp_out = _backend.out_namespace(dx)
    if xp_out is not None:
        # Add into the slice's view: `dx[idx] += part` would also assign the sum back
        # over itself (a second copy of every tap).
        for (hs, ws), part in zip(taps, parts):
            view = dx[..., hs, ws]
            xp_out.add(view, part, out=view)
        return dx
    if _backend.supports_inplace(dx):
        for (hs, ws), part in zip(taps, parts):
            dx[..., hs, ws] += part
        return dx
    for (hs, ws), part in zip(taps, parts):  # immutable backends: place each tap functionally
        dx = dx + _place(part, hs, ws, padded, xp=xp)
    return dx


def _place(part: Array, hs: slice, ws: slice, padded: Pair, *, xp: Any) -> Array:
    """Zero array of the padded shape holding ``part`` at the strided positions (no setitem)."""
    part = _spread(part, hs, padded[0], axis=-2, xp=xp)
    return _spread(part, ws, padded[1], axis=-1, xp=xp)


def _spread(a: Array, sl: slice, size: int, *, axis: int, xp: Any) -> Array:
    step, n = sl.step, a.shape[axis]
    dev = _backend.device_of(a)
    if step > 1:  # interleave step-1 zeros after each element, then drop the trailing ones
        z = xp.zeros_like(a)
        a = xp.stack([a] + [z] * (step - 1), axis=axis)
        shape = list(a.shape)
        # stack put the new axis at `axis` (-1 or -2); merge it with the axis before it
        if axis == -1:
            a = xp.reshape(a, (*shape[:-2], shape[-2] * shape[-1]))
        else:
            a = xp.reshape(a, (*shape[:-3], shape[-3] * shape[-2], shape[-1]))
        a = a[..., : step * (n - 1) + 1] if axis == -1 else a[..., : step * (n - 1) + 1, :]
    before = sl.start
    after = size - before - a.shape[axis]
    shape = list(a.shape)
    pieces = []
    for count in (before, after):
        shape[axis] = count
        pieces.append(xp.zeros(tuple(shape), dtype=a.dtype, device=dev))
    return xp.concat([pieces[0], a, pieces[1]], axis=axis)


def _crop(dxpad: Array, pads: tuple[int, int, int, int], size: Pair) -> Array:
    top, _, left, _ = pads
    if dxpad.shape[-2:] == size:
        return dxpad
    return dxpad[..., top : top + size[0], left : left + size[1]]


def _host_const(cache: dict[Any, Array], key: Any, make: Any, like: Array, *, xp: Any) -> Array:
    """A small constant (nested Python lists from ``make``) built once per key, dtype and device."""
    full = (key, _backend.dtype_name(like.dtype), str(_backend.device_of(like)), type(like))
    arr = cache.get(full)
    if arr is None:
        arr = _backend.asarray(make(), xp, device=_backend.device_of(like), dtype=_backend.dtype_name(like.dtype))
        cache[full] = arr
    return arr
