"""Containers: ``Sequential`` (a chain of modules) and ``Residual`` (``x + module(x)``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .. import _backend, _fusion
from .. import module as _module
from ..module import Module
from ._util import _check_dy, _like
from .linear import Linear

__all__ = ["Sequential", "Residual"]

_MIN_SIZE_RENAMED = (
    "Sequential.chain_buffer_min_size (elements) was replaced by chain_buffer_min_bytes "
    "(bytes of the widest layer's arrays, default 131072). Hint: model.chain_buffer_min_bytes "
    "= 2**62 turns the reused buffers off, 0 uses them for every size"
)

Array = Any


class Sequential(Module):
    """Chain of modules: forward in order, backward in reverse.

    ``Sequential(Linear(2, 3), Sigmoid(), Linear(3, 1))`` names its parameters
    ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ... as torch does. An ``OrderedDict`` of
    named modules is accepted too.
    """

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)
        self._layers = tuple(self._modules.values())

    def add_module(self, name: str, module: Module) -> None:
        super().add_module(name, module)
        object.__setattr__(self, "_layers", tuple(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def __getitem__(self, idx: int | slice) -> Module:
        if isinstance(idx, slice):
            return Sequential(*self._layers[idx])
        return self._layers[idx]

    def forward(self, x: Array) -> Array:
        chain = self._chain(x)
        if chain is None:
            self.save_for_backward(None)  # backward: the layers kept their own passes
            for layer in self._layers:
                x = layer.forward(x)
            return x
        xp = chain.xp
        ctxs = []
        if x.ndim != 2:  # (the kernels reshape 1-D and N-D inputs themselves)
            for forward in chain.forwards:
                x, ctx = forward(x, xp)
                ctxs.append(ctx)
        elif not chain.width or (n := x.shape[0]) * chain.width * chain.itemsize < self.chain_buffer_min_bytes:
            # The common case: the chain's generated forward (xpnet._fusion).
            y, saved = chain.fused.forward(x)
            self.save_for_backward((chain, saved, y, True))
            return y
        else:
            # Large arrays: reuse buffers instead of allocating ("chain buffers" below);
            # the workspace only while no earlier pass is still waiting for its backward.
            ws = self._workspace() if not self.__dict__["_saved"] else None
            layers = chain.layers
            own = False  # x was made in this pass and no context keeps it
            for k, layer in enumerate(layers):
                out = self._forward_out(chain, k, x, n, ws, own)
                y, ctx = layer._kernel_forward(x, xp, out)
                # A new result (or x overwritten in place) is this pass's own unless the
                # layer keeps it; an identity (Dropout in eval mode) passes x on as it is,
                # and no longer ours if it keeps it.
                if y is not x or out is not None:
                    own = not layer._ctx_holds_output
                elif layer._ctx_holds_output:
                    own = False
                x = y
                ctxs.append(ctx)
        self.save_for_backward((chain, ctxs, x, False))
        return x

    def backward(self, dy: Array) -> Array:
        saved = self._pop_pass()
        if saved is None:
            for layer in reversed(self._layers):
                dy = layer.backward(dy)
            return dy
        return self._chain_backward(dy, saved, True)

    def backward_params(self, dy: Array) -> None:
        """Backward for the parameter gradients only; ``dL/dx`` of the input is not computed.

        The first module that has parameters gets ``backward_params`` (a
        :class:`Linear` then skips ``dx = δ W``); the parameter-free modules before it
        (``Flatten``, an input ``Dropout``) have nothing to learn from the gradient, so
        their backward is not run and the forward pass they stored is discarded.
        """
        saved = self._pop_pass()
        if saved is not None:
            self._chain_backward(dy, saved, False)
            return
        layers = self._layers
        k = 0
        while k < len(layers) and not layers[k]._parameters and not layers[k]._modules:
            k += 1
        for layer in reversed(layers[k + 1 :]):
            dy = layer.backward(dy)
        if k < len(layers):
            layers[k].backward_params(dy)
        for layer in layers[:k]:
            layer.pop_saved()

    # ------------------------------------------------------------------ the chain
    #
    # A Sequential of chainable modules (Module._chainable: Linear and the common
    # activations) runs their kernels directly: the input is checked once here against
    # the first Linear's weight (array type, dtype, device, width), and dy once against
    # the output, instead of by every layer; the whole pass is one saved context of this
    # container instead of one per layer. Layer k's input is layer k-1's output, so the
    # per-layer checks could not fail once the chain itself was verified (widths, and
    # every weight of the first one's type, dtype and device). Anything else (another
    # module, mixed modes, an input the check does not accept) takes the per-layer path,
    # which raises the same errors as before. The arithmetic is the layers' own, so the
    # numbers are identical (tested).

    def _chain(self, x: Array) -> _Chain | None:
        """The chain's plan when ``x`` may run as a chain, else None."""
        chain = self.__dict__.get("_chain_plan")
        if chain is None or chain.version != _module._structure_version:
            chain = self.__dict__["_chain_plan"] = _Chain(self)
        if chain.layers is None:
            return None
        # x like the first weight (array type, dtype, device: _like, inlined) and as wide.
        w0 = chain.weights[0]
        if (
            type(x) is not type(w0) or x.dtype != w0.dtype or x.ndim == 0
            or getattr(x, "device", None) != chain.device or x.shape[-1] != chain.in_features
        ):
            return None  # the per-layer path accepts it or raises the layer's own error
        for p, w in zip(chain.params, chain.weights):
            if p.data is not w:  # moved, reloaded or rebound: verify again
                self.__dict__["_chain_plan"] = None
                return self._chain(x)
        return chain  # x has the weights' array type: their namespace

    def _pop_pass(self) -> Any:
        """The chain's saved pass, or None: the layers kept their own (or a subclass's
        forward saved nothing here)."""
        saved = self.__dict__["_saved"]
        return saved.pop() if saved else None

    def _chain_backward(self, dy: Array, saved: Any, need_dx: bool) -> Array | None:
        chain, ctxs, out, fused = saved
        if dy.shape != out.shape or not _like(dy, out):
            # The last layer's own check and message (what the per-layer path raises).
            _check_dy(type(chain.layers[-1]).__name__, dy, out, tuple(out.shape))
        if fused:
            return chain.fused.backward(dy, ctxs) if need_dx else chain.fused.backward_params(dy, ctxs)
        if out.ndim == 2:  # the forward took the buffered path
            return self._chain_backward_buffered(dy, chain, ctxs, out, need_dx)
        xp, backwards = chain.xp, chain.backwards
        stop = -1 if need_dx else chain.first_param  # the layer that needs no dx
        for k in chain.down:
            if k == stop:
                backwards[k](dy, ctxs[k], xp, False)
                return None
            dy = backwards[k](dy, ctxs[k], xp, True)
        return dy

    def _chain_backward_buffered(self, dy: Array, chain: _Chain, ctxs: list[Any], out: Array,
                                 need_dx: bool) -> Array | None:
        layers, first_param, xp = chain.layers, chain.first_param, chain.xp
        stop = 0 if need_dx else first_param
        n = out.shape[0]
        ws = self._workspace()
        own = False  # dy was made by this backward (the caller's dy is never written)
        for k in range(len(layers) - 1, stop - 1, -1):
            layer = layers[k]
            buf = None
            if own and layer._kernel_inplace and n * dy.shape[-1] * chain.itemsize >= self.chain_buffer_min_bytes:
                # dy is this backward's own: a later layer made it, so that layer also
                # made a new output in the forward, and the output kept in ctxs[k] is
                # not the model output returned to the caller (only identities, such as
                # Dropout with p=0, pass arrays on unchanged, both ways). It was last
                # read by that layer: the backward overwrites both.
                buf = dy
            elif k > first_param and type(layer) is Linear:
                # (The first Linear's dx is, through in-place activations before it,
                # the dx returned to the caller: never a reused buffer.)
                buf = self._buffer(ws, ("dx", k), (n, layer.in_features), dy, chain.itemsize)
            dx = layer._kernel_backward(dy, ctxs[k], xp, need_dx or k > stop, buf)
            own = own or dx is not dy  # (an identity's backward passes dy on as it is)
            dy = dx
        return dy if need_dx else None

    # ------------------------------------------------------------------ chain buffers
    #
    # At large batch sizes a step's fresh arrays are large too, and every allocation of
    # more than ~128 KiB is a fresh mmap whose pages fault in on first write (glibc):
    # digits at batch 2048 took 2.3x the tuned step, which allocates nothing. On NumPy
    # (_backend.reuses_buffers) the chain therefore writes, for arrays of at least
    # chain_buffer_min_bytes bytes,
    #   * an activation's forward into the preceding Linear's output (made by this pass,
    #     not kept by anyone: a Linear keeps its input), when the activation keeps only
    #     its output (Sigmoid, Tanh, ReLU);
    #   * a Linear's output, except the last Linear's (it may be the model's output),
    #     into a workspace buffer kept by the container, reused by the next pass once
    #     this one's backward has run (a second forward before that allocates);
    #   * an activation's backward into its dy (made by the next layer's backward), also
    #     overwriting its kept output, read for the last time;
    #   * a Linear's dx, except the first Linear's (it may become the dx returned to the
    #     caller), into a workspace buffer.
    # The operations and their order are unchanged: the numbers are identical (tested).

    #: Arrays of fewer bytes are allocated: below glibc's mmap threshold (128 KiB) a fresh
    #: array comes from the heap without page faults, and the generated straight-line
    #: code (xpnet._fusion) runs instead of the per-layer loop that manages the buffers.
    #: (Measured: digits at batch 128, 64 KiB arrays, 1.18x the tuned step fresh, 1.25x
    #: buffered; at batch 256, 128 KiB, 2.7x fresh, 1.17x buffered.)
    chain_buffer_min_bytes: int = 131072

    @property
    def chain_buffer_min_size(self) -> int:
        """Removed: the threshold is in bytes now (:attr:`chain_buffer_min_bytes`)."""
        raise AttributeError(_MIN_SIZE_RENAMED)

    @chain_buffer_min_size.setter
    def chain_buffer_min_size(self, value: int) -> None:
        raise AttributeError(_MIN_SIZE_RENAMED)

    def clear_saved(self) -> None:
        """Forget the stored passes, and the chain's reusable buffers with them."""
        super().clear_saved()
        self.__dict__.pop("_chain_workspace", None)

    def _workspace(self) -> dict[Any, Array]:
        ws = self.__dict__.get("_chain_workspace")
        if ws is None:
            ws = self.__dict__["_chain_workspace"] = {}
        return ws

    def _forward_out(self, chain: _Chain, k: int, x: Array, n: int, ws: dict[Any, Array] | None,
                     own: bool) -> Array | None:
        layers = chain.layers
        layer = layers[k]
        if type(layer) is Linear:
            if ws is None or k >= chain.last_linear:
                return None
            return self._buffer(ws, ("z", k), (n, layer.out_features), x, chain.itemsize)
        if own and layer._kernel_inplace and n * x.shape[-1] * chain.itemsize >= self.chain_buffer_min_bytes:
            return x  # made in this pass and kept by nobody
        return None

    def _buffer(self, ws: dict[Any, Array], key: Any, shape: tuple[int, int], like: Array,
                itemsize: int) -> Array | None:
        """The workspace buffer ``key`` of ``shape`` like ``like``; None for a small array."""
        if shape[0] * shape[1] * itemsize < self.chain_buffer_min_bytes:
            return None
        buf = ws.get(key)
        if buf is None or buf.shape != shape or not _like(buf, like):
            xp = _backend.namespace_of(like)
            buf = ws[key] = xp.empty(shape, dtype=like.dtype, device=_backend.device_of(like))
        return buf



