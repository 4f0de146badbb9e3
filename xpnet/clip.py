"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_`` (torch.nn.utils's semantics).

Call them between ``model.backward(dy)`` and ``optimizer.step()``::

    loss, dy = loss_fn(model(x), y)
    model.backward(dy)
    total_norm = clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()

Neither function synchronises with the device (unless ``error_if_nonfinite=True``): the
scale factor stays a 0-d array and multiplies the gradients even when it is 1, which is
what torch does for the same reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from . import _backend
from .module import Parameter

__all__ = ["clip_grad_norm_", "clip_grad_value_"]

Array = Any


def _as_list(parameters: Parameter | Iterable[Parameter], who: str) -> list[Parameter]:
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(
                f"{who}: expected Parameters (model.parameters()), got {type(p).__name__}"
            )
    return params


def _vector_norm(x: Array, ord: float, *, xp: Any) -> Array:
    linalg = getattr(xp, "linalg", None)
    if linalg is not None and hasattr(linalg, "vector_norm"):
        return linalg.vector_norm(x, ord=ord)
    # Namespaces without the linalg extension: the same norms from core functions.
    a = xp.abs(x)
    if ord == math.inf:
        r = xp.max(a)
    elif ord == -math.inf:
        r = xp.min(a)
    elif ord == 2.0:
        r = xp.sqrt(xp.sum(a * a))
    elif ord == 1.0:
        r = xp.sum(a)
    elif ord == 0.0:
        r = xp.sum(xp.astype(a != 0, x.dtype))
    else:
        r = xp.sum(a**ord) ** (1.0 / ord)
    # NumPy reduces to a scalar (numpy.float64), which is no array to the rest of xpnet.
    return r if type(r) is type(x) else xp.asarray(r, device=_backend.device_of(x))


def clip_grad_norm_(
    parameters: Parameter | Iterable[Parameter],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Array | float:
    """Scale the gradients so that their total norm is at most ``max_norm``, in place.

    Parameters
    ----------
    parameters
        A Parameter or an iterable of them (``model.parameters()``); parameters without
        a gradient are ignored.
    max_norm
        Maximum total norm (≥ 0).
    norm_type
        Order ``p`` of the norm; ``math.inf`` (or ``"inf"``) for the largest absolute entry.
    error_if_nonfinite
        Raise when the total norm is NaN or infinite. This reads the norm on the host (a
        device synchronisation); off by default.

    Returns
    -------
    array or float
        The total norm of all gradients, viewed as one vector, *before* clipping: a 0-d
        array in the gradients' namespace, device and dtype (no synchronisation); zeros
        in the parameters' namespace when none has a gradient, and the Python float
        ``0.0`` for an empty list (there is no namespace to make an array in; torch
        returns ``tensor(0.)`` there).

    Raises
    ------
    ValueError
        A negative ``max_norm``.
    RuntimeError
        ``error_if_nonfinite=True`` and the norm is not finite.

    Notes
    -----
    ``N = ‖(‖g_1‖_p, …, ‖g_k‖_p)‖_p`` and every gradient is multiplied by
    ``min(1, max_norm / (N + 1e-6))``, exactly as ``torch.nn.utils.clip_grad_norm_``.
    Gradients are scaled in place where the backend allows it and rebound otherwise.
    """
    who = "clip_grad_norm_"
    params = _as_list(parameters, who)
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if max_norm < 0:
        raise ValueError(f"{who}: max_norm must be >= 0, got {max_norm}")
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        if params:
            ref = params[0].data
            xp = _backend.namespace_of(ref)
            return xp.zeros((), dtype=ref.dtype, device=_backend.device_of(ref))
        # No parameter, so no namespace to make an array in: a NumPy 0-d array here would
        # leak NumPy into a CuPy or torch program. A Python 0.0 mixes with every backend.
        return 0.0
    grads = [p.grad for p in with_grad]
    xp = _backend.namespace_of(*grads)
    norms = [_vector_norm(g, norm_type, xp=xp) for g in grads]
    total = _vector_norm(xp.stack(norms), norm_type, xp=xp)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            f"so it cannot be clipped. To disable this error and scale the gradients by the "
            f"non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    coef = xp.clip(max_norm / (total + 1e-6), max=1.0)
    for p in with_grad:
        if _backend.supports_inplace(p.grad):
            p.grad *= coef
        else:
            p.grad = p.grad * coef
    # NumPy reductions return NumPy scalars; hand back a 0-d array as the other backends do.
    return xp.asarray(total)


def clip_grad_value_(parameters: Parameter | Iterable[Parameter], clip_value: float) -> None:
    """Clip every gradient entry to ``[-clip_value, clip_value]``.

    Parameters
    ----------
    parameters
        A Parameter or an iterable of them; parameters without a gradient are ignored.
    clip_value
        Bound (≥ 0) on the absolute value of each gradient entry.

    Raises
    ------
    ValueError
        A negative ``clip_value``.

    Notes
    -----
    ``g ← clip(g, −c, c)`` (``torch.nn.utils.clip_grad_value_``). ``p.grad`` is replaced by
    the clipped array.
    """
    who = "clip_grad_value_"
    params = _as_list(parameters, who)
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"{who}: clip_value must be >= 0, got {clip_value}")
    for p in params:
        g = p.grad
        if g is None:
            continue
        xp = _backend.namespace_of(g)
        p.grad = xp.clip(g, min=-clip_value, max=clip_value)
