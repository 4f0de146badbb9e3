"""``assert_close``: compare arrays of any backends, with dtype-aware tolerances.

Both arrays are copied to the host (:func:`xpnet._backend.to_numpy`) and compared there,
so a CuPy result can be checked against a NumPy reference, or torch against
array-api-strict, with one call::

    from xpnet.testing import assert_close
    assert_close(model(x_gpu), expected_host)               # values only
    assert_close(y, ref, check_namespace=True, check_device=True)

An element passes when ``|actual - expected| <= atol + rtol * |expected|`` (NumPy's and
torch's rule). On failure the message names the worst element (the one furthest beyond its
tolerance), both values there, the largest absolute and relative differences, how many
elements fail, and any namespace / device / dtype / shape difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _backend

__all__ = [
    "DEFAULT_TOLERANCES",
    "assert_close",
    "default_tolerances",
    "diff_stats",
    "DiffStats",
]

# Default (rtol, atol) per dtype, for comparing the result of ONE computation (a forward
# pass, a gradient, one optimizer step) done by two backends. They differ only through
# rounding: summation order in matmul/sum (BLAS blocking, pairwise vs sequential sums,
# GPU tree reductions), fused multiply-add, and libm's exp/log/tanh implementations.
# The error of an n-term dot product is bounded by ~n·u·Σ|aᵢbᵢ| (u = unit roundoff) and is
# ~sqrt(n)·u·Σ|aᵢbᵢ| in practice, so an element is off by a few ulps of the *terms*, not of
# the result. Measured on this project's CPU CI (docs/parity.md): torch vs NumPy matmul of
# 256×n by n×256 standard normals differs by 0 for n <= 512 (same kernel path) and, for
# n = 2048, by 1.7e-13 (float64) and 1.1e-4 absolute on values up to ~200 (float32); with
# inputs scaled to O(1) outputs (activations of a normalized layer), by 2.9e-6 (float32).
#
# float64 (u = 1.1e-16): rtol 1e-10 is ~1e6 u, it tolerates reductions over millions of
#   elements and a condition number of ~1e3, yet a real bug (a wrong formula, a float32
#   round trip, a perturbation of 1e-9) is still caught.
FLOAT64_RTOL = 1e-10
#   atol 1e-12 covers entries that are sums cancelling to ~0 (their error scales with the
#   size of the terms, not of the result), for O(1) terms.
FLOAT64_ATOL = 1e-12
# float32 (u = 6e-8): rtol 1e-5 is ~170 u, torch.testing's 1.3e-6 widened for
#   cross-library sums (torch and NumPy block their sgemm differently); atol 1e-5 (as
#   torch.testing) is the cancellation floor for O(1) outputs of sums over thousands of
#   terms. Results of much larger magnitude need an atol scaled to them.
FLOAT32_RTOL = 1e-5
FLOAT32_ATOL = 1e-5
# float16 (u = 4.9e-4): torch.testing's values.
FLOAT16_RTOL = 1e-3
FLOAT16_ATOL = 1e-5

#: ``dtype name -> (rtol, atol)``; integer and boolean dtypes compare exactly.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (FLOAT64_RTOL, FLOAT64_ATOL),
    "float32": (FLOAT32_RTOL, FLOAT32_ATOL),
    "float16": (FLOAT16_RTOL, FLOAT16_ATOL),
}

_PRECISION_RANK = {"float16": 0, "float32": 1, "float64": 2}


def default_tolerances(*dtypes: Any) -> tuple[float, float]:
    """Default ``(rtol, atol)`` for comparing arrays of these dtypes.

    With several dtypes the least precise float dtype decides (comparing float32 with
    float64 can be no tighter than float32). Non-float dtypes give ``(0.0, 0.0)``.

    Parameters
    ----------
    *dtypes
        Dtypes of any namespace, or names such as ``"float32"``.

    Returns
    -------
    (rtol, atol)
    """
    names = [_backend.dtype_name(d) if not isinstance(d, str) else d for d in dtypes]
    floats = [n for n in names if n in DEFAULT_TOLERANCES]
    if not floats:
        return 0.0, 0.0
    worst = min(floats, key=lambda n: _PRECISION_RANK[n])
    return DEFAULT_TOLERANCES[worst]


@dataclass(frozen=True)
class DiffStats:
    """Summary of the difference between two host arrays of equal shape.

    Attributes
    ----------
    max_abs
        ``max |a - e|`` (``inf`` at a non-finite mismatch, see :func:`diff_stats`).
    max_rel
        ``max |a - e| / |e|`` over elements with ``e != 0`` (0.0 when there are none).
    norm_rel
        Normwise relative difference ``max |a - e| / max |e|``: stable when some
        reference entries are ~0, which is what trajectory parity compares.
    ref_max
        ``max |e|`` over finite entries.
    """

    max_abs: float
    max_rel: float
    norm_rel: float
    ref_max: float


def _host(x: Any) -> np.ndarray:
    return np.asarray(_backend.to_numpy(x))


def diff_stats(actual: Any, expected: Any, *, equal_nan: bool = False) -> DiffStats:
    """Absolute, elementwise-relative and normwise-relative differences of two arrays.

    Parameters
    ----------
    actual, expected
        Arrays of any backend (copied to the host), broadcastable to each other.
    equal_nan
        Count positions where both are NaN as equal (like :func:`assert_close`'s
        ``equal_nan``, off by default: two results that are both NaN agree on nothing).

    Returns
    -------
    DiffStats
        Positions where both are the same infinity count as equal; any other non-finite
        position (NaN on either side unless ``equal_nan``, inf against a finite value)
        makes ``max_abs``, ``max_rel`` and ``norm_rel`` ``inf``.
    """
    a = _host(actual).astype(np.float64, copy=False)
    e = _host(expected).astype(np.float64, copy=False)
    a, e = np.broadcast_arrays(a, e)
    if a.size == 0:
        return DiffStats(0.0, 0.0, 0.0, 0.0)
    same_nonfinite = np.isinf(a) & (a == e)
    if equal_nan:
        same_nonfinite |= np.isnan(a) & np.isnan(e)
    finite = np.isfinite(a) & np.isfinite(e)
    if np.any(~finite & ~same_nonfinite):
        return DiffStats(float("inf"), float("inf"), float("inf"), _finite_max(e))
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(finite, np.abs(a - e), 0.0)
        abs_e = np.abs(np.where(finite, e, 0.0))
        rel = np.where(abs_e > 0, err / np.where(abs_e > 0, abs_e, 1.0), 0.0)
    max_abs = float(err.max())
    ref_max = float(abs_e.max())
    norm_rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else float("inf"))
    return DiffStats(max_abs, float(rel.max()), norm_rel, ref_max)


def _finite_max(e: np.ndarray) -> float:
    f = np.abs(e[np.isfinite(e)])
    return float(f.max()) if f.size else 0.0


def _describe(x: Any) -> dict[str, str]:
    if _backend.is_array(x):
        xp = _backend.namespace_of(x)
        return {
            "namespace": _backend.backend_name(xp),
            "device": str(_backend.device_of(x)),
            "dtype": _backend.dtype_name(x.dtype),
            "shape": str(tuple(int(s) for s in x.shape)),
        }
    host = np.asarray(x)
    return {
        "namespace": f"python {type(x).__name__}",
        "device": "host",
        "dtype": host.dtype.name,
        "shape": str(host.shape),
    }


def _fmt_index(idx: tuple[int, ...]) -> str:
    return "()" if not idx else "(" + ", ".join(str(int(i)) for i in idx) + ("," if len(idx) == 1 else "") + ")"


def assert_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check_namespace: bool = False,
    check_device: bool = False,
    check_dtype: bool = True,
    check_shape: bool = True,
    equal_nan: bool = False,
    msg: str | None = None,
) -> None:
    """Assert that two arrays (of any backends) are elementwise close.

    Parameters
    ----------
    actual, expected
        Arrays of any backend (NumPy, CuPy, torch, array-api-strict, ...), or host data
        (lists, scalars) for ``expected``.
    rtol, atol
        Relative and absolute tolerance; ``None`` takes the default for the dtypes
        (:data:`DEFAULT_TOLERANCES`: float64 1e-10 / 1e-12, float32 1e-5 / 1e-5,
        float16 1e-3 / 1e-5, exact for integers and booleans). When only one is given the
        other is the dtype default.
    check_namespace
        Also require the same array namespace (``numpy`` vs ``torch`` fails).
    check_device
        Also require the same device (compared by its string form).
    check_dtype
        Require the same dtype (by name: float32 of torch equals float32 of NumPy).
    check_shape
        Require identical shapes; with False, shapes only need to broadcast.
    equal_nan
        Treat NaN as equal to NaN. Off by default, as in ``torch.testing.assert_close``
        (NumPy's ``assert_allclose`` defaults to True): a result that is NaN where the
        reference is NaN too usually means both diverged, which is rarely what a test
        means to accept.
    msg
        Text prepended to the failure message.

    Raises
    ------
    AssertionError
        With the worst mismatch's index, both values, the max absolute and relative
        differences, the number of mismatching elements and every requested metadata
        difference.

    Examples
    --------
    >>> import numpy as np
    >>> assert_close(np.array([1.0, 2.0]), [1.0, 2.0 + 1e-12])
    """
    da, de = _describe(actual), _describe(expected)
    problems: list[str] = []
    if check_namespace and da["namespace"] != de["namespace"]:
        problems.append(f"namespace: actual {da['namespace']}, expected {de['namespace']}")
    if check_device and da["device"] != de["device"]:
        problems.append(f"device: actual {da['device']}, expected {de['device']}")
    if check_dtype and da["dtype"] != de["dtype"]:
        problems.append(f"dtype: actual {da['dtype']}, expected {de['dtype']}")
    if check_shape and da["shape"] != de["shape"]:
        problems.append(f"shape: actual {da['shape']}, expected {de['shape']}")

    a = _host(actual)
    e = _host(expected)
    d_rtol, d_atol = default_tolerances(a.dtype.name, e.dtype.name)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)

    value_lines: list[str] = []
    try:
        a_b, e_b = np.broadcast_arrays(a, e)
    except ValueError:
        if not any(p.startswith("shape") for p in problems):
            problems.append(f"shape: actual {da['shape']}, expected {de['shape']} (not broadcastable)")
        a_b = e_b = None
    if a_b is not None and a_b.size:
        value_lines = _value_mismatch(a_b, e_b, rtol, atol, equal_nan)

    if problems or value_lines:
        head = f"{msg}: " if msg else ""
        lines = [f"{head}arrays are not close (rtol={rtol:g}, atol={atol:g})"]
        lines += [f"  {p}" for p in problems]
        lines += [f"  {v}" for v in value_lines]
        raise AssertionError("\n".join(lines))


def _value_mismatch(a: np.ndarray, e: np.ndarray, rtol: float, atol: float, equal_nan: bool) -> list[str]:
    if a.dtype == bool or e.dtype == bool:
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
    else:
        a64, e64 = a.astype(np.float64, copy=False), e.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a64 - e64)
        bound = atol + rtol * np.abs(e64)
        both_finite = np.isfinite(a64) & np.isfinite(e64)
        # Non-finite entries must match exactly (inf == inf); an infinite expected value
        # would otherwise make its own tolerance infinite.
        ok = np.where(both_finite, err <= bound, a64 == e64)
        if equal_nan:
            ok |= np.isnan(a64) & np.isnan(e64)
    bad = ~ok
    n_bad = int(bad.sum())
    if n_bad == 0:
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        # How many times over its tolerance each element is; non-finite mismatches first.
        excess = np.where(np.isfinite(err), err / np.maximum(bound, np.finfo(np.float64).tiny), np.inf)
        excess = np.where(bad, excess, -1.0)
        rel = np.where(np.abs(e64) > 0, err / np.abs(e64), np.where(err > 0, np.inf, 0.0))
    idx = np.unravel_index(int(np.argmax(excess)), a.shape)
    finite_err = np.where(np.isfinite(err), err, -1.0)
    finite_rel = np.where(np.isfinite(rel), rel, -1.0)
    i_abs = np.unravel_index(int(np.argmax(finite_err)), a.shape)
    i_rel = np.unravel_index(int(np.argmax(finite_rel)), a.shape)
    lines = [
        f"mismatched elements: {n_bad} / {a.size} ({100.0 * n_bad / a.size:.3g}%)",
        f"worst mismatch at index {_fmt_index(idx)}: actual {float(a64[idx])!r}, expected {float(e64[idx])!r}, "
        f"abs diff {err[idx]:.3e}, rel diff {rel[idx]:.3e} (allowed {bound[idx]:.3e})",
    ]
    if float(finite_err[i_abs]) >= 0:
        lines.append(f"greatest abs diff: {float(finite_err[i_abs]):.3e} at index {_fmt_index(i_abs)}")
    if float(finite_rel[i_rel]) >= 0:
        lines.append(f"greatest rel diff: {float(finite_rel[i_rel]):.3e} at index {_fmt_index(i_rel)}")
    return lines
