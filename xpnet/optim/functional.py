"""Pure optimizer update rules (optax style), written once against the Array API.

Each ``*_step`` function takes a parameter array ``p``, its gradient ``g`` and the
per-parameter state arrays, and returns the new ``p`` and the new state. Hyperparameters
are Python floats; the step count is a Python int, so bias corrections are computed on
the host without touching the device. The arithmetic follows ``torch.optim``'s
single-tensor implementations operation by operation.

``inplace=True`` updates ``p`` and the state arrays in place (``p -= u``, ``m *= beta``)
and returns the same objects, which saves allocations on NumPy, CuPy and torch. Use it
only for arrays you own and that are writeable (:func:`xpnet._backend.supports_inplace`).
``inplace=False`` never modifies an argument and returns new arrays, which is what an
immutable backend (JAX) needs. Both paths perform the same floating-point operations in
the same order, so they give bit-identical results. The gradient ``g`` is never modified.

:func:`sgd_step` and :func:`adam_step` also take an optional ``scratch`` work array: on
NumPy and CuPy (whose functions accept ``out=``, see :func:`supports_out`) the in-place
path then writes its temporaries there and allocates nothing. This backend-specific fast
path sits behind the portable one and is tested bit-identical to it.
"""

from __future__ import annotations

from typing import Any

from .. import _backend
from .._backend import namespace_of

__all__ = [
    "sgd_step",
    "adagrad_step",
    "rmsprop_step",
    "adam_step",
    "radam_step",
    "nadam_step",
    "adamax_step",
    "adadelta_step",
    "rprop_step",
    "supports_out",
]

Array = Any

# supports_out lives in xpnet._backend (layers use it too); re-exported here.
supports_out = _backend.supports_out


# The in-place and the rebinding path share one sequence of operations: each helper
# either updates ``a`` in place or returns a new array with the same rounding. A Python
# float operand goes through _backend.scalar (a cached 0-d array on NumPy: the same
# operand, without NumPy's ~0.3 us conversion per operation).
_scalar = _backend.scalar


def _mul(a: Array, s: Any, inplace: bool) -> Array:
    s = _scalar(a, s)
    if inplace:
        a *= s
        return a
    return a * s


def _div(a: Array, s: Any, inplace: bool) -> Array:
    s = _scalar(a, s)
    if inplace:
        a /= s
        return a
    return a / s


def _add(a: Array, b: Any, inplace: bool) -> Array:
    b = _scalar(a, b)
    if inplace:
        a += b
        return a
    return a + b


def _sub(a: Array, b: Any, inplace: bool) -> Array:
    if inplace:
        a -= b
        return a
    return a - b


def _scaled(a: Array, s: float, inplace: bool, scratch: Array | None) -> Array:
    """``a * s``, written into ``scratch`` where the backend allows it."""
    s = _scalar(a, s)
    if inplace and scratch is not None:
        xp = _backend.out_namespace(a)
        if xp is not None:
            return xp.multiply(a, s, out=scratch)
    return a * s


def _effective_grad(p: Array, g: Array, weight_decay: float, maximize: bool, inplace: bool) -> tuple[Array, bool]:
    """Return ``(d, fresh)`` with ``d = ±g + weight_decay * p`` (torch's coupled L2 term).

    ``fresh`` says whether ``d`` is a new array (that the caller may update in place) or
    the caller's ``g`` itself (which must not be modified).
    """
    if weight_decay != 0:
        # weight_decay * p + g equals torch's g + weight_decay * p bit for bit (addition
        # commutes) and needs one temporary instead of two.
        d = p * weight_decay
        d = _sub(d, g, inplace) if maximize else _add(d, g, inplace)
        return d, True
    if maximize:
        return -g, True
    return g, False