class _Chain:
    """A :class:`Sequential`'s plan for running its layers' kernels as one chain.

    ``layers`` is None when the container cannot chain (a module that is not
    chainable, mixed training modes, or Linears of different array types, dtypes,
    devices or non-matching widths). Built once per structure version
    (``xpnet.module._structure_version``) and re-verified when a weight array is
    replaced. ``forwards``/``backwards`` are the layers' bound kernels and ``down``
    their indices in backward order, built once: a step only reads them. ``fused`` is
    the generated forward and backward of a 2-D input (:mod:`xpnet._fusion`), written
    from the layers' kernel sources; ``ones`` its ``ones(N)`` vector for ``db = 1ᵀ δ``.
    """

    __slots__ = (
        "version", "layers", "first_param", "in_features", "params", "weights", "xp", "device",
        "width", "itemsize", "last_linear", "forwards", "backwards", "down", "fused", "ones",
    )

    def __init__(self, seq: Sequential) -> None:
        self.version = _module._structure_version
        self.layers: tuple[Module, ...] | None = None
        layers = seq._layers
        if not layers or any(
            not m._chainable or m.training != seq.training or "forward" in m.__dict__ for m in layers
        ):
            return  # (a forward replaced on the instance, a spy or a recorder, must be called)
        linears = [m for m in layers if m._parameters]
        if not linears or any(type(m) is not Linear for m in linears):
            return
        w0 = linears[0].weight.data
        features = None  # the width flowing out of the previous Linear
        for m in layers:
            if type(m) is Linear:
                if (features is not None and m.in_features != features) or not _like(m.weight.data, w0):
                    return
                features = m.out_features
        self.layers = layers
        self.first_param = layers.index(linears[0])
        self.in_features = linears[0].in_features
        self.params = tuple(m.weight for m in linears)
        self.weights = tuple(p.data for p in self.params)
        self.xp = _backend.namespace_of(w0)
        self.device = getattr(w0, "device", None)
        # The widest layer where buffers may be reused (NumPy), else 0, and the bytes
        # per element there.
        self.width = self.itemsize = 0
        if _backend.reuses_buffers(self.xp) and _backend.matmul_out(type(w0)) is not None:
            self.width = max(max(m.in_features, m.out_features) for m in linears)
            self.itemsize = w0.dtype.itemsize
        self.last_linear = max(k for k, m in enumerate(layers) if type(m) is Linear)
        self.forwards = tuple(m._kernel_forward for m in layers)
        self.backwards = tuple(m._kernel_backward for m in layers)
        self.down = tuple(range(len(layers) - 1, -1, -1))
        self.ones = None
        sources = [_kernel_source(m, w0, self.xp) for m in layers]
        self.fused = _fusion.fuse(sources, self.first_param, self, type(seq).__name__)

    def batch_ones(self, dy: Array) -> Array:
        """``ones(N)`` like ``dy`` (the chain's dtype and device), kept for the next step."""
        ones = self.ones = self.xp.ones((dy.shape[0],), dtype=dy.dtype, device=_backend.device_of(dy))
        return ones


