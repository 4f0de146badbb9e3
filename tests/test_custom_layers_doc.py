"""docs/custom-layers.md: its layer passes check_layer, and its test file passes on every backend.

tests/test_docs.py runs the page's blocks as scripts; this runs the page's pytest file
with xpnet's plugin, as the page tells a reader to, including the float64-less device.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from test_docs import named_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "custom-layers.md"


def _files(tmp_path: pathlib.Path) -> dict[str, str]:
    files = named_files(PAGE)
    assert set(files) == {"scaled_tanh.py", "test_scaled_tanh.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return files


def test_the_layer_passes_check_layer_and_gradcheck(tmp_path, monkeypatch):
    _files(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from scaled_tanh import ScaledTanh

    from xpnet.testing import check_layer

    report = check_layer(lambda: ScaledTanh(5), (2, 3, 5))  # also a 3-D input
    assert report.ok and "numpy" in report.backends


@pytest.mark.slow
def test_the_pages_test_file_passes_on_every_backend(tmp_path):
    _files(tmp_path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    backends = "numpy,array_api_strict,array_api_strict:device1,torch,array_api_strict:no_float64"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p",
         "xpnet.testing.pytest_plugin", "--backends", backends, "test_scaled_tanh.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # 3 tests x 5 backends; the float64 gradient check on the float32-only device is
    # skipped (check_layer itself checks such a device in float32).
    assert "14 passed, 1 skipped" in out, out
    assert "no_float64 has no float64" in out, out