def sgd_step(
    p: Array,
    g: Array,
    momentum_buffer: Array | None = None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    inplace: bool = False,
    scratch: Array | None = None,
) -> tuple[Array, Array | None]:
    """One SGD step (torch.optim.SGD's rule).

    Parameters
    ----------
    p, g
        Parameter and gradient (same shape, namespace, device and dtype).
    momentum_buffer
        The momentum buffer ``b``; ``None`` at the first step (it is then initialised
        to ``d``, as torch does) or when ``momentum == 0``.
    lr, momentum, dampening, weight_decay, nesterov, maximize
        Hyperparameters, as in :class:`xpnet.optim.SGD`.
    inplace
        Update ``p`` and ``momentum_buffer`` in place (see the module notes).
    scratch
        Optional work array shaped like ``p``; used only with ``inplace=True`` on a
        backend whose functions take ``out=`` (:func:`supports_out`) to avoid allocating
        the update. Its contents are overwritten.

    Returns
    -------
    p, momentum_buffer
        The updated parameter and buffer (``None`` when ``momentum == 0``).

    Notes
    -----
    With ``d = ±g + λ p``::

        b ← d                          (first step)
        b ← μ b + (1 − τ) d            (later steps)
        d ← d + μ b  (nesterov)   or   d ← b
        p ← p − lr · d
    """
    u, momentum_buffer = _sgd_update(
        p, g, momentum_buffer, lr=lr, momentum=momentum, dampening=dampening,
        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, inplace=inplace,
        scratch=scratch,
    )
    p = _sub(p, u, inplace)
    return p, momentum_buffer


def _sgd_update(
    p: Array | None,
    g: Array,
    momentum_buffer: Array | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    inplace: bool,
    scratch: Array | None,
) -> tuple[Array, Array | None]:
    """:func:`sgd_step` up to the update ``u`` (``p ← p − u`` is left to the caller).

    ``p`` is read only for weight decay (it may be None without it). The optimizers'
    flat multi-tensor path subtracts ``u`` from each parameter through views.
    """
    d, fresh = _effective_grad(p, g, weight_decay, maximize, inplace)
    if momentum != 0:
        if momentum_buffer is None:
            if fresh:
                # d is ours; the buffer adopts it and nothing below writes to d.
                momentum_buffer = d
            else:
                momentum_buffer = namespace_of(d).asarray(d, copy=True)
        else:
            momentum_buffer = _mul(momentum_buffer, momentum, inplace)
            if dampening != 0:
                momentum_buffer = _add(momentum_buffer, d * (1.0 - dampening), inplace)
            else:
                # (1 - 0) * d == d exactly: skip one pass over the array.
                momentum_buffer = _add(momentum_buffer, d, inplace)
        if nesterov:
            u = momentum_buffer * momentum
            u = _add(u, d, inplace)
            u = _mul(u, lr, inplace)
        else:
            u = _scaled(momentum_buffer, lr, inplace, scratch)
    else:
        u = _scaled(d, lr, inplace, scratch)
    return u, (momentum_buffer if momentum != 0 else None)


def adagrad_step(
    p: Array,
    g: Array,
    state_sum: Array,
    *,
    step: int,
    lr: float,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Array, Array]:
    """One Adagrad step (torch.optim.Adagrad's rule).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    state_sum
        Running sum of squared gradients ``G`` (starts at ``initial_accumulator_value``).
    step
        The 1-based index of this step.
    lr, lr_decay, weight_decay, eps, maximize
        Hyperparameters, as in :class:`xpnet.optim.Adagrad`.
    inplace
        Update ``p`` and ``state_sum`` in place.

    Returns
    -------
    p, state_sum

    Notes
    -----
    With ``d = ±g + λ p`` and ``η_t = lr / (1 + (t − 1) · lr_decay)``::

        G ← G + d²
        p ← p − η_t · d / (√G + ε)
    """
    u, state_sum = _adagrad_update(
        p, g, state_sum, step=step, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
        maximize=maximize, inplace=inplace,
    )
    return _sub(p, u, inplace), state_sum


