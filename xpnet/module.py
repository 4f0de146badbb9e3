"""``Parameter`` and ``Module``: the explicit forward/backward protocol.

A module's :meth:`Module.forward` computes its output and, in training mode, keeps what
its :meth:`Module.backward` will need (the lecture's "store h̃ and h in the forward pass").
``backward(dy)`` takes dL/dy, returns dL/dx and *adds* into each ``Parameter.grad``, so
two forward/backward pairs without :meth:`Module.zero_grad` sum their gradients, as in
torch.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from typing import Any

from . import _backend

__all__ = ["Parameter", "Module"]

Array = Any

# Bumped whenever any module registers or drops a parameter or a child module: a
# module's cached parameter list (zero_grad, every step) is valid while it is unchanged.
_structure_version = 0


def _structure_changed() -> None:
    global _structure_version
    _structure_version += 1


class Parameter:
    """A trainable array and its gradient.

    Parameters
    ----------
    data
        The array (any backend).
    requires_grad
        When False, optimizers skip this parameter and layers may skip its gradient.

    Attributes
    ----------
    data
        The current value.
    grad
        dL/d(data), accumulated by ``backward``; ``None`` until the first backward or after
        ``zero_grad()``. Under an optimizer's flat storage it is a view into the
        optimizer's gradient buffer, overwritten by the next backward: copy it to keep it.
    grad_buffer
        ``None``, or the view of an optimizer's flat gradient buffer that a layer may
        write this parameter's gradient into (docs/optim.md, "Flat parameter storage").
    """

    # _grad_out: (data, grad_buffer, matmul) once a layer has checked that its gradient
    # products may be written into grad_buffer (layers/_util._grad_product).
    __slots__ = ("data", "grad", "requires_grad", "grad_buffer", "_grad_out")

    def __init__(self, data: Array, requires_grad: bool = True) -> None:
        if not _backend.is_array(data):
            raise TypeError(
                f"Parameter: expected an array, got {type(data).__name__}. "
                f"Hint: xpnet.asarray(values, dtype='float32')"
            )
        self.data = data
        self.grad: Array | None = None
        self.requires_grad = bool(requires_grad)
        self.grad_buffer: Array | None = None
        self._grad_out: tuple[Array, Array, Any] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def device(self) -> Any:
        return _backend.device_of(self.data)

    def accumulate_grad(self, g: Array) -> None:
        """Add ``g`` into ``grad`` (in place where the backend allows it).

        ``g`` must be a fresh array owned by the caller's layer: the first call keeps a
        reference instead of copying it.
        """
        if self.grad is None:
            self.grad = g
        elif _backend.supports_inplace(self.grad):
            self.grad += g
        else:  # immutable backends (JAX): rebind
            self.grad = self.grad + g

    def __repr__(self) -> str:
        return (
            f"Parameter(shape={self.shape}, dtype={_backend.dtype_name(self.dtype)}, "
            f"backend={_backend.backend_name(_backend.namespace_of(self.data))}, "
            f"device={self.device!r})"
        )


class Module:
    """Base class of every layer, activation and container.

    Subclasses implement :meth:`forward` and :meth:`backward`. Assigning a
    :class:`Parameter` or a :class:`Module` to an attribute registers it, as in torch,
    so :meth:`named_parameters` yields dotted names such as ``"0.weight"``.
    """

    training: bool

    #: How many forward passes a module keeps for backward before dropping the oldest.
    #: A module applied k times in one forward needs k; the bound keeps memory finite
    #: when training-mode forwards are run without a backward (monitoring code that
    #: forgot ``model.eval()``).
    max_saved_passes: int = 64

    #: True for modules that also offer their computation as two pure kernels,
    #: ``_kernel_forward(x, xp, out=None) -> (y, ctx)`` and
    #: ``_kernel_backward(dy, ctx, xp, need_dx, out=None) -> dx`` (no checks, nothing
    #: stored; ``out``: see :attr:`_kernel_inplace`):
    #: a :class:`~xpnet.Sequential` made only of such modules checks its input and
    #: ``dy`` once at its boundary and runs the kernels as one chain, keeping one saved
    #: pass for the whole chain (``Linear`` and the common activations; docs/layers.md).
    _chainable: bool = False

    #: Chain kernels that accept ``out``: the forward may write its result into its own
    #: input (``out=x``) and the backward into ``dy`` (``out=dy``), also overwriting the
    #: output kept in ``ctx``. Sequential passes ``out`` only for arrays the chain made
    #: itself and no longer needs, on backends whose functions take ``out=``.
    _kernel_inplace: bool = False
    #: The forward's ``ctx`` holds its own output (it must not be overwritten by the
    #: next layer's in-place forward).
    _ctx_holds_output: bool = False

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_saved", deque())
        object.__setattr__(self, "_saved_dropped", False)

    # ------------------------------------------------------------------ registration

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        buffers = self.__dict__["_buffers"]
        if isinstance(value, (Parameter, Module)) or name in params or name in self._modules:
            _structure_changed()
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._drop_buffer(name)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self._drop_buffer(name)
            self._modules[name] = value
        elif name in buffers:
            # Rebinding a buffer (an immutable backend's update, load_state_dict) keeps it one.
            if value is not None and not _backend.is_array(value):
                raise TypeError(
                    f"cannot assign {type(value).__name__} to buffer {name!r}; expected an array or None"
                )
            buffers[name] = value
        else:
            if name in params:
                if value is not None:
                    raise TypeError(
                        f"cannot assign {type(value).__name__} to parameter {name!r}; "
                        f"assign a Parameter or set .data"
                    )
                del params[name]
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        _structure_changed()
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._drop_buffer(name)
        object.__delattr__(self, name)

    def _drop_buffer(self, name: str) -> None:
        self.__dict__["_buffers"].pop(name, None)
        self.__dict__["_non_persistent"].discard(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (``None`` registers nothing, like a missing bias)."""
        if param is None:
            if self._parameters.pop(name, None) is not None:
                _structure_changed()
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Array | None, persistent: bool = True) -> None:
        """Register ``tensor`` as non-trainable state under ``name`` (torch's buffers).

        A buffer (BatchNorm's running statistics) is read and rebound as an ordinary
        attribute, ``self.running_mean``. It is part of :meth:`state_dict` (unless
        ``persistent=False``) and therefore of checkpoints, is moved by :meth:`to`
        (floating-point buffers are also cast by ``to(dtype=...)``; integer ones keep
        their dtype), and is never returned by :meth:`parameters`, so optimizers and
        ``zero_grad`` never see it.

        Parameters
        ----------
        name
            Attribute name (no dots, not already an attribute that is not a buffer).
        tensor
            An array of any backend, or ``None`` (registered but absent from
            ``state_dict``, as torch does with a missing buffer).
        persistent
            False keeps the buffer out of :meth:`state_dict` (and checkpoints).

        Raises
        ------
        TypeError
            ``name`` is not a string or ``tensor`` is neither an array nor ``None``.
        KeyError
            ``name`` is empty, contains ``"."`` or is already a non-buffer attribute.
        """
        if not isinstance(name, str):
            raise TypeError(f"register_buffer: name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"register_buffer: buffer name must be non-empty and contain no '.', got {name!r}")
        if name in self.__dict__ and name not in self._buffers:
            raise KeyError(
                f"register_buffer: attribute {name!r} already exists on {type(self).__name__} "
                f"and is not a buffer"
            )
        if tensor is not None and not _backend.is_array(tensor):
            raise TypeError(
                f"register_buffer: {name!r} must be an array or None, got {type(tensor).__name__}. "
                f"Hint: xpnet.asarray(values)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module) -> None:
        """Register a child module under ``name``."""
        if not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} is a {type(module).__name__}, not a Module")
        setattr(self, name, module)

    # ------------------------------------------------------------------ protocol

    def forward(self, x: Array) -> Array:
        """Compute the output; in training mode also store what backward needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, dy: Array) -> Array:
        """Given dL/dy, accumulate parameter gradients and return dL/dx."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def backward_params(self, dy: Array) -> None:
        """Like :meth:`backward` when the caller will not use ``dL/dx``.

        Accumulates every parameter gradient exactly as :meth:`backward` does and returns
        ``None``. A training loop calls this on the whole model: the gradient with
        respect to the data is never needed, and layers that can skip it save work
        (:class:`~xpnet.Linear` skips ``dx = δ W``; :class:`~xpnet.Sequential` forwards
        the call to its first layer with parameters). The default runs :meth:`backward`
        and drops the result, so every module supports it.
        """
        self.backward(dy)

    def __call__(self, x: Array) -> Array:
        # (An array type already seen needs no isinstance test: 0.1 us of every call.)
        if type(x) not in _backend._NS_BY_TYPE and isinstance(x, (int, float, complex, str)):
            # A bare number is never a batch; without this it fails deep inside the layer.
            raise TypeError(
                f"{type(self).__name__}: expected an array of inputs, got {type(x).__name__} "
                f"{x!r}. Hint: pass a batch, e.g. xpnet.asarray([[...]]) or a NumPy array of "
                f"shape (batch, features)"
            )
        return self.forward(x)

    # ------------------------------------------------------------------ copies

    #: Per-process caches kept in a module's ``__dict__`` (rebuilt on demand); a copy or
    #: a pickle leaves them out (the chain's plan holds the array namespace, a module).
    _TRANSIENT = frozenset({
        "_chain_plan", "_chain_workspace", "_parameter_cache", "_ones_cache", "_sigmoid_consts", "_xpnet_buffers",
    })

    def __getstate__(self) -> dict[str, Any]:
        """The state ``copy.deepcopy`` and ``pickle`` save: no caches, no stored passes
        (a copy starts with nothing to backpropagate, like a module after ``to()``)."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}
        state["_saved"] = deque()
        state["_saved_dropped"] = False
        return state

    # ------------------------------------------------------------------ saved passes

    def save_for_backward(self, ctx: Any) -> None:
        """Keep ``ctx`` (what :meth:`backward` will need) for the matching backward.

        Call it once per forward. In eval mode nothing is kept. Contexts form a
        last-in-first-out stack per module, so a module applied twice in one forward
        (tied weights, a block used twice, a siamese branch) gets its two backwards in
        the reverse order, as the chain rule visits them.
        """
        if not self.training:
            return
        saved = self.__dict__["_saved"]
        if len(saved) >= self.max_saved_passes:
            saved.popleft()
            self.__dict__["_saved_dropped"] = True
        saved.append(ctx)

    def pop_saved(self) -> Any:
        """Return and forget the newest context kept by :meth:`save_for_backward`.

        Raises
        ------
        RuntimeError
            Nothing is stored: backward without a training-mode forward, or one backward
            too many.
        """
        saved = self.__dict__["_saved"]
        if not saved:
            raise self._missing_cache()
        return saved.pop()

    def clear_saved(self) -> None:
        """Forget every stored forward pass of this module (not of its children), and the
        buffers it reuses between passes (``model.to()`` and ``eval()`` call this)."""
        self.__dict__["_saved"].clear()
        self.__dict__["_saved_dropped"] = False
        self.__dict__.pop("_xpnet_buffers", None)

    def _missing_cache(self) -> RuntimeError:
        if self.__dict__.get("_saved_dropped"):
            why = (
                f"more than max_saved_passes={self.max_saved_passes} training-mode forward "
                "passes were stored without a backward, and the oldest were dropped; run "
                "forward passes you will not backpropagate under model.eval(), or raise "
                f"{type(self).__name__}.max_saved_passes for a module applied that many times"
            )
        elif not self.training:
            why = (
                "the last forward ran in eval mode, which stores nothing for backward; call "
                "model.train() first"
            )
        else:
            why = "call forward() (in training mode) once before each backward()"
        return RuntimeError(f"{type(self).__name__}.backward: no stored forward pass; {why}")

    # ------------------------------------------------------------------ traversal

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, parameter)`` pairs, each parameter once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, mod in mods:
            for name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Array]]:
        """Yield ``(dotted_name, array)`` for every buffer that is not ``None``, each once."""
        for name, _, _, value in self._buffer_slots(prefix, recurse):
            yield name, value

    def buffers(self, recurse: bool = True) -> Iterator[Array]:
        """Every buffer array (non-trainable state), without the ``None`` ones."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def _buffer_slots(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Module, str, Array]]:
        # (dotted name, owner, attribute, value): load_state_dict and to() rebind through
        # the owner, so the attribute and the registry never disagree.
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, mod in mods:
            for name, b in mod._buffers.items():
                if b is None or id(b) in seen:
                    continue
                seen.add(id(b))
                yield (f"{mod_name}.{name}" if mod_name else name), mod, name, b

    # ------------------------------------------------------------------ state

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients: to ``None`` (default, as torch) or to zeros in place."""
        if set_to_none:
            for p in self._parameter_list():
                p.grad = None
            return
        for p in self._parameter_list():
            if p.grad is None:
                continue
            if _backend.supports_inplace(p.grad):
                p.grad[...] = 0.0
            else:
                p.grad = None

    def _parameter_list(self) -> tuple[Parameter, ...]:
        """``tuple(self.parameters())``, kept until a module anywhere changes its registry.

        ``zero_grad`` runs every training step; walking the module tree costs ~1-2 us
        for a small MLP, this check ~0.1 us. The cache is dropped when any module
        registers or removes a parameter or child (through attribute assignment,
        ``register_parameter``, ``add_module`` or ``del``).
        """
        cache = self.__dict__.get("_parameter_cache")
        if cache is None or cache[0] != _structure_version:
            cache = (_structure_version, tuple(self.parameters()))
            self.__dict__["_parameter_cache"] = cache
        return cache[1]

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and its children; returns ``self``."""
        mode = bool(mode)
        changed = False
        for m in self.modules():
            if m.training is not mode:
                changed = True
                object.__setattr__(m, "training", mode)
            if not mode:
                m.clear_saved()
        if changed:
            _structure_changed()  # containers re-check their children's modes (the chain)
        return self

    def eval(self) -> Module:
        """Evaluation mode: forward stores nothing, dropout is off."""
        return self.train(False)

    def to(self, backend: str | Any | None = None, *, device: Any = None, dtype: Any = None) -> Module:
        """Move every parameter to a backend, device and/or dtype, in place; returns ``self``.

        Parameters
        ----------
        backend
            ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"`` or a namespace;
            ``None`` keeps the current one.
        device
            Target device (``"cuda:0"``, ``array_api_strict.Device("device1")``); ``None``
            keeps the current device when the backend is unchanged, else the default.
        dtype
            ``"float32"`` / ``"float64"`` or a dtype; ``None`` keeps the current one.

        Notes
        -----
        Values travel through the host unchanged, so a model moved between backends holds
        bit-identical parameters. Gradients and stored forward passes are dropped.
        Buffers move with the parameters; ``dtype`` casts the floating-point ones only
        (``num_batches_tracked`` stays an integer), as in torch.
        """
        for p in self.parameters():
            data = _moved(p.data, backend, device, dtype)
            if data is not p.data:
                p.data = data
                p.grad = None
        for _, owner, name, b in list(self._buffer_slots()):
            cast = dtype if _is_floating(b) else None
            data = _moved(b, backend, device, cast)
            if data is not b:
                setattr(owner, name, data)
        for m in self.modules():
            m.clear_saved()
        return self

    def state_dict(self) -> OrderedDict[str, Array]:
        """Ordered mapping of dotted names to arrays (not copies): parameters and buffers.

        The order is torch's: module by module (pre-order), each module's parameters
        then its persistent buffers, so ``BatchNorm1d`` gives ``weight, bias,
        running_mean, running_var, num_batches_tracked``.
        """
        return OrderedDict((name, value) for name, value, _ in self._state_entries())

    def _state_entries(self) -> Iterator[tuple[str, Array, Any]]:
        # (name, array, target): target is a Parameter, or (owner, attribute) for a buffer.
        seen: set[int] = set()
        for mod_name, mod in self.named_modules():
            for name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p.data, p
            for name, b in mod._buffers.items():
                if b is None or name in mod._non_persistent or id(b) in seen:
                    continue
                seen.add(id(b))
                yield (f"{mod_name}.{name}" if mod_name else name), b, (mod, name)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy values into this module's parameters and buffers, keeping their backend and device.

        Values of any backend (or NumPy host arrays) are accepted and moved. Names must
        match exactly (``strict=True``), shapes always, and dtypes must match the
        parameters' (cast explicitly, or ``model.to(dtype=...)`` first); an integer
        buffer (``num_batches_tracked``) accepts any integer dtype.

        Raises
        ------
        KeyError
            Missing or unexpected names with ``strict=True``.
        ValueError
            A shape mismatch.
        TypeError
            A dtype mismatch or a value that is not an array.
        """
        own = {name: (value, target) for name, value, target in self._state_entries()}
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}. "
                f"Hint: the state dict comes from a different architecture, or use strict=False"
            )
        staged = {}
        for name, value in state_dict.items():
            if name not in own:
                continue
            cur, _ = own[name]
            if not _backend.is_array(value):
                raise TypeError(f"load_state_dict: {name!r} is a {type(value).__name__}, not an array")
            if tuple(value.shape) != tuple(cur.shape):
                raise ValueError(
                    f"load_state_dict: shape mismatch for {name!r}: checkpoint has "
                    f"{tuple(value.shape)}, model has {tuple(cur.shape)}"
                )
            want = _backend.dtype_name(cur.dtype)
            got = _backend.dtype_name(value.dtype)
            cast = None
            if got != want:
                if _is_integer(cur) and _is_integer(value):
                    cast = want
                else:
                    raise TypeError(
                        f"load_state_dict: dtype mismatch for {name!r}: checkpoint has "
                        f"{got}, model has {want}. Hint: model.to(dtype={got!r}) before loading"
                    )
            xp = _backend.namespace_of(cur)
            moved = _backend.asarray(
                _backend.to_numpy(value) if _backend.namespace_of(value) is not xp else value,
                xp,
                device=_backend.device_of(cur),
                dtype=cast,
            )
            # asarray may return the caller's buffer (same backend, or torch sharing a
            # NumPy array's memory); optimizers update parameters in place, which would
            # then write into the caller's state dict. Own a copy, as torch does.
            staged[name] = xp.asarray(moved, copy=True)
        # Validate everything before touching any parameter: a failed load changes nothing.
        for name, data in staged.items():
            target = own[name][1]
            if isinstance(target, Parameter):
                target.data = data
                target.grad = None
            else:
                owner, attr = target
                setattr(owner, attr, data)

    # ------------------------------------------------------------------ repr

    def extra_repr(self) -> str:
        """Arguments shown inside this module's repr (override in subclasses)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}("]
        if extra:
            lines.append(f"  {extra}")
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers


def _is_floating(x: Array) -> bool:
    return _backend.dtype_name(x.dtype).startswith(("float", "complex"))


def _is_integer(x: Array) -> bool:
    return _backend.dtype_name(x.dtype).startswith(("int", "uint"))


def _moved(a: Array, backend: Any, device: Any, dtype: Any) -> Array:
    """``a`` on ``backend``/``device``/``dtype`` (``None``: keep); ``a`` itself when nothing changes."""
    cur_xp = _backend.namespace_of(a)
    xp = cur_xp if backend is None else _backend.get_namespace(backend)
    same_backend = xp is cur_xp
    dev = device if device is not None else (_backend.device_of(a) if same_backend else None)
    dt = _backend.resolve_float_dtype(xp, dtype) if dtype is not None else None
    if same_backend and dev == _backend.device_of(a) and (dt is None or dt == a.dtype):
        return a
    if same_backend:
        data = _backend.to_device(a, dev)
        if dt is not None and dt != data.dtype:
            data = xp.astype(data, dt)
        return data
    return _backend.asarray(
        _backend.to_numpy(a),
        xp,
        device=dev,
        dtype=dt if dt is not None else _backend.dtype_name(a.dtype),
    )
