"""Fusing a chain of layer kernels into one generated Python function per direction.

On small arrays a training step is dominated by Python, not arithmetic: XOR's whole step
is ~25 NumPy operations of well under a microsecond each, and every Python call around
them (a layer's kernel, its attribute reads, a constants check, the tuple it returns)
costs 0.1-0.3 us more. :class:`~xpnet.Sequential` therefore turns its chain of kernels
into two straight-line functions, ``forward(x) -> (y, saved)`` and
``backward(dy, saved) -> dx``, written from each layer's :class:`KernelSource`: the same
operations in the same order as the layers' own kernels (the tests compare them bit for
bit), with the constants of the chain's dtype and device bound once as globals instead
of looked up per call. This is what ``namedtuple`` and ``dataclasses`` do for their
methods; the source is kept on the plan and registered with :mod:`linecache`, so a
traceback through it shows the lines.

A layer without a source runs its bound kernels from the generated code (the fallback
source of :func:`kernel_call_source`), so every chainable module fuses.
"""

from __future__ import annotations

import hashlib
import linecache
import string
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = ["KernelSource", "kernel_call_source", "FusedChain", "fuse"]

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class KernelSource:
    """A chainable module's kernels as lines of Python source, for :func:`fuse`.

    Each line is a ``str.format`` template. ``{x}`` and ``{y}`` are the forward's input
    and output, ``{dy}`` and ``{dx}`` the backward's; ``{ones}`` is a ``ones(N)`` vector
    of the batch (for ``db = 1ᵀ δ``). Any other field is either a name of ``consts``
    (bound as a global of the generated function) or a local variable; every such name
    gets the layer's index appended, so layers never clash, and every name in the lines
    is a field. The backward may read ``x``, ``y`` and the forward's locals named in
    ``saves``.

    Attributes
    ----------
    forward
        Lines computing ``{y}`` from ``{x}`` (``{x}`` is not read after ``{y}`` is
        assigned: values the backward does not read share one name).
    backward
        Lines accumulating parameter gradients (if any) and computing ``{dx}`` from
        ``{dy}``; the last line assigns ``{dx}`` (the chain reuses one name for every
        gradient, so ``{dy}`` may not be read after it).
    backward_params
        The parameter-gradient lines alone, for the first layer with parameters when no
        ``dL/dx`` is wanted (``Sequential.backward_params``).
    saves
        The forward names the backward reads: ``"x"``, ``"y"`` or locals.
    consts
        Values the lines refer to by name: parameters, 0-d constants, the namespace's
        functions.
    """

    forward: tuple[str, ...]
    backward: tuple[str, ...]
    backward_params: tuple[str, ...] = ()
    saves: tuple[str, ...] = ()
    consts: Mapping[str, Any] = field(default_factory=dict)


def kernel_call_source(module: Any, xp: Any) -> KernelSource:
    """The source that calls ``module``'s bound chain kernels (the generic fallback)."""
    return KernelSource(
        forward=("{y}, {ctx} = {kf}({x}, {xp})",),
        backward=("{dx} = {kb}({dy}, {ctx}, {xp}, True)",),
        backward_params=("{kb}({dy}, {ctx}, {xp}, False)",),
        saves=("ctx",),
        consts={"kf": module._kernel_forward, "kb": module._kernel_backward, "xp": xp},
    )


@dataclass(frozen=True)
class FusedChain:
    """The generated functions of one chain, and their source (for reading, debugging).

    ``forward(x)`` returns ``(y, saved)``; ``backward(dy, saved)`` returns ``dx``;
    ``backward_params(dy, saved)`` accumulates the parameter gradients only and returns
    None. ``saved`` is the tuple of forward values the backward reads.
    """

    forward: Any
    backward: Any
    backward_params: Any
    source: str