def _adagrad_update(
    p: Array, g: Array, state_sum: Array, *, step: int, lr: float, lr_decay: float,
    weight_decay: float, eps: float, maximize: bool, inplace: bool,
) -> tuple[Array, Array]:
    """:func:`adagrad_step` up to the update ``u`` (``p ← p − u`` is the caller's)."""
    xp = namespace_of(g)
    d, _ = _effective_grad(p, g, weight_decay, maximize, inplace)
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum = _add(state_sum, d * d, inplace)
    std = xp.sqrt(state_sum)
    std = _add(std, eps, inplace)
    u = d / std
    return _mul(u, clr, inplace), state_sum


def rmsprop_step(
    p: Array,
    g: Array,
    square_avg: Array,
    grad_avg: Array | None = None,
    momentum_buffer: Array | None = None,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Array, Array, Array | None, Array | None]:
    """One RMSprop step (torch.optim.RMSprop's rule).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    square_avg
        Running average of squared gradients ``v``.
    grad_avg
        Running average of gradients ``ḡ`` (required when ``centered``).
    momentum_buffer
        Momentum buffer ``b`` (required when ``momentum > 0``; starts at zeros).
    lr, alpha, eps, weight_decay, momentum, centered, maximize
        Hyperparameters, as in :class:`xpnet.optim.RMSprop`.
    inplace
        Update ``p`` and the state arrays in place.

    Returns
    -------
    p, square_avg, grad_avg, momentum_buffer

    Notes
    -----
    With ``d = ±g + λ p``::

        v ← α v + (1 − α) d²
        ḡ ← ḡ + (1 − α)(d − ḡ)             (centered)
        s ← √(v − ḡ²) + ε   or   √v + ε
        b ← μ b + d / s ;  p ← p − lr · b  (momentum > 0)
        p ← p − lr · d / s                  (otherwise)
    """
    u, square_avg, grad_avg, momentum_buffer = _rmsprop_update(
        p, g, square_avg, grad_avg, momentum_buffer, lr=lr, alpha=alpha, eps=eps,
        weight_decay=weight_decay, momentum=momentum, centered=centered, maximize=maximize,
        inplace=inplace,
    )
    return _sub(p, u, inplace), square_avg, grad_avg, momentum_buffer


def _rmsprop_update(
    p: Array, g: Array, square_avg: Array, grad_avg: Array | None, momentum_buffer: Array | None,
    *, lr: float, alpha: float, eps: float, weight_decay: float, momentum: float, centered: bool,
    maximize: bool, inplace: bool,
) -> tuple[Array, Array, Array | None, Array | None]:
    """:func:`rmsprop_step` up to the update ``u``; returns ``(u, square_avg, grad_avg, momentum_buffer)``."""
    xp = namespace_of(g)
    d, _ = _effective_grad(p, g, weight_decay, maximize, inplace)
    square_avg = _mul(square_avg, alpha, inplace)
    t = d * d
    t = _mul(t, 1.0 - alpha, inplace)
    square_avg = _add(square_avg, t, inplace)
    if centered:
        if grad_avg is None:
            raise ValueError("rmsprop_step: centered=True needs grad_avg (zeros at the first step)")
        # torch's lerp: ḡ + w (d − ḡ)
        t = d - grad_avg
        t = _mul(t, 1.0 - alpha, inplace)
        grad_avg = _add(grad_avg, t, inplace)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = xp.sqrt(square_avg)
    avg = _add(avg, eps, inplace)
    if momentum > 0:
        if momentum_buffer is None:
            raise ValueError("rmsprop_step: momentum > 0 needs momentum_buffer (zeros at the first step)")
        momentum_buffer = _mul(momentum_buffer, momentum, inplace)
        momentum_buffer = _add(momentum_buffer, d / avg, inplace)
        u = momentum_buffer * lr
    else:
        u = d / avg
        u = _mul(u, lr, inplace)
    return u, square_avg, grad_avg, momentum_buffer


