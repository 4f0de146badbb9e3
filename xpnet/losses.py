"""Loss functions that return the loss *and* its gradient with respect to the prediction.

``loss_fn(input, target) -> (loss, grad)``: ``loss`` is a 0-d array in the input's
namespace, device and dtype (no host synchronisation: log it with ``float(loss)`` only
when you need the number) and ``grad = dloss/dinput`` has the input's shape, ready for
``model.backward(grad)``. Values follow torch exactly (same reductions, the same clamps),
so a test can compare against ``torch.nn`` in float64.

>>> import numpy as np
>>> from xpnet.losses import MSELoss
>>> loss, grad = MSELoss()(np.array([[0.5], [0.2]]), np.array([[1.0], [0.0]]))
>>> round(float(loss), 6), grad.ravel().tolist()
(0.145, [-0.5, 0.2])

Validation
----------
Shapes and dtypes are always checked (that is free). Checks that read array *values*
(class labels in ``[0, C)``, probabilities in range) need a host synchronisation, so
they run only while ``loss_fn.validate`` is True (the default, for a loss called
directly), and once per target array: a loss called again with the very same array (a
loop over a fixed batch) does not check it again (:meth:`Loss.forget_targets` after
refilling a label buffer in place; torch tensors are tracked by their version counter).
``CrossEntropyLoss`` also keeps the one-hot targets it built for that array, so a loop
over a fixed batch builds them once. :func:`xpnet.training.fit` validates the whole dataset once and then sets
``loss_fn.validate = False`` for the training steps. With validation off, bad values give
wrong numbers instead of an error (an out-of-range label ``y`` is read as class
``y mod C`` in the loss; in the gradient too for unweighted, unsmoothed labels, and
as no target mass otherwise), and
``CrossEntropyLoss`` does not look for an ``ignore_index`` outside ``[0, C)`` (such as the
default -100): labels are then promised to lie in ``[0, C)``.
"""

from __future__ import annotations

import math
import operator
import weakref
from typing import Any

from . import _backend

__all__ = [
    "Loss",
    "MSELoss",
    "L1Loss",
    "HuberLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "SmoothL1Loss",
    "KLDivLoss",
    "REDUCTIONS",
]

Array = Any
Namespace = Any

#: Reductions every loss accepts. With ``"none"`` the loss is the array of per-element
#: (per-sample for CrossEntropyLoss and NLLLoss) losses, as torch, and the gradient is that
#: of their *sum* (the backward of ``loss.sum()`` in torch): the training loop needs a
#: scalar, so ``"none"`` is for computing losses yourself (weighting, masking, logging).
REDUCTIONS = ("mean", "sum", "none")

# torch clamps each log term of BCELoss at -100 so that p = 0 or 1 gives a finite loss.
_BCE_LOG_CLAMP = -100.0
# torch's binary_cross_entropy_backward divides by max((1 - p) p, EPSILON) with EPSILON a
# float32 1e-12 even for float64 inputs: 9.99999996e-13, not 1e-12 (a 4e-9 relative
# difference in the gradient at saturated outputs).
_BCE_GRAD_EPS = 9.999999960041972e-13


