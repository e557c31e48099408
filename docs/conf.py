"""Sphinx configuration of the bitlens documentation (``nox -s docs``)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from bitlens import __version__  # noqa: E402

project = "bitlens"
author = "The bitlens developers"
copyright = "The bitlens developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"bitlens {release}"

# Pages the index lists that a checkout may not have yet: their toctree line is dropped
# when the file is missing, so the build stays warning-free either way.
OPTIONAL_PAGES = ("observability",)


def _drop_missing_pages(app: object, docname: str, source: list[str]) -> None:
    """Remove the index's toctree lines naming an optional page that does not exist."""
    if docname != "index":
        return
    here = Path(__file__).resolve().parent
    for page in OPTIONAL_PAGES:
        if not (here / f"{page}.md").exists():
            source[0] = source[0].replace(f"\n{page}\n", "\n")


def _drop_borrowed_docstrings(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Leave a constant or a type alias without the docstring of its type (``int``, ``list``)."""
    if what not in ("data", "attribute"):
        return
    borrowed = {
        inspect.cleandoc(doc)
        for doc in (type(obj).__doc__, getattr(getattr(obj, "__origin__", None), "__doc__", None))
        if isinstance(doc, str)
    }
    if "\n".join(lines).strip() in borrowed:
        lines.clear()


def setup(app: Any) -> None:
    """Register the hooks: missing optional pages, borrowed docstrings."""
    app.connect("source-read", _drop_missing_pages)
    app.connect("autodoc-process-docstring", _drop_borrowed_docstrings)
