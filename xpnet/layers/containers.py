"""Containers: ``Sequential`` (a chain of modules) and ``Residual`` (``x + module(x)``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .. import _backend
from ..module import Module

__all__ = ["Sequential", "Residual"]

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
        for layer in self._layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: Array) -> Array:
        for layer in reversed(self._layers):
            dy = layer.backward(dy)
        return dy

    def backward_params(self, dy: Array) -> None:
        """Backward for the parameter gradients only; ``dL/dx`` of the input is not computed.

        The first module that has parameters gets ``backward_params`` (a
        :class:`Linear` then skips ``dx = δ W``); the parameter-free modules before it
        (``Flatten``, an input ``Dropout``) have nothing to learn from the gradient, so
        their backward is not run and the forward pass they stored is discarded.
        """
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