def _check_reduction(reduction: str, who: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{who}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


# Keyed by (id(xp), dtype, kind): the namespace id first, so dtypes of different
# libraries are never compared with each other (array-api-strict warns on that).
_DTYPE_KIND: dict[tuple[int, Any, str], bool] = {}


def _is_kind(xp: Namespace, dtype: Any, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)``, memoised: it costs a microsecond per call on NumPy."""
    try:
        return _DTYPE_KIND[(id(xp), dtype, kind)]
    except KeyError:
        ok = _DTYPE_KIND[(id(xp), dtype, kind)] = bool(xp.isdtype(dtype, kind))
        return ok
    except TypeError:  # an unhashable dtype object
        return bool(xp.isdtype(dtype, kind))


# (namespace, integer dtype) -> (min, max); xp.iinfo builds a new object per call.
_INT_RANGE: dict[tuple[int, Any], tuple[int, int]] = {}


def _int_range(xp: Namespace, dtype: Any) -> tuple[int, int]:
    key = (id(xp), dtype)
    value = _INT_RANGE.get(key)
    if value is None:
        info = xp.iinfo(dtype)
        value = _INT_RANGE[key] = (int(info.min), int(info.max))
    return value


def _to_host_bool(ok: Array) -> bool:
    # The one deliberate host synchronisation of a validating loss.
    return bool(_backend.to_numpy(ok))


def _to_host_flags(xp: Namespace, *flags: Array) -> list[bool]:
    # Several 0-d booleans in one host synchronisation (one transfer, not one each).
    host = _backend.to_numpy(xp.stack(flags))
    return [bool(host[i]) for i in range(len(flags))]


def _version(a: Array) -> Any:
    # torch counts in-place writes to a tensor (``_version``): a label tensor refilled in
    # place then counts as a new target. NumPy, CuPy and array-api-strict have no such
    # counter (see Loss.forget_targets).
    return getattr(a, "_version", None)


def _check_weight_arg(w: Any, who: str, name: str) -> Any:
    """A float, an array, or None; anything else is a TypeError (at construction)."""
    if w is None or _backend.is_array(w):
        return w
    if isinstance(w, (int, float)) and not isinstance(w, bool):
        return float(w)
    raise TypeError(
        f"{who}: {name} must be a float or an array, got {type(w).__name__}. Hint: "
        f"xpnet.asarray(values, backend)"
    )


def _broadcast_weight(w: Any, input: Array, xp: Namespace, who: str, name: str) -> Any:
    """Check an elementwise weight against ``input`` (free checks) and cast its dtype."""
    if w is None or isinstance(w, float):
        return w
    _backend.namespace_of(input, w)  # TypeError naming both backends if mixed
    ps, xs = tuple(w.shape), tuple(input.shape)
    if not (len(ps) <= len(xs) and all(a in (1, b) for a, b in zip(ps[::-1], xs[::-1]))):
        raise ValueError(
            f"{who}: {name} of shape {ps} does not broadcast to the input shape {xs}. Hint: "
            f"one weight per output column, shape ({xs[-1] if xs else 1},)"
        )
    di, dw = _backend.device_of(input), _backend.device_of(w)
    if di != dw:
        raise ValueError(f"{who}: {name} is on device {dw!r} but the input is on {di!r}")
    return w if w.dtype == input.dtype else xp.astype(w, input.dtype)


def _apply_weight(el: Array, g: Array, w: Any) -> tuple[Array, Array]:
    """Multiply the per-element losses and the gradient by a broadcast weight."""
    return el * w, g * w  # the same shape: _broadcast_weight checked it


def _weight_repr(base: str, name: str, w: Any) -> str:
    if w is None:
        return base
    shown = w if isinstance(w, float) else f"<array {tuple(w.shape)}>"
    return ", ".join(([base] if base else []) + [f"{name}={shown}"])


def _scale(g: Array, factor: Any, fresh: bool) -> Array:
    """``g * factor``, in place when ``g`` is this call's own array and writeable."""
    factor = _backend.scalar(g, factor)
    if fresh and _backend.supports_inplace(g):
        g *= factor
        return g
    return g * factor


class Loss:
    """Base class: ``loss_fn(input, target) -> (loss, grad)``.

    Parameters
    ----------
    reduction
        ``"mean"`` (default), ``"sum"``, or ``"none"``: the per-element losses, with the
        gradient of their sum (see :data:`REDUCTIONS`).
    validate
        Check target *values* (needs a host sync); see the module docstring.

    Subclasses implement :meth:`forward`.
    """

    def __init__(self, *, reduction: str = "mean", validate: bool = True) -> None:
        self.reduction = _check_reduction(reduction, type(self).__name__)
        self.validate = bool(validate)

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        """Compute the loss and its gradient with respect to ``input``.

        Parameters
        ----------
        input
            The prediction: a real floating array of any backend.
        target
            Targets on the same backend and device (see each loss for shape and dtype).

        Returns
        -------
        loss
            0-d array in the input's namespace, device and dtype (no host sync).
        grad
            ``dloss/dinput``, same shape, dtype and device as ``input``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, input: Array, target: Array) -> tuple[Array, Array]:
        return self.forward(input, target)

    def extra_repr(self) -> str:
        """Non-default arguments, shown in the repr (torch style)."""
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave out the record of validated targets (a weak reference)
        and what was built from them: the copy validates its next target again."""
        state = self.__dict__.copy()
        state.pop("_memo", None)
        state.pop("_fused_memo", None)
        state.pop("_kept_call", None)
        return state

    # -------------------------------------------------------------- validate once

    def forget_targets(self) -> None:
        """Forget which target array was validated, so the next call checks its values.

        A validating loss checks the values of a target array once and remembers the
        array (by object identity, through a weak reference): called again with the
        very same array, as a loop over a fixed batch does, it skips the check and its
        host synchronisation. NumPy, CuPy and array-api-strict cannot tell that an array
        was modified in place, so call this after refilling a target buffer in place
        with new labels (torch tensors count their in-place writes, and a refilled one
        is checked again automatically).
        """
        self.__dict__.pop("_memo", None)
        self.__dict__.pop("_fused_memo", None)
        self.__dict__.pop("_kept_call", None)

    def _validated(self, target: Array, key: Any) -> Any:
        """What :meth:`_remember` stored for this very ``target`` and ``key``, else None."""
        memo = self.__dict__.get("_memo")
        if memo is None or memo[0]() is not target or memo[1] != key or memo[2] != _version(target):
            return None
        return memo[3]

    def _remember(self, target: Array, key: Any, info: Any) -> None:
        """Record that ``target`` passed validation under ``key`` (``info``: what was learnt)."""
        try:
            ref = weakref.ref(target)
        except TypeError:  # an array type without weak references: validate every call
            return
        self._memo = (ref, key, _version(target), info)

    def _reduce(
        self, el: Array, g: Array, n: int, scale: float = 1.0, *, fresh: bool = False, xp: Namespace
    ) -> tuple[Array, Array]:
        """Apply the reduction to the per-element losses ``el`` and the unscaled gradient ``g``.

        ``"none"`` returns ``el`` itself and the gradient of the sum. ``fresh=True`` says
        ``g`` is a new array of this call (never the caller's): it is then scaled in place
        where the backend allows it, saving an allocation.
        """
        if self.reduction == "none":
            if scale != 1.0:
                g = _scale(g, scale, fresh)
            return el, g
        return self._reduce_total(_backend.rsum(el, xp=xp), g, n, scale, fresh=fresh)

    def _reduce_total(
        self, total: Array, g: Array, n: int, scale: float = 1.0, *, fresh: bool = True
    ) -> tuple[Array, Array]:
        """:meth:`_reduce` from the summed loss ``total`` (``"mean"`` or ``"sum"``)."""
        factor = scale / n if self.reduction == "mean" else scale
        if self.reduction == "mean":
            total = total / n
        if factor != 1.0:
            g = _scale(g, factor, fresh)
        # NumPy turns 0-d results into NumPy scalars (a float64 one even passes as a
        # Python float); indexing with ... gives a real 0-d array on every backend.
        return total[...], g

    # -------------------------------------------------------------- shared checks

    def _namespace(self, input: Array, target: Array) -> Namespace:
        """Common checks; return ``xp``. Mixed backends raise TypeError (namespace_of)."""
        xp = _backend.namespace_of(input, target)
        dtype = input.dtype
        # The last dtype that passed (dtype objects are singletons on NumPy, CuPy, torch
        # and array-api-strict, so this is one identity test per call).
        if self.__dict__.get("_float_dtype") is not dtype:
            self._check_floating(xp, dtype)
            self.__dict__["_float_dtype"] = dtype
        if 0 in input.shape:
            raise ValueError(f"{type(self).__name__}: got an empty input of shape {tuple(input.shape)}")
        di, dt = getattr(input, "device", None), getattr(target, "device", None)
        if di is None or dt is None:  # (an array without .device: device_of's fallback)
            di, dt = _backend.device_of(input), _backend.device_of(target)
        if di != dt:
            raise ValueError(
                f"{type(self).__name__}: input is on device {di!r} but target is on {dt!r}. Hint: "
                f"xpnet.asarray(target, {_backend.backend_name(xp)!r}, device={di!r})"
            )
        return xp

    def _check_floating(self, xp: Namespace, dtype: Any) -> None:
        if not _is_kind(xp, dtype, "real floating"):
            raise TypeError(
                f"{type(self).__name__}: input must be a real floating array, got dtype "
                f"{_backend.dtype_name(dtype)}. Hint: the model's output, or "
                f"xpnet.asarray(x, dtype='float32')"
            )

    def _same_shape_target(self, input: Array, target: Array, xp: Namespace) -> Array:
        """Target of input's shape, cast to input's dtype (int/bool 0-1 labels welcome)."""
        if target.shape != input.shape:
            hint = ""
            if target.ndim + 1 == input.ndim and input.shape[-1] == 1:
                hint = " Hint: reshape the target to (N, 1), e.g. y[:, None]"
            elif target.ndim == input.ndim + 1 and target.shape[-1] == 1:
                hint = " Hint: reshape the target to the input's shape, e.g. y[:, 0]"
            raise ValueError(
                f"{type(self).__name__}: target shape {tuple(target.shape)} must equal the "
                f"input shape {tuple(input.shape)} (no broadcasting).{hint}"
            )
        if target.dtype != input.dtype:
            target = xp.astype(target, input.dtype)
        return target


class MSELoss(Loss):
    """Mean squared error ``(1/M) Σ (x - t)²`` over all M elements (torch's ``MSELoss``).

    Parameters
    ----------
    reduction
        ``"mean"`` (divide by the number of elements) or ``"sum"``.
    validate
        No value checks exist for this loss; accepted for a uniform interface.

    Notes
    -----
    Forward ``L = (1/M) Σ (x - t)²``; gradient ``dL/dx = 2 (x - t) / M`` (without the
    ``1/M`` for ``"sum"``). The target must have the input's shape; it is cast to the
    input's dtype. ``Σ d²`` is one dot product of the flattened difference with itself
    (no ``d²`` temporary; the sum's order differs from ``sum(d * d)`` only by rounding).
    """

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        kept = self.__dict__.get("_kept_call")
        if (
            kept is not None and kept[0]() is target and type(input) is kept[1]
            and input.shape == kept[2] == target.shape and input.dtype == kept[3] == target.dtype
            and getattr(input, "device", None) == kept[4] and self.reduction == kept[5]
        ):
            # The very target array of the last call, with an input like that call's:
            # everything the checks below established still holds (validate once).
            d = input - target
            total = _backend.sumsq(d, xp=kept[6]) / kept[8]  # _reduce_total's operations
            if kept[7] is not None:
                d *= kept[7]
            return total[...], d
        xp = self._namespace(input, target)
        if target.shape != input.shape or target.dtype != input.dtype:
            target = self._same_shape_target(input, target, xp)
        d = input - target
        n = math.prod(input.shape)
        if self.reduction == "none":
            return self._reduce(d * d, d, n, 2.0, fresh=True, xp=xp)
        self._keep_call(input, target, d, n, xp)
        return self._reduce_total(_backend.sumsq(d, xp=xp), d, n, 2.0)

    def _keep_call(self, input: Array, target: Array, d: Array, n: int, xp: Namespace) -> None:
        """Remember a checked call of the common case (``"mean"``, a target of the input's
        shape, dtype and device, an in-place gradient scale) for :meth:`forward`'s fast path."""
        self.__dict__.pop("_kept_call", None)
        dev = getattr(input, "device", None)
        if self.reduction != "mean" or dev is None or not _backend.supports_inplace(d):
            return
        if target.shape != input.shape or target.dtype != input.dtype:
            return  # (a cast target is a new array each call)
        try:
            ref = weakref.ref(target)  # the caller's array is not kept alive by the loss
        except TypeError:
            return
        factor = None if 2.0 / n == 1.0 else _backend.scalar(d, 2.0 / n)
        self.__dict__["_kept_call"] = (ref, type(input), input.shape, input.dtype, dev, self.reduction, xp, factor, n)


class L1Loss(Loss):
    """Mean absolute error ``(1/M) Σ |x - t|`` (torch's ``L1Loss``).

    Notes
    -----
    Forward ``L = (1/M) Σ |x - t|``; gradient ``sign(x - t) / M`` (0 where ``x == t``
    and where ``x - t`` is NaN, as torch).
    """

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        xp = self._namespace(input, target)
        target = self._same_shape_target(input, target, xp)
        d = input - target
        # 1[d > 0] - 1[d < 0]: torch's sign, 0 at NaN (xp.sign gives NaN there).
        g = xp.astype(d > 0, d.dtype) - xp.astype(d < 0, d.dtype)
        return self._reduce(xp.abs(d), g, math.prod(input.shape), fresh=True, xp=xp)


class HuberLoss(Loss):
    """Huber loss: quadratic for ``|x - t| < delta``, linear beyond (torch's ``HuberLoss``).

    Parameters
    ----------
    delta
        Where the quadratic turns linear; must be > 0 (default 1.0).
    reduction, validate
        As for :class:`Loss`.

    Notes
    -----
    Per element, with ``d = x - t``: ``0.5 d²`` if ``|d| < delta`` else
    ``delta (|d| - 0.5 delta)``. Gradient: ``clip(d, -delta, delta)`` (divided by M for
    the mean).
    """

    def __init__(self, *, reduction: str = "mean", delta: float = 1.0, validate: bool = True) -> None:
        super().__init__(reduction=reduction, validate=validate)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be > 0, got {delta!r}")
        self.delta = float(delta)

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        xp = self._namespace(input, target)
        target = self._same_shape_target(input, target, xp)
        delta = self.delta
        d = input - target
        ad = xp.abs(d)
        # 0.5 c² + delta (|d| - c) with c = min(|d|, delta) is torch's two pieces without a
        # where (NumPy's where is slow on random masks); 0 extra where |d| < delta.
        c = xp.minimum(ad, delta)
        el = 0.5 * (c * c) + delta * (ad - c)
        g = xp.minimum(xp.maximum(d, -delta), delta)
        return self._reduce(el, g, math.prod(input.shape), fresh=True, xp=xp)

    def extra_repr(self) -> str:
        parts = [] if self.delta == 1.0 else [f"delta={self.delta}"]
        base = super().extra_repr()
        return ", ".join(([base] if base else []) + parts)


class SmoothL1Loss(Loss):
    """Smooth L1: quadratic below ``beta``, L1 beyond (torch's ``SmoothL1Loss``).

    Parameters
    ----------
    beta
        Where the quadratic turns linear; ``>= 0`` (default 1.0). ``beta = 0`` is
        :class:`L1Loss`.
    reduction, validate
        As for :class:`Loss`.

    Notes
    -----
    Per element, with ``d = x - t``: ``0.5 d² / beta`` if ``|d| < beta`` else
    ``|d| - 0.5 beta`` (Huber's loss divided by beta). Gradient: ``clip(d, -beta, beta) /
    beta`` (``sign(d)`` for beta = 0), divided by M for the mean.
    """

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0, validate: bool = True) -> None:
        super().__init__(reduction=reduction, validate=validate)
        if not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        xp = self._namespace(input, target)
        target = self._same_shape_target(input, target, xp)
        beta, d = self.beta, input - target
        n = math.prod(input.shape)
        if beta == 0.0:  # torch: plain L1 (and its sign, 0 at NaN)
            g = xp.astype(d > 0, d.dtype) - xp.astype(d < 0, d.dtype)
            return self._reduce(xp.abs(d), g, n, fresh=True, xp=xp)
        ad = xp.abs(d)
        c = xp.minimum(ad, beta)
        el = (0.5 / beta) * (c * c) + (ad - c)
        g = xp.minimum(xp.maximum(d, -beta), beta)
        return self._reduce(el, g, n, 1.0 / beta, fresh=True, xp=xp)

    def extra_repr(self) -> str:
        parts = [] if self.beta == 1.0 else [f"beta={self.beta}"]
        base = super().extra_repr()
        return ", ".join(([base] if base else []) + parts)


