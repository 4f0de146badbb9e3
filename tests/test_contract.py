"""The backend contract (DESIGN.md §2), checked on the source of the numeric modules.

Layers, activations, losses and optimizers are written against the array namespace of
their inputs. A NumPy import, a ``float(array)`` or an ``.item()`` in one of them would
either break a backend or force a device sync on every step; array-api-strict on
``device1`` catches most of these at run time, and this test catches the rest at once.

The host-sync scan (``contract_lint``) covers every module with numeric code, the training
loop, metrics and the data pipeline included. The places that sync on purpose, once per
dataset, per epoch or per log interval, are listed in :data:`ALLOWED_SYNCS` with the
reason; anything else it finds is a defect.
"""

import ast
import pathlib

import pytest
from contract_lint import find_violations

ROOT = pathlib.Path(__file__).resolve().parents[1] / "xpnet"
NUMERIC_MODULES = sorted(
    [ROOT / "module.py", *sorted((ROOT / "layers").glob("*.py")), *sorted((ROOT / "activations").glob("*.py")),
     ROOT / "functional.py",
     ROOT / "losses.py", ROOT / "clip.py"]
    + list((ROOT / "optim").glob("*.py")),
)
FORBIDDEN_MODULES = {"numpy", "cupy", "torch", "scipy", "jax"}

# Modules left out of the host-sync scan, and why. Everything else under xpnet/ is scanned.
NOT_SCANNED = {
    "cli.py": "command line: host-side by nature",
    "cli_train.py": "command line: host-side by nature",
    "cli_parity.py": "command line: host-side by nature",
    "cli_use.py": "command line: host-side by nature",
    "_cli_common.py": "command line: host-side by nature",
    "__main__.py": "entry point",
    "plotting.py": "matplotlib on host values",
    "checkpoint.py": "file I/O: arrays go to the host to be written, once per save",
    "data/files.py": "reads files into NumPy on the host (DESIGN §2.7: data starts on the host)",
    "data/idx.py": "reads IDX files into NumPy on the host",
    "data/datasets.py": "builds datasets in NumPy on the host",
    "init.py": "initializers draw on the host by design (DESIGN §2.7)",
    "random.py": "the host-side generator",
    "distributed/_groups.py": "the transport: handing one packed buffer per step to MPI/NCCL, staged through the host where the route says so, is its job",
}
SCANNED = sorted(
    p for p in ROOT.rglob("*.py")
    if str(p.relative_to(ROOT)) not in NOT_SCANNED and p.relative_to(ROOT).parts[0] != "testing"
)
KERNELS = {str(p.relative_to(ROOT)) for p in NUMERIC_MODULES} | {"metrics.py"}

# (module, function, kind of sync) -> why it is allowed. The kind is the start of the
# violation's text, so a *new* kind of sync in the same function is still caught.
ALLOWED_SYNCS = {
    ("_loop.py", "_stack_host", "_backend.to_numpy()"): "one transfer of the stacked step log per log interval",
    ("_loop.py", "_totals_host", "_backend.to_numpy()"): "one transfer of an evaluation pass's totals",
    ("_loop.py", "_StepLog.host", "_backend.to_numpy()"): "the per-log-interval transfer of the running loss",
    ("clip.py", "clip_grad_norm_", "bool()"): "error_if_nonfinite=True only, off by default (torch syncs there too)",
    ("data/loader.py", "_as_array", "np.asarray()"): "host lists and NumPy scalars become NumPy arrays; device arrays return earlier",
    ("data/loader.py", "_check_finite", "_backend.to_numpy()"): "NaN/Inf check once per dataset, at the loader's construction",
    ("data/preprocessing.py", "train_test_split", ".item()"): "error message for a class too small to split (host array)",
    ("layers/embedding.py", "Embedding._check_range", "_backend.to_numpy()"): "index range check: check_indices() at entry points, or forward with validate=True",
    ("losses.py", "BCELoss.forward", "_to_host_bool()"): "target range check, only with validate=True (fit turns it off after checking the data once)",
    ("losses.py", "_check_weight_arg", "float()"): "a weight given as a Python number (the scan cannot see the isinstance guard)",
    ("losses.py", "_ClassLoss._check_labels", "_to_host_bool()"): "class-label range check, only with validate=True, once per target array",
    ("losses.py", "_ClassLoss._check_labels", "_to_host_flags()"): "class-label range and ignore_index check in one transfer, only with validate=True, once per target array",
    ("losses.py", "_ClassLoss._check_labels", "_backend.to_numpy()"): "names the bad label in the error, only after the check failed",
    ("losses.py", "_to_host_flags", "_backend.to_numpy()"): "the helper that transfers several validation flags at once (callers are allow-listed)",
    ("_backend.py", "views_alias", ".tolist()"): "one probe per namespace and device whether slices are views (a 4-element array)",
    ("losses.py", "CrossEntropyLoss._forward_2d", "_to_host_bool()"): "probability targets >= 0 check, only with validate=True",
    ("module.py", "_moved", "_backend.to_numpy()"): "moving a model between backends goes through the host, once",
    ("training.py", "_validate_values", "_backend.to_numpy()"): "label and finiteness checks once per dataset at fit's entry",
    ("training.py", "_split_validation", "_backend.to_numpy()"): "validation_split: the class counts of y, once per fit, to decide whether to stratify",
    ("sklearn/_arrays.py", "to_host", "_backend.to_numpy()"): "y and sample_weight are read on the host once per fit (label encoding, per-batch weight sums)",
    ("sklearn/_arrays.py", "to_place", "_backend.to_numpy()"): "a move between namespaces (backend= other than the input's) goes through the host, once per call",
    ("sklearn/_arrays.py", "to_place", "np.asarray()"): "host data (lists, DataFrames) becomes NumPy before it is moved",
    ("sklearn/_base.py", "BaseMLP._set_weights", "np.asarray()"): "weights assigned to coefs_/intercepts_ are staged on the host, once per assignment",
    ("sklearn/_checkpoint.py", "save", ".tolist()"): "classes_ (a host NumPy array) written as JSON, once per save",
    ("sklearn/_estimators.py", "MLPClassifier._decode", "_backend.to_numpy()"): "class indices to the host for string labels or NumPy output, once per predict",
    ("sklearn/_training.py", "StochasticTraining._fit_stochastic", "_backend.to_numpy()"): "the per-epoch transfer of the stacked batch losses (tol and n_iter_no_change need the epoch loss)",
}


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


