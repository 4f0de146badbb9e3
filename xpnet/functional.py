"""Activation functions and their derivatives, written once against the Array API.

Every public function resolves the namespace (``xp``) from its array argument, so the same
call works on NumPy, CuPy, torch, array-api-strict, ...; unless said otherwise a function
takes a real floating array ``x`` and returns an array of the same namespace, device,
dtype and shape (no host synchronisation anywhere). Derivative helpers are named
``<name>_backward`` and take the upstream gradient ``dy`` first; where the lecture writes
σ′ with the stored *output* (sigmoid, tanh, ReLU, softmax) they take the output ``y``, so
a backward pass recomputes nothing.

Numerical stability
-------------------
Every function is finite and warning-free for inputs of any magnitude the dtype holds
(tested at ±1e4 in float32 and float64):

* exponentials are only ever taken of non-positive numbers (``exp(-|x|)``, ``x - max``);
* piecewise definitions are written without ``xp.where``: NumPy's ``where`` branches per
  element and costs ~10 ns/element on inputs of random sign (more than a matmul of the
  same layer), while ``maximum``/``minimum``/``copysign`` and masks cast with
  ``xp.astype`` vectorise. Where two pieces are blended as ``m·a + (1 - m)·b`` with a
  0/1 mask m, both pieces are computed from clamped arguments so they are finite, which
  keeps the blend exact (``0·b = 0``) for every input, ±inf included;
* ELU uses ``expm1(min(x, 0))``, each erf branch a clamped argument.

``erf`` / ``erfc`` are implemented here because the Array API standard has neither
(see :func:`erf` for the method and its accuracy).

Example
-------
>>> import numpy as np
>>> import xpnet.functional as F
>>> y = F.sigmoid(np.array([-1e4, 0.0, 1e4]))      # [0, 0.5, 1], no overflow warning
>>> dx = F.sigmoid_backward(np.ones(3), y)          # y (1 - y)
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from . import _backend

__all__ = [
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "softplus",
    "softmax",
    "log_softmax",
    "logsigmoid",
    "heaviside",
    "erf",
    "erfc",
    "sigmoid_backward",
    "tanh_backward",
    "relu_backward",
    "leaky_relu_backward",
    "elu_backward",
    "gelu_backward",
    "silu_backward",
    "softplus_backward",
    "softmax_backward",
    "log_softmax_backward",
    "logsigmoid_backward",
    "heaviside_backward",
    "GELU_APPROXIMATIONS",
]

Array = Any
Namespace = Any

#: Values accepted by ``gelu(..., approximate=)`` (torch's names).
GELU_APPROXIMATIONS = ("none", "tanh")

_SQRT1_2 = math.sqrt(0.5)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# torch's constants for approximate="tanh": sqrt(2/pi) and the cubic coefficient.
_GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
_GELU_TANH_KAPPA = 0.044715


# ---------------------------------------------------------------------------------------
# erf / erfc
#
# Method (coefficients derived here, at import, from exact formulas):
#
# * |x| <= 2.5: the everywhere-positive series (Abramowitz & Stegun 7.1.6)
#       erf(x) = 2/sqrt(pi) * x * exp(-x^2) * sum_{n>=0} (2 x^2)^n / (1*3*5*...*(2n+1)).
#   All terms are positive, so Horner's rule in z = x^2 has no cancellation and the sum
#   is accurate to a few ulps; exp(-z) contributes a relative error of about z*u. The
#   coefficients 2^n / (2n+1)!! are exact rationals (fractions.Fraction) rounded once.
#   Truncation: for z <= 6.25 the first omitted term is < 1e-17 of the sum after 38 terms
#   (float64) and < 1e-9 after 26 terms (float32).
# * |x| > 2.5: erfc from Laplace's continued fraction in its even (contracted) form
#   (A&S 7.1.14):
#       erfc(a) = exp(-a^2)/sqrt(pi) * 2a / (2a^2+1 - 1*2/(2a^2+5 - 3*4/(2a^2+9 - ...)))
#   evaluated bottom-up to a fixed depth: 13 levels reach float64 rounding for a >= 2.5
#   (6 levels for float32). Beyond |x| = 30, erfc underflows in float64, so the argument
#   is clamped there, which also keeps a^2 finite for huge inputs.
#
# * float32 erfc on 0.5 < |x| <= 2.5: 1 - erf(x) cancels there (erfc(2.5) = 4e-4, so
#   erf's 6e-8 absolute rounding is 1.5e-4 relative). erfc = exp(-x^2) erfcx(x) instead,
#   with erfcx (smooth, 0.62..0.21 on that interval) a degree-12 polynomial in x - 1.5:
#   the Chebyshev interpolant of math.erfc's erfcx at 13 nodes, computed here at import.
#
# Measured against math.erf on a dense grid of [-30, 30]: max abs error 7e-16 (float64);
# about 1e-7 in float32. float32 erfc is within a few float32 ulps relative everywhere
# (it was 5e-4 relative near 2.5): exp(-x^2) is taken as exp(-h^2) exp(-(x-h)(x+h)) with
# h = x rounded to 6 fractional bits, so the rounding of x^2 does not enter.
# ---------------------------------------------------------------------------------------

_ERF_SPLIT = 2.5
_ERFC_CLAMP = 30.0


def _erf_series_coefficients(n_terms: int) -> tuple[float, ...]:
    """``2/sqrt(pi) * 2^n / (2n+1)!!`` for ``n < n_terms``, highest degree last."""
    out = []
    term = Fraction(1)  # 2^n / (2n+1)!!
    for n in range(n_terms):
        out.append(_TWO_OVER_SQRT_PI * float(term))
        term = term * 2 / (2 * n + 3)
    return tuple(out)


_ERF_SERIES_F64 = _erf_series_coefficients(38)
_ERF_SERIES_F32 = _erf_series_coefficients(26)
# (numerator (2k-1)(2k), constant 4k+1) of level k of the even continued fraction.
_ERFC_CF_F64 = tuple(((2 * k - 1) * (2 * k) * 1.0, 4.0 * k + 1.0) for k in range(13, 0, -1))
_ERFC_CF_F32 = tuple(((2 * k - 1) * (2 * k) * 1.0, 4.0 * k + 1.0) for k in range(6, 0, -1))
_ERFC_MID_LO = 0.5
_ERFC_MID_CENTER = 1.5


def _erfcx_mid_coefficients(degree: int) -> tuple[float, ...]:
    """Monomial coefficients (lowest first) in ``t = x - 1.5`` of the Chebyshev
    interpolant of ``erfcx(x) = exp(x²) erfc(x)`` on [0.5, 2.5] (t in [-1, 1])."""
    n = degree + 1
    angles = [math.pi * (k + 0.5) / n for k in range(n)]
    values = [math.exp((_ERFC_MID_CENTER + math.cos(a)) ** 2) * math.erfc(_ERFC_MID_CENTER + math.cos(a)) for a in angles]
    cheb = [2.0 / n * sum(v * math.cos(j * a) for v, a in zip(values, angles)) for j in range(n)]
    cheb[0] /= 2.0
    # Σ c_j T_j(t) in monomials, with T_{j+1} = 2t T_j − T_{j−1}.
    poly = [0.0] * n
    t_prev, t_cur = [1.0], [0.0, 1.0]
    for j, c in enumerate(cheb):
        t_j = t_prev if j == 0 else t_cur
        for i, a in enumerate(t_j):
            poly[i] += c * a
        if j >= 1:
            t_next = [0.0] + [2.0 * a for a in t_cur]
            for i, a in enumerate(t_prev):
                t_next[i] -= a
            t_prev, t_cur = t_cur, t_next
    return tuple(poly)


_ERFCX_MID_F32 = _erfcx_mid_coefficients(12)


def _erf_branches(x: Array, *, xp: Namespace) -> tuple[Array, Array, Array]:
    """Both erf branches on the whole array: ``(small, big_erfc, use_small)``.

    ``small`` is erf(x) valid where ``use_small`` (|x| <= 2.5); ``big_erfc`` is erfc(|x|)
    valid elsewhere. Each branch sees a clamped argument, so neither overflows.
    """
    f64 = x.dtype == xp.float64
    coefs = _ERF_SERIES_F64 if f64 else _ERF_SERIES_F32
    levels = _ERFC_CF_F64 if f64 else _ERFC_CF_F32
    ax = xp.abs(x)
    use_small = ax <= _ERF_SPLIT
    # Series branch on x clamped to [-2.5, 2.5].
    xs = xp.minimum(xp.maximum(x, -_ERF_SPLIT), _ERF_SPLIT)
    z = xs * xs
    p = z * coefs[-1] + coefs[-2]
    for c in coefs[-3::-1]:
        p = p * z + c
    small = xs * xp.exp(-z) * p
    # Continued-fraction branch on |x| clamped to [2.5, 30].
    a = xp.minimum(xp.maximum(ax, _ERF_SPLIT), _ERFC_CLAMP)
    a2 = a * a
    w = a2 + a2
    t = None
    for num, const in levels:
        t = num / (w + const) if t is None else num / ((w + const) - t)
    e = xp.exp(-a2) if f64 else _exp_neg_square(a, xp=xp)
    big = (_TWO_OVER_SQRT_PI * a) * e / ((w + 1.0) - t)
    return small, big, use_small


def _exp_neg_square(a: Array, *, xp: Namespace) -> Array:
    """``exp(-a²)`` for float32 ``0 <= a <= 30`` without the rounding of ``a²``.

    Rounding a² costs a relative error of a² u in exp(-a²) (2e-6 at a = 6). With
    ``h = round(64 a) / 64`` (at most 11 significant bits, so h² is exact) and
    ``δ = (a - h)(a + h)`` (small, its rounding harmless), ``exp(-a²) = exp(-h²) exp(-δ)``.
    """
    h = xp.round(a * 64.0) / 64.0
    return xp.exp(-(h * h)) * xp.exp(-((a - h) * (a + h)))


def erf(x: Array) -> Array:
    """Error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``, elementwise.

    Parameters
    ----------
    x
        Real floating array of any Array API backend.

    Returns
    -------
    array
        Same namespace, device, dtype and shape as ``x``.

    Notes
    -----
    The Array API standard has no erf, so this one is built from ``exp`` and arithmetic:
    the positive series A&S 7.1.6 for ``|x| <= 2.5`` and the even continued fraction of
    erfc (A&S 7.1.14) beyond. Absolute error below 1e-15 in float64 (the tests demand
    < 1e-14 against :func:`math.erf` on a dense grid), about 5e-7 in float32. Odd in x
    (``erf(-0.0) == -0.0``), ``erf(±inf) = ±1``, NaN propagates.
    Derivative: ``erf'(x) = 2/sqrt(pi) exp(-x^2)``.
    """
    xp = _backend.namespace_of(x)
    small, big, use_small = _erf_branches(x, xp=xp)
    m = xp.astype(use_small, x.dtype)
    # Both pieces are finite (clamped arguments), so the 0/1 blend is exact.
    return m * small + (1.0 - m) * xp.copysign(1.0 - big, x)


def _erfc(x: Array, *, xp: Namespace) -> Array:
    small, big, use_small = _erf_branches(x, xp=xp)
    if x.dtype != xp.float64:
        return _erfc_f32(x, small, big, use_small, xp=xp)
    m = xp.astype(use_small, x.dtype)
    neg = xp.astype(x < 0, x.dtype)
    tail = neg * (2.0 - big) + (1.0 - neg) * big
    return m * (1.0 - small) + (1.0 - m) * tail


def _erfc_f32(x: Array, small: Array, big: Array, use_small: Array, *, xp: Namespace) -> Array:
    """erfc for float32 (and narrower): three pieces of erfc(|x|), then the sign."""
    ax = xp.abs(x)
    # exp(-a²) erfcx(a) on a clamped to [0.5, 2.5]: finite where unused.
    a = xp.minimum(xp.maximum(ax, _ERFC_MID_LO), _ERF_SPLIT)
    t = a - _ERFC_MID_CENTER
    coefs = _ERFCX_MID_F32
    p = t * coefs[-1] + coefs[-2]
    for c in coefs[-3::-1]:
        p = p * t + c
    mid = _exp_neg_square(a, xp=xp) * p
    dtype = x.dtype
    m_low = xp.astype(ax <= _ERFC_MID_LO, dtype)
    m_mid = xp.astype(use_small, dtype) - m_low
    c_abs = m_low * (1.0 - xp.abs(small)) + m_mid * mid + (1.0 - m_low - m_mid) * big
    neg = xp.astype(x < 0, dtype)
    return neg * (2.0 - c_abs) + (1.0 - neg) * c_abs


def erfc(x: Array) -> Array:
    """Complementary error function ``erfc(x) = 1 - erf(x)``, elementwise.

    Accurate to a small *relative* error in the tail where ``1 - erf(x)`` would cancel
    (about 1e-13 relative for x > 2.5 in float64), which :func:`gelu` uses for the
    normal CDF of negative inputs. See :func:`erf` for the method.
    """
    return _erfc(x, xp=_backend.namespace_of(x))


# ---------------------------------------------------------------------------------------
# elementwise activations: private kernels take xp; public functions resolve it
# ---------------------------------------------------------------------------------------


# (array type, dtype, device) -> 0-d arrays (lo, 1) for _sigmoid.
_SIGMOID_CONSTS: dict[tuple[Any, Any, Any], tuple[Array, Array]] = {}


def _sigmoid(x: Array, *, xp: Namespace) -> Array:
    return _sigmoid_and_one(x, xp=xp)[0]


def _sigmoid_and_one(x: Array, *, xp: Namespace, out: Array | None = None) -> tuple[Array, Array]:
    """``(σ(x), 1)``: the 1 as the cached 0-d array of x's dtype and device, for σ′ = y (1 - y).

    ``out`` (NumPy, CuPy): write σ(x) there with the same five operations in the same
    order (bit-identical), allocating nothing; ``out`` may be ``x`` itself.
    """
    lo, one = _sigmoid_consts(x, xp)
    return _sigmoid_from(x, lo, one, xp, out), one


def _sigmoid_consts(x: Array, xp: Namespace) -> tuple[Array, Array]:
    """The 0-d arrays ``(lo, 1)`` of x's array type, dtype and device for :func:`_sigmoid_from`."""
    # The constants are cached 0-d arrays of x's dtype and device: NumPy converts a
    # Python float operand on every call (~0.3 us), and the rounding is the same (NEP 50
    # weak scalars take x's dtype).
    dtype = x.dtype
    dev = getattr(x, "device", None)  # (device_of's fast case, without its call)
    key = (type(x), dtype, dev if dev is not None else _backend.device_of(x))
    consts = _SIGMOID_CONSTS.get(key)
    if consts is None:
        lo = math.log(float(xp.finfo(dtype).smallest_normal))
        consts = _SIGMOID_CONSTS[key] = (
            xp.asarray(lo, dtype=dtype, device=key[2]),
            xp.asarray(1.0, dtype=dtype, device=key[2]),
        )
    return consts


