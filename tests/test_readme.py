"""The README's example runs as written and does what it says."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_learns_xor(capsys):
    block = python_blocks()[0]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    import xpnet

    out = xpnet.to_numpy(namespace["model"](namespace["X"])).ravel()
    np.testing.assert_array_equal(out.round(), [0, 1, 1, 0])
    assert capsys.readouterr().out.strip()


def test_readme_quickstart_commands_are_the_ci_commands():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_cmd = 'pip install -e ".[test]" && python -m pytest -q'
    assert test_cmd in text
    assert test_cmd in ci
    assert 'pip install ".[datasets]" && xpnet train digits' in text


def test_readme_save_and_use_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """The README's train -> eval -> predict -> export walkthrough, through the CLI's main()."""
    import shlex

    from xpnet.cli import main

    block = README.read_text().split("Then save the model and use it")[1].split("```bash")[1].split("```")[0]
    commands = []
    for line in block.strip().splitlines():
        line = line.split("#")[0].split("|")[0].strip()
        line = line.split("&&")[-1].strip()  # "pip install safetensors && xpnet export ..."
        commands.append(shlex.split(line))
    assert [c[:2] for c in commands] == [["xpnet", "train"], ["xpnet", "eval"],
                                         ["xpnet", "predict"], ["xpnet", "export"]]
    monkeypatch.chdir(tmp_path)
    for cmd in commands:
        if cmd[1] == "export":
            pytest.importorskip("safetensors")
        assert main(cmd[1:]) == 0, (cmd, capsys.readouterr().err)
    out = capsys.readouterr().out
    assert "test accuracy" in out and (tmp_path / "digits.safetensors").exists()