def _kernel_source(m: Module, like: Array, xp: Any) -> _fusion.KernelSource:
    """``m``'s kernel source, or the source calling its bound kernels.

    A subclass that overrides a kernel but inherits ``_kernel_source``, or a module
    whose kernel was replaced on the instance (a spy, a patch), gets the calls: the
    source describes the kernels of the class that defines it.
    """
    cls = type(m)
    owner = next((c for c in cls.__mro__ if "_kernel_source" in c.__dict__), None)
    if (
        owner is not None and cls._kernel_forward is owner._kernel_forward
        and cls._kernel_backward is owner._kernel_backward
        and "_kernel_forward" not in m.__dict__ and "_kernel_backward" not in m.__dict__
    ):
        return m._kernel_source(like, xp)
    return _fusion.kernel_call_source(m, xp)


class Residual(Module):
    """Skip connection ``y = x + module(x)``, the building block of ResNets.

    Parameters
    ----------
    module
        The residual branch; it must keep the shape of its input (use a ``Linear`` or a
        convolution to project first when the widths differ).

    Shape
    -----
    Input ``(*)``, output ``(*)``, the same shape.

    Notes
    -----
    Forward ``y = x + F(x)``. Backward ``dx = dy + F'(x)ᵀ dy``: the upstream gradient
    passes through the identity unchanged and through the branch's own backward, and the
    two add. The branch's parameters are named ``module.<name>`` (``"0.module.weight"``
    inside a ``Sequential``). A ``Residual`` (or the module inside it) applied several
    times in one forward gets its backwards in reverse order, like every module.
    """

    def __init__(self, module: Module) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"Residual: expected a Module, got {type(module).__name__}")
        self.module = module

    def forward(self, x: Array) -> Array:
        fx = self.module.forward(x)
        if tuple(fx.shape) != tuple(x.shape):
            raise ValueError(
                f"Residual: the branch must keep the input's shape for x + module(x), but "
                f"{type(self.module).__name__} maps {tuple(x.shape)} to {tuple(fx.shape)}. "
                f"Hint: make the branch end in as many features/channels as it starts with"
            )
        _backend.namespace_of(x, fx)
        self.save_for_backward(None)
        return x + fx

    def backward(self, dy: Array) -> Array:
        self.pop_saved()
        return dy + self.module.backward(dy)

    def backward_params(self, dy: Array) -> None:
        """The branch's parameter gradients; the identity path carries no parameters."""
        self.pop_saved()
        self.module.backward_params(dy)