def _sigmoid_from(x: Array, lo: Array, one: Array, xp: Namespace, out: Array | None) -> Array:
    """σ(x) from the constants of :func:`_sigmoid_consts`, into ``out`` if given."""
    # 1 / (1 + exp(-x)) on x clamped from below at lo = log(smallest normal): exp(-lo) is
    # 1/smallest_normal, which is finite in every IEEE dtype, so nothing overflows (no
    # warnings) and σ(x) bottoms out at ~smallest_normal instead of reaching 0. Above lo
    # the formula is accurate to a few ulps relative (also the tiny σ of very negative
    # x), with one exp and no where() (5 array operations instead of 7 for the two-sided
    # exp(min(x, 0)) / (1 + exp(-|x|)); docs/performance.md).
    if out is None:
        return one / (one + xp.exp(-xp.maximum(x, lo)))
    xp.maximum(x, lo, out=out)
    xp.negative(out, out=out)
    xp.exp(out, out=out)
    xp.add(one, out, out=out)
    return xp.divide(one, out, out=out)


def _exp_overflow_bound(xp: Namespace, dtype: Any) -> float:
    """``-log(largest finite)`` of ``dtype``, moved a few ulps towards 0 so that
    ``exp(-bound)`` is finite in that dtype (the log is rounded to the dtype)."""
    finfo = xp.finfo(dtype)
    return -math.log(float(finfo.max)) * (1.0 - 4.0 * float(finfo.eps))


