"""A static check for the backend contract (DESIGN.md §2.3-2.4): host syncs and NumPy calls.

``find_violations(source, path)`` parses a module and reports, per function, the places
that would synchronise the host with the device on an array value:

* ``float()``, ``int()``, ``bool()``, ``complex()`` or a ``math.*`` function of an array;
* ``.item()`` / ``.tolist()`` / ``__float__()``, and ``to_numpy`` / ``np.asarray`` of an array;
* Python truth tests of an array: ``if``, ``while``, ``assert``, a conditional expression,
  ``and`` / ``or`` / ``not``;

and, with ``numpy_calls=True``, every use of ``np.*`` / ``numpy.*`` (kernels must use the
input's namespace).

"Array" is decided by a small taint analysis, since Python has no types to read: a value is
an array when it comes from an ``xp.*`` call (other than the host-side ``finfo``,
``iinfo``, ``isdtype``), from a parameter with an array's name (``x``, ``dy``, ``grad``,
...), from ``.data`` / ``.grad`` of a parameter, or from arithmetic, indexing or a method
call on an array. ``.shape``, ``.ndim``, ``.dtype``, ``.device`` and ``.size`` are host
metadata and stop the taint; so do ``is`` / ``is not`` / ``in`` comparisons and ``len``.
The analysis is deliberately simple: it follows names within one function, in source order.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

#: Parameter names that hold arrays in xpnet's kernels (the lecture's names).
ARRAY_PARAMS = frozenset({
    "x", "y", "z", "h", "dy", "dx", "dz", "dw", "db", "input", "target", "targets", "pred",
    "logits", "output", "grad", "grads", "g", "m", "v", "w", "mask", "probs", "scores",
    "y_true", "y_pred", "a", "arr", "array",
})
#: Attributes that are host metadata, whatever they are read from.
HOST_ATTRS = frozenset({"shape", "ndim", "dtype", "device", "size", "__class__", "__name__"})
#: Attributes that are arrays, whatever they are read from (Parameter.data, .grad).
ARRAY_ATTRS = frozenset({"data", "grad", "T", "mT"})
#: ``xp`` functions whose result lives on the host.
HOST_XP = frozenset({"finfo", "iinfo", "isdtype", "result_type", "can_cast"})
#: Builtins whose result is host-side even for an array argument.
HOST_FUNCS = frozenset({
    "len", "isinstance", "issubclass", "type", "id", "getattr", "hasattr", "callable",
    "str", "repr", "range", "enumerate", "zip", "tuple", "print", "format", "hash",
})
SYNC_CASTS = frozenset({"float", "int", "bool", "complex"})
SYNC_METHODS = frozenset({"item", "tolist", "__float__", "__int__", "__bool__"})
TO_HOST = frozenset({"to_numpy", "asnumpy"})
#: xpnet's own helpers that exist to sync (one place to find them all).
SYNC_HELPERS = frozenset({"_to_host_bool", "_to_host_flags", "_host_bool", "_host_float"})


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    function: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}: {self.what}"


class _FunctionChecker(ast.NodeVisitor):
    def __init__(self, path: str, qualname: str, args: ast.arguments, numpy_calls: bool):
        self.path, self.qualname, self.numpy_calls = path, qualname, numpy_calls
        names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        # Constructor arguments are configuration (Linear(bias=True)), not arrays.
        self.tainted = set() if qualname.endswith("__init__") else {n for n in names if n in ARRAY_PARAMS}
        self.found: list[Violation] = []

    # -- taint -------------------------------------------------------------------------
    def is_array(self, node: ast.AST | None) -> bool:  # noqa: PLR0911 - one case per node type
        if node is None:
            return False
        if isinstance(node, ast.Name):
            return node.id in self.tainted
        if isinstance(node, ast.Attribute):
            if node.attr in HOST_ATTRS:
                return False
            return node.attr in ARRAY_ATTRS or self.is_array(node.value)
        if isinstance(node, ast.Call):
            return self._call_is_array(node)
        if isinstance(node, ast.BinOp):
            return self.is_array(node.left) or self.is_array(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.is_array(node.operand)
        if isinstance(node, ast.Compare):
            if all(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
                return False
            return self.is_array(node.left) or any(self.is_array(c) for c in node.comparators)
        if isinstance(node, ast.Subscript):
            return self.is_array(node.value)
        if isinstance(node, ast.IfExp):
            return self.is_array(node.body) or self.is_array(node.orelse)
        if isinstance(node, ast.BoolOp):
            return any(self.is_array(v) for v in node.values)
        if isinstance(node, ast.Starred):
            return self.is_array(node.value)
        return False

    def _call_is_array(self, node: ast.Call) -> bool:
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "xp":
            return f.attr not in HOST_XP
        if isinstance(f, ast.Attribute):
            # A method of an array (x.reshape(...)) is an array; a helper function's result
            # is not assumed to be one (most helpers here answer host questions about
            # metadata: _like(x, w), device_of(x), supports_inplace(g)).
            return f.attr not in SYNC_METHODS and f.attr not in TO_HOST and self.is_array(f.value)
        return False

    def _assign(self, targets: list[ast.AST], value: ast.AST) -> None:
        tainted = self.is_array(value)
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    (self.tainted.add if tainted else self.tainted.discard)(n.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        self._assign(node.targets, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if node.value is not None:
            self._assign([node.target], node.value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.generic_visit(node)
        if self.is_array(node.value) and isinstance(node.target, ast.Name):
            self.tainted.add(node.target.id)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self._assign([node.target], node.iter)
        for stmt in (*node.body, *node.orelse):
            self.visit(stmt)

    # -- violations ----------------------------------------------------------------------
    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append(Violation(self.path, node.lineno, self.qualname, what))

    def _truth(self, test: ast.AST, where: str) -> None:
        if self.is_array(test):
            self.flag(test, f"truth value of an array in {where} (a host sync)")

    def visit_If(self, node: ast.If) -> None:
        self._truth(node.test, "`if`")
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._truth(node.test, "`while`")
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        self._truth(node.test, "`assert`")
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._truth(node.test, "a conditional expression")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        for v in node.values[:-1]:  # the last operand's truth is not tested
            self._truth(v, "`and`/`or`")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._truth(node.operand, "`not`")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        arg_is_array = any(self.is_array(a) for a in node.args)
        if isinstance(f, ast.Name) and f.id in SYNC_CASTS and arg_is_array:
            self.flag(node, f"{f.id}() of an array (a host sync)")
        if isinstance(f, ast.Attribute):
            owner = f.value.id if isinstance(f.value, ast.Name) else None
            if f.attr in SYNC_METHODS:
                self.flag(node, f".{f.attr}() (a host sync)")
            elif owner == "math" and arg_is_array:
                self.flag(node, f"math.{f.attr}() of an array (a host sync)")
            elif (f.attr in TO_HOST or (owner in ("np", "numpy") and f.attr in ("asarray", "array"))) and arg_is_array:
                self.flag(node, f"{owner + '.' if owner else ''}{f.attr}() copies an array to the host")
            elif self.numpy_calls and owner in ("np", "numpy"):
                self.flag(node, f"NumPy call {owner}.{f.attr}(); use the input's namespace xp")
        elif isinstance(f, ast.Name) and f.id in TO_HOST and arg_is_array:
            self.flag(node, f"{f.id}() copies an array to the host")
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name in SYNC_HELPERS:
            self.flag(node, f"{name}() (a host sync)")
        self.generic_visit(node)

    # Nested functions are checked on their own.
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        pass

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass


def find_violations(source: str, path: str = "<source>", *, numpy_calls: bool = False) -> list[Violation]:
    """Every host sync (and, with ``numpy_calls``, every NumPy call) in the functions of ``source``."""
    tree = ast.parse(source, filename=path)
    found: list[Violation] = []

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{node.name}"
                checker = _FunctionChecker(path, qual, node.args, numpy_calls)
                for stmt in node.body:
                    checker.visit(stmt)
                found.extend(checker.found)
                walk(node.body, f"{qual}.")
    walk(tree.body, "")
    return found
