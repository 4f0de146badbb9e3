"""RMSprop: gradients scaled by a running root-mean-square, optionally centered and with momentum."""

from __future__ import annotations

from typing import Any

from .._backend import namespace_of
from ..module import Parameter
from . import functional as F
from .optimizer import Optimizer, ParamsT, _check_nonneg

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop: same defaults and update).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Learning rate (default 1e-2).
    alpha
        Smoothing constant α of the squared-gradient average (default 0.99).
    eps
        Added to the denominator (default 1e-8).
    weight_decay
        Coupled L2 penalty λ (gradient ``g + λ p``; default 0).
    momentum
        Momentum factor μ (default 0).
    centered
        Normalise by the estimated variance ``v − ḡ²`` instead of ``v`` (default False).
    maximize
        Maximize the objective instead of minimizing it.

    Notes
    -----
    ``v ← α v + (1 − α) d²``; ``s = √(v − ḡ²) + ε`` (centered, with
    ``ḡ ← α ḡ + (1 − α) d``) or ``√v + ε``; then ``b ← μ b + d / s, p ← p − lr b``
    (momentum) or ``p ← p − lr d / s``. See :func:`xpnet.optim.functional.rmsprop_step`.
    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0),
    ``grad_avg`` (centered).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        self._validate_group(dict(defaults))
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        who = type(self).__name__
        _check_nonneg(group, "lr", "Invalid learning rate", who)
        _check_nonneg(group, "eps", "Invalid epsilon value", who)
        _check_nonneg(group, "momentum", "Invalid momentum value", who)
        _check_nonneg(group, "weight_decay", "Invalid weight_decay value", who)
        _check_nonneg(group, "alpha", "Invalid alpha value", who)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        xp = namespace_of(p.data)
        state: dict[str, Any] = {"step": 0, "square_avg": xp.zeros_like(p.data)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(p.data)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(p.data)
        return state

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "square_avg")
        if group["momentum"] > 0:
            keys += ("momentum_buffer",)
        if group["centered"]:
            keys += ("grad_avg",)
        return keys

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return tuple(k for k in self._state_keys(group) if k != "step")

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        momentum, centered = group["momentum"], group["centered"]
        u, square_avg, grad_avg, buf = F._rmsprop_update(
            p, g, state["square_avg"], state.get("grad_avg"), state.get("momentum_buffer"),
            lr=float(group["lr"]), alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=momentum, centered=centered,
            maximize=group["maximize"], inplace=True,
        )
        # In place, these are the flat buffers themselves; otherwise copy the values in.
        for key, value in (("square_avg", square_avg), ("grad_avg", grad_avg), ("momentum_buffer", buf)):
            if value is not None and value is not state.get(key):
                state[key][...] = value
        return u

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        momentum = group["momentum"]
        centered = group["centered"]
        # Settings changed after the state was created (or loaded): start the new buffers
        # at zeros, as torch's lazy initialisation would have.
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = namespace_of(p.data).zeros_like(p.data)
        if centered and "grad_avg" not in state:
            state["grad_avg"] = namespace_of(p.data).zeros_like(p.data)
        state["step"] += 1
        p.data, state["square_avg"], grad_avg, buf = F.rmsprop_step(
            p.data,
            g,
            state["square_avg"],
            state.get("grad_avg"),
            state.get("momentum_buffer"),
            lr=float(group["lr"]),
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=momentum,
            centered=centered,
            maximize=group["maximize"],
            inplace=inplace,
        )
        if centered:
            state["grad_avg"] = grad_avg
        if momentum > 0:
            state["momentum_buffer"] = buf
