"""Adam and AdamW (decoupled weight decay)."""

from __future__ import annotations

import numbers
from typing import Any

from .._backend import namespace_of
from ..module import Parameter
from . import functional as F
from .optimizer import Optimizer, ParamsT, _check_nonneg

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (torch.optim.Adam: same defaults and update).

    Parameters
    ----------
    params
        ``model.parameters()`` or a list of param-group dicts.
    lr
        Learning rate (default 1e-3).
    betas
        ``(β1, β2)``: decay rates of the first and second moment estimates
        (default ``(0.9, 0.999)``).
    eps
        Added to the denominator (default 1e-8).
    weight_decay
        Coupled L2 penalty λ: the gradient becomes ``g + λ p`` before the moments
        (default 0). Use :class:`AdamW` for decoupled decay.
    amsgrad
        Use the running maximum of the second moment (AMSGrad; default False).
    maximize
        Maximize the objective instead of minimizing it.
    decoupled_weight_decay
        ``True`` turns this into :class:`AdamW` (torch 2.13's switch of the same name).

    Notes
    -----
    With ``d = ±g + λ p`` (Adam) or ``d = ±g`` after ``p ← p (1 − lr λ)`` (AdamW)::

        m ← β1 m + (1 − β1) d
        v ← β2 v + (1 − β2) d²
        p ← p − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)

    (``√max(v̂, v)`` in place of ``√v`` with AMSGrad). The bias corrections are Python
    floats computed from the integer step count ``t``: no device synchronisation. See
    :func:`xpnet.optim.functional.adam_step`. State per parameter: ``step`` (int),
    ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        checked = dict(defaults)
        self._validate_group(checked)
        defaults["betas"] = checked["betas"]
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        who = type(self).__name__
        _check_nonneg(group, "lr", "Invalid learning rate", who)
        _check_nonneg(group, "eps", "Invalid epsilon value", who)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            if isinstance(b, bool) or not isinstance(b, numbers.Real):
                raise TypeError(f"{who}: betas[{i}] must be a real number, got {type(b).__name__}")
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        group["betas"] = (float(betas[0]), float(betas[1]))
        _check_nonneg(group, "weight_decay", "Invalid weight_decay value", who)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        xp = namespace_of(p.data)
        state: dict[str, Any] = {
            "step": 0,
            "exp_avg": xp.zeros_like(p.data),
            "exp_avg_sq": xp.zeros_like(p.data),
        }
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        return state

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        amsgrad = group["amsgrad"]
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = namespace_of(p.data).zeros_like(p.data)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        p.data, state["exp_avg"], state["exp_avg_sq"], vmax = F.adam_step(
            p.data,
            g,
            state["exp_avg"],
            state["exp_avg_sq"],
            state.get("max_exp_avg_sq"),
            step=state["step"],
            lr=float(group["lr"]),
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            amsgrad=amsgrad,
            maximize=group["maximize"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            inplace=inplace,
            scratch=self._scratch(p) if inplace else None,
        )
        if amsgrad:
            state["max_exp_avg_sq"] = vmax


    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        return self._state_keys(group)[1:]

    def _flat_update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any], step: Any, scratch: Any) -> Any:
        beta1, beta2 = group["betas"]
        lr, wd = float(group["lr"]), group["weight_decay"]
        if group["decoupled_weight_decay"] and wd != 0:
            p *= 1.0 - lr * wd  # AdamW's decay, as in adam_step
        u, m, v, vmax = F._adam_update(
            p,
            g,
            state["exp_avg"],
            state["exp_avg_sq"],
            state.get("max_exp_avg_sq"),
            step=step,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=wd,
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            inplace=True,
            scratch=scratch,
        )
        # The portable path may return new arrays (amsgrad's maximum): the flat state
        # buffers must hold the values.
        for key, value in (("exp_avg", m), ("exp_avg_sq", v), ("max_exp_avg_sq", vmax)):
            if value is not None and value is not state.get(key):
                state[key][...] = value
        return u


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (torch.optim.AdamW; ``weight_decay=1e-2``).

    Parameters are those of :class:`Adam`; ``weight_decay`` defaults to ``1e-2``.

    Notes
    -----
    Each step first shrinks the weights, ``p ← p (1 − lr λ)``, and then applies the Adam
    update computed from the raw gradient. With Adam's coupled L2 the decay term ``λ p``
    goes through the adaptive denominator ``√v̂ + ε`` and is therefore weaker for
    parameters with large gradients; AdamW decays every weight at the same rate
    (Loshchilov & Hutter, 2019).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict: Any) -> None:
        super().load_state_dict(state_dict)
        # As torch: an AdamW always decays decoupled, whatever the saved groups say.
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