def fuse(sources: Sequence[KernelSource], first_param: int, chain: Any, name: str = "chain") -> FusedChain:
    """Generate the fused forward and backward of a chain of kernel sources.

    Parameters
    ----------
    sources
        One :class:`KernelSource` per layer, in forward order.
    first_param
        Index of the first layer with parameters: ``backward_params`` stops there (it
        runs that layer's ``backward_params`` lines and nothing before it).
    chain
        The plan that keeps the batch's ``ones(N)`` vector: its attribute ``ones`` (None
        at first), and ``batch_ones(dy)``, which makes it like ``dy`` and keeps it. Read
        once per backward, only if a source uses ``{ones}``.
    name
        Used in the generated file name, for tracebacks.
    """
    gen = _Generator(sources)
    src = "\n".join(
        [*gen.forward(), "", *gen.backward(first_param, need_dx=True), "",
         *gen.backward(first_param, need_dx=False), ""]
    )
    code = _compile(src, name)
    # Tracebacks and inspect read generated code through linecache (registered again
    # here: the compiled code is cached, and linecache.clearcache() empties the cache).
    linecache.cache[code.co_filename] = (len(src), None, src.splitlines(True), code.co_filename)
    env: dict[str, Any] = {"__builtins__": __builtins__, "_chain": chain, **gen.consts}
    exec(code, env)  # noqa: S102 - our own generated source (see the module docstring)
    return FusedChain(env["forward"], env["backward"], env["backward_params"], src)


@lru_cache(maxsize=256)
def _compile(src: str, name: str) -> types.CodeType:
    """Compile generated source once (a plan rebuilt for new weights reuses the code)."""
    digest = hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()[:12]
    return compile(src, f"<xpnet fused {name} {digest}>", "exec")


class _Generator:
    """Names the chain's values and writes the three functions' source."""

    def __init__(self, sources: Sequence[KernelSource]) -> None:
        self.sources = list(sources)
        self.consts: dict[str, Any] = {}
        n = len(self.sources)
        # Value k is layer k's input (value 0 the chain's input, value n its output).
        read = set()  # the values a backward reads
        for k, s in enumerate(self.sources):
            if "x" in s.saves:
                read.add(k)
            if "y" in s.saves:
                read.add(k + 1)
        # The input, the output and the values read get their own names; the others
        # share one, so the forward frees them as it goes, as a loop over layers would.
        self.value = [f"a{k}" if k in read or k in (0, n) else "a" for k in range(n + 1)]
        self.saved = [self.value[k] for k in sorted(read)]
        for k, s in enumerate(self.sources):
            self.saved += [f"{local}_{k}" for local in s.saves if local not in ("x", "y")]
            for cname, value in s.consts.items():
                self.consts[f"{cname}_{k}"] = value
        # Each layer's names: every gradient is d (each backward block ends by rebinding it).
        self.fields = [
            {**{name: f"{name}_{k}" for name in _field_names((*s.forward, *s.backward, *s.backward_params))},
             "x": self.value[k], "y": self.value[k + 1], "dy": "d", "dx": "d", "ones": "ones"}
            for k, s in enumerate(self.sources)
        ]

    def forward(self) -> list[str]:
        lines = [f"def forward({self.value[0]}):"]
        for k, s in enumerate(self.sources):
            lines += ["    " + line.format_map(self.fields[k]) for line in s.forward]
        lines.append(f"    return {self.value[-1]}, ({''.join(v + ', ' for v in self.saved)})")
        return lines

    def backward(self, first_param: int, need_dx: bool) -> list[str]:
        name = "backward" if need_dx else "backward_params"
        lines = [f"def {name}(d, saved):"]
        if self.saved:
            lines.append(f"    {''.join(v + ', ' for v in self.saved)}= saved")
        stop = 0 if need_dx else first_param
        used = self.sources[stop:]
        if any("{ones}" in line for s in used for line in (*s.backward, *s.backward_params)):
            lines += [
                "    ones = _chain.ones",
                "    if ones is None or ones.shape[0] != d.shape[0]:",
                "        ones = _chain.batch_ones(d)",
            ]
        for k in range(len(self.sources) - 1, stop - 1, -1):
            s = self.sources[k]
            body = s.backward if need_dx or k > stop else s.backward_params
            lines += ["    " + line.format_map(self.fields[k]) for line in body]
        lines.append("    return d" if need_dx else "    return None")
        return lines


@lru_cache(maxsize=256)
def _field_names(lines: tuple[str, ...]) -> frozenset[str]:
    """The format fields of a source's lines other than the reserved ones (cached: a plan
    is rebuilt on every train/eval switch, and parsing is most of its cost)."""
    names = set()
    for line in lines:
        for _, fname, _, _ in _FORMATTER.parse(line):
            if fname:
                names.add(fname)
    return frozenset(names - {"x", "y", "dy", "dx", "ones"})