class KLDivLoss(Loss):
    """Kullback–Leibler divergence ``KL(t ‖ q)`` from log-probabilities (torch's ``KLDivLoss``).

    Parameters
    ----------
    reduction
        ``"mean"`` over all elements (torch's default, which is *not* the KL divergence
        per sample), ``"batchmean"`` (sum divided by the batch size ``input.shape[0]``:
        the mathematical KL per sample, what you usually want), ``"sum"`` or ``"none"``.
    log_target
        The target holds log-probabilities (default False: probabilities).
    validate
        No value checks exist for this loss; accepted for a uniform interface.

    Notes
    -----
    The input is ``log q``. Per element: ``t (log t - x)`` with ``0 log 0 = 0`` (torch's
    ``xlogy``), or ``exp(t) (t - x)`` with ``log_target``. Gradient with respect to the
    input: ``-t`` (``-exp(t)``), divided by M for ``"mean"`` and by N for
    ``"batchmean"``.
    """

    def __init__(self, *, reduction: str = "mean", log_target: bool = False, validate: bool = True) -> None:
        # "batchmean" is KLDivLoss's own reduction: checked as "sum", then kept.
        super().__init__(reduction="sum" if reduction == "batchmean" else reduction, validate=validate)
        self.reduction = reduction
        self.log_target = bool(log_target)

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        xp = self._namespace(input, target)
        target = self._same_shape_target(input, target, xp)
        x, t = input, target
        if self.log_target:
            p = xp.exp(t)
            el = p * (t - x)
        else:
            p = t
            # xlogy(t, t) - t x: 0 where t = 0 (log(1) = 0 is fed there, no warning).
            el = t * xp.log(xp.where(t == 0, 1.0, t)) - t * x
        g = 0.0 - p
        if self.reduction == "batchmean":
            n = int(input.shape[0]) if input.ndim else 1
            return (xp.sum(el) / n)[...], _scale(g, 1.0 / n, True)
        return self._reduce(el, g, math.prod(input.shape), fresh=True, xp=xp)

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}"] if self.reduction != "mean" else []
        if self.log_target:
            parts.append("log_target=True")
        return ", ".join(parts)


