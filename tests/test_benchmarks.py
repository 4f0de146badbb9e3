"""The benchmark harness keeps running (smoke test) and checks what it times.

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

# benchmarks/ is a directory of the repository, not part of the installed package: make
# it importable however pytest was started (``pytest`` puts only tests/ on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness, run  # noqa: E402
from benchmarks.workloads import WORKLOADS, initial_weights, make_batch  # noqa: E402


def test_harness_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = run.main([
        "--quick", "--workloads", "xor,digits,deep",
        "--impls", "numpy_tuned,numpy_textbook,xpnet_numpy,xpnet_strict,torch_cpu,matmul_ceiling",
        "--repeats", "1", "--sample-ms", "0.5", "--fit-epochs", "1", "--json", str(out),
    ])
    assert results["ok"], results["agreement"]
    saved = json.loads(out.read_text())
    assert saved["machine"]["cpu"] and saved["machine"]["numpy"] == np.__version__
    for name in ("xor", "digits", "deep"):
        timings = saved["workloads"][name]["timings"]
        assert timings["numpy_tuned"]["ratio_to_ref"] == pytest.approx(1.0)
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
    ref = harness.peak_memory(w, "numpy_tuned")
    xp_ = harness.peak_memory(w, "xpnet_numpy")
    # at least parameters + gradients + Adam's two moments, in float32
    floor = 4 * 4 * w.n_params
    assert ref["peak_bytes"] >= floor and xp_["peak_bytes"] >= floor


def test_agreement_check_detects_a_different_update():
    # The check must be able to fail: a 10% larger learning rate is a different step.
    w = WORKLOADS["digits"]
    weights, (x, y) = initial_weights(w), make_batch(w)
    start = [a for pair in weights for a in pair]
    ref = harness._run_steps("numpy_tuned", w, weights, x, y, harness.AGREE_STEPS)
    same = harness._run_steps("xpnet_numpy", w, weights, x, y, harness.AGREE_STEPS)
    other = harness._run_steps("xpnet_numpy", dataclasses.replace(w, lr=w.lr * 1.1), weights, x, y,
                               harness.AGREE_STEPS)
    assert harness.update_error(start, ref, same) <= harness.AGREE_RTOL
    assert harness.update_error(start, ref, other) > 10 * harness.AGREE_RTOL


# ---------------------------------------------------------------------------- layer paths


@pytest.mark.parametrize("walls, status", [((0.40, 0.60), "ok"), ((0.50, 0.45), "noisy")])
def test_cli_timing_reports_noise_instead_of_a_negative_epoch(monkeypatch, walls, status):
    # Each command's wall time, as if measured: 1 epoch then 21 epochs, three times.
    clock = iter([t for _ in range(3) for w in walls for t in (0.0, w)])
    monkeypatch.setattr(harness.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(harness.subprocess, "run", lambda *a, **k: None)
    res = harness.bench_cli()
    assert res["status"].startswith(status)
    assert res["wall_s"] == {"1": walls[0], "21": walls[1]}
    if status == "ok":
        assert res["per_epoch_s"] == pytest.approx((walls[1] - walls[0]) / 20)
    else:
        assert "per_epoch_s" not in res
        line = harness.format_table({"workloads": {}, "cli": res})
        assert "noisy" in line and "21 epochs 450.00 ms" in line
