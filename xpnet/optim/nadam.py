"""NAdam: Adam with Nesterov momentum and a momentum schedule."""

from __future__ import annotations

from typing import Any

from ..module import Parameter
from . import functional as F
from .adam import Adam
from .optimizer import ParamsT, _check_nonneg
from .radam import _AdamFamily

__all__ = ["NAdam"]


class NAdam(_AdamFamily):
    """NAdam (torch.optim.NAdam: same defaults and update; Dozat, 2016).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Learning rate (default 2e-3).
    betas
        ``(β1, β2)`` (default ``(0.9, 0.999)``).
    eps
        Added to the denominator (default 1e-8).
    weight_decay
        L2 penalty λ (default 0), coupled unless ``decoupled_weight_decay``.
    momentum_decay
        ψ of the momentum schedule ``μ_t = β1 (1 − 0.96^{tψ}/2)`` (default 4e-3).
    decoupled_weight_decay
        Shrink ``p ← p (1 − lr λ)`` instead of adding ``λ p`` to the gradient.
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    See :func:`xpnet.optim.functional.nadam_step`. State: ``step``, ``exp_avg``,
    ``exp_avg_sq`` and ``mu_product`` (a Python float: torch keeps it in a 0-d tensor
    of its default dtype, float32 unless ``torch.set_default_dtype(torch.float64)``, so
    float64 runs agree with torch to 1e-9 only under that default).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "momentum_decay": momentum_decay, "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        })

    def _validate_group(self, group: dict[str, Any]) -> None:
        Adam._validate_group(self, group)
        _check_nonneg(group, "momentum_decay", "Invalid momentum_decay value", type(self).__name__)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        state = super()._init_state(p, group)
        state["mu_product"] = 1.0
        return state

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "mu_product", "exp_avg", "exp_avg_sq")

    # mu_product is a host float advanced from the step count and its previous value:
    # the parameters stepped together share it, and the plan writes it into each state.
    _flat_scalars = ("mu_product",)

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        beta1, beta2 = group["betas"]
        lr = float(group["lr"])
        # Decoupled decay scales the flat p in place, as nadam_step scales each parameter.
        p, d = F._decayed_grad(
            p, g, lr, group["weight_decay"], group["decoupled_weight_decay"], group["maximize"], True
        )
        u_grad, u_avg, exp_avg, exp_avg_sq, state["mu_product"] = F._nadam_update(
            d, state["exp_avg"], state["exp_avg_sq"], step=step, mu_product=float(state["mu_product"]),
            lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"], momentum_decay=group["momentum_decay"],
            inplace=True,
        )
        self._keep(state, exp_avg, exp_avg_sq)
        # The first of nadam_step's two subtractions; the caller makes the second
        # (subtracting u_grad + u_avg at once would round differently).
        F._sub(p, u_grad, True)
        return u_avg

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        beta1, beta2 = group["betas"]
        state["step"] += 1
        p.data, state["exp_avg"], state["exp_avg_sq"], state["mu_product"] = F.nadam_step(
            p.data, g, state["exp_avg"], state["exp_avg_sq"], step=state["step"],
            mu_product=float(state["mu_product"]), lr=float(group["lr"]), beta1=beta1, beta2=beta2,
            eps=group["eps"], weight_decay=group["weight_decay"], momentum_decay=group["momentum_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"],
            inplace=inplace,
        )
