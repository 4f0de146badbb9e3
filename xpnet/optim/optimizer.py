"""``Optimizer``: parameter groups, lazy per-parameter state, ``state_dict`` in torch's layout.

The update arithmetic lives in :mod:`xpnet.optim.functional`; an optimizer class only
holds hyperparameters (``param_groups``) and per-parameter state (``state``), and calls
the pure update function for every parameter that has a gradient.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import _backend
from ..module import Module, Parameter
from .functional import supports_out

__all__ = ["Optimizer", "ParamsT"]

Array = Any
#: What an optimizer accepts: Parameters, or dicts ``{"params": [...], "lr": ..., ...}``.
ParamsT = Iterable[Parameter] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of xpnet's optimizers (torch.optim's interface).

    Parameters
    ----------
    params
        An iterable of :class:`~xpnet.Parameter` (``model.parameters()``), or a list of
        dicts, each with a ``"params"`` entry and per-group hyperparameters that override
        ``defaults`` (``[{"params": body, "lr": 1e-3}, {"params": head}]``). Sets are
        rejected (``TypeError``) at both levels: their order changes between runs, and
        ``state_dict`` numbers the parameters in order.
    defaults
        Default hyperparameters of every group.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group: ``"params"`` (list of Parameters) and the hyperparameters.
        Schedulers change ``group["lr"]`` here.
    state : dict
        Per-parameter state, keyed by the Parameter object, created lazily at the first
        step that sees a gradient for it.

    Notes
    -----
    ``step()`` skips parameters whose ``grad`` is ``None`` or whose ``requires_grad`` is
    False. It updates ``p.data`` and the state in place when the backend allows it
    (:func:`xpnet._backend.supports_inplace`) and rebinds them otherwise; both paths give
    identical numbers. It never synchronises with the device.

    State follows the parameter: when a parameter was moved to another backend, device
    or dtype (``model.to(...)``) after its state was created, the state is moved along at
    the next step, exactly (through the host between backends), with dtype casts only
    from one floating dtype to another. Detecting the move reads attributes only.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        # Per-parameter work arrays for the NumPy/CuPy no-allocation fast path; not part
        # of the state (nothing in them survives a step).
        self._work: dict[Parameter, tuple[Array, Array]] = {}
        # ``(p.data, inplace)``: the array each parameter's state was last checked against
        # and whether it is writeable. While ``p.data`` is that object (in-place updates),
        # the state cannot have left its backend and writeability cannot have changed.
        self._homes: dict[Parameter, tuple[Array, bool]] = {}
        # Group index -> flat buffers of its small parameters (multi-tensor path).
        self._plans: dict[int, _FlatPlan | None] = {}
        who = type(self).__name__
        if isinstance(params, Parameter) or _backend.is_array(params):
            raise TypeError(
                f"{who}: params should be an iterable of Parameters or dicts, got "
                f"{type(params).__name__}. Hint: {who}([param]) or {who}(model.parameters())"
            )
        if isinstance(params, Module):
            raise TypeError(
                f"{who}: params should be an iterable of Parameters or dicts, got a Module. "
                f"Hint: {who}(model.parameters())"
            )
        _reject_set(params)
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for invalid hyperparameters (overridden by each optimizer)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (torch's API).

        Missing hyperparameters are taken from ``defaults``.

        Raises
        ------
        TypeError
            ``param_group`` is not a dict, its ``"params"`` is a set (unordered, so the
            ``state_dict`` indices would change between runs), or a parameter is not a
            :class:`~xpnet.Parameter`.
        ValueError
            Invalid hyperparameters, an empty group, or a parameter that appears twice.
        """
        who = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{who}: param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{who}: param_group needs a 'params' entry")
        if isinstance(params, Parameter):
            params = [params]
        _reject_set(params)
        params = list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{who}: can only optimize xpnet.Parameter objects, got {type(p).__name__}. "
                    f"Hint: wrap arrays with xpnet.Parameter(array)"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{who}: a parameter group contains the same parameter twice")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._validate_group(group)
        group["params"] = params
        self.param_groups.append(group)

    # ------------------------------------------------------------------ stepping

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized parameters: to ``None`` (default) or zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none or not _backend.supports_inplace(p.grad):
                    p.grad = None
                else:
                    p.grad[...] = 0.0

    def _inplace(self, p: Parameter) -> bool:
        """Whether ``p`` and its state may be updated in place (False on immutable backends)."""
        return _backend.supports_inplace(p.data)

    #: Parameters with fewer elements than this get no ``out=`` scratch buffer. Measured
    #: (docs/performance.md): on small arrays the ``out=`` calls cost more Python dispatch
    #: than the allocations they save (SGD on xor +46%, SGD momentum on deep +14%), while
    #: on wide's 784x1024 weights Adam gains 5%. Set to 0 to use the scratch everywhere.
    scratch_min_size: int = 1 << 18

    def _scratch(self, p: Parameter) -> Array | None:
        """A reusable work array shaped like ``p`` where the backend takes ``out=`` and ``p``
        is large (:attr:`scratch_min_size`), else None."""
        data = p.data
        entry = self._work.get(p)
        if entry is not None and entry[0] is data:
            return entry[1]
        xp = _backend.namespace_of(data)
        buf = None
        if supports_out(xp) and math.prod(data.shape) >= self.scratch_min_size:
            buf = xp.empty_like(data)
        # Keyed on the array object: a parameter moved or reloaded gets a new buffer (and
        # a small one remembers that it has none, without asking again every step).
        self._work[p] = (data, buf)
        return buf

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        """Fresh state for ``p`` at its first step (arrays are ``*_like(p.data)``)."""
        return {}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """State entries each stepped parameter has (checked by :meth:`load_state_dict`)."""
        return ()

    def _update(self, p: Parameter, g: Array, state: dict[str, Any], group: dict[str, Any], inplace: bool) -> None:
        """Apply one update to ``p`` (sets ``p.data`` and the entries of ``state``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _update()")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Parameters
        ----------
        closure
            Optional callable that re-evaluates the model (forward, backward) and returns
            the loss; it is called before the update, as in torch.

        Returns
        -------
        The closure's return value, or ``None``.

        Raises
        ------
        ValueError
            A gradient whose shape differs from its parameter's.
        TypeError
            A gradient of another namespace or dtype than its parameter, or state that
            would need a non-float dtype cast to follow its parameter.
        """
        loss = None
        if closure is not None:
            loss = closure()
        homes = self._homes
        for gi, group in enumerate(self.param_groups):
            keys = self._flat_keys(group)
            flat = self._flat_step(gi, group, keys) if keys is not None else None
            if flat is not None and flat.covers:
                continue
            for p in group["params"]:
                if flat is not None and p in flat.members:
                    continue
                g = p.grad
                if g is None or not p.requires_grad:
                    continue
                data = p.data
                # Free checks (no device access): shape, dtype and array type.
                if type(g) is not type(data) or g.shape != data.shape or g.dtype != data.dtype:
                    self._bad_grad(p, g)
                state = self.state.get(p)
                home = homes.get(p)
                if home is None or home[0] is not data:
                    # First step, or p.data was replaced (moved, reloaded, or rebound by
                    # the previous update on an immutable backend): check again.
                    if state is None:
                        state = self.state[p] = self._init_state(p, group)
                    else:
                        self._follow_param(p, state)
                    home = homes[p] = (data, self._inplace(p))
                elif state is None:
                    state = self.state[p] = self._init_state(p, group)
                self._update(p, g, state, group, home[1])
        return loss

    # ------------------------------------------------------------------ flat storage

    #: Parameters with more elements than this are left out of the flat buffers (they
    #: keep their own arrays and the per-parameter update). Set it to -1 to turn the flat
    #: storage off (the per-parameter path is the portable reference it is tested against).
    flat_max_size: int = sys.maxsize

    #: Host scalars in each parameter's state, besides ``"step"``, that the flat update
    #: advances once for the whole buffer (NAdam's ``mu_product``). Like the step count
    #: they evolve on the host, the same for every parameter stepped together, so a plan
    #: gathers only parameters whose values agree; :meth:`_flat_update` finds the shared
    #: value in its ``state`` dict and leaves the new one there, and the plan writes it
    #: into every parameter's state (as it writes ``"step"``).
    _flat_scalars: tuple[str, ...] = ()

    def _flat_keys(self, group: dict[str, Any]) -> tuple[str, ...] | None:
        """State arrays kept in flat buffers for ``group``; None: no flat storage."""
        return None

    def _flat_update(
        self, p: Array, g: Array, state: dict[str, Array], group: dict[str, Any], step: int | None,
        scratch: Array,
    ) -> Array:
        """Return the update ``u`` of flat parameters ``p`` from flat gradients ``g``.

        ``p ← p − u`` is the caller's. Updates the flat ``state`` arrays in place and may
        update ``p`` in place (AdamW's decay, NAdam's first subtraction). ``u`` is written
        into ``scratch`` where the backend takes ``out=``, else it is a fresh array.
        ``state`` also holds the shared host scalars of :attr:`_flat_scalars`; the update
        replaces each with its new value.
        """
        raise NotImplementedError(
            f"{type(self).__name__} declares flat state keys but does not implement _flat_update()"
        )

    def _flat_step(self, gi: int, group: dict[str, Any], keys: tuple[str, ...]) -> _FlatPlan | None:
        """Update the parameters of group ``gi`` that live in its flat buffers; return the plan.

        From the second step on, a group's parameters (same array type, dtype and device,
        updated in place, on a backend whose slices are views: :func:`xpnet._backend.views_alias`)
        are moved into one contiguous buffer ``P``: each ``p.data`` becomes a view of
        it, each gradient a view of a second buffer ``G`` (``p.grad_buffer``, which
        :class:`~xpnet.Linear` writes its products into), and each state array
        (``exp_avg``...) a view of one buffer per entry, so ``self.state[p]`` and
        :meth:`state_dict` keep torch's per-parameter layout. The update is then a handful
        of whole-buffer operations (SGD 2, Adam 12), whatever the number of layers.
        Elementwise arithmetic does not depend on how elements are grouped, so the numbers
        are bit-identical to the per-parameter path (tested on every backend). A gradient
        that a layer did not write into its view (a layer without ``grad_buffer``
        support, or one set by hand) is copied in. Anything unusual (a missing gradient,
        a moved or reloaded parameter, ``requires_grad`` switched off, loaded state)
        drops the plan; the per-parameter path then handles that step, the arrays being
        ordinary per-parameter arrays still, and the next step builds a new plan.
        """
        plan = self._plans.get(gi)
        if plan is None or not plan.ready(self, keys):
            if plan is not None:
                plan.release()
                self._plans[gi] = None
            plan = self._make_plan(gi, group)
            if plan is None:
                return None
        step = None if plan.step is None else plan.step + 1  # optimizers without a count: None
        u = self._flat_update(plan.pflat, plan.gflat, plan.flat, group, step, plan.scratch)
        plan.pflat -= u
        if step is not None:
            for p in plan.params:
                self.state[p]["step"] = step
            plan.step = step
        for key in plan.scalars:
            value = plan.flat[key]
            for p in plan.params:
                self.state[p][key] = value
        return plan

    def _make_plan(self, gi: int, group: dict[str, Any]) -> _FlatPlan | None:
        keys = self._flat_keys(group)
        scalars = self._flat_scalars
        chosen = []
        first = None
        for p in group["params"]:
            g, data = p.grad, p.data
            state = self.state.get(p)
            home = self._homes.get(p)
            if (
                g is None or not p.requires_grad or state is None or home is None
                or home[0] is not data or not home[1]
                or math.prod(data.shape) > self.flat_max_size
                or type(g) is not type(data) or g.shape != data.shape or g.dtype != data.dtype
                or any(type(state.get(k)) is not type(data) for k in keys)
            ):
                continue
            if first is None:
                first = p
                xp = _backend.namespace_of(data)
                dev = _backend.device_of(data)
                if not _backend.views_alias(xp, dev):
                    return None
            elif (
                type(data) is not type(first.data) or data.dtype != first.data.dtype
                or _backend.device_of(data) != dev or state.get("step") != self.state[first].get("step")
                or any(state.get(k) != self.state[first].get(k) for k in scalars)
            ):
                continue
            if any(state[k].dtype != data.dtype or _backend.device_of(state[k]) != dev for k in keys):
                continue
            chosen.append(p)
        if not chosen:
            return None
        for p in chosen:
            self._work.pop(p, None)  # the per-parameter scratch: the plan has its own
        plan = _FlatPlan(xp, dev, first.data.dtype, chosen, keys, scalars, self.state)
        plan.covers = len(chosen) == len(group["params"])
        for p in chosen:  # p.data is a new array (a view): the state's home moves with it
            self._homes[p] = (p.data, True)
        plan.step = self.state[first].get("step")
        self._plans[gi] = plan
        return plan

    def _follow_param(self, p: Parameter, state: dict[str, Any]) -> None:
        """Move ``state``'s arrays to ``p``'s backend, device and dtype if ``p`` has moved.

        The check reads attributes only (array type, dtype, device), so it costs no
        device synchronisation, and it is skipped while ``p.data`` is the array it last
        passed for (the in-place path). The move itself (through the host between
        backends) happens only after ``model.to(...)`` changed the parameter.
        """
        data = p.data
        home = self._homes.get(p)
        if home is not None and home[0] is data:
            return
        kind, dtype, dev = type(data), data.dtype, _backend.device_of(data)
        for key, value in state.items():
            if type(value) is kind:
                if value.dtype == dtype and _backend.device_of(value) == dev:
                    continue
            elif value is None or isinstance(value, (int, float)) or not _backend.is_array(value):
                continue  # "step" and other host values travel with any backend
            state[key] = _move_state_array(value, data, who=f"{type(self).__name__}.step", what=f"state {key!r}")

    def _bad_grad(self, p: Parameter, g: Array) -> None:
        who = f"{type(self).__name__}.step"
        if type(g) is not type(p.data):
            raise TypeError(
                f"{who}: gradient is a {type(g).__module__}.{type(g).__name__} but the parameter "
                f"is a {type(p.data).__module__}.{type(p.data).__name__}. Hint: feed the model "
                f"inputs of its own backend, or set p.grad on the parameter's backend"
            )
        if tuple(g.shape) != p.shape:
            raise ValueError(
                f"{who}: gradient shape {tuple(g.shape)} does not match parameter shape {p.shape}. "
                f"Hint: a layer's backward accumulated a gradient of the wrong shape"
            )
        gname, pname = _backend.dtype_name(g.dtype), _backend.dtype_name(p.data.dtype)
        raise TypeError(
            f"{who}: gradient dtype {gname} does not match parameter dtype {pname}. Hint: the "
            f"upstream gradient dy passed to model.backward probably had another dtype; cast it "
            f"(xpnet.asarray(dy, dtype={pname!r})) or the model (model.to(dtype={gname!r}))"
        )

    # ------------------------------------------------------------------ state dict

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer state in torch's layout.

        Returns
        -------
        dict
            ``{"state": {index: {"step": int, "exp_avg": array, ...}}, "param_groups":
            [{hyperparameters..., "params": [index, ...]}]}``, indices numbering the
            parameters in group order. The arrays are the optimizer's own (not copies,
            as in torch): copy them (``xpnet.to_numpy``) before stepping again if you keep
            the dict in memory.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict`, from any backend.

        Each state array is copied onto the matching parameter's backend, device and dtype
        (arrays of another backend and NumPy host arrays are accepted). Hyperparameters
        are taken from the saved groups. Nothing changes when validation fails.

        Raises
        ------
        ValueError
            A different number of groups, a group of a different size, state for an
            unknown parameter index, missing state entries, or a state array whose shape
            differs from its parameter's.
        TypeError
            A state array that is not of a floating dtype while its parameter is (only
            float-to-float casts are made).
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(
                f"{who}: expected a dict with 'state' and 'param_groups' (from optimizer.state_dict()), "
                f"got {type(state_dict).__name__}"
                + (f" with keys {sorted(map(str, state_dict))}" if isinstance(state_dict, Mapping) else "")
            )
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{who}: loaded state dict has a different number of parameter groups: "
                f"{len(saved_groups)} saved, {len(self.param_groups)} in this optimizer"
            )
        id_map: dict[int, Parameter] = {}
        new_groups = []
        for i, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
            saved_ids = list(saved.get("params", []))
            if len(saved_ids) != len(own["params"]):
                raise ValueError(
                    f"{who}: loaded state dict contains a parameter group that doesn't match the "
                    f"size of optimizer's group: group {i} has {len(saved_ids)} saved parameters, "
                    f"{len(own['params'])} here"
                )
            for k, p in zip(saved_ids, own["params"]):
                id_map[int(k)] = p
            group = {k: v for k, v in saved.items() if k != "params"}
            if isinstance(group.get("betas"), list):  # JSON turns tuples into lists
                group["betas"] = tuple(group["betas"])
            for name, default in self.defaults.items():
                group.setdefault(name, default)
            self._validate_group(group)
            group["params"] = own["params"]
            new_groups.append(group)

        group_of = {id(p): g for g in new_groups for p in g["params"]}
        new_state: dict[Parameter, dict[str, Any]] = {}
        for key, saved_state in dict(state_dict["state"]).items():
            try:
                idx = int(key)  # JSON turns int keys into strings
            except (TypeError, ValueError):
                raise ValueError(f"{who}: state keys must be parameter indices, got {key!r}") from None
            if idx not in id_map:
                raise ValueError(
                    f"{who}: state for parameter index {idx}, but the saved groups only list "
                    f"indices {sorted(id_map)}"
                )
            p = id_map[idx]
            missing = [k for k in self._state_keys(group_of[id(p)]) if k not in saved_state]
            if missing:
                raise ValueError(
                    f"{who}: state of parameter {idx} lacks {missing} (has {sorted(saved_state)}). "
                    f"Hint: the state dict comes from a different optimizer or settings"
                )
            new_state[p] = {name: self._load_value(name, value, p, idx, who) for name, value in saved_state.items()}
        self.param_groups = new_groups
        self.state = new_state
        self._homes.clear()
        for plan in self._plans.values():
            if plan is not None:
                plan.release()
        self._plans.clear()

    @staticmethod
    def _load_value(name: str, value: Any, p: Parameter, idx: int, who: str) -> Any:
        if name == "step":
            step = int(_backend.to_numpy(value)) if _backend.is_array(value) else int(value)
            if step < 0:
                raise ValueError(f"{who}: state {idx} has a negative step count {step}")
            return step
        if not _backend.is_array(value):
            return value
        return _move_state_array(value, p.data, who=who, what=f"state {name!r} of parameter {idx}")

    # ------------------------------------------------------------------ repr

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


class _FlatPlan:
    """The flat buffers of one group's parameters for :meth:`Optimizer._flat_step`.

    ``pflat`` holds the parameters (each ``p.data`` a view of it), ``gflat`` their
    gradients (``p.grad_buffer``), ``flat[key]`` each state entry, ``scratch`` the update.
    ``flat`` also holds the host scalars named in ``scalars`` (:attr:`Optimizer._flat_scalars`),
    the value all the parameters share.
    """

    def __init__(
        self, xp: Any, dev: Any, dtype: Any, params: list[Parameter], keys: tuple[str, ...],
        scalars: tuple[str, ...], states: dict[Parameter, dict[str, Any]],
    ) -> None:
        self.params = params
        self.members = set(params)
        self.keys = keys
        self.scalars = scalars
        self.kind = type(params[0].data)
        self.dtype = dtype
        self.step: int | None = 0
        shapes = [tuple(p.data.shape) for p in params]
        offsets = [0]
        for sh in shapes:
            offsets.append(offsets[-1] + math.prod(sh))

        def buffer() -> tuple[Array, list[Array]]:
            buf = xp.empty((offsets[-1],), dtype=dtype, device=dev)
            # A contiguous slice reshaped is a view here (views_alias checked it).
            views = [xp.reshape(buf[a:b], sh) for a, b, sh in zip(offsets, offsets[1:], shapes)]
            return buf, views

        # One buffer at a time, each array rebound to its view as soon as it is copied,
        # so the per-parameter arrays are freed as we go: the peak is the old arrays plus
        # one buffer, not plus all of them.
        self.pflat, self.pviews = buffer()
        for pv, p in zip(self.pviews, params):
            pv[...] = p.data
            p.data = pv
        self.gflat, self.gviews = buffer()
        for gv, p in zip(self.gviews, params):
            gv[...] = p.grad
            p.grad = p.grad_buffer = gv
        self.flat: dict[str, Array] = {}
        self.views: dict[str, list[Array]] = {}
        for key in keys:
            buf, views = buffer()
            for view, p in zip(views, params):
                view[...] = states[p][key]
                states[p][key] = view  # the per-parameter state now lives in the buffer
            self.flat[key], self.views[key] = buf, views
        for key in scalars:  # _make_plan chose parameters whose values agree
            self.flat[key] = states[params[0]][key]
        self.scratch, _ = buffer()
        self.rows = [
            (p, self.pviews[k], self.gviews[k], states[p], tuple((key, self.views[key][k]) for key in keys))
            for k, p in enumerate(params)
        ]
        #: Whether every parameter of the group is in the buffers (step() then skips
        #: the per-parameter loop).
        self.covers: bool = False

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # A copy (copy.deepcopy, pickle) of the optimizer copies each view as an
        # independent array, no longer inside the copied flat buffers: drop the plan
        # instead; the copy rebuilds one from its own arrays at its next step.
        return (_no_plan, ())

    def release(self) -> None:
        """Stop offering the gradient views to layers (the plan is being dropped)."""
        for p, gv in zip(self.params, self.gviews):
            if p.grad_buffer is gv:
                p.grad_buffer = None

    def ready(self, opt: Optimizer, keys: tuple[str, ...]) -> bool:
        """Whether the plan still describes the group, gathering stray gradients.

        Attribute reads only, no sync. A gradient that is not its view (set by a layer
        that does not write into ``grad_buffer``, or by hand) is copied into the view. A
        missing or mismatched gradient, a parameter whose ``data`` is no longer its view
        (moved, reloaded, rebound), ``requires_grad`` switched off, state arrays that
        are no longer the plan's views, or a step count or shared scalar changed behind
        the plan's back make the plan stale.
        """
        if keys != self.keys:
            return False  # hyperparameters changed (amsgrad, momentum) since it was built
        states, kind, dtype, step = opt.state, self.kind, self.dtype, self.step
        for p, data, gview, state, views in self.rows:
            if p.data is not data or not p.requires_grad or states.get(p) is not state:
                return False
            g = p.grad
            if g is not gview:
                if g is None or type(g) is not kind or g.dtype != dtype or g.shape != data.shape:
                    return False
                gview[...] = g
                p.grad = gview
            if step is not None and state["step"] != step:
                return False
            for key, view in views:
                if state.get(key) is not view:
                    return False
        scalars, flat = self.scalars, self.flat
        if scalars:
            for _, _, _, state, _ in self.rows:
                if any(state.get(key) != flat[key] for key in scalars):
                    return False
        return True


def _no_plan() -> None:
    return None


def _real(group: dict[str, Any], key: str, who: str) -> float:
    """``group[key]`` as a Python float (NumPy scalars would promote float32 arrays)."""
    value = group[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {key} must be a real number, got {type(value).__name__} {value!r}")
    group[key] = float(value)
    return group[key]


def _check_nonneg(group: dict[str, Any], key: str, message: str, who: str) -> float:
    """Check ``0 <= group[key]`` with torch's message (``"Invalid learning rate: -1"``)."""
    value = group[key]
    v = _real(group, key, who)
    if not 0.0 <= v:  # also rejects NaN
        raise ValueError(f"{message}: {value}")
    return v


_SET_MESSAGE = (
    "optimizer parameters need to be organized in ordered collections, but the ordering of "
    "tensors in sets will change between runs. Please use a list instead."
)


def _reject_set(params: Any) -> None:
    """Raise torch's TypeError for a set: its order (hence state_dict indices) varies between runs."""
    if isinstance(params, (set, frozenset)):
        raise TypeError(_SET_MESSAGE)


def _move_state_array(value: Array, data: Array, *, who: str, what: str) -> Array:
    """Return state array ``value`` on ``data``'s backend, device and dtype.

    Values travel exactly (through the host between backends); the dtype is cast only
    from one real floating dtype to another. The result is a copy: the optimizer updates
    its state in place and must not write into arrays it does not own (the caller's
    state dict, or a buffer shared through ``to_device``/``asarray``).

    Raises
    ------
    ValueError
        ``value``'s shape differs from ``data``'s.
    TypeError
        A dtype cast other than float to float.
    """
    shape = tuple(data.shape)
    if tuple(value.shape) != shape:
        raise ValueError(
            f"{who}: {what} has shape {tuple(value.shape)}, the parameter has {shape}. "
            f"Hint: the state belongs to another model (or the parameter was reshaped)"
        )
    xp = _backend.namespace_of(data)
    dev = _backend.device_of(data)
    if _backend.namespace_of(value) is xp:
        arr = _backend.to_device(value, dev)
    else:
        arr = _backend.asarray(_backend.to_numpy(value), xp, device=dev)
        if tuple(arr.shape) != shape:
            # _backend.asarray turns 0-d host data into shape (1,) on array_api_strict
            # (np.ascontiguousarray); undo it for scalar parameters.
            arr = xp.reshape(arr, shape)
    if arr.dtype != data.dtype:
        if not (xp.isdtype(arr.dtype, "real floating") and xp.isdtype(data.dtype, "real floating")):
            raise TypeError(
                f"{who}: {what} has dtype {_backend.dtype_name(arr.dtype)}, the parameter "
                f"{_backend.dtype_name(data.dtype)}; only float-to-float casts are allowed. "
                f"Hint: the state comes from another optimizer or model"
            )
        return xp.astype(arr, data.dtype)  # astype copies
    # torch.asarray shares memory with a NumPy source, array_api_strict's to_device with
    # the original buffer.
    return xp.asarray(arr, copy=True)
