"""Sphinx configuration: the Markdown pages (MyST) plus an API reference from the numpydoc docstrings.

Build locally (the ``docs`` extra installs the tools)::

    pip install -e ".[docs]"
    sphinx-build -W -b html docs docs/_build/html

``-W`` turns every warning into an error, as CI does.
"""

from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.abspath(".."))  # document this checkout's xpnet

import xpnet  # noqa: E402

project = "xpnet"
author = "xpnet developers"
copyright = "xpnet developers"  # noqa: A001 - Sphinx's name
release = version = xpnet.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: the pages are plain GitHub Markdown; `#` anchors of headings become link targets.
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
# The pages link to source files of the repository (tests/..., xpnet/...), which are not
# documents of this site; MyST would report each as a missing cross-reference.
suppress_warnings = ["myst.xref_missing"]

# API reference: autosummary writes one page per public object; numpydoc renders the
# docstrings' Parameters/Returns/Raises sections.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # the numpydoc sections describe the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

html_theme = "pydata_sphinx_theme"
html_title = f"xpnet {release}"
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2}


# xpnet's layer docstrings have a "Shape" section, as torch's do; numpydoc knows no such
# section (it would warn and drop it). Before numpydoc parses a docstring, its Shape
# section is moved to the start of the Notes section (created if absent).
def _is_header(lines: list[str], i: int) -> bool:
    return (i + 1 < len(lines) and lines[i].strip() != "" and set(lines[i + 1].strip()) == {"-"}
            and len(lines[i + 1].strip()) >= len(lines[i].strip()))


def _shape_into_notes(app, what, name, obj, options, lines) -> None:  # noqa: ANN001, ARG001
    heads = [i for i in range(len(lines)) if _is_header(lines, i)]
    shape = [i for i in heads if lines[i].strip() == "Shape"]
    if not shape:
        return
    start = shape[0]
    end = next((i for i in heads if i > start), len(lines))
    body = [ln for ln in lines[start + 2 : end]]
    while body and not body[-1].strip():
        body.pop()
    del lines[start:end]
    block = ["**Shape.**", "", *body, ""]
    notes = [i for i in range(len(lines)) if _is_header(lines, i) and lines[i].strip() == "Notes"]
    if notes:
        lines[notes[0] + 2 : notes[0] + 2] = block
    else:
        lines.extend(["", "Notes", "-----", *block])


# numpydoc also parses raw docstrings for autosummary's one-line tables; the warning there
# is about a section that the hook above moves for the rendered pages.
warnings.filterwarnings("ignore", message="Unknown section Shape", category=UserWarning)


def setup(app):  # noqa: ANN001, ANN201
    # numpydoc connects at the default priority 500: run first.
    app.connect("autodoc-process-docstring", _shape_into_notes, priority=400)
