"""safetensors export/import under torch's state_dict names, round-tripped through torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import xpnet
from xpnet.testing import assert_close

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def xp_model(seed: int = 0) -> xpnet.Module:
    g = np.random.default_rng(seed)
    return xpnet.Sequential(xpnet.Linear(4, 8, generator=g), xpnet.BatchNorm1d(8), xpnet.Tanh(),
                            xpnet.Linear(8, 3, generator=g))


def torch_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 3)).double()


def test_saved_weights_load_into_the_equivalent_torch_model(backend, tmp_path):
    model = backend.move(xp_model(), dtype="float64")
    X = np.random.default_rng(1).standard_normal((16, 4))
    model(backend.asarray(X, dtype="float64"))  # training mode: BatchNorm's running stats move
    model.eval()
    path = tmp_path / "m.safetensors"
    xpnet.save_safetensors(model, path, metadata={"note": "test", "sizes": [4, 8, 3]})
    tm = torch_model()
    tm.load_state_dict(st_torch.load_file(str(path)))  # strict: every name and shape
    tm.eval()
    with torch.no_grad():
        expected = tm(torch.asarray(X)).numpy()
    assert_close(backend.to_numpy(model(backend.asarray(X, dtype="float64"))), expected)
    assert int(tm[1].num_batches_tracked) == 1


def test_torch_weights_load_into_xpnet(backend, tmp_path):
    torch.manual_seed(0)
    tm = torch_model()
    tm.train()
    X = np.random.default_rng(2).standard_normal((16, 4))
    tm(torch.asarray(X))
    tm.eval()
    path = tmp_path / "t.safetensors"
    st_torch.save_file(tm.state_dict(), str(path), metadata={"source": "torch"})
    model = backend.move(xp_model(seed=5), dtype="float64")
    meta = xpnet.load_safetensors(model, path)
    assert meta["source"] == "torch"
    backend.check(model[0].weight.data, dtype="float64")  # stays on its backend and device
    model.eval()
    with torch.no_grad():
        expected = tm(torch.asarray(X)).numpy()
    assert_close(backend.to_numpy(model(backend.asarray(X, dtype="float64"))), expected)


def test_mismatches_are_clear_errors(tmp_path):
    path = tmp_path / "m.safetensors"
    xpnet.save_safetensors(xpnet.models.mlp([4, 8, 3], generator=0), path)
    with pytest.raises(KeyError, match="unexpected keys"):
        xpnet.load_safetensors(xpnet.models.mlp([4, 8, 8, 3], generator=0), path)
    with pytest.raises(ValueError):
        xpnet.load_safetensors(xpnet.models.mlp([4, 9, 3], generator=0), path)
    with pytest.raises(FileNotFoundError):
        xpnet.load_safetensors(xpnet.models.mlp([4, 8, 3]), tmp_path / "nope.safetensors")
    with pytest.raises(TypeError):
        xpnet.save_safetensors({"w": np.zeros(2)}, path)


@pytest.mark.slow
def test_cli_export_of_a_trained_checkpoint_loads_into_torch(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "xpnet", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    run("train", "iris", "--epochs", "3", "--no-standardize", "--save", "c.npz", "-q")
    out = run("export", "c.npz", "w.safetensors").stdout
    assert "wrote w.safetensors (4 tensors" in out and "torch state_dict names" in out
    from safetensors import safe_open

    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        meta = f.metadata()
    sizes = json.loads(meta["xpnet_model"])["sizes"]
    assert sizes == [4, 16, 3] and meta["format"] == "pt" and meta["xpnet_epoch"] == "3"
    tm = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    tm.load_state_dict(st_torch.load_file(str(tmp_path / "w.safetensors")))
    from xpnet.data import load_dataset

    ds = load_dataset("iris", dtype="float32")
    model = xpnet.models.mlp(sizes, "tanh")
    xpnet.load_checkpoint(str(tmp_path / "c.npz"), model)
    with torch.no_grad():
        expected = tm(torch.asarray(ds.X)).numpy()
    assert_close(xpnet.to_numpy(model(ds.X)), expected)
    bad = subprocess.run([sys.executable, "-m", "xpnet", "export", "missing.npz", "w.safetensors"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert bad.returncode != 0 and "no such checkpoint" in bad.stderr and "Traceback" not in bad.stderr