def _silu_sigmoid(x: Array, *, xp: Namespace) -> Array:
    """σ(x) as torch's SiLU evaluates it, ``1 / (1 + exp(-x))``, without overflow.

    torch's exp(-x) overflows to inf below ``-log(max)`` (-709.78 in float64, -88.72 in
    float32) and σ becomes exactly 0, so SiLU gives -0 there. Here exp sees x clamped
    at that bound (no overflow warning) and a 0/1 mask zeroes σ below it: the same -0,
    NaN at -inf (x · 0, as torch) and NaN at NaN. :func:`_sigmoid` instead bottoms out
    at the smallest normal number, which made SiLU's far tail ~1e-305 instead of -0.
    """
    lo = _exp_overflow_bound(xp, x.dtype)
    return xp.astype(x >= lo, x.dtype) / (1.0 + xp.exp(-xp.maximum(x, lo)))


def _sigmoid_neg(x: Array, *, xp: Namespace) -> Array:
    """σ(-x) = exp(-max(x, 0)) / (1 + exp(-|x|)), stably."""
    return xp.exp(-xp.maximum(x, 0.0)) / (1.0 + xp.exp(-xp.abs(x)))


def _logsigmoid(x: Array, *, xp: Namespace) -> Array:
    return xp.minimum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))