class BCELoss(Loss):
    """Binary cross-entropy on probabilities (torch's ``BCELoss``).

    Parameters
    ----------
    weight
        Optional rescaling weight of each element's loss, a float or an array
        broadcastable to the input (e.g. one per sample ``(N, 1)`` or per output ``(C,)``)
        on the input's backend and device (torch's ``weight``).
    reduction
        ``"mean"`` over all elements (default; not normalised by the weights, as torch),
        ``"sum"`` or ``"none"``.
    validate
        Check that input and target lie in [0, 1] (host sync; torch always checks the input).

    Notes
    -----
    Forward, per element: ``-w (t log p + (1 - t) log(1 - p))`` with each log clamped at
    -100 (as torch, so p = 0 or 1 stays finite). Gradient (torch's formula):
    ``w (p - t) / max(p (1 - p), ε)``, divided by M for the mean, with torch's
    ``ε = float32(1e-12)`` (also in float64). Prefer
    :class:`BCEWithLogitsLoss` on logits: it is exact where a saturated sigmoid is not.
    """

    def __init__(
        self, *, weight: Array | float | None = None, reduction: str = "mean", validate: bool = True
    ) -> None:
        super().__init__(reduction=reduction, validate=validate)
        self.weight = _check_weight_arg(weight, type(self).__name__, "weight")

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        xp = self._namespace(input, target)
        w = _broadcast_weight(self.weight, input, xp, type(self).__name__, "weight")
        target = self._same_shape_target(input, target, xp)
        p, t = input, target
        if self.validate:
            ok = xp.all((p >= 0) & (p <= 1) & (t >= 0) & (t <= 1))
            if not _to_host_bool(ok):
                raise ValueError(
                    "BCELoss: input (probabilities) and target must lie in [0, 1] (a NaN "
                    "fails too). Hint: apply Sigmoid to the model's output, or use "
                    "BCEWithLogitsLoss on the logits"
                )
        # log(0) would warn and give -inf: feed the log a safe 1 there and clamp instead.
        pos = p > 0
        log_p = xp.maximum(xp.where(pos, xp.log(xp.where(pos, p, 1.0)), _BCE_LOG_CLAMP), _BCE_LOG_CLAMP)
        below = p < 1
        log_q = xp.maximum(
            xp.where(below, xp.log1p(-xp.where(below, p, 0.0)), _BCE_LOG_CLAMP), _BCE_LOG_CLAMP
        )
        el = (t - 1.0) * log_q - t * log_p
        g = (p - t) / xp.maximum((1.0 - p) * p, _BCE_GRAD_EPS)
        if w is not None:
            el, g = _apply_weight(el, g, w)
        return self._reduce(el, g, math.prod(input.shape), fresh=True, xp=xp)

    def extra_repr(self) -> str:
        return _weight_repr(super().extra_repr(), "weight", self.weight)


class BCEWithLogitsLoss(Loss):
    """Sigmoid + binary cross-entropy in one stable step (torch's ``BCEWithLogitsLoss``).

    Parameters
    ----------
    weight
        Optional rescaling weight of each element's loss, a float or an array
        broadcastable to the input, on the input's backend (torch's ``weight``).
    pos_weight
        Weight of the positive term, a float or an array broadcastable to the input
        (usually shape ``(C,)``) on the input's backend; default none.
    reduction, validate
        As for :class:`Loss` (no value checks: any real target is allowed, as torch).

    Notes
    -----
    Per element, with ``w = 1 + (pos_weight - 1) t`` (``w = 1`` without pos_weight):
    ``(1 - t) x - w log σ(x)``, ``log σ(x) = min(x, 0) - log1p(exp(-|x|))`` (finite for
    any x). Gradient: ``w σ(x) - pos_weight · t`` (``σ(x) - t`` without pos_weight),
    divided by M for the mean; with ``weight`` both are multiplied by it.
    """

    def __init__(
        self,
        *,
        weight: Array | float | None = None,
        pos_weight: Array | float | None = None,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, validate=validate)
        self.weight = _check_weight_arg(weight, type(self).__name__, "weight")
        self.pos_weight = _check_weight_arg(pos_weight, type(self).__name__, "pos_weight")

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        xp = self._namespace(input, target)
        who = type(self).__name__
        pw = _broadcast_weight(self.pos_weight, input, xp, who, "pos_weight")
        w = _broadcast_weight(self.weight, input, xp, who, "weight")
        target = self._same_shape_target(input, target, xp)
        x, t = input, target
        e = xp.exp(-xp.abs(x))
        log_sig = xp.minimum(x, 0.0) - xp.log1p(e)
        sig = xp.exp(xp.minimum(x, 0.0)) / (1.0 + e)  # σ(x), see functional._sigmoid
        if pw is None:
            el = (1.0 - t) * x - log_sig
            g = sig - t
        else:
            lw = 1.0 + (pw - 1.0) * t
            el = (1.0 - t) * x - lw * log_sig
            g = lw * sig - pw * t
        if w is not None:
            el, g = _apply_weight(el, g, w)
        return self._reduce(el, g, math.prod(input.shape), fresh=True, xp=xp)

    def extra_repr(self) -> str:
        return _weight_repr(_weight_repr(super().extra_repr(), "weight", self.weight), "pos_weight", self.pos_weight)


