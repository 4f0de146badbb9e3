"""The README's example runs as written and does what it says."""

import pathlib
import re

import numpy as np

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
