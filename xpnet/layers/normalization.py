"""``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``: torch's semantics, closed-form backward.

Both normalize ``x̂ = (x - μ) / √(σ² + ε)`` and then scale and shift, ``y = γ x̂ + β``.
BatchNorm takes μ and σ² per channel over the batch (and the length / spatial dims) in
training mode, and keeps running estimates of them as buffers for eval mode; LayerNorm
takes them per sample over the trailing ``normalized_shape`` dims, the same in both modes.

The backward is the closed form (one pass of reductions, no chain of small ops). With
``g = γ ⊙ dy`` and ``m`` the number of values each statistic averages::

    dx = (1/σ̂) (g - mean(g) - x̂ ⊙ mean(g ⊙ x̂))        (the means over the same m values)
    dγ = Σ dy ⊙ x̂,   dβ = Σ dy                          (the sums over everything but γ's axes)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .. import _backend, init
from ..module import Module
from ._util import _check_dy, _host_param, _like

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]

Array = Any


def _check_eps(who: str, eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0.0:
        raise ValueError(f"{who}: eps must be a positive float, got {eps!r}")
    return float(eps)


def _float_dtype_name(dtype: Any) -> str:
    name = "float32" if dtype is None else _backend.dtype_name(dtype)
    if name not in ("float32", "float64", "float16"):
        raise TypeError(f"parameters must be floating point, got dtype {dtype!r}")
    return name


class _BatchNorm(Module):
    """Shared code of :class:`BatchNorm1d` and :class:`BatchNorm2d` (``_ranks``: accepted ``x.ndim``)."""

    _ranks: tuple[int, ...] = ()
    _layouts: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        if not isinstance(num_features, numbers.Integral) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"{who}: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0
        ):
            raise ValueError(
                f"{who}: momentum must be a float in [0, 1] or None (cumulative average), got {momentum!r}"
            )
        self.num_features = int(num_features)
        self.eps = _check_eps(who, eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        name = _float_dtype_name(dtype)
        c = self.num_features
        if self.affine:
            self.weight = _host_param(init.ones(c), name)
            self.bias = _host_param(init.zeros(c), name)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            # Host arrays like the parameters' initial values; model.to() moves them.
            self.register_buffer("running_mean", init.zeros(c).astype(name))
            self.register_buffer("running_var", init.ones(c).astype(name))
            self.register_buffer("num_batches_tracked", init.zeros(()).astype("int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, ``num_batches_tracked`` 0 (on their backend)."""
        if not self.track_running_stats:
            return
        xp = _backend.namespace_of(self.running_mean)
        self.running_mean = xp.zeros_like(self.running_mean)
        self.running_var = xp.ones_like(self.running_var)
        self.num_batches_tracked = xp.zeros_like(self.num_batches_tracked)

    # ------------------------------------------------------------------ checks

    def _check_input(self, x: Array) -> None:
        who = type(self).__name__
        ref = self.weight.data if self.affine else self.running_mean
        if ref is not None:
            if not _like(x, ref):
                _backend.check_same_backend(x, ref, who=who)
        else:
            xp = _backend.namespace_of(x)
            if not xp.isdtype(x.dtype, "real floating"):
                raise TypeError(f"{who}: expected a floating-point input, got dtype {_backend.dtype_name(x.dtype)}")
        shape = tuple(x.shape)
        if x.ndim not in self._ranks:
            raise ValueError(
                f"{who}: expected input of shape {self._layouts} with C={self.num_features}, got "
                f"{x.ndim}-d input of shape {shape}"
                + (". Hint: BatchNorm2d takes images (N, C, H, W); use BatchNorm1d for (N, C) or (N, C, L)"
                   if who == "BatchNorm1d" and x.ndim == 4 else
                   ". Hint: BatchNorm1d takes (N, C) or (N, C, L)" if who == "BatchNorm2d" else "")
            )
        if shape[1] != self.num_features:
            raise ValueError(
                f"{who}: expected {self.num_features} channels (dim 1) as num_features, got input of "
                f"shape {shape} with {shape[1]}. Hint: num_features must equal the channels of the "
                f"previous layer's output"
            )

    # ------------------------------------------------------------------ forward / backward

    def forward(self, x: Array) -> Array:
        self._check_input(x)
        xp = _backend.namespace_of(x)
        shape = tuple(x.shape)
        axes = (0, *range(2, x.ndim))
        m = math.prod(shape[a] for a in axes)
        # Channel-wise vectors broadcast against x as (1, C, 1, ...).
        cshape = (1, self.num_features) + (1,) * (x.ndim - 2)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if m <= 1:
                hint = (
                    "train with a batch size > 1 (fit(..., drop_last=True) drops a last batch "
                    "of one sample), or call model.eval() to normalize with the running "
                    "statistics" if self.training else
                    "with track_running_stats=False every batch is normalized with its own "
                    "statistics, in eval mode too: pass more than one value per channel"
                )
                raise ValueError(
                    f"{type(self).__name__}: expected more than 1 value per channel when normalizing "
                    f"with batch statistics ({'training' if self.training else 'eval'} mode), got "
                    f"input of shape {shape} ({m} value per channel). Hint: {hint}"
                )
            mean = xp.mean(x, axis=axes, keepdims=True)
            xc = x - mean
            var = xp.mean(xc * xc, axis=axes, keepdims=True)  # biased: what normalizes
            inv_std = 1.0 / xp.sqrt(var + self.eps)
            if self.training and self.track_running_stats:
                self._update_running(xp, xp.reshape(mean, (-1,)), xp.reshape(var, (-1,)), m)
        else:
            mean = xp.reshape(self.running_mean, cshape)
            xc = x - mean
            inv_std = 1.0 / xp.sqrt(xp.reshape(self.running_var, cshape) + self.eps)
        xhat = xc * inv_std
        if self.affine:
            y = xhat * xp.reshape(self.weight.data, cshape) + xp.reshape(self.bias.data, cshape)
        else:
            y = xhat
        self.save_for_backward((xhat, inv_std, axes, cshape, m))
        return y

    def _update_running(self, xp: Any, mean: Array, var: Array, m: int) -> None:
        # Array arithmetic only: momentum=None divides by the counter as an array, so the
        # cumulative average needs no host read of num_batches_tracked.
        nbt = self.num_batches_tracked
        if _backend.supports_inplace(nbt):
            nbt += 1  # in place: NumPy would turn a 0-d `nbt + 1` into a scalar, not an array
        else:
            nbt = self.num_batches_tracked = nbt + 1
        unbiased = var * (m / (m - 1))  # running estimate: unbiased, as torch
        if self.momentum is None:
            f = 1.0 / xp.astype(nbt, mean.dtype)
            self.running_mean = self.running_mean + f * (mean - self.running_mean)
            self.running_var = self.running_var + f * (unbiased - self.running_var)
        else:
            f = self.momentum
            self.running_mean = (1.0 - f) * self.running_mean + f * mean
            self.running_var = (1.0 - f) * self.running_var + f * unbiased

    def backward(self, dy: Array) -> Array:
        xhat, inv_std, axes, cshape, m = self.pop_saved()
        _check_dy(type(self).__name__, dy, xhat, tuple(xhat.shape))
        xp = _backend.namespace_of(xhat)
        sum_dy = xp.sum(dy, axis=axes, keepdims=True)
        sum_dy_xhat = xp.sum(dy * xhat, axis=axes, keepdims=True)
        if self.affine:
            w, b = self.weight, self.bias
            if w.requires_grad:
                w.accumulate_grad(xp.reshape(sum_dy_xhat, (-1,)))
            if b.requires_grad:
                b.accumulate_grad(xp.reshape(sum_dy, (-1,)))
            scale = xp.reshape(w.data, cshape) * inv_std
        else:
            scale = inv_std
        # dx = γ/σ̂ · (dy - mean(dy) - x̂ · mean(dy ⊙ x̂)), the means over the m values per channel.
        return scale * (dy - sum_dy / m - xhat * (sum_dy_xhat / m))

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization over ``(N, C)`` or ``(N, C, L)`` inputs, per channel ``C``.

    Parameters
    ----------
    num_features
        ``C``, the number of channels (features).
    eps
        Added to the variance under the square root (default 1e-5).
    momentum
        Weight of the new batch in the running estimates, ``r ← (1 - momentum) r +
        momentum · batch`` (default 0.1); ``None`` keeps the cumulative average over
        every batch seen (``momentum = 1 / num_batches_tracked``).
    affine
        Learn the per-channel scale ``weight`` (γ, initially 1) and shift ``bias`` (β,
        initially 0).
    track_running_stats
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked`` as buffers and
        normalize with them in eval mode. Without them, eval mode uses batch statistics too.
    dtype
        ``"float32"`` (default) or ``"float64"`` for the parameters and running statistics.

    Shape
    -----
    Input ``(N, C)`` or ``(N, C, L)``, output the same shape.

    Notes
    -----
    Training mode: μ and σ² (biased, 1/m) over the ``m = N`` or ``m = N·L`` values of each
    channel; ``y = γ (x - μ)/√(σ² + ε) + β``. The running variance takes the *unbiased*
    batch variance ``σ² · m/(m-1)``, as torch does. Backward (closed form, with
    ``σ̂ = √(σ² + ε)`` and the sums over the m values)::

        dγ = Σ dy ⊙ x̂,   dβ = Σ dy,   dx = (γ/σ̂) (dy - Σdy/m - x̂ ⊙ Σ(dy ⊙ x̂)/m)

    Eval mode with running statistics is the affine map ``y = γ (x - r_μ)/√(r_σ² + ε) + β``
    and stores nothing for backward. In training mode, a batch with a single value per
    channel raises ``ValueError`` (its variance is undefined), as in torch.
    """

    _ranks = (2, 3)
    _layouts = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over ``(N, C, H, W)`` images, per channel ``C``.

    Parameters are those of :class:`BatchNorm1d`; the statistics of each channel are taken
    over the ``m = N·H·W`` values of the batch.

    Shape
    -----
    Input ``(N, C, H, W)``, output the same shape.

    Notes
    -----
    The formulas of :class:`BatchNorm1d` with the sums over the batch and both spatial dims.
    """

    _ranks = (4,)
    _layouts = "(N, C, H, W)"


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dims of each sample.

    Parameters
    ----------
    normalized_shape
        An int or a tuple: the trailing dims to normalize over (``x.shape[-k:]``).
    eps
        Added to the variance under the square root (default 1e-5).
    elementwise_affine
        Learn ``weight`` (γ, ones) of shape ``normalized_shape``.
    bias
        With ``elementwise_affine``, also learn ``bias`` (β, zeros).
    dtype
        ``"float32"`` (default) or ``"float64"``.

    Shape
    -----
    Input ``(*, *normalized_shape)``, output the same shape.

    Notes
    -----
    Per sample, over the ``m = prod(normalized_shape)`` trailing values: μ and the biased
    σ², ``x̂ = (x - μ)/σ̂`` with ``σ̂ = √(σ² + ε)``, ``y = γ ⊙ x̂ + β``. The same in training
    and eval mode (there are no running statistics). Backward, with ``g = γ ⊙ dy`` and
    the means over the m values of each sample::

        dx = (g - mean(g) - x̂ ⊙ mean(g ⊙ x̂)) / σ̂
        dγ = Σ_samples dy ⊙ x̂,   dβ = Σ_samples dy
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
            normalized_shape = (int(normalized_shape),)
        try:
            ns = tuple(normalized_shape)
        except TypeError:
            ns = None
        if (
            not ns
            or any(not isinstance(d, numbers.Integral) or isinstance(d, bool) or d <= 0 for d in ns)
        ):
            raise ValueError(
                f"LayerNorm: normalized_shape must be a positive int or a non-empty tuple of "
                f"positive ints, got {normalized_shape!r}"
            )
        self.normalized_shape = tuple(int(d) for d in ns)
        self.eps = _check_eps("LayerNorm", eps)
        self.elementwise_affine = bool(elementwise_affine)
        name = _float_dtype_name(dtype)
        if self.elementwise_affine:
            self.weight = _host_param(init.ones(self.normalized_shape), name)
            if bias:
                self.bias = _host_param(init.zeros(self.normalized_shape), name)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Array) -> Array:
        ns = self.normalized_shape
        if self.weight is not None:
            if not _like(x, self.weight.data):
                _backend.check_same_backend(x, self.weight.data, who="LayerNorm")
        elif not _backend.namespace_of(x).isdtype(x.dtype, "real floating"):
            raise TypeError(f"LayerNorm: expected a floating-point input, got dtype {_backend.dtype_name(x.dtype)}")
        shape = tuple(x.shape)
        k = len(ns)
        if len(shape) < k or shape[len(shape) - k :] != ns:
            raise ValueError(
                f"LayerNorm: expected input of shape (*, {', '.join(map(str, ns))}) ending in "
                f"normalized_shape={ns}, got {shape}. Hint: normalized_shape names the trailing "
                f"dims, e.g. LayerNorm({shape[-1] if shape else 'features'}) for (N, features)"
            )
        xp = _backend.namespace_of(x)
        # One 2-d layout (samples, values) for every rank: the reductions are over axis 1.
        rows = math.prod(shape[: len(shape) - k])
        m = math.prod(ns)
        x2 = xp.reshape(x, (rows, m))
        mean = xp.mean(x2, axis=1, keepdims=True)
        xc = x2 - mean
        var = xp.mean(xc * xc, axis=1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = xc * inv_std
        y = xhat
        if self.weight is not None:
            y = y * xp.reshape(self.weight.data, (1, m))
            if self.bias is not None:
                y = y + xp.reshape(self.bias.data, (1, m))
        self.save_for_backward((xhat, inv_std, shape))
        return xp.reshape(y, shape)

    def backward(self, dy: Array) -> Array:
        xhat, inv_std, shape = self.pop_saved()
        if tuple(dy.shape) != shape:
            raise ValueError(f"LayerNorm.backward: expected dy of shape {shape}, got {tuple(dy.shape)}")
        xp = _backend.namespace_of(xhat)
        rows, m = xhat.shape
        dy2 = xp.reshape(dy, (rows, m))
        _check_dy("LayerNorm", dy2, xhat, tuple(xhat.shape))
        w, b = self.weight, self.bias
        if b is not None and b.requires_grad:
            b.accumulate_grad(xp.reshape(xp.sum(dy2, axis=0), self.normalized_shape))
        if w is not None:
            if w.requires_grad:
                w.accumulate_grad(xp.reshape(xp.sum(dy2 * xhat, axis=0), self.normalized_shape))
            g = dy2 * xp.reshape(w.data, (1, m))
        else:
            g = dy2
        mean_g = xp.mean(g, axis=1, keepdims=True)
        mean_gx = xp.mean(g * xhat, axis=1, keepdims=True)
        dx = inv_std * (g - mean_g - xhat * mean_gx)
        return xp.reshape(dx, shape)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
