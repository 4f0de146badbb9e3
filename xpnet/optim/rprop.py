"""Rprop: sign-based updates with per-coordinate adaptive step sizes."""

from __future__ import annotations

import numbers
from typing import Any

from .._backend import namespace_of
from ..module import Parameter
from . import functional as F
from .optimizer import Optimizer, ParamsT, _check_nonneg

__all__ = ["Rprop"]


def _pair(group: dict[str, Any], key: str, who: str) -> tuple[float, float]:
    value = group[key]
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{who}: {key} must be a pair, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{who}: {key} must hold real numbers, got {type(v).__name__}")
    group[key] = (float(value[0]), float(value[1]))
    return group[key]


class Rprop(Optimizer):
    """Rprop (torch.optim.Rprop: same defaults and update; Riedmiller & Braun, 1993).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Initial per-coordinate step size (default 1e-2).
    etas
        ``(η−, η+)``: step-size factors after a sign change / a same-sign step
        (default ``(0.5, 1.2)``), ``0 < η− < 1 < η+``.
    step_sizes
        ``(min, max)`` bounds of the step sizes (default ``(1e-6, 50)``).
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    Only the sign of the gradient is used; see :func:`xpnet.optim.functional.rprop_step`.
    Meant for full-batch training, as torch's. State: ``step``, ``prev``, ``step_size``
    (created at the first step from the group's ``lr``, as torch).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "etas": etas, "step_sizes": step_sizes, "maximize": maximize}
        checked = dict(defaults)
        self._validate_group(checked)
        defaults["etas"], defaults["step_sizes"] = checked["etas"], checked["step_sizes"]
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        who = type(self).__name__
        _check_nonneg(group, "lr", "Invalid learning rate", who)
        etaminus, etaplus = _pair(group, "etas", who)
        if not 0.0 < etaminus < 1.0 < etaplus:
            raise ValueError(f"Invalid eta values: {etaminus}, {etaplus}")
        _pair(group, "step_sizes", who)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        xp = namespace_of(p.data)
        return {"step": 0, "prev": xp.zeros_like(p.data), "step_size": xp.full_like(p.data, float(group["lr"]))}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "prev", "step_size")

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return ("prev", "step_size")

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        # Every operation is elementwise and nothing depends on the step count (which the
        # plan keeps for the state's sake).
        etaminus, etaplus = group["etas"]
        lo, hi = group["step_sizes"]
        u, prev, step_size = F._rprop_update(
            g, state["prev"], state["step_size"], etaminus=etaminus, etaplus=etaplus,
            step_size_min=lo, step_size_max=hi, maximize=group["maximize"], inplace=True,
        )
        # The clipped step sizes are a new array (xp.clip): the flat buffer must hold them.
        for key, value in (("prev", prev), ("step_size", step_size)):
            if value is not state[key]:
                state[key][...] = value
        return u

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        etaminus, etaplus = group["etas"]
        lo, hi = group["step_sizes"]
        state["step"] += 1
        p.data, state["prev"], state["step_size"] = F.rprop_step(
            p.data, g, state["prev"], state["step_size"], etaminus=etaminus, etaplus=etaplus,
            step_size_min=lo, step_size_max=hi, maximize=group["maximize"], inplace=inplace,
        )
