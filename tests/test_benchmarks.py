"""The benchmark harness keeps running (smoke test), and the layer paths it relies on agree.

Speed itself is not asserted here (DESIGN §6: speed claims live in benchmarks/run.py and
docs/performance.md); these tests make sure the harness cannot rot and that what it
times computes the same thing as the portable code.
"""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet

# benchmarks/ is a directory of the repository, not part of the installed package: make
# it importable however pytest was started (``pytest`` puts only tests/ on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness, run  # noqa: E402
from benchmarks.workloads import WORKLOADS, initial_weights, make_batch  # noqa: E402
from xpnet.activations import ReLU, Tanh  # noqa: E402

# float32 parameters after a few steps: BLAS summation order differs between paths by
# ~1e-7 relative per product; gradients of O(1) values agree to a few ulps.
RTOL_F32 = 1e-5
ATOL_F32 = 1e-6


def test_harness_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = run.main([
        "--quick", "--workloads", "xor,digits,deep",
        "--impls", "numpy_ref,xpnet_numpy,xpnet_strict,torch_cpu,matmul_ceiling",
        "--repeats", "1", "--sample-ms", "0.5", "--fit-epochs", "1", "--json", str(out),
    ])
    assert results["ok"], results["agreement"]
    saved = json.loads(out.read_text())
    assert saved["machine"]["cpu"] and saved["machine"]["numpy"] == np.__version__
    for name in ("xor", "digits", "deep"):
        timings = saved["workloads"][name]["timings"]
        assert timings["numpy_ref"]["ratio_to_ref"] == pytest.approx(1.0)
        for impl in ("xpnet_numpy", "xpnet_strict", "matmul_ceiling"):
            t = timings[impl]["seconds"]
            assert 0 < t["min"] <= t["median"] <= t["max"]
        # every xpnet backend did the reference's arithmetic
        assert set(saved["agreement"][name]) >= {"xpnet_numpy", "xpnet_strict"}
    assert saved["fit"]["status"] == "ok", saved["fit"]
    assert saved["fit"]["ratio"] > 0
    table = capsys.readouterr().out
    assert "xpnet_numpy" in table and "Fit loop" in table


def test_peak_memory_is_measured():
    w = WORKLOADS["digits"]
    ref = harness.peak_memory(w, "numpy_ref")
    xp_ = harness.peak_memory(w, "xpnet_numpy")
    # at least parameters + gradients + Adam's two moments, in float32
    floor = 4 * 4 * w.n_params
    assert ref["peak_bytes"] >= floor and xp_["peak_bytes"] >= floor


def test_agreement_check_detects_a_different_update():
    # The check must be able to fail: a 10% larger learning rate is a different step.
    w = WORKLOADS["digits"]
    weights, (x, y) = initial_weights(w), make_batch(w)
    start = [a for pair in weights for a in pair]
    ref = harness._run_steps("numpy_ref", w, weights, x, y, harness.AGREE_STEPS)
    same = harness._run_steps("xpnet_numpy", w, weights, x, y, harness.AGREE_STEPS)
    other = harness._run_steps("xpnet_numpy", dataclasses.replace(w, lr=w.lr * 1.1), weights, x, y,
                               harness.AGREE_STEPS)
    assert harness.update_error(start, ref, same) <= harness.AGREE_RTOL
    assert harness.update_error(start, ref, other) > 10 * harness.AGREE_RTOL


# ---------------------------------------------------------------------------- layer paths


def _grads(model):
    return {name: np.array(xpnet.to_numpy(p.grad)) for name, p in model.named_parameters()}


@pytest.mark.parametrize("lead", [False, True])
def test_backward_params_matches_backward(backend, lead):
    # Sequential.backward_params skips dL/dx of the first layer with parameters (and the
    # parameter-free layers before it); every parameter gradient must be unchanged.
    def build():
        layers = [xpnet.Flatten()] if lead else []
        layers += [xpnet.Linear(6, 5, generator=0), Tanh(), xpnet.Linear(5, 3, generator=1)]
        return backend.move(xpnet.Sequential(*layers), dtype="float32")

    host = np.random.default_rng(0).standard_normal((4, 2, 3) if lead else (4, 6))
    x = backend.asarray(host, dtype="float32")
    dy = backend.asarray(np.random.default_rng(1).standard_normal((4, 3)), dtype="float32")
    full, fast = build(), build()
    full(x)
    dx = full.backward(dy)
    backend.check(dx, dtype="float32", shape=tuple(host.shape))
    fast(x)
    assert fast.backward_params(dy) is None
    g_full, g_fast = _grads(full), _grads(fast)
    assert g_full.keys() == g_fast.keys()
    for k in g_full:
        np.testing.assert_allclose(g_fast[k], g_full[k], rtol=RTOL_F32, atol=ATOL_F32)
    # the stored passes are consumed: a second backward is protocol misuse
    assert all(m.__dict__.get("_cache") is None for m in fast.modules())
    with pytest.raises(RuntimeError, match="no stored forward"):
        fast.backward_params(dy)


def test_backward_params_default_runs_backward(backend):
    # A module without its own backward_params gets the base class's: backward, result dropped.
    act = ReLU()
    x = backend.asarray(np.array([[1.0, -2.0]]), dtype="float32")
    act(x)
    assert act.backward_params(x) is None
    with pytest.raises(RuntimeError):
        act.backward(x)


def test_linear_bias_grad_matches_sum(backend):
    # db is computed as 1ᵀδ (a matrix-vector product) instead of xp.sum(δ, axis=0).
    lin = backend.move(xpnet.Linear(3, 4, generator=0), dtype="float64")
    for n in (5, 2):  # a new batch size rebuilds the cached ones vector
        lin.zero_grad()
        x = backend.asarray(np.random.default_rng(n).standard_normal((n, 3)), dtype="float64")
        dyh = np.random.default_rng(n + 1).standard_normal((n, 4))
        lin(x)
        lin.backward(backend.asarray(dyh, dtype="float64"))
        db = backend.check(lin.bias.grad, dtype="float64", shape=(4,))
        np.testing.assert_allclose(backend.to_numpy(db), dyh.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_load_state_dict_does_not_alias_the_source(backend):
    src = backend.move(xpnet.Linear(2, 2, generator=0))
    dst = backend.move(xpnet.Linear(2, 2, generator=1))
    dst.load_state_dict(src.state_dict())
    before = backend.to_numpy(src.weight.data).copy()
    if xpnet._backend.supports_inplace(dst.weight.data):
        dst.weight.data -= 1.0  # what an in-place optimizer step does
    else:
        dst.weight.data = dst.weight.data - 1.0
    np.testing.assert_array_equal(backend.to_numpy(src.weight.data), before)