def _scan(path: pathlib.Path) -> list:
    rel = str(path.relative_to(ROOT))
    return [
        v for v in find_violations(path.read_text(), rel, numpy_calls=rel in KERNELS)
        if not any((rel, v.function) == (m, f) and v.what.startswith(k) for m, f, k in ALLOWED_SYNCS)
    ]


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_host_sync_or_numpy_call_outside_the_allow_list(path):
    found = _scan(path)
    assert not found, "host syncs / NumPy calls (fix, or allow-list with a reason):\n" + "\n".join(map(str, found))


def test_allow_list_entries_are_all_still_needed():
    # A stale entry would silently allow a future sync in that function.
    used = set()
    for path in SCANNED:
        rel = str(path.relative_to(ROOT))
        for v in find_violations(path.read_text(), rel, numpy_calls=rel in KERNELS):
            used |= {(m, f, k) for m, f, k in ALLOWED_SYNCS if (rel, v.function) == (m, f) and v.what.startswith(k)}
    assert set(ALLOWED_SYNCS) == used, f"stale allow-list entries: {sorted(set(ALLOWED_SYNCS) - used)}"


def test_not_scanned_entries_exist():
    assert all((ROOT / rel).exists() for rel in NOT_SCANNED), [r for r in NOT_SCANNED if not (ROOT / r).exists()]


LINEAR = (ROOT / "layers" / "linear.py").read_text()
PLANTED = {
    "float(x)": ("        w = self.weight.data\n", "        w = self.weight.data\n        scale = float(x)\n"),
    "if on array": ("        w = self.weight.data\n", "        w = self.weight.data\n        if xp.any(x > 0):\n            pass\n"),
    ".item()": ("        w = self.weight.data\n", "        w = self.weight.data\n        s = xp.sum(x).item()\n"),
    "int(derived)": ("        w = self.weight.data\n", "        w = self.weight.data\n        k = int(xp.max(w @ w.T))\n"),
    "np call": ("        w = self.weight.data\n", "        w = self.weight.data\n        np.exp(1.0)\n"),
    "and on array": ("        w = self.weight.data\n", "        w = self.weight.data\n        flag = (x > 0) and True\n"),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_scan_catches_a_planted_sync_in_a_layer(name):
    """A test of the test: each planted sync in Linear.forward is reported, and only it."""
    old, new = PLANTED[name]
    assert LINEAR.count(old) >= 1, "Linear.forward changed: update the planting anchor"
    assert not find_violations(LINEAR, "layers/linear.py", numpy_calls=True)
    found = find_violations(LINEAR.replace(old, new, 1), "layers/linear.py", numpy_calls=True)
    assert len(found) == 1 and found[0].function == "Linear.forward", found


def test_the_scan_ignores_host_metadata():
    src = (
        "def forward(self, x):\n"
        "    if x.shape[0] == 0 or x.ndim != 2:\n        pass\n"
        "    if x.dtype == xp.float64 and x.device is not None:\n        pass\n"
        "    n = int(x.shape[1]); eps = float(xp.finfo(x.dtype).eps)\n"
        "    return x if len(x) else x\n"
    )
    assert find_violations(src) == []
