"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import Any

from ..module import Parameter
from . import functional as F
from .optimizer import Optimizer, ParamsT, _check_nonneg, _real

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD: same defaults and update).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Learning rate (default 1e-3, torch's).
    momentum
        Momentum factor μ (default 0).
    dampening
        Dampening τ of the momentum (default 0).
    weight_decay
        Coupled L2 penalty λ: the gradient becomes ``g + λ p``. The lecture's
        regularizer ``λ' ‖W‖²`` (gradient ``2λ' W``) is ``weight_decay = 2λ'``.
    nesterov
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    With ``d = ±g + λ p``: ``b ← d`` at the first step, then ``b ← μ b + (1 − τ) d``;
    ``p ← p − lr · (d + μ b)`` with Nesterov, ``p ← p − lr · b`` without, and
    ``p ← p − lr · d`` when ``momentum == 0``. See :func:`xpnet.optim.functional.sgd_step`.
    State per parameter: ``momentum_buffer`` (only when ``momentum != 0``).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        self._validate_group(dict(defaults))
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        who = type(self).__name__
        _check_nonneg(group, "lr", "Invalid learning rate", who)
        momentum = _check_nonneg(group, "momentum", "Invalid momentum value", who)
        _check_nonneg(group, "weight_decay", "Invalid weight_decay value", who)
        dampening = _real(group, "dampening", who)
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        if not group["momentum"] and not group["weight_decay"] and not group["maximize"]:
            # Plain SGD, u = lr g: what _sgd_update computes then, without its dispatch.
            return F._scaled(g, float(group["lr"]), True, scratch)
        u, _ = F._sgd_update(
            p,
            g,
            state.get("momentum_buffer"),
            lr=float(group["lr"]),
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            inplace=True,
            scratch=scratch,
        )
        return u

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        momentum = group["momentum"]
        p.data, buf = F.sgd_step(
            p.data,
            g,
            state.get("momentum_buffer"),
            lr=float(group["lr"]),
            momentum=momentum,
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            inplace=inplace,
            scratch=self._scratch(p) if inplace else None,
        )
        if momentum != 0:
            state["momentum_buffer"] = buf