def _check_beta(beta: float, who: str) -> None:
    if not beta > 0:
        raise ValueError(f"{who}: beta must be > 0, got {beta!r}")


def _softplus(x: Array, beta: float, threshold: float, *, xp: Namespace) -> Array:
    z = x * beta if beta != 1.0 else x
    # torch reverts to the identity where beta * x > threshold.
    m = xp.astype(z > threshold, x.dtype)
    # log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}), on z clamped to the threshold so that
    # this piece is finite where it is not used (the blend below stays exact).
    zc = xp.minimum(z, threshold)
    sp = xp.maximum(zc, 0.0) + xp.log1p(xp.exp(-xp.abs(zc)))
    if beta != 1.0:
        sp = sp / beta
    # The identity piece only matters where x > threshold/beta; clamping it from below
    # far under that keeps 0 * x finite for x = -inf without touching the used values.
    lo = min(0.0, 2.0 * threshold / beta) - 1.0
    return (1.0 - m) * sp + m * xp.maximum(x, lo)


def _softmax(x: Array, dim: int, *, xp: Namespace) -> Array:
    # Subtracting the max leaves softmax unchanged and keeps every exponent <= 0.
    e = xp.exp(x - xp.max(x, axis=dim, keepdims=True))
    return e / xp.sum(e, axis=dim, keepdims=True)


