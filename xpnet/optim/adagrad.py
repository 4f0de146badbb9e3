"""Adagrad: per-coordinate learning rates from the running sum of squared gradients."""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of
from ..module import Parameter
from . import functional as F
from .optimizer import Optimizer, ParamsT, _check_nonneg

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad: same defaults and update).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Learning rate (default 1e-2).
    lr_decay
        Learning-rate decay: step ``t`` uses ``lr / (1 + (t − 1) lr_decay)`` (default 0).
    weight_decay
        Coupled L2 penalty λ (gradient ``g + λ p``; default 0).
    initial_accumulator_value
        Starting value of the sum of squares (default 0).
    eps
        Added to the denominator (default 1e-10).
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    ``G ← G + d²``, ``p ← p − η_t d / (√G + ε)`` with ``d = ±g + λ p``; see
    :func:`xpnet.optim.functional.adagrad_step`. State per parameter: ``step`` (int) and
    ``sum``, created at the parameter's first step (torch creates them in the constructor;
    the values are the same).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        self._validate_group(dict(defaults))
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        who = type(self).__name__
        _check_nonneg(group, "lr", "Invalid learning rate", who)
        _check_nonneg(group, "lr_decay", "Invalid lr_decay value", who)
        _check_nonneg(group, "weight_decay", "Invalid weight_decay value", who)
        _check_nonneg(group, "initial_accumulator_value", "Invalid initial_accumulator_value value", who)
        _check_nonneg(group, "eps", "Invalid epsilon value", who)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        xp = namespace_of(p.data)
        return {"step": 0, "sum": xp.full_like(p.data, group["initial_accumulator_value"])}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "sum")

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return ("sum",)

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        u, total = F._adagrad_update(
            p, g, state["sum"], step=step, lr=float(group["lr"]), lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
            inplace=True,
        )
        if total is not state["sum"]:  # an in-place update rebinds nothing; keep the buffer's values
            state["sum"][...] = total
        return u

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        state["step"] += 1
        p.data, state["sum"] = F.adagrad_step(
            p.data,
            g,
            state["sum"],
            step=state["step"],
            lr=float(group["lr"]),
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            inplace=inplace,
        )