class _ClassLoss(Loss):
    """Shared by CrossEntropyLoss and NLLLoss: class weights, ignore_index, label checks,
    and K-dimensional inputs ``(N, C, d1, ...)`` (moved to ``(N·d1·..., C)`` rows)."""

    _input_name = "logits"

    def _init_class_args(self, weight: Array | None, ignore_index: int) -> None:
        who = type(self).__name__
        if weight is not None and not _backend.is_array(weight):
            raise TypeError(
                f"{who}: weight must be None or an array of shape (C,), got "
                f"{type(weight).__name__}. Hint: xpnet.asarray(values, backend, dtype=...)"
            )
        if weight is not None and weight.ndim != 1:
            raise ValueError(
                f"{who}: weight must be 1-D, one value per class, got shape "
                f"{tuple(weight.shape)}"
            )
        if isinstance(ignore_index, bool):
            raise TypeError(f"{who}: ignore_index must be an int, got bool")
        try:
            ignore_index = operator.index(ignore_index)
        except TypeError:
            raise TypeError(
                f"{who}: ignore_index must be an int, got {type(ignore_index).__name__}"
            ) from None
        self.weight = weight
        self.ignore_index = ignore_index

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        xp = self._namespace(input, target)
        if input.ndim == 2:
            return self._forward_2d(xp, input, target)
        if input.ndim < 2:
            raise ValueError(
                f"{type(self).__name__}: expected {self._input_name} of shape (N, C), got "
                f"{tuple(input.shape)} (or (N, C, d1, ...)). Hint: a single sample needs a "
                f"batch axis, x[None, :]"
            )
        return self._forward_kdim(xp, input, target)

    def _forward_2d(self, xp: Namespace, input: Array, target: Array) -> tuple[Array, Array]:
        raise NotImplementedError(f"{type(self).__name__} must implement _forward_2d()")

    def _forward_kdim(self, xp: Namespace, input: Array, target: Array) -> tuple[Array, Array]:
        """``(N, C, d1, ...)``: class axis last, rows ``(N·d1·..., C)``, and back.

        torch's K-dimensional losses are exactly the 2-D loss over those rows (the mean
        divides by the same total weight, or by N·d1·... for probabilities).
        """
        shape = tuple(input.shape)
        n, c, rest = shape[0], shape[1], shape[2:]
        nd = len(shape)
        perm = (0, *range(2, nd), 1)
        x2 = xp.reshape(xp.permute_dims(input, perm), (-1, c))
        if tuple(target.shape) == shape:
            t2 = xp.reshape(xp.permute_dims(target, perm), (-1, c))
        elif tuple(target.shape) == (n, *rest):
            t2 = xp.reshape(target, (-1,))
        else:
            raise ValueError(
                f"{type(self).__name__}: for input of shape {shape} the target must be class "
                f"labels of shape {(n, *rest)} or probabilities of shape {shape}, got "
                f"{tuple(target.shape)}"
            )
        loss, g2 = self._forward_2d(xp, x2, t2)
        g = xp.permute_dims(xp.reshape(g2, (n, *rest, c)), (0, nd - 1, *range(1, nd - 1)))
        if self.reduction == "none":
            loss = xp.reshape(loss, (n, *rest))
        return loss, g

    def _label_onehot(
        self, xp: Namespace, input: Array, target: Array, lazy: bool = False
    ) -> tuple[Array | None, Array | None, bool]:
        """Class-label targets ``(N,)`` as a one-hot ``(N, C)`` matrix of the input's dtype.

        Returns ``(e, m, in_range)``: ``e`` is zero on rows whose label is
        ``ignore_index`` (or any label outside ``[0, C)``), ``m`` the ``(N, 1)`` keep mask
        (None when no label can be ignored), ``in_range`` whether ``ignore_index`` is a
        class id (``e`` is then masked with ``m``). Validates the labels when
        :attr:`validate` is on (one host sync).
        """
        who = type(self).__name__
        n, c = (int(v) for v in input.shape)
        ii = self.ignore_index
        if not _is_kind(xp, target.dtype, "integral"):
            raise TypeError(
                f"{who}: class-label targets of shape (N,) must have an integer dtype, got "
                f"{_backend.dtype_name(target.dtype)}. Hint: xpnet.asarray(y, dtype='int64')"
                f" / y.astype(int), or pass (N, C) probability rows"
            )
        lo, hi = _int_range(xp, target.dtype)
        # A narrow label dtype (uint8) cannot hold C - 1 for many classes: compare
        # against int64 class ids then (integer promotion is standard).
        narrow = hi < c - 1
        # An ignore_index the label dtype cannot hold (-100 for uint8) matches nothing,
        # and comparing with it is not portable: no mask at all then. Without
        # validation the caller promises labels in [0, C) (fit checks them once), so an
        # ignore_index outside [0, C) (the default -100) cannot occur either: skipping
        # its mask keeps the training step as fast as without ignore_index (measured:
        # the mask and its data-dependent mean cost ~7 us, 6% of a digits step).
        in_range = 0 <= ii < c
        can_ignore = lo <= ii <= hi and (in_range or self.validate)
        if self.validate:
            # Validate once per target array: a loop over a fixed batch pays the check and
            # its host sync at the first call only (see Loss.forget_targets).
            key = ("labels", c, ii, tuple(target.shape), target.dtype)
            any_ignored = self._validated(target, key)
            if any_ignored is None:
                any_ignored = self._check_labels(xp, target, c, narrow, can_ignore)
                self._remember(target, key, any_ignored)
            # No label equals ignore_index: no mask, and the mean divides by N.
            can_ignore = can_ignore and any_ignored
        if lazy and not can_ignore:
            return None, None, in_range  # the caller builds its own targets (fused CE)
        classes = self._classes(xp, c, xp.int64 if narrow else target.dtype, _backend.device_of(input))
        # A label outside [0, C) (the default ignore_index -100) gives a zero row here.
        e = xp.astype(target[:, None] == classes, input.dtype)
        m = None
        if can_ignore:
            m = xp.astype(target != ii, input.dtype)[:, None]
            if in_range:
                e = e * m
        return e, m, in_range

    def _check_labels(self, xp: Namespace, target: Array, c: int, narrow: bool, can_ignore: bool) -> bool:
        """Raise ValueError unless every label lies in ``[0, C)`` or equals ``ignore_index``;
        return whether some label equals ``ignore_index`` (one host sync for both)."""
        ii = self.ignore_index
        ok = target >= 0 if narrow else (target >= 0) & (target < c)
        if can_ignore:
            ignored = target == ii
            all_ok, any_ignored = _to_host_flags(xp, xp.all(ok | ignored), xp.any(ignored))
        else:
            all_ok, any_ignored = _to_host_bool(xp.all(ok)), False
        if not all_ok:
            host = _backend.to_numpy(target)
            host = host[host != ii] if can_ignore else host
            raise ValueError(
                f"{type(self).__name__}: class labels must lie in [0, {c}) for {c} "
                f"{self._input_name} per row, got values from {int(host.min())} to "
                f"{int(host.max())} (besides ignore_index={ii}). Hint: labels are 0-based; "
                f"the model's output width must be the number of classes"
            )
        return any_ignored

    def _check_weight(self, xp: Namespace, input: Array, w: Array, c: int) -> None:
        """Free checks (no sync): the weight must match the input's backend, device, dtype."""
        who = type(self).__name__
        _backend.namespace_of(input, w)  # TypeError naming both backends if mixed
        if tuple(w.shape) != (c,):
            raise ValueError(
                f"{who}: weight must have shape ({c},), one value per class of the {c} "
                f"{self._input_name} per row, got {tuple(w.shape)}"
            )
        if w.dtype != input.dtype:
            raise TypeError(
                f"{who}: weight has dtype {_backend.dtype_name(w.dtype)} but the input is "
                f"{_backend.dtype_name(input.dtype)}. Hint: create the weight with "
                f"dtype={_backend.dtype_name(input.dtype)!r} (torch requires the same dtype too)"
            )
        di, dw = _backend.device_of(input), _backend.device_of(w)
        if di != dw:
            raise ValueError(
                f"{who}: weight is on device {dw!r} but the input is on {di!r}. Hint: "
                f"xpnet.asarray(weight, {_backend.backend_name(xp)!r}, device={di!r})"
            )

    def _classes(self, xp: Namespace, c: int, dtype: Any, device: Any) -> Array:
        """``arange(c)`` of the labels' dtype on ``device``, kept for the next call."""
        key = (id(xp), c, dtype, device)
        cached = self.__dict__.get("_classes_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        classes = xp.arange(c, dtype=dtype, device=device)
        self._classes_cache = (key, classes)
        return classes

    @staticmethod
    def _inv_divisor(d: Array, *, xp: Namespace) -> tuple[Array, Array, Array]:
        """``(pos, d, 1/d)`` for a data-dependent divisor: ``1/d`` is NaN where ``d = 0``
        (torch's 0/0), computed without a NumPy warning."""
        pos = d != 0
        d = xp.where(pos, d, 1.0)
        return pos, d, xp.where(pos, 1.0 / d, math.nan)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        extra = []
        if self.weight is not None:
            extra.append(f"weight=<array {tuple(self.weight.shape)}>")
        if self.ignore_index != -100:
            extra.append(f"ignore_index={self.ignore_index}")
        return ", ".join(([base] if base else []) + extra)


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross-entropy on logits (torch's ``CrossEntropyLoss``).

    Parameters
    ----------
    weight
        Optional per-class rescaling weights, an array of shape ``(C,)`` of the input's
        backend, device and dtype (torch's ``weight``); default none (all ones).
    ignore_index
        Class label whose samples contribute neither loss nor gradient, and do not count
        in the mean (default -100, as torch). Only for class-label targets: a value >= 0
        with probability targets raises ``ValueError`` (torch raises too).
    label_smoothing
        ε in [0, 1]: the target becomes ``(1 - ε) t + ε / C`` (torch's formula).
    reduction
        ``"mean"`` over the batch (default; the weighted mean with ``weight``), ``"sum"``,
        or ``"none"``: the per-sample losses (``w_{y_i} ℓ_i``, 0 where ignored; shape
        ``(N, d1, ...)``) with the gradient of their sum.
    validate
        Check that class labels lie in ``[0, C)`` or equal ``ignore_index``, and that
        probability targets are non-negative (host sync; see the module docstring).
        ``validate=False`` declares the labels already checked to lie in ``[0, C)`` (as
        :func:`xpnet.training.fit` does): an ``ignore_index`` outside ``[0, C)``, such as
        the default -100, is then not looked for, so the training step pays nothing for
        it. Keep validation on to use a negative ``ignore_index``.

    Shape
    -----
    ``input``: logits ``(N, C)`` or ``(N, C, d1, ...)`` (torch's K-dimensional loss, e.g.
    per-pixel classes ``(N, C, H, W)``). ``target``: integer class labels ``(N,)`` /
    ``(N, d1, ...)``, or probabilities / one-hot rows of the input's shape (cast to the
    input's dtype).

    Notes
    -----
    One stable pass: ``log p = z - log Σ exp(z)`` with ``z = x - max(x)`` and
    ``p = exp(z) / Σ exp(z)``. Everything reduces to one target matrix T:

    * labels ``y``, keep mask ``m_i = [y_i != ignore_index]``, one-hot ``e``:
      ``T_ic = m_i ((1 - ε) w_{y_i} e_ic + (ε / C) w_c)``, divisor
      ``D = Σ_i m_i w_{y_i}`` for the mean (torch's ``nll_loss`` normalisation, which
      torch also uses for the smoothing term), 1 for the sum;
    * probabilities t: ``T_ic = w_c ((1 - ε) t_ic + ε / C)``, ``D = N`` for the mean
      (torch does not normalise soft targets by the weights), 1 for the sum;

    with ``w = 1`` without ``weight``. Then ``L = -(1/D) Σ_ic T_ic log p_ic`` and
    ``dL/dx = (p ⊙ Σ_c T - T) / D``: no Jacobian, no division by p, finite for logits of
    any magnitude; a class with ``log p = -inf`` and no target mass adds 0 (torch's finite
    loss for a -inf logit). If every sample of a batch is ignored, the mean is 0/0: the
    loss is NaN and the gradient zero, exactly as torch; if the kept samples all have
    weight 0, the loss and their gradient rows are NaN, again as torch.
    """

    def __init__(
        self,
        *,
        weight: Array | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, validate=validate)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}"
            )
        self._init_class_args(weight, ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Array, target: Array) -> tuple[Array, Array]:
        if self.weight is None and not self.label_smoothing:
            # The same validated label array as last call, with an input of the same
            # array type, shape, dtype and device and the same settings (_fused_kept):
            # every check passed then, and its targets are kept (validate once).
            kept = self._fused_kept(input, target)
            if kept is not None:
                return self._fused_labels(kept[2], input, kept[0], kept[1])
        return super().forward(input, target)

    def _forward_2d(self, xp: Namespace, input: Array, target: Array) -> tuple[Array, Array]:
        fused = self.weight is None and not self.label_smoothing and self.reduction != "none"
        who = "CrossEntropyLoss"
        n, c = (int(s) for s in input.shape)
        eps = self.label_smoothing
        ii = self.ignore_index
        w = self.weight
        if w is not None:
            self._check_weight(xp, input, w, c)
        dtype = input.dtype
        # m: (N, 1) keep mask (None: no label can be ignored); r: row sums of T (None: 1).
        m = r = None
        if target.ndim == 1 and target.shape[0] == n:
            labels = True
            t, m, _ = self._label_onehot(xp, input, target, lazy=fused)
            if t is None:  # fused and no label to ignore
                ys, idx = self._fused_targets(xp, input, target)
                return self._fused_labels(xp, input, ys, idx)
            if w is None:
                r = m
                if eps:
                    t = t * (1.0 - eps) + (eps / c if m is None else m * (eps / c))
                d = n if m is None else xp.sum(m)
            else:
                t = t * w
                wy = xp.sum(t, axis=1, keepdims=True)  # w[y_i], 0 where ignored
                d = xp.sum(wy)
                if eps:
                    we = w * (eps / c)
                    swe = xp.sum(we)  # Σ_c w_c ε/C: the smoothing mass of a kept row
                    if m is None:
                        t = t * (1.0 - eps) + we
                        r = wy * (1.0 - eps) + swe
                    else:
                        t = t * (1.0 - eps) + m * we
                        r = wy * (1.0 - eps) + m * swe
                else:
                    r = wy
        elif target.shape == input.shape:
            labels = False
            if ii >= 0:
                raise ValueError(
                    f"{who}: ignore_index={ii} applies to class-label targets only, but the "
                    f"target holds probabilities {tuple(target.shape)}. Hint: leave "
                    f"ignore_index at its default (-100), or pass labels of shape ({n},)"
                )
            t = target if target.dtype == dtype else xp.astype(target, dtype)
            if self.validate and not _to_host_bool(xp.all(t >= 0)):
                raise ValueError(
                    f"{who}: probability targets must be non-negative (a NaN fails too)"
                )
            if eps:
                t = t * (1.0 - eps) + eps / c
            if w is not None:
                t = t * w
            d = n
        else:
            hint = ""
            if target.ndim == 2 and target.shape[-1] == 1 and target.shape[0] == n:
                hint = " Hint: class labels must be 1-D, y[:, 0] or y.reshape(-1)"
            raise ValueError(
                f"{who}: target must be class labels of shape ({n},) or probabilities of shape "
                f"{(n, c)}, got {tuple(target.shape)}.{hint}"
            )
        if not labels:
            r = xp.sum(t, axis=1, keepdims=True)
        z = input - xp.max(input, axis=1, keepdims=True)
        ez = xp.exp(z)
        s = xp.sum(ez, axis=1, keepdims=True)
        log_p = z - xp.log(s)
        p = ez / s
        g = p - t if r is None else p * r - t
        if labels and not eps:
            el = self._target_terms(xp, log_p, target, None if w is None else wy, m)
        else:
            # A class with log p = -inf (a -inf logit, or -1e308 next to +1e308) and no
            # target mass adds 0 in torch; 0 * -inf would be NaN.
            el = -xp.sum(t * xp.where(t == 0, 0.0, log_p), axis=1)
        if self.reduction == "none":
            return el, g
        total = xp.sum(el)
        if isinstance(d, int) or self.reduction == "sum":
            return self._reduce_total(total, g, n)
        return self._mean_over(total, g, d, m, xp=xp)

    def _fused_targets(self, xp: Namespace, input: Array, target: Array) -> tuple[Array, Array]:
        """The targets of :meth:`_fused_labels`: ``f · onehot(y)`` and each row's flat index.

        ``f = 1/N`` for the mean, 1 for the sum. The one-hot rows are gathered from a
        cached ``f · I`` (one ``take``, instead of a comparison, a cast and a product per
        call). Labels lie in ``[0, C)``: checked (``validate``), or promised and taken
        modulo ``C`` so that a broken promise cannot index out of bounds. A validating
        loss keeps the pair with its record of the validated target array, so a loop
        over a fixed batch builds them once, like the labels check
        (:meth:`Loss.forget_targets` drops both).
        """
        n, c = (int(v) for v in input.shape)
        y = target if target.dtype == xp.int64 else xp.astype(target, xp.int64)
        if not self.validate:
            y = xp.remainder(y, c)
        device = _backend.device_of(input)
        idx = self._row_starts(xp, n, c, device) + y
        ys = xp.take(self._scaled_eye(xp, n, c, input.dtype, device), y, axis=0)
        memo = self.__dict__.get("_memo")
        if self.validate and memo is not None and memo[0]() is target and getattr(input, "device", None) is not None:
            self._fused_memo = (memo, self._fused_key(input, target), ys, idx, xp)
        return ys, idx

    def _scaled_eye(self, xp: Namespace, n: int, c: int, dtype: Any, device: Any) -> Array:
        """``f · I_C`` (``f = 1/N`` for the mean, else 1) of ``dtype`` on ``device``, kept for the next call."""
        key = (id(xp), n if self.reduction == "mean" else 0, c, dtype, device)
        cached = self.__dict__.get("_eye_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        eye = xp.eye(c, dtype=dtype, device=device)
        if self.reduction == "mean":
            eye = eye * (1.0 / n)
        self._eye_cache = (key, eye)
        return eye

    def _fused_key(self, input: Array, target: Array) -> tuple[Any, ...]:
        return (
            type(input), tuple(input.shape), input.dtype, getattr(input, "device", None),
            tuple(target.shape), target.dtype, self.reduction, self.ignore_index, self.validate,
        )

    def _fused_kept(self, input: Array, target: Array) -> tuple[Array, Array, Namespace] | None:
        """``(ys, idx, xp)`` that :meth:`_fused_targets` kept for this very validated
        ``target`` and an input like that call's, else None."""
        kept = self.__dict__.get("_fused_memo")
        if kept is None:
            return None
        memo = self.__dict__.get("_memo")
        if kept[0] is not memo or memo[0]() is not target or memo[2] != _version(target):
            return None
        # _fused_key's fields compared one by one (building the tuple cost ~0.4 us).
        k = kept[1]
        if (
            type(input) is not k[0] or input.shape != k[1] or input.dtype != k[2]
            or getattr(input, "device", None) != k[3] or target.shape != k[4] or target.dtype != k[5]
            or self.reduction != k[6] or self.ignore_index != k[7] or self.validate != k[8]
        ):
            return None
        return kept[2], kept[3], kept[4]

    def _fused_labels(self, xp: Namespace, input: Array, ys: Array, idx: Array) -> tuple[Array, Array]:
        """The common case in one pass: class labels, no weight, no smoothing, no ignored row.

        With ``f = 1/N`` (mean) or 1 (sum), ``z = x - max_c x``, ``s_i = Σ_c e^(z_ic)``
        and the targets ``ys = f · onehot(y)`` (:meth:`_fused_targets`)::

            L     = f (Σ_i log s_i - Σ_i z_(i, y_i))
            dL/dx = e^z / (s / f) - ys

        the softmax-cross-entropy gradient written into the fresh ``e^z`` in place where
        the backend allows it (no ``p``, no ``log p`` matrix). The target's logit is
        gathered (N values through the flat indices ``idx``), so a ``-inf`` logit of
        another class adds nothing, as in torch.
        """
        n = int(input.shape[0])
        mean = self.reduction == "mean"
        z = input - _backend.rmax(input, 1, True, xp=xp)
        picked = _backend.rsum(_backend.take_flat(z, idx, xp=xp), xp=xp)
        ez = xp.exp(z)
        s = _backend.rsum(ez, 1, True, xp=xp)
        total = _backend.rsum(xp.log(s), xp=xp) - picked
        if _backend.supports_inplace(ez):
            if mean:
                s *= _backend.scalar(s, float(n))  # s is this call's own array
            ez /= s
            ez -= ys
            g = ez
        else:
            g = ez / (s * n if mean else s) - ys
        loss = total / n if mean else total
        return loss[...], g

    def _target_terms(self, xp: Namespace, log_p: Array, target: Array, wy: Array | None, m: Array | None) -> Array:
        """Per-row ``-w_{y_i} log p_{i, y_i}`` for class labels, by gathering each row's
        target entry (N values, not N·C: a where over the whole matrix costs ~8 ns per
        element on NumPy). As in torch, only the target's log p enters, so a -inf
        elsewhere in the row adds nothing; rows whose label is ignored or outside
        ``[0, C)`` give 0.
        """
        n, c = (int(v) for v in log_p.shape)
        y = xp.astype(target, xp.int64)
        starts = self._row_starts(xp, n, c, _backend.device_of(log_p))
        flat = xp.reshape(log_p, (-1,))
        if m is None:
            # Labels checked (validate) or promised (validate=False) to lie in [0, C); the
            # remainder only keeps a broken promise from indexing out of bounds (fit's
            # one-sample shape probe runs before the labels are checked).
            lp = xp.take(flat, starts + xp.remainder(y, c))
            return -lp if wy is None else -(wy[:, 0] * lp)
        keep = (y >= 0) & (y < c) & (m[:, 0] > 0)
        # Rows not kept read their first entry (xp.clip costs 30 us in array_api_compat).
        lp = xp.take(flat, starts + y * xp.astype(keep, xp.int64))
        el = -lp if wy is None else -(wy[:, 0] * lp)
        return xp.where(keep, el, 0.0)

    def _row_starts(self, xp: Namespace, n: int, c: int, device: Any) -> Array:
        """``arange(n) · c`` (int64) on ``device``: flat index of each row's first entry."""
        key = (id(xp), n, c, device)
        cached = self.__dict__.get("_row_starts_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        starts = xp.arange(n, dtype=xp.int64, device=device) * c
        self._row_starts_cache = (key, starts)
        return starts

    @staticmethod
    def _mean_over(total: Array, g: Array, d: Array, m: Array | None, *, xp: Namespace) -> tuple[Array, Array]:
        """Divide by a data-dependent divisor ``d`` (0-d array), without a sync.

        ``d = 0`` is 0/0, as in torch: the loss is NaN, and so is the gradient of every
        kept row (torch divides each ``-w_y`` by the total weight), while ignored rows
        keep a zero gradient. The where keeps NumPy from warning on 0/0. (``d != 0``, not
        ``d > 0``: torch allows negative weights.)
        """
        pos, d, inv = _ClassLoss._inv_divisor(d, xp=xp)  # as _reduce: the same bits when d = N
        if m is not None:
            inv = xp.where(m > 0, inv, 0.0)  # (N, 1): ignored rows stay exactly 0
        if _backend.supports_inplace(g) and inv.ndim == 0:
            g *= inv
        else:
            g = g * inv
        return xp.where(pos, total / d, math.nan)[...], g

    def extra_repr(self) -> str:
        base = super().extra_repr()
        if not self.label_smoothing:
            return base
        return ", ".join(([base] if base else []) + [f"label_smoothing={self.label_smoothing}"])


class NLLLoss(_ClassLoss):
    """Negative log-likelihood of class labels given log-probabilities (torch's ``NLLLoss``).

    Parameters
    ----------
    weight
        Optional per-class weights, shape ``(C,)``, on the input's backend, device and
        dtype (as :class:`CrossEntropyLoss`).
    ignore_index
        Label whose samples contribute neither loss nor gradient (default -100).
    reduction
        ``"mean"`` (the weighted mean ``Σ w_{y_i} ℓ_i / Σ w_{y_i}``), ``"sum"``, or
        ``"none"`` (per-sample ``w_{y_i} ℓ_i``, shape ``(N, d1, ...)``).
    validate
        Check that labels lie in ``[0, C)`` or equal ``ignore_index`` (host sync); see
        :class:`CrossEntropyLoss` for ``validate=False``.

    Shape
    -----
    ``input``: log-probabilities ``(N, C)`` or ``(N, C, d1, ...)`` (e.g. from
    :class:`~xpnet.LogSoftmax` with ``dim=1``). ``target``: integer labels ``(N,)`` or
    ``(N, d1, ...)``.

    Notes
    -----
    ``L = -(1/D) Σ_i m_i w_{y_i} x_{i, y_i}`` with ``D = Σ_i m_i w_{y_i}`` for the mean
    (1 for the sum). Gradient: ``-m_i w_{y_i} / D`` at ``(i, y_i)``, 0 elsewhere. A
    ``-inf`` log-probability of a non-target class adds nothing (as torch). ``D = 0``
    (every sample ignored, or all kept weights 0): the loss is NaN, the gradient NaN at
    the kept targets and 0 elsewhere, as torch.
    """

    _input_name = "log-probabilities"

    def __init__(
        self,
        *,
        weight: Array | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(reduction=reduction, validate=validate)
        self._init_class_args(weight, ignore_index)

    def _forward_2d(self, xp: Namespace, input: Array, target: Array) -> tuple[Array, Array]:
        n, c = (int(v) for v in input.shape)
        if target.ndim != 1 or target.shape[0] != n:
            raise ValueError(
                f"NLLLoss: target must be class labels of shape ({n},) for log-probabilities "
                f"of shape {(n, c)}, got {tuple(target.shape)}"
            )
        e, m, _ = self._label_onehot(xp, input, target)
        w = self.weight
        if w is not None:
            self._check_weight(xp, input, w, c)
            t = e * w
            d = xp.sum(t)
        else:
            t = e
            d = n if m is None else xp.sum(m)
        el = -xp.sum(t * xp.where(t == 0, 0.0, input), axis=1)
        g = 0.0 - t
        if isinstance(d, int) or self.reduction != "mean":
            return self._reduce(el, g, n, fresh=True, xp=xp)
        pos, d, inv = self._inv_divisor(d, xp=xp)
        # torch writes -w_y / D at the targets only: NaN there when D = 0, 0 elsewhere.
        g = xp.where(e != 0, g * inv, 0.0)
        return xp.where(pos, xp.sum(el) / d, math.nan)[...], g