def _log_softmax(x: Array, dim: int, *, xp: Namespace) -> Array:
    z = x - xp.max(x, axis=dim, keepdims=True)
    # The sum holds exp(0) = 1, so the log never sees 0.
    return z - xp.log(xp.sum(xp.exp(z), axis=dim, keepdims=True))


def _norm_cdf(x: Array, *, xp: Namespace) -> Array:
    """Standard normal CDF Φ(x) = erfc(-x/√2)/2, accurate relative also for x << 0."""
    return 0.5 * _erfc(x * -_SQRT1_2, xp=xp)


def _gelu_tanh_inner(x: Array, *, xp: Namespace) -> Array:
    return xp.tanh(_GELU_TANH_BETA * (x + _GELU_TANH_KAPPA * (x * x * x)))


def _check_approximate(approximate: str, who: str) -> None:
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(
            f"{who}: approximate must be one of {GELU_APPROXIMATIONS} (as torch), got "
            f"{approximate!r}"
        )


def _check_dim(x: Array, dim: int, who: str) -> None:
    nd = x.ndim
    if nd == 0:
        raise ValueError(f"{who}: expected an input with at least 1 dimension, got a 0-d array")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -nd <= dim < nd:
        raise ValueError(
            f"{who}: dim must be an int in [{-nd}, {nd}) for an input of shape "
            f"{tuple(x.shape)}, got {dim!r}"
        )


def sigmoid(x: Array) -> Array:
    """Logistic sigmoid ``σ(x) = 1 / (1 + exp(-x))``.

    Notes
    -----
    Forward: ``1 / (1 + exp(-max(x, lo)))`` with ``lo = log(smallest normal)`` of the
    dtype (never overflows; below ``lo`` the result stays at about the smallest normal
    number instead of underflowing to 0). Backward: ``dx = dy ⊙ y (1 - y)`` from the output
    (:func:`sigmoid_backward`).
    """
    return _sigmoid(x, xp=_backend.namespace_of(x))


def tanh(x: Array) -> Array:
    """Hyperbolic tangent. Backward: ``dx = dy ⊙ (1 - y²)`` (:func:`tanh_backward`)."""
    return _backend.namespace_of(x).tanh(x)


def relu(x: Array) -> Array:
    """``max(x, 0)`` (NaN propagates, as torch). Backward: ``dx = dy ⊙ 1[y > 0]``."""
    return _backend.namespace_of(x).maximum(x, 0.0)