def adam_step(
    p: Array,
    g: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    max_exp_avg_sq: Array | None = None,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    inplace: bool = False,
    scratch: Array | None = None,
) -> tuple[Array, Array, Array, Array | None]:
    """One Adam / AdamW step (torch.optim.Adam's and AdamW's rule).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    exp_avg, exp_avg_sq
        First and second moment estimates ``m`` and ``v`` (zeros before the first step).
    max_exp_avg_sq
        Running maximum of ``v`` (required when ``amsgrad``).
    step
        The 1-based index of this step ``t`` (a Python int: the bias corrections are
        computed on the host).
    lr, beta1, beta2, eps, weight_decay, amsgrad, maximize
        Hyperparameters, as in :class:`xpnet.optim.Adam`.
    decoupled_weight_decay
        ``True`` for AdamW: decay the weights directly instead of adding ``λ p`` to the
        gradient.
    inplace
        Update ``p`` and the state arrays in place.
    scratch
        Optional work array shaped like ``p``; with ``inplace=True`` on a backend whose
        functions take ``out=`` (:func:`supports_out`: NumPy, CuPy) every temporary is
        written into it and the step allocates nothing (two fewer arrays with coupled
        weight decay). Same operations, same order, same numbers. Overwritten.

    Returns
    -------
    p, exp_avg, exp_avg_sq, max_exp_avg_sq

    Notes
    -----
    Adam (coupled L2) uses ``d = ±g + λ p``; AdamW uses ``d = ±g`` and first shrinks
    ``p ← p (1 − lr λ)``. Then::

        m ← m + (1 − β1)(d − m)          (= β1 m + (1 − β1) d)
        v ← β2 v + (1 − β2) d²
        v̂ ← max(v̂, v)                    (amsgrad; the denominator then uses v̂)
        p ← p − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
    """
    if decoupled_weight_decay and weight_decay != 0:
        p = _mul(p, 1.0 - lr * weight_decay, inplace)
    u, exp_avg, exp_avg_sq, max_exp_avg_sq = _adam_update(
        p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, lr=lr, beta1=beta1,
        beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
        decoupled_weight_decay=decoupled_weight_decay, inplace=inplace, scratch=scratch,
    )
    p = _sub(p, u, inplace)
    return p, exp_avg, exp_avg_sq, max_exp_avg_sq


def _adam_update(
    p: Array | None,
    g: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    max_exp_avg_sq: Array | None,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
    inplace: bool,
    scratch: Array | None,
) -> tuple[Array, Array, Array, Array | None]:
    """:func:`adam_step` after AdamW's decay, up to the update ``u`` (``p ← p − u`` is the
    caller's). ``p`` is read only for coupled weight decay (it may be None without it).

    Returns ``u, exp_avg, exp_avg_sq, max_exp_avg_sq``; ``u`` is ``scratch`` on the
    ``out=`` path.
    """
    if not maximize and (decoupled_weight_decay or weight_decay == 0):
        d = g  # _effective_grad's case without a term
    elif decoupled_weight_decay:
        d, _ = _effective_grad(p, g, 0.0, maximize, inplace)
    else:
        d, _ = _effective_grad(p, g, weight_decay, maximize, inplace)
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
    step_size = lr / bias_correction1
    xp = _backend.out_namespace(g) if inplace and scratch is not None else None
    if xp is not None:
        # The portable sequence below, with every temporary written into `scratch`.
        if amsgrad and max_exp_avg_sq is None:
            raise ValueError("adam_step: amsgrad=True needs max_exp_avg_sq (zeros at the first step)")
        s = xp.subtract(d, exp_avg, out=scratch)  # torch's lerp_ form of the first moment
        s *= _scalar(s, 1.0 - beta1)
        exp_avg += s
        exp_avg_sq *= _scalar(s, beta2)
        s = xp.multiply(d, d, out=scratch)
        s *= _scalar(s, 1.0 - beta2)
        exp_avg_sq += s
        if amsgrad:
            max_exp_avg_sq = xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            s = xp.sqrt(max_exp_avg_sq, out=scratch)
        else:
            s = xp.sqrt(exp_avg_sq, out=scratch)
        # (The bias corrections change every step: a cached operand would not pay.)
        s /= bias_correction2_sqrt
        s += _scalar(s, eps)
        s = xp.divide(exp_avg, s, out=scratch)
        s *= step_size
        return s, exp_avg, exp_avg_sq, max_exp_avg_sq
    xp = namespace_of(g)
    # torch's lerp_ form of the first moment.
    t = d - exp_avg
    t = _mul(t, 1.0 - beta1, inplace)
    exp_avg = _add(exp_avg, t, inplace)
    exp_avg_sq = _mul(exp_avg_sq, beta2, inplace)
    t = d * d
    t = _mul(t, 1.0 - beta2, inplace)
    exp_avg_sq = _add(exp_avg_sq, t, inplace)

    if amsgrad:
        if max_exp_avg_sq is None:
            raise ValueError("adam_step: amsgrad=True needs max_exp_avg_sq (zeros at the first step)")
        # xp.maximum allocates anyway, so rebinding costs no more than copying back.
        max_exp_avg_sq = xp.maximum(max_exp_avg_sq, exp_avg_sq)
        denom = xp.sqrt(max_exp_avg_sq)
    else:
        denom = xp.sqrt(exp_avg_sq)
    denom = _div(denom, bias_correction2_sqrt, inplace)
    denom = _add(denom, eps, inplace)
    u = exp_avg / denom
    u = _mul(u, step_size, inplace)
    return u, exp_avg, exp_avg_sq, max_exp_avg_sq


