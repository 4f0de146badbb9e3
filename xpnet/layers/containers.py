"""``Sequential``: a chain of modules, forward in order and backward in reverse."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ..module import Module

__all__ = ["Sequential"]

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