def leaky_relu(x: Array, negative_slope: float = 0.01) -> Array:
    """``x`` for ``x > 0``, else ``negative_slope * x``.

    Parameters
    ----------
    x
        Real floating array.
    negative_slope
        Slope for ``x <= 0`` (torch's default 0.01).

    Returns
    -------
    array
        Same namespace, device, dtype and shape as ``x``.

    Notes
    -----
    Backward: ``dx = dy`` where ``x > 0``, else ``negative_slope * dy``.
    """
    return _leaky_relu(x, float(negative_slope), xp=_backend.namespace_of(x))


def _leaky_relu(x: Array, slope: float, *, xp: Namespace) -> Array:
    # max(x, s x) picks x for x > 0 and s x for x < 0 whenever s <= 1 (min when s > 1):
    # exactly torch's where(x > 0, x, s x), without a where. For s = 0, +inf * 0 would be
    # NaN where torch gives +inf: min(x, 0) * 0 keeps torch's values (NaN only at -inf).
    if slope == 0.0:
        return xp.maximum(x, xp.minimum(x, 0.0) * 0.0)
    return xp.maximum(x, x * slope) if slope <= 1.0 else xp.minimum(x, x * slope)


def _leaky_relu_factor(x: Array, slope: float, *, xp: Namespace) -> Array:
    """1 where x > 0, else slope (exactly: m + (1 - m) s with m in {0, 1})."""
    m = xp.astype(x > 0, x.dtype)
    return xp.maximum(m, slope) if 0.0 <= slope <= 1.0 else m + (1.0 - m) * slope


def elu(x: Array, alpha: float = 1.0) -> Array:
    """Exponential linear unit: ``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Parameters
    ----------
    x
        Real floating array.
    alpha
        Value approached for ``x -> -inf`` (torch's default 1.0).

    Returns
    -------
    array
        Same namespace, device, dtype and shape as ``x``.

    Notes
    -----
    Forward ``max(x, 0) + alpha expm1(min(x, 0))``: exactly one term is nonzero, expm1
    is accurate near 0 and never sees a positive argument. Backward: ``dx = dy`` where
    ``x > 0``, else ``dy ⊙ alpha exp(x)``.
    """
    return _elu(x, float(alpha), xp=_backend.namespace_of(x))


def _elu(x: Array, alpha: float, *, xp: Namespace) -> Array:
    return xp.maximum(x, 0.0) + alpha * xp.expm1(xp.minimum(x, 0.0))


def _elu_factor(x: Array, alpha: float, *, xp: Namespace) -> Array:
    """dy/dx of ELU: alpha exp(x) where x <= 0, else 1 (also at NaN, as torch)."""
    # A where, not a 0/1 blend: the blend would turn torch's 1 at NaN into NaN.
    return xp.where(x <= 0, alpha * xp.exp(xp.minimum(x, 0.0)), 1.0)


def gelu(x: Array, approximate: str = "none") -> Array:
    """Gaussian error linear unit ``x Φ(x)``; ``approximate="tanh"`` as torch.

    Parameters
    ----------
    x
        Real floating array.
    approximate
        ``"none"``: exact, ``Φ(x) = erfc(-x/√2)/2`` with this module's :func:`erfc`.
        ``"tanh"``: ``0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³)))``.

    Notes
    -----
    Backward (exact): ``dx = dy ⊙ (Φ(x) + x φ(x))`` with ``φ(x) = exp(-x²/2)/√(2π)``.
    """
    _check_approximate(approximate, "gelu")
    xp = _backend.namespace_of(x)
    if approximate == "tanh":
        return (0.5 * x) * (1.0 + _gelu_tanh_inner(x, xp=xp))
    return x * _norm_cdf(x, xp=xp)


def silu(x: Array) -> Array:
    """SiLU / swish ``x σ(x)``. Backward: ``dx = dy ⊙ σ(x) (1 + x (1 - σ(x)))``.

    σ is torch's ``1 / (1 + exp(-x))``, exactly 0 where ``exp(-x)`` overflows, so the
    far negative tail is -0 as in torch (see ``_silu_sigmoid``).
    """
    xp = _backend.namespace_of(x)
    return x * _silu_sigmoid(x, xp=xp)


