"""Adamax: Adam with an exponentially weighted infinity norm."""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of
from ..module import Parameter
from . import functional as F
from .adam import Adam
from .optimizer import Optimizer, ParamsT

__all__ = ["Adamax"]


class Adamax(Optimizer):
    """Adamax (torch.optim.Adamax: same defaults and update; Kingma & Ba, 2015, §7.1).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Learning rate (default 2e-3).
    betas
        ``(β1, β2)`` (default ``(0.9, 0.999)``).
    eps
        Added to ``|d|`` in the infinity norm (default 1e-8).
    weight_decay
        Coupled L2 penalty λ (gradient ``g + λ p``; default 0).
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    ``m ← β1 m + (1 − β1) d``, ``u ← max(β2 u, |d| + ε)``,
    ``p ← p − lr / (1 − β1ᵗ) · m / u``; see :func:`xpnet.optim.functional.adamax_step`.
    State: ``step``, ``exp_avg``, ``exp_inf``.
    """

    _validate_group = Adam._validate_group

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        checked = dict(defaults)
        self._validate_group(checked)
        defaults["betas"] = checked["betas"]
        super().__init__(params, defaults)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        xp = namespace_of(p.data)
        return {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_inf": xp.zeros_like(p.data)}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "exp_avg", "exp_inf")

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return ("exp_avg", "exp_inf")

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        beta1, beta2 = group["betas"]
        u, exp_avg, exp_inf = F._adamax_update(
            p, g, state["exp_avg"], state["exp_inf"], step=step, lr=float(group["lr"]), beta1=beta1,
            beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"], maximize=group["maximize"],
            inplace=True,
        )
        # The infinity norm is a new array (xp.maximum): the flat buffer must hold its values.
        for key, value in (("exp_avg", exp_avg), ("exp_inf", exp_inf)):
            if value is not state[key]:
                state[key][...] = value
        return u

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        beta1, beta2 = group["betas"]
        state["step"] += 1
        p.data, state["exp_avg"], state["exp_inf"] = F.adamax_step(
            p.data, g, state["exp_avg"], state["exp_inf"], step=state["step"], lr=float(group["lr"]),
            beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            maximize=group["maximize"], inplace=inplace,
        )
