"""Checkpoints saved from Python carry their architecture: ``xpnet eval`` / ``predict`` /
``export`` work on them through the CLI's ``main()``, and ``load_model`` rebuilds them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnet
from xpnet.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from xpnet.cli import main
from xpnet.models import cnn, mlp, model_config


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


def test_save_checkpoint_records_the_architecture_in_the_weights_dtype(tmp_path):
    model = mlp([4, 8, 3], generator=0).to(dtype="float64")
    save_checkpoint(tmp_path / "ck.npz", model, task="classification", classes=["a", "b", "c"])
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert ck.model_config == {**model_config(model), "dtype": "float64"}
    assert ck.task == "classification" and ck.classes == ["a", "b", "c"]
    clone = load_model(tmp_path / "ck.npz")
    for (n, a), (m, b) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert n == m and a.dtype == b.dtype and np.array_equal(a, b)
    assert not clone.training
    # A hand-built model has no description: the file still loads into a model you build.
    save_checkpoint(tmp_path / "hand.npz", xpnet.Sequential(xpnet.Linear(4, 3)))
    assert load_checkpoint(tmp_path / "hand.npz").model_config is None
    with pytest.raises(CheckpointError, match="records no architecture.*load_checkpoint"):
        load_model(tmp_path / "hand.npz")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"task": "ranking"}, ValueError, "task must be"),
    ({"classes": ["a", "b"]}, ValueError, "2 classes were given but the model has 3 outputs"),
    ({"classes": "abc"}, TypeError, "list of labels"),
    ({"classes": ["a", "b", "c"], "task": "regression"}, ValueError, "task='regression'"),
])
def test_save_checkpoint_refuses_a_wrong_description(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_checkpoint(tmp_path / "ck.npz", mlp([4, 8, 3], generator=0), **kwargs)
    assert not (tmp_path / "ck.npz").exists()


def test_python_mlp_checkpoint_through_eval_predict_and_export(tmp_path, capsys):
    model = mlp([4, 8, 3], generator=0)
    ck = str(tmp_path / "ck.npz")
    save_checkpoint(ck, model)
    # eval: the dataset on the command line gives the task (no standardization recorded).
    assert main(["eval", ck, "iris", "--metrics-json", str(tmp_path / "e.json")]) == 0
    m = json.loads((tmp_path / "e.json").read_text())
    assert m["samples"] == 150 and m["split"] == "all" and m["task"] == "classification"
    X = xpnet.data.load_dataset("iris").X
    y = xpnet.data.load_dataset("iris").y
    expected = np.argmax(xpnet.predict(model, X.astype(np.float32)), axis=1)
    assert m["accuracy"] == pytest.approx(np.mean(expected == y))
    capsys.readouterr()
    # predict: three logits and no output activation is a classifier head.
    np.savetxt(tmp_path / "x.csv", X[:5], delimiter=",")
    assert main(["predict", ck, "--data", str(tmp_path / "x.csv")]) == 0
    assert [int(v) for v in _lines(capsys)] == expected[:5].tolist()
    assert main(["export", ck, str(tmp_path / "w.safetensors")]) == 0
    assert (tmp_path / "w.safetensors").exists()


def test_python_cnn_checkpoint_through_eval_and_predict(tmp_path, capsys):
    model = cnn((1, 8, 8), 10, channels=(4,), hidden=(8,), generator=0)
    ck = str(tmp_path / "cnn.npz")
    save_checkpoint(ck, model)
    assert main(["eval", ck, "digits"]) == 0
    assert _lines(capsys)[-1].endswith("on 1797 samples")
    X = xpnet.data.load_dataset("digits").X[:4]
    np.save(tmp_path / "x.npy", X)
    assert main(["predict", ck, "--data", str(tmp_path / "x.npy"), "--proba"]) == 0
    rows = [line.split() for line in _lines(capsys)]
    expected = np.argmax(xpnet.predict(model, X.astype(np.float32)), axis=1)
    assert [int(r[0]) for r in rows] == expected.tolist() and all(len(r) == 11 for r in rows)


def test_recorded_task_and_classes_are_used(tmp_path, capsys):
    model = mlp([2, 4, 2], generator=0)
    ck = str(tmp_path / "ck.npz")
    save_checkpoint(ck, model, classes=["no", "yes"])
    X = np.array([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]])
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    assert main(["predict", ck, "--data", str(tmp_path / "x.csv"), "-o", str(tmp_path / "p.csv")]) == 0
    expected = np.array(["no", "yes"])[np.argmax(xpnet.predict(model, X.astype(np.float32)), axis=1)]
    assert (tmp_path / "p.csv").read_text().split() == ["prediction", *expected]
    capsys.readouterr()
    # --task contradicting the recorded task is refused with what to do.
    assert main(["predict", ck, "--data", str(tmp_path / "x.csv"), "--task", "regression"]) == 1
    assert "records task 'classification'; leave --task out" in capsys.readouterr().err


def test_what_cannot_be_inferred_is_asked_for(tmp_path, capsys):
    ck = str(tmp_path / "reg.npz")
    model = mlp([4, 8, 1], generator=0)
    save_checkpoint(ck, model)
    np.savetxt(tmp_path / "x.csv", np.ones((2, 4)), delimiter=",")
    assert main(["predict", ck, "--data", str(tmp_path / "x.csv")]) == 1
    err = capsys.readouterr().err
    assert "records no task" in err and "pass --task classification or --task regression" in err
    assert main(["predict", ck, "--data", str(tmp_path / "x.csv"), "--task", "regression"]) == 0
    out = [float(v) for v in _lines(capsys)]
    assert out == pytest.approx(xpnet.predict(model, np.ones((2, 4), np.float32))[:, 0].tolist(), rel=1e-5)
    # eval of a Python checkpoint needs data: the message shows the command to run.
    assert main(["eval", ck]) == 2
    assert f"'xpnet eval {ck} iris'" in capsys.readouterr().err
    # --resume needs a run of xpnet train: the message says what the file is good for.
    assert main(["train", "--resume", ck]) == 1
    assert "saved from Python" in capsys.readouterr().err
    # A hand-built model cannot be rebuilt by the CLI: it says how to use the file instead.
    save_checkpoint(tmp_path / "hand.npz", xpnet.Sequential(xpnet.Linear(4, 1)))
    assert main(["predict", str(tmp_path / "hand.npz"), "--data", str(tmp_path / "x.csv")]) == 1
    assert "records no architecture" in capsys.readouterr().err


def test_string_labels_train_save_predict_and_eval(tmp_path, capsys):
    rng = np.random.default_rng(0)
    names = np.array(["daisy", "rose", "tulip"])
    centers = np.array([[0.0, 4.0], [4.0, 0.0], [-4.0, -4.0]])
    k = rng.integers(0, 3, 60)
    X = centers[k] + 0.3 * rng.standard_normal((60, 2))
    rows = [f"{a:.4f},{b:.4f},{names[c]}" for (a, b), c in zip(X, k)]
    (tmp_path / "f.csv").write_text("x1,x2,species\n" + "\n".join(rows) + "\n")
    ck = str(tmp_path / "f.npz")
    assert main(["train", "--data", str(tmp_path / "f.csv"), "--epochs", "40", "--save", ck, "-q"]) == 0
    assert load_checkpoint(ck).hparams["classes"] == ["daisy", "rose", "tulip"]
    capsys.readouterr()
    assert main(["predict", ck, "--data", str(tmp_path / "f.csv")]) == 0
    printed = _lines(capsys)
    assert set(printed) == {"daisy", "rose", "tulip"}
    assert np.mean(np.array(printed) == names[k]) > 0.95
    # eval on a file with a subset of the classes: its names, not its own numbering, count.
    sub = [r for r in rows if not r.endswith("daisy")]
    (tmp_path / "sub.csv").write_text("x1,x2,species\n" + "\n".join(sub) + "\n")
    assert main(["eval", ck, "--data", str(tmp_path / "sub.csv"), "--metrics-json",
                 str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["accuracy"] > 0.95
    (tmp_path / "new.csv").write_text("x1,x2,species\n0,4,lily\n")
    assert main(["eval", ck, "--data", str(tmp_path / "new.csv")]) == 1
    assert "labels ['lily'] are not among the model's classes" in capsys.readouterr().err


def test_eval_of_a_softmax_headed_classifier_reports_its_cross_entropy(tmp_path, capsys):
    """A head that already ends in softmax outputs probabilities: eval's loss is
    -mean log p_y, not the cross entropy of a second softmax over them."""
    import json

    import numpy as np

    import xpnet
    from xpnet.cli import main
    from xpnet.data import load_dataset
    from xpnet.models import mlp

    ds = load_dataset("iris")
    model = mlp([4, 8, 3], output_activation="softmax", generator=0)
    path = tmp_path / "soft.npz"
    xpnet.save_checkpoint(path, model, task="classification")
    out = tmp_path / "m.json"
    assert main(["eval", str(path), "iris", "--split", "all", "--metrics-json", str(out)]) == 0
    got = json.loads(out.read_text())["loss"]
    p = np.asarray(model.eval()(np.asarray(ds.X, dtype=np.float32)), dtype=np.float64)
    expected = -np.mean(np.log(p[np.arange(len(ds.y)), np.asarray(ds.y)]))
    assert got == pytest.approx(expected, rel=1e-5)