def softplus(x: Array, beta: float = 1.0, threshold: float = 20.0) -> Array:
    """``log(1 + exp(beta x)) / beta``, and ``x`` where ``beta x > threshold`` (torch).

    Parameters
    ----------
    x
        Real floating array.
    beta
        Sharpness (torch's default 1.0).
    threshold
        Above ``beta x > threshold`` the result is ``x`` itself (torch's default 20.0).

    Returns
    -------
    array
        Same namespace, device, dtype and shape as ``x``.

    Notes
    -----
    Forward: ``(max(z, 0) + log1p(exp(-|z|))) / beta`` with ``z = beta x``, finite for any
    x. Backward: ``dx = dy ⊙ σ(beta x)`` (``dy`` above the threshold).
    """
    _check_beta(beta, "softplus")
    return _softplus(x, float(beta), float(threshold), xp=_backend.namespace_of(x))


def softmax(x: Array, dim: int = -1) -> Array:
    """``exp(x) / Σ exp(x)`` along ``dim``, computed as ``exp(x - max)`` (no overflow).

    Parameters
    ----------
    x
        Real floating array with at least one dimension.
    dim
        Axis to normalise (default -1).

    Returns
    -------
    array
        Same namespace, device, dtype and shape as ``x``; sums to 1 along ``dim``.

    Notes
    -----
    Backward: ``dx = y ⊙ (dy - Σ_dim dy ⊙ y)`` (:func:`softmax_backward`).
    """
    _check_dim(x, dim, "softmax")
    return _softmax(x, dim, xp=_backend.namespace_of(x))


def log_softmax(x: Array, dim: int = -1) -> Array:
    """``x - logsumexp(x)`` along ``dim``, with the max subtracted first (stable).

    Parameters
    ----------
    x
        Real floating array with at least one dimension.
    dim
        Axis to normalise (default -1).

    Returns
    -------
    array
        Same namespace, device, dtype and shape as ``x``.

    Notes
    -----
    Backward: ``dx = dy - softmax(x) ⊙ Σ_dim dy`` with ``softmax(x) = exp(y)``.
    """
    _check_dim(x, dim, "log_softmax")
    return _log_softmax(x, dim, xp=_backend.namespace_of(x))


def logsigmoid(x: Array) -> Array:
    """``log σ(x) = min(x, 0) - log1p(exp(-|x|))``, finite for any x.

    Backward: ``dx = dy ⊙ σ(-x)`` (:func:`logsigmoid_backward`).
    """
    return _logsigmoid(x, xp=_backend.namespace_of(x))


def heaviside(x: Array, values: float = 0.0) -> Array:
    """Perceptron step: 1 where ``x > 0``, ``values`` where ``x == 0``, else 0, in x's dtype.

    As ``torch.heaviside(x, values)`` with a scalar ``values`` (default 0, the
    perceptron's convention); NaN gives 0 as there. The derivative is taken as 0
    everywhere (:func:`heaviside_backward`): the step has no useful gradient, which is
    why the perceptron uses its own learning rule.
    """
    xp = _backend.namespace_of(x)
    return _heaviside(x, float(values), xp=xp)


def _heaviside(x: Array, values: float = 0.0, *, xp: Namespace) -> Array:
    y = xp.astype(x > 0, x.dtype)
    if values != 0.0:
        y = y + values * xp.astype(x == 0, x.dtype)
    return y


# ---------------------------------------------------------------------------------------
# derivatives
# ---------------------------------------------------------------------------------------


def sigmoid_backward(dy: Array, y: Array) -> Array:
    """``dx = dy ⊙ y (1 - y)`` from the stored output ``y = sigmoid(x)``."""
    _backend.namespace_of(dy, y)  # a mixed-backend pair raises TypeError here
    return dy * y * (1.0 - y)


def tanh_backward(dy: Array, y: Array) -> Array:
    """``dx = dy ⊙ (1 - y²)`` from the stored output ``y = tanh(x)``."""
    _backend.namespace_of(dy, y)  # a mixed-backend pair raises TypeError here
    return dy * (1.0 - y * y)


def relu_backward(dy: Array, y: Array) -> Array:
    """``dx = 0`` where ``y <= 0`` else ``dy``; ``y`` is the output (or the input: same mask).

    A NaN passes ``dy`` through, as torch's ``threshold_backward``.
    """
    xp = _backend.namespace_of(dy, y)
    return _relu_backward(dy, y, xp=xp)


def _relu_backward(dy: Array, y: Array, *, xp: Namespace) -> Array:
    # not (y <= 0) rather than y > 0: torch passes dy through at NaN.
    return dy * xp.astype(~(y <= 0), dy.dtype)


