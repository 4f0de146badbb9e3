"""The GPU validation script and the pytest plugin fail loudly, never skip quietly.

A GPU is lent rarely and briefly: a run that goes green without touching it wastes it.
These tests pin the behaviours that prevent that, on CPU, using ``torch:cuda:7`` as a
backend that is unusable on every CI machine (no CUDA; or fewer than 8 GPUs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING = "torch:cuda:7"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_gpu_validate_fails_first_when_a_required_backend_is_unusable(tmp_path):
    proc = subprocess.run(
        [str(ROOT / ".ci" / "gpu-validate"), "--dry-run"],
        env=_env(OUT=str(tmp_path), GPU_VALIDATE_REQUIRE=MISSING),
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert f"FAILED at preflight: a required backend ({MISSING}) is not usable" in proc.stdout
    summary = (tmp_path / "summary.txt").read_text()
    assert "preflight      FAILED (exit 2)" in summary
    # It stopped there: no stage ran on the CPU backends alone.
    assert "pytest" not in summary and not (tmp_path / "pytest.txt").exists()
    assert f"required backend {MISSING} is not usable" in (tmp_path / "preflight.txt").read_text()


def _pytest(tmp_path: Path, body: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["xpnet.testing.pytest_plugin"]\n')
    (tmp_path / "test_it.py").write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(tmp_path), *args],
        cwd=tmp_path, env=_env(**env), capture_output=True, text=True, timeout=120, check=False,
    )


TRIVIAL = """
    def test_it(backend):
        assert backend.to_numpy(backend.asarray([1.0, 2.0])).sum() == 3.0
"""


def test_plugin_required_backend_is_a_usage_error(tmp_path):
    proc = _pytest(tmp_path, TRIVIAL, "--require-backends", MISSING)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "required backend(s) are not usable" in proc.stderr and MISSING in proc.stderr
    proc = _pytest(tmp_path, TRIVIAL, XPNET_REQUIRE_BACKENDS=MISSING)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR


def test_plugin_default_reports_a_missing_backend_once_without_skips(tmp_path):
    # The default backend list with one unusable entry: that backend gets no test ids
    # and one summary line with its install hint, instead of one SKIPPED line per test.
    (tmp_path / "xpnet_missing_default.py").write_text(
        "import xpnet.testing._backends as b\n"
        f"b.DEFAULT_BACKENDS = ('numpy', {MISSING!r})\n"
    )
    proc = _pytest(tmp_path, TRIVIAL, "-p", "xpnet_missing_default", "-v")
    out = proc.stdout
    assert proc.returncode == 0, out
    assert "test_it[numpy] PASSED" in out and "SKIPPED" not in out
    assert "xpnet backends not tested" in out
    assert f"{MISSING}:" in out and "to test it: pip install torch" in out


def test_plugin_explicit_backend_skips_each_test_with_the_reason(tmp_path):
    proc = _pytest(tmp_path, TRIVIAL, "--backends", f"numpy,{MISSING}")
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 1 skipped" in proc.stdout and "backend unavailable" in proc.stdout


def test_plugin_skips_float64_requests_on_a_float32_only_device(tmp_path):
    body = """
        import numpy as np

        def test_f64(backend):
            backend.asarray(np.zeros(3))  # float64 host data

        def test_f32(backend):
            x = backend.asarray(np.zeros(3, dtype=np.float32))
            assert backend.to_numpy(x).dtype == np.float32
    """
    proc = _pytest(tmp_path, body, "--backends", "array_api_strict:no_float64")
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 1 skipped" in proc.stdout and "has no float64" in proc.stdout


def test_torch_cuda_device_is_the_one_tensors_report():
    torch = pytest.importorskip("torch")
    from xpnet.testing import BackendUnavailable, get_backend

    try:
        b = get_backend("torch:cuda")
    except BackendUnavailable:
        pytest.skip("no CUDA here; on a GPU this asserts cuda -> cuda:0")
    assert b.device == torch.zeros(1, device="cuda").device and b.device.index is not None


def test_parity_require_backends_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "xpnet", "parity", "digits", "--backends", f"numpy,{MISSING}",
         "--steps", "1", "--require-backends"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2 and f"required backend {MISSING} is unavailable" in proc.stderr


def test_plugin_folds_import_skips_into_one_line_per_package(tmp_path):
    body = """
        import pytest

        def test_a():
            pytest.importorskip("xpnet_no_such_package")

        def test_b():
            pytest.importorskip("xpnet_no_such_package.sub")

        def test_c():
            pytest.skip("another reason")
    """
    proc = _pytest(tmp_path, body)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(lines) == 2, proc.stdout
    assert "SKIPPED [2] optional package 'xpnet_no_such_package' missing: the tests that need it -- pip install xpnet_no_such_package" in lines
    assert any("another reason" in line and "test_it.py" in line for line in lines)