def _moments(d: Array, exp_avg: Array, exp_avg_sq: Array, beta1: float, beta2: float, inplace: bool) -> tuple[Array, Array]:
    """Adam's moments: ``m ← m + (1 − β1)(d − m)`` (torch's lerp_), ``v ← β2 v + (1 − β2) d²``."""
    t = d - exp_avg
    t = _mul(t, 1.0 - beta1, inplace)
    exp_avg = _add(exp_avg, t, inplace)
    exp_avg_sq = _mul(exp_avg_sq, beta2, inplace)
    t = d * d
    t = _mul(t, 1.0 - beta2, inplace)
    exp_avg_sq = _add(exp_avg_sq, t, inplace)
    return exp_avg, exp_avg_sq


def _decayed_grad(
    p: Array, g: Array, lr: float, weight_decay: float, decoupled: bool, maximize: bool, inplace: bool
) -> tuple[Array, Array]:
    """``(p, d)``: AdamW-style ``p ← p (1 − lr λ)`` and ``d = ±g``, or ``d = ±g + λ p``."""
    if decoupled:
        if weight_decay != 0:
            p = _mul(p, 1.0 - lr * weight_decay, inplace)
        return p, _effective_grad(p, g, 0.0, maximize, inplace)[0]
    return p, _effective_grad(p, g, weight_decay, maximize, inplace)[0]


def radam_step(
    p: Array,
    g: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Array, Array, Array]:
    """One RAdam step (torch.optim.RAdam's rule; Liu et al., 2020).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    exp_avg, exp_avg_sq
        First and second moments ``m``, ``v`` (zeros before the first step).
    step
        The 1-based step ``t`` (a Python int: the rectification is decided on the host).
    lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
        As in :class:`xpnet.optim.RAdam`.
    inplace
        Update ``p`` and the state arrays in place.

    Returns
    -------
    p, exp_avg, exp_avg_sq

    Notes
    -----
    With ``d`` as in :func:`adam_step` and the moments updated as there,
    ``ρ∞ = 2/(1 − β2) − 1`` and ``ρt = ρ∞ − 2t β2ᵗ / (1 − β2ᵗ)``::

        m̂ = m / (1 − β1ᵗ)
        p ← p − lr m̂ √(1 − β2ᵗ) / (√v + ε) · r_t      if ρt > 5, with
              r_t = √((ρt − 4)(ρt − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρt))
        p ← p − lr m̂                                  otherwise (SGD with momentum)
    """
    p, d = _decayed_grad(p, g, lr, weight_decay, decoupled_weight_decay, maximize, inplace)
    u, exp_avg, exp_avg_sq = _radam_update(
        d, exp_avg, exp_avg_sq, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps, inplace=inplace,
    )
    p = _sub(p, u, inplace)
    return p, exp_avg, exp_avg_sq