def leaky_relu_backward(dy: Array, x: Array, negative_slope: float = 0.01) -> Array:
    """``dx = dy`` where ``x > 0``, else ``negative_slope * dy``."""
    xp = _backend.namespace_of(dy, x)
    return dy * _leaky_relu_factor(x, float(negative_slope), xp=xp)


def elu_backward(dy: Array, x: Array, alpha: float = 1.0) -> Array:
    """``dx = dy`` where ``x > 0``, else ``dy ⊙ alpha exp(x)``."""
    xp = _backend.namespace_of(dy, x)
    return dy * _elu_factor(x, float(alpha), xp=xp)


def gelu_backward(dy: Array, x: Array, approximate: str = "none") -> Array:
    """Gradient of :func:`gelu` with respect to its input ``x``.

    Exact: ``dx = dy ⊙ (Φ(x) + x φ(x))``. Tanh form (torch's formula): with
    ``t = tanh(√(2/π)(x + κx³))``, ``dx = dy ⊙ (0.5(1 + t) + 0.5x(1 - t²)√(2/π)(1 + 3κx²))``.
    """
    _check_approximate(approximate, "gelu_backward")
    xp = _backend.namespace_of(dy, x)
    if approximate == "tanh":
        return _gelu_tanh_backward(dy, x, _gelu_tanh_inner(x, xp=xp))
    return _gelu_backward(dy, x, _norm_cdf(x, xp=xp), xp=xp)


def _gelu_backward(dy: Array, x: Array, cdf: Array, *, xp: Namespace) -> Array:
    pdf = xp.exp(-0.5 * (x * x)) * _INV_SQRT_2PI
    return dy * (cdf + x * pdf)


def _gelu_tanh_backward(dy: Array, x: Array, t: Array) -> Array:
    x2 = x * x
    left = 0.5 * (1.0 + t)
    right = (0.5 * x) * (1.0 - t * t) * (_GELU_TANH_BETA * (1.0 + (3.0 * _GELU_TANH_KAPPA) * x2))
    return dy * (left + right)


def silu_backward(dy: Array, x: Array) -> Array:
    """``dx = dy ⊙ s (1 + x (1 - s))`` with ``s = σ(x)``."""
    xp = _backend.namespace_of(dy, x)
    return _silu_backward(dy, x, _silu_sigmoid(x, xp=xp))


def _silu_backward(dy: Array, x: Array, s: Array) -> Array:
    return dy * s * (1.0 + x * (1.0 - s))


def softplus_backward(dy: Array, x: Array, beta: float = 1.0, threshold: float = 20.0) -> Array:
    """``dx = dy ⊙ σ(beta x)``, and ``dy`` where ``beta x > threshold`` (torch)."""
    _check_beta(beta, "softplus_backward")
    xp = _backend.namespace_of(dy, x)
    return _softplus_backward(dy, x, float(beta), float(threshold), xp=xp)


def _softplus_backward(dy: Array, x: Array, beta: float, threshold: float, *, xp: Namespace) -> Array:
    z = x * beta if beta != 1.0 else x
    m = xp.astype(z > threshold, x.dtype)
    return dy * (m + (1.0 - m) * _sigmoid(z, xp=xp))


def softmax_backward(dy: Array, y: Array, dim: int = -1) -> Array:
    """``dx = y ⊙ (dy - Σ_dim dy ⊙ y)``: the Jacobian ``diag(y) - y yᵀ`` applied to ``dy``."""
    xp = _backend.namespace_of(dy, y)
    return y * (dy - xp.sum(dy * y, axis=dim, keepdims=True))


def log_softmax_backward(dy: Array, y: Array, dim: int = -1) -> Array:
    """``dx = dy - exp(y) ⊙ Σ_dim dy`` from the stored output ``y = log_softmax(x)``."""
    xp = _backend.namespace_of(dy, y)
    return dy - xp.exp(y) * xp.sum(dy, axis=dim, keepdims=True)


def logsigmoid_backward(dy: Array, x: Array) -> Array:
    """``dx = dy ⊙ σ(-x)``, with σ(-x) computed from ``exp(-|x|)`` (stable)."""
    return dy * _sigmoid_neg(x, xp=_backend.namespace_of(dy, x))


def heaviside_backward(dy: Array, x: Array | None = None) -> Array:
    """Zero gradient (see :func:`heaviside`); ``x`` is accepted for symmetry and ignored."""
    return _backend.namespace_of(dy).zeros_like(dy)
