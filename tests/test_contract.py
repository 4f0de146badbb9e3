"""The backend contract (DESIGN.md §2), checked on the source of the numeric modules.

Layers, activations, losses and optimizers are written against the array namespace of
their inputs. A NumPy import, a ``float(array)`` or an ``.item()`` in one of them would
either break a backend or force a device sync on every step; array-api-strict on
``device1`` catches most of these at run time, and this test catches the rest at once.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "xpnet"
NUMERIC_MODULES = sorted(
    [ROOT / "module.py", *sorted((ROOT / "layers").glob("*.py")), *sorted((ROOT / "activations").glob("*.py")),
     ROOT / "functional.py",
     ROOT / "losses.py", ROOT / "clip.py"]
    + list((ROOT / "optim").glob("*.py")),
)
FORBIDDEN_MODULES = {"numpy", "cupy", "torch", "scipy", "jax"}


@pytest.mark.parametrize("path", NUMERIC_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_numeric_module_imports_no_array_library(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        else:
            continue
        bad = FORBIDDEN_MODULES.intersection(names)
        assert not bad, f"{path.name}:{node.lineno} imports {bad}; use the input's namespace (xp)"


@pytest.mark.parametrize("path", NUMERIC_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_numeric_module_has_no_item_or_tolist_calls(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in {"item", "tolist"}, (
                f"{path.name}:{node.lineno} calls .{node.func.attr}(): a host sync per call"
            )