def _radam_update(
    d: Array, exp_avg: Array, exp_avg_sq: Array, *, step: int, lr: float, beta1: float, beta2: float,
    eps: float, inplace: bool,
) -> tuple[Array, Array, Array]:
    """:func:`radam_step` after :func:`_decayed_grad`, up to the update ``u``.

    ``d`` is the effective gradient (never modified); ``p ← p − u`` is the caller's.
    Returns ``(u, exp_avg, exp_avg_sq)``. The branch is decided from ``step`` alone, so
    it is the same for every parameter of a flat buffer.
    """
    exp_avg, exp_avg_sq = _moments(d, exp_avg, exp_avg_sq, beta1, beta2, inplace)
    bias_correction1 = 1.0 - beta1**step
    bias_correction2 = 1.0 - beta2**step
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step * (beta2**step) / bias_correction2
    u = exp_avg / bias_correction1
    u = _mul(u, lr, inplace)
    if rho_t > 5.0:
        rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) ** 0.5
        denom = namespace_of(exp_avg_sq).sqrt(exp_avg_sq)
        denom = _add(denom, eps, inplace)
        adaptive = bias_correction2**0.5 / denom
        u = _mul(u, adaptive, inplace)
        u = _mul(u, rect, inplace)
    return u, exp_avg, exp_avg_sq


def nadam_step(
    p: Array,
    g: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    *,
    step: int,
    mu_product: float,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Array, Array, Array, float]:
    """One NAdam step (torch.optim.NAdam's rule; Dozat, 2016).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    exp_avg, exp_avg_sq
        First and second moments (zeros before the first step).
    step
        The 1-based step ``t``.
    mu_product
        ``Π_{k<t} μ_k``, a Python float (1.0 before the first step).
    lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize
        As in :class:`xpnet.optim.NAdam`.
    inplace
        Update ``p`` and the state arrays in place.

    Returns
    -------
    p, exp_avg, exp_avg_sq, mu_product
        ``mu_product`` now includes ``μ_t``.

    Notes
    -----
    ``μ_t = β1 (1 − 0.96^{t ψ} / 2)`` with ``ψ = momentum_decay``; moments as Adam;
    ``s = √(v / (1 − β2ᵗ)) + ε``::

        p ← p − lr (1 − μ_t) / (1 − Π_{k≤t} μ_k) · d / s
        p ← p − lr μ_{t+1} / (1 − Π_{k≤t+1} μ_k) · m / s
    """
    p, d = _decayed_grad(p, g, lr, weight_decay, decoupled_weight_decay, maximize, inplace)
    u_grad, u_avg, exp_avg, exp_avg_sq, mu_product = _nadam_update(
        d, exp_avg, exp_avg_sq, step=step, mu_product=mu_product, lr=lr, beta1=beta1, beta2=beta2,
        eps=eps, momentum_decay=momentum_decay, inplace=inplace,
    )
    # Two subtractions, as torch: p − (u_grad + u_avg) would round differently.
    p = _sub(p, u_grad, inplace)
    p = _sub(p, u_avg, inplace)
    return p, exp_avg, exp_avg_sq, mu_product


