"""Finite-difference gradient checks for modules and losses.

The analytic gradients come from the code under test (``backward`` / the loss's returned
gradient); the numeric ones from central differences computed in float64 on the same
backend, so a check exercises the backend's own arithmetic. Usable on your own layers::

    from xpnet.testing import gradcheck
    gradcheck(MyLayer(4, 3), x)          # raises GradcheckError with the worst entry
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _backend
from ..module import Module

__all__ = ["GradcheckError", "GradcheckResult", "gradcheck", "gradcheck_loss", "numeric_grad"]

# Central differences have truncation error O(eps²) and rounding error O(u/eps) with
# u ≈ 1.1e-16 in float64: eps = 1e-6 balances them near 1e-10 for O(1) curvature, so a
# correct gradient agrees to ~1e-7 relative and a wrong one is off by O(1).
DEFAULT_EPS = 1e-6
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-7


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with central finite differences."""


@dataclass
class GradcheckResult:
    """Per-tensor maximum absolute errors of a passed check (``"input"``, parameter names)."""

    max_abs_err: dict[str, float] = field(default_factory=dict)


def _perturbable(a: Any, *, who: str) -> tuple[Any, np.ndarray]:
    xp = _backend.namespace_of(a)
    if _backend.dtype_name(a.dtype) != "float64":
        raise TypeError(
            f"{who}: finite differences need float64 arrays, got {_backend.dtype_name(a.dtype)}. "
            f"Hint: module.to(dtype='float64') and xpnet.asarray(x, dtype='float64')"
        )
    return xp, _backend.to_numpy(a).astype(np.float64)


def numeric_grad(f: Callable[[Any], float], a: Any, *, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Central-difference gradient of scalar ``f`` at array ``a`` (any backend), on the host.

    ``f`` receives an array of ``a``'s backend and device with one entry perturbed.
    """
    xp, host = _perturbable(a, who="numeric_grad")
    dev = _backend.device_of(a)
    grad = np.zeros_like(host)
    flat = host.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        fp = f(_backend.asarray(host, xp, device=dev))
        flat[i] = orig - eps
        fm = f(_backend.asarray(host, xp, device=dev))
        flat[i] = orig
        gflat[i] = (fp - fm) / (2.0 * eps)
    return grad


def _compare(name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> float:
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"{name}: analytic gradient has shape {analytic.shape}, expected {numeric.shape}")
    err = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    bad = err > bound
    if np.any(bad) or not np.all(np.isfinite(analytic)):
        idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(err), err - bound, np.inf))), err.shape)
        raise GradcheckError(
            f"gradient of {name} disagrees with finite differences at index {tuple(int(i) for i in idx)}: "
            f"analytic {float(analytic[idx]):.10g}, numeric {float(numeric[idx]):.10g} (|diff| {err[idx]:.3e} > "
            f"atol {atol:g} + rtol {rtol:g} * |numeric|); {int(bad.sum())} of {bad.size} entries off"
        )
    return float(err.max()) if err.size else 0.0


def gradcheck(
    module: Module,
    x: Any,
    *,
    dy: Any = None,
    eps: float = DEFAULT_EPS,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    check_params: bool = True,
    seed: int = 0,
) -> GradcheckResult:
    """Check ``module.backward`` against central differences in float64.

    The scalar checked is ``L = Σ forward(x) ⊙ dy`` for a fixed random ``dy`` (so
    dL/dy = dy and every output entry is weighted differently), and both dL/dx and
    every parameter's gradient are compared.

    Parameters
    ----------
    module
        A module whose parameters are float64 on ``x``'s backend.
    x
        Float64 input on the module's backend; keep it away from kinks (ReLU at 0). An
        integer input (indices into an ``Embedding``) is not perturbed: ``backward`` must
        return ``None`` for it and only the parameter gradients are checked.
    dy
        Upstream gradient; default a seeded standard normal of the output's shape.
    eps, rtol, atol
        Step and tolerances.
    check_params
        Also check parameter gradients.
    seed
        Seed of the default ``dy``.

    Returns
    -------
    GradcheckResult
        Max absolute errors per checked tensor.

    Raises
    ------
    GradcheckError
        Naming the tensor and the worst index.
    """
    xp = _backend.namespace_of(x)
    # Integer inputs (Embedding's indices) have no gradient: only the parameters are checked.
    integer_input = xp.isdtype(x.dtype, "integral")
    if not integer_input:
        _perturbable(x, who="gradcheck")
    was_training = module.training
    module.train()
    dev = _backend.device_of(x)
    y = module.forward(x)
    if dy is None:
        host_dy = np.random.default_rng(seed).standard_normal(tuple(y.shape))
        dy = _backend.asarray(host_dy, xp, device=dev, dtype="float64")
    host_dy = _backend.to_numpy(dy)
    saved = {name: p.grad for name, p in module.named_parameters()}
    module.zero_grad()
    dx = module.backward(dy)
    grads = {name: (None if p.grad is None else _backend.to_numpy(p.grad)) for name, p in module.named_parameters()}

    def objective(out: Any) -> float:
        return float(np.sum(_backend.to_numpy(out) * host_dy))

    def eval_at(inp: Any) -> float:
        module.eval()
        try:
            return objective(module.forward(inp))
        finally:
            module.train()

    result = GradcheckResult()
    if integer_input:
        if dx is not None:
            raise GradcheckError("input: the input holds integers, which have no gradient, but backward returned one")
    else:
        result.max_abs_err["input"] = _compare("input", _backend.to_numpy(dx), numeric_grad(eval_at, x, eps=eps), rtol, atol)
    if check_params:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            _perturbable(p.data, who=f"gradcheck ({name})")
            original = p.data

            def eval_param(val: Any, p: Any = p) -> float:
                p.data = val
                return eval_at(x)

            try:
                num = numeric_grad(eval_param, original, eps=eps)
            finally:
                p.data = original
            if grads[name] is None:
                raise GradcheckError(f"{name}: backward left grad as None")
            result.max_abs_err[name] = _compare(name, grads[name], num, rtol, atol)
    for name, p in module.named_parameters():
        p.grad = saved[name]
    module.train(was_training)
    return result


def gradcheck_loss(
    loss_fn: Callable[[Any, Any], tuple[Any, Any]],
    input: Any,
    target: Any,
    *,
    eps: float = DEFAULT_EPS,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> GradcheckResult:
    """Check the gradient a loss returns, ``loss_fn(input, target) -> (loss, grad)``.

    ``input`` must be float64; ``target`` is passed through unchanged.
    """
    _perturbable(input, who="gradcheck_loss")
    loss, grad = loss_fn(input, target)
    if tuple(grad.shape) != tuple(input.shape):
        raise GradcheckError(f"loss gradient has shape {tuple(grad.shape)}, expected {tuple(input.shape)}")
    num = numeric_grad(lambda a: float(_backend.to_numpy(loss_fn(a, target)[0])), input, eps=eps)
    return GradcheckResult({"input": _compare("input", _backend.to_numpy(grad), num, rtol, atol)})
