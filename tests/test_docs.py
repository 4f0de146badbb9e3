"""Every fenced ``python`` block in README.md and docs/*.md runs as written.

Each block runs alone in a fresh interpreter (a subprocess, in an empty temporary
directory, with this checkout first on ``sys.path``), so a block must be
self-contained: its own imports, its own data. Signatures and sketches are fenced as
``text`` instead. A block whose first line is ``# file: NAME.py`` is a file the page asks
the reader to save: it is also written, under that name, next to every block of the same
page (so a later block can import it). A block that uses a GPU (it mentions ``cupy`` or ``cuda``) is skipped
on a machine without one.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import tokenize

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Generous: a loaded 2-core CI machine is several times slower than a laptop.
TIMEOUT_S = 300
_OPEN = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")


def doc_files() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: pathlib.Path) -> list[tuple[int, str]]:
    """``(line number of the first code line, dedented code)`` of each ```python block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        if _OPEN.match(lines[i]):
            j = i + 1
            while j < len(lines) and not _CLOSE.match(lines[j]):
                j += 1
            if j == len(lines):
                raise AssertionError(f"{path.name}:{i + 1}: a ```python block is never closed")
            out.append((i + 2, textwrap.dedent("\n".join(lines[i + 1 : j])) + "\n"))
            i = j
        i += 1
    return out


_FILE = re.compile(r"^# file: (?P<name>[\w.-]+\.py)\s*$")


def named_files(path: pathlib.Path) -> dict[str, str]:
    """The ``# file: NAME`` blocks of a page, by name."""
    out = {}
    for _, code in python_blocks(path):
        m = _FILE.match(code.splitlines()[0]) if code.strip() else None
        if m:
            out[m.group("name")] = code
    return out


BLOCKS = [(p, line, code) for p in doc_files() for line, code in python_blocks(p)]


def test_every_page_is_in_the_sphinx_site():
    # sphinx-build -W fails on a page no toctree lists; say so here, in seconds, first.
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([\w-]+)$", index, flags=re.M))
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")} - {"index"}
    assert pages <= listed, f"add to a toctree of docs/index.md: {sorted(pages - listed)}"
    assert "sphinx-build -W" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _uses_gpu(code: str) -> bool:
    """Whether the code itself (not its comments) names cupy or CUDA."""
    lines = iter(code.splitlines(keepends=True))
    words = [t.string for t in tokenize.generate_tokens(lambda: next(lines, ""))
             if t.type in (tokenize.NAME, tokenize.STRING)]
    return any(re.search(r"\bcupy\b|cuda", w) for w in words)


def _gpu_available(code: str) -> bool:
    if "cupy" in code:
        try:
            import cupy

            return cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:  # noqa: BLE001 - not installed, no driver, no device
            return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def test_the_docs_have_python_blocks():
    # Guards the extraction itself: a changed fence syntax would silently test nothing.
    assert len(BLOCKS) >= 20
    assert any(p.name == "README.md" for p, _, _ in BLOCKS)
    assert python_blocks(ROOT / "docs" / "training.md")[0][0] == 7
    assert _uses_gpu('x = xpnet.asarray(x, "cupy")') and _uses_gpu("dev = 'cuda:0'")
    assert not _uses_gpu('backend = "numpy"  # or "cupy" on a GPU')


@pytest.mark.slow
@pytest.mark.parametrize(
    "path, line, code", BLOCKS, ids=[f"{p.name}:{line}" for p, line, _ in BLOCKS]
)
def test_python_block_runs(path, line, code, tmp_path):
    if _uses_gpu(code) and not _gpu_available(code):
        pytest.skip(f"{path.name}:{line} needs a GPU")
    for name, text in named_files(path).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    script = tmp_path / f"{path.stem}_{line}.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (
        f"the python block at {path.relative_to(ROOT)}:{line} failed (exit {proc.returncode}); "
        f"make it self-contained, or fence it as text if it is a signature or a sketch.\n"
        f"--- code ---\n{code}--- stderr ---\n{proc.stderr[-4000:]}"
    )