def _nadam_update(
    d: Array, exp_avg: Array, exp_avg_sq: Array, *, step: int, mu_product: float, lr: float,
    beta1: float, beta2: float, eps: float, momentum_decay: float, inplace: bool,
) -> tuple[Array, Array, Array, Array, float]:
    """:func:`nadam_step` after :func:`_decayed_grad`, up to its two updates.

    ``d`` is the effective gradient (never modified). Returns ``(u_grad, u_avg, exp_avg,
    exp_avg_sq, mu_product)``: the caller subtracts ``p ← p − u_grad`` and then
    ``p ← p − u_avg``, in that order (one subtraction of the sum would round
    differently). ``mu_product`` depends on ``step`` and its previous value only (host
    floats), so the parameters of a flat buffer share it.
    """
    xp = namespace_of(d)
    bias_correction2 = 1.0 - beta2**step
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    mu_product = mu_product * mu
    exp_avg, exp_avg_sq = _moments(d, exp_avg, exp_avg_sq, beta1, beta2, inplace)
    denom = xp.sqrt(exp_avg_sq / bias_correction2)
    denom = _add(denom, eps, inplace)
    u_grad = d / denom
    u_grad = _mul(u_grad, lr * (1.0 - mu) / (1.0 - mu_product), inplace)
    u_avg = exp_avg / denom
    u_avg = _mul(u_avg, lr * mu_next / (1.0 - mu_product * mu_next), inplace)
    return u_grad, u_avg, exp_avg, exp_avg_sq, mu_product


def adamax_step(
    p: Array,
    g: Array,
    exp_avg: Array,
    exp_inf: Array,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Array, Array, Array]:
    """One Adamax step (torch.optim.Adamax's rule: Adam with the infinity norm).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    exp_avg, exp_inf
        First moment ``m`` and exponentially weighted infinity norm ``u`` (zeros first).
    step
        The 1-based step ``t``.
    lr, beta1, beta2, eps, weight_decay, maximize
        As in :class:`xpnet.optim.Adamax`.
    inplace
        Update ``p`` and the state arrays in place.

    Returns
    -------
    p, exp_avg, exp_inf

    Notes
    -----
    With ``d = ±g + λ p``::

        m ← m + (1 − β1)(d − m)
        u ← max(β2 u, |d| + ε)
        p ← p − lr / (1 − β1ᵗ) · m / u
    """
    u, exp_avg, exp_inf = _adamax_update(
        p, g, exp_avg, exp_inf, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
        weight_decay=weight_decay, maximize=maximize, inplace=inplace,
    )
    return _sub(p, u, inplace), exp_avg, exp_inf


def _adamax_update(
    p: Array, g: Array, exp_avg: Array, exp_inf: Array, *, step: int, lr: float, beta1: float,
    beta2: float, eps: float, weight_decay: float, maximize: bool, inplace: bool,
) -> tuple[Array, Array, Array]:
    """:func:`adamax_step` up to the update ``u`` (``p ← p − u`` is the caller's).

    Returns ``(u, exp_avg, exp_inf)``; ``exp_inf`` is a new array even in place (the
    maximum), so a caller that keeps it in a buffer copies it in.
    """
    xp = namespace_of(g)
    d, _ = _effective_grad(p, g, weight_decay, maximize, inplace)
    t = d - exp_avg
    t = _mul(t, 1.0 - beta1, inplace)
    exp_avg = _add(exp_avg, t, inplace)
    exp_inf = _mul(exp_inf, beta2, inplace)
    t = xp.abs(d)
    t = _add(t, eps, inplace)
    exp_inf = xp.maximum(exp_inf, t)
    u = exp_avg / exp_inf
    u = _mul(u, lr / (1.0 - beta1**step), inplace)
    return u, exp_avg, exp_inf


def adadelta_step(
    p: Array,
    g: Array,
    square_avg: Array,
    acc_delta: Array,
    *,
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Array, Array, Array]:
    """One Adadelta step (torch.optim.Adadelta's rule; Zeiler, 2012).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    square_avg, acc_delta
        Running averages of squared gradients ``v`` and squared updates ``a`` (zeros first).
    lr, rho, eps, weight_decay, maximize
        As in :class:`xpnet.optim.Adadelta`.
    inplace
        Update ``p`` and the state arrays in place.

    Returns
    -------
    p, square_avg, acc_delta

    Notes
    -----
    With ``d = ±g + λ p``::

        v ← ρ v + (1 − ρ) d²
        Δ = √(a + ε) / √(v + ε) · d
        a ← ρ a + (1 − ρ) Δ²
        p ← p − lr Δ
    """
    u, square_avg, acc_delta = _adadelta_update(
        p, g, square_avg, acc_delta, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
        maximize=maximize, inplace=inplace,
    )
    return _sub(p, u, inplace), square_avg, acc_delta


