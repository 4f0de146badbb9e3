"""Every script in examples/ runs, prints what it claims, and exits 0 (they check themselves)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT_S = 240  # a loaded 2-core CI machine can be several times slower than a laptop

# Small settings so each script takes a second or two; the claims they check still hold.
CASES = {
    "xor.py": ([], "every squared error < 0.04: yes"),
    "logic_gates.py": (["--epochs", "1000"], "all claims hold"),
    "digits.py": (["--epochs", "3", "--min-accuracy", "0.93"], "test accuracy"),
    "regression_sine.py": (["--epochs", "1500", "--widths", "1,16", "--max-mse", "0.01"],
                           "the widest fits the sine"),
    "optimizers.py": (["--epochs", "20"], "every optimizer lowers the loss"),
    "init.py": (["--width", "128", "--depth", "8"], "all claims hold"),
    "cnn_digits.py": (["--epochs", "3", "--channels", "8,16", "--min-accuracy", "0.8"], "all claims hold"),
    "residual_mlp.py": (["--epochs", "3", "--blocks", "2", "--min-accuracy", "0.9"], "all claims hold"),
}


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=TIMEOUT_S,
    )


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_and_its_claim_holds(name):
    args, expected = CASES[name]
    proc = run_example(name, *args)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert expected in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr


def test_examples_on_another_backend_and_device():
    pytest.importorskip("array_api_strict")
    proc = run_example("xor.py", "--backend", "array_api_strict", "--device", "device1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every squared error < 0.04: yes" in proc.stdout


def test_optimizers_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "opt.png"
    proc = run_example("optimizers.py", "--epochs", "5", "--plot", str(png))
    # 5 epochs is too short for the ranking claim; the plot is what this test checks.
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stdout + proc.stderr


def test_an_example_fails_when_its_claim_fails():
    # An impossible bar: the script must say so and exit non-zero, not pass silently.
    proc = run_example("xor.py", "--max-epochs", "50")
    assert proc.returncode == 1 and "every squared error < 0.04: NO" in proc.stdout
