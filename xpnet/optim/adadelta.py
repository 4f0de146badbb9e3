"""Adadelta: step sizes from running averages of squared gradients and squared updates."""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of
from ..module import Parameter
from . import functional as F
from .optimizer import Optimizer, ParamsT, _check_nonneg

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta (torch.optim.Adadelta: same defaults and update; Zeiler, 2012).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Scale of the update (default 1.0).
    rho
        Decay rate ρ of both running averages (default 0.9).
    eps
        Added inside both square roots (default 1e-6).
    weight_decay
        Coupled L2 penalty λ (default 0).
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    ``v ← ρ v + (1 − ρ) d²``, ``Δ = √(a + ε) / √(v + ε) · d``, ``a ← ρ a + (1 − ρ) Δ²``,
    ``p ← p − lr Δ``; see :func:`xpnet.optim.functional.adadelta_step`. State: ``step``,
    ``square_avg``, ``acc_delta``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        self._validate_group(dict(defaults))
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        who = type(self).__name__
        _check_nonneg(group, "lr", "Invalid learning rate", who)
        rho = _check_nonneg(group, "rho", "Invalid rho value", who)
        if rho > 1.0:
            raise ValueError(f"Invalid rho value: {group['rho']}")
        _check_nonneg(group, "eps", "Invalid epsilon value", who)
        _check_nonneg(group, "weight_decay", "Invalid weight_decay value", who)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        xp = namespace_of(p.data)
        return {"step": 0, "square_avg": xp.zeros_like(p.data), "acc_delta": xp.zeros_like(p.data)}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "square_avg", "acc_delta")

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return ("square_avg", "acc_delta")

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        u, square_avg, acc_delta = F._adadelta_update(
            p, g, state["square_avg"], state["acc_delta"], lr=float(group["lr"]), rho=group["rho"],
            eps=group["eps"], weight_decay=group["weight_decay"], maximize=group["maximize"], inplace=True,
        )
        # In place, these are the flat buffers themselves; otherwise copy the values in.
        for key, value in (("square_avg", square_avg), ("acc_delta", acc_delta)):
            if value is not state[key]:
                state[key][...] = value
        return u

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        state["step"] += 1
        p.data, state["square_avg"], state["acc_delta"] = F.adadelta_step(
            p.data, g, state["square_avg"], state["acc_delta"], lr=float(group["lr"]), rho=group["rho"],
            eps=group["eps"], weight_decay=group["weight_decay"], maximize=group["maximize"], inplace=inplace,
        )
