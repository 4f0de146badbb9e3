"""RAdam: Adam with a rectified warm-up (and the base shared with NAdam)."""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of
from ..module import Parameter
from . import functional as F
from .adam import Adam
from .optimizer import Optimizer, ParamsT

__all__ = ["RAdam"]


class _AdamFamily(Optimizer):
    """Adam's hyperparameter checks, moment state and flat keys (no amsgrad)."""

    _validate_group = Adam._validate_group

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        checked = dict(defaults)
        self._validate_group(checked)
        defaults["betas"] = checked["betas"]
        super().__init__(params, defaults)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        xp = namespace_of(p.data)
        return {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data)}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "exp_avg", "exp_avg_sq")

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return ("exp_avg", "exp_avg_sq")

    @staticmethod
    def _keep(state: dict[str, Any], exp_avg: Any, exp_avg_sq: Any) -> None:
        """Make the flat moment buffers hold the moments (in place they already are them)."""
        for key, value in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
            if value is not state[key]:
                state[key][...] = value


class RAdam(_AdamFamily):
    """RAdam (torch.optim.RAdam: same defaults and update; Liu et al., 2020).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Learning rate (default 1e-3).
    betas
        ``(β1, β2)`` (default ``(0.9, 0.999)``).
    eps
        Added to the denominator (default 1e-8).
    weight_decay
        L2 penalty λ (default 0): coupled (``g + λ p``), or decoupled as AdamW with
        ``decoupled_weight_decay=True``.
    decoupled_weight_decay
        Shrink ``p ← p (1 − lr λ)`` instead of adding ``λ p`` to the gradient.
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    Adam's moments; while the variance estimate is unreliable (``ρt <= 5``, the first
    few steps) the step is ``lr m̂`` (momentum SGD), afterwards Adam's step times the
    rectification ``r_t``. The branch is decided on the host from the step count (no
    sync). See :func:`xpnet.optim.functional.radam_step`. State: ``step``, ``exp_avg``,
    ``exp_avg_sq``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize,
        })

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        beta1, beta2 = group["betas"]
        lr = float(group["lr"])
        # Decoupled decay scales the flat p in place, as radam_step scales each parameter.
        p, d = F._decayed_grad(
            p, g, lr, group["weight_decay"], group["decoupled_weight_decay"], group["maximize"], True
        )
        # The rectification branch depends on the step only: one for the whole buffer.
        u, exp_avg, exp_avg_sq = F._radam_update(
            d, state["exp_avg"], state["exp_avg_sq"], step=step, lr=lr, beta1=beta1, beta2=beta2,
            eps=group["eps"], inplace=True,
        )
        self._keep(state, exp_avg, exp_avg_sq)
        return u

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        beta1, beta2 = group["betas"]
        state["step"] += 1
        p.data, state["exp_avg"], state["exp_avg_sq"] = F.radam_step(
            p.data, g, state["exp_avg"], state["exp_avg_sq"], step=state["step"],
            lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], decoupled_weight_decay=group["decoupled_weight_decay"],
            maximize=group["maximize"], inplace=inplace,
        )