def _adadelta_update(
    p: Array, g: Array, square_avg: Array, acc_delta: Array, *, lr: float, rho: float, eps: float,
    weight_decay: float, maximize: bool, inplace: bool,
) -> tuple[Array, Array, Array]:
    """:func:`adadelta_step` up to the update ``u = lr Δ`` (``p ← p − u`` is the caller's).

    Returns ``(u, square_avg, acc_delta)``.
    """
    xp = namespace_of(g)
    d, _ = _effective_grad(p, g, weight_decay, maximize, inplace)
    square_avg = _mul(square_avg, rho, inplace)
    t = d * d
    t = _mul(t, 1.0 - rho, inplace)
    square_avg = _add(square_avg, t, inplace)
    std = xp.sqrt(square_avg + eps)
    delta = xp.sqrt(acc_delta + eps)
    delta = _div(delta, std, inplace)
    delta = _mul(delta, d, inplace)
    acc_delta = _mul(acc_delta, rho, inplace)
    t = delta * delta
    t = _mul(t, 1.0 - rho, inplace)
    acc_delta = _add(acc_delta, t, inplace)
    u = _mul(delta, lr, inplace)
    return u, square_avg, acc_delta


def rprop_step(
    p: Array,
    g: Array,
    prev: Array,
    step_size: Array,
    *,
    etaminus: float = 0.5,
    etaplus: float = 1.2,
    step_size_min: float = 1e-6,
    step_size_max: float = 50.0,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Array, Array, Array]:
    """One Rprop step (torch.optim.Rprop's rule: sign-based, per-coordinate step sizes).

    Parameters
    ----------
    p, g
        Parameter and gradient.
    prev
        The previous (masked) gradient (zeros first).
    step_size
        Per-coordinate step sizes η (``lr`` everywhere at first).
    etaminus, etaplus, step_size_min, step_size_max, maximize
        As in :class:`xpnet.optim.Rprop`.
    inplace
        Update ``p`` and the state arrays in place.

    Returns
    -------
    p, prev, step_size

    Notes
    -----
    With ``d = ±g`` and ``s = sign(d · prev)``, the factor ``f = η+`` where ``s > 0``,
    ``η−`` where ``s < 0``, else 1::

        η ← clip(η f, step_size_min, step_size_max)
        d ← 0 where f = η−                 (a sign change: skip this coordinate once)
        p ← p − sign(d) η
        prev ← d
    """
    u, prev, step_size = _rprop_update(
        g, prev, step_size, etaminus=etaminus, etaplus=etaplus, step_size_min=step_size_min,
        step_size_max=step_size_max, maximize=maximize, inplace=inplace,
    )
    return _sub(p, u, inplace), prev, step_size


def _rprop_update(
    g: Array, prev: Array, step_size: Array, *, etaminus: float, etaplus: float,
    step_size_min: float, step_size_max: float, maximize: bool, inplace: bool,
) -> tuple[Array, Array, Array]:
    """:func:`rprop_step` up to the update ``u = sign(d) η`` (``p ← p − u`` is the caller's).

    Returns ``(u, prev, step_size)``; ``step_size`` is a new array even in place (the
    clip), so a caller that keeps it in a buffer copies it in. Every operation is
    elementwise, with no dependence on the step count.
    """
    xp = namespace_of(g)
    d = -g if maximize else g
    s = d * prev
    f = xp.where(s > 0, etaplus, xp.where(s < 0, etaminus, xp.ones_like(s)))
    step_size = _mul(step_size, f, inplace)
    step_size = xp.clip(step_size, step_size_min, step_size_max)
    d = xp.where(f == etaminus, 0.0, d)
    u = xp.sign(d) * step_size
    if inplace:
        prev[...] = d
    else:
        prev = d
    return u, prev, step_size
