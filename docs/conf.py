"""Sphinx configuration of the induction-nnsight docs.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout, not some other installed copy
sys.path.insert(0, str(DOCS / "_ext"))

project = "induction-nnsight"
author = "induction-nnsight contributors"
copyright = "2025, induction-nnsight contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "plotly_chart",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

html_theme = "alabaster"
html_title = "induction-nnsight"
html_theme_options = {
    "page_width": "1120px",
    "sidebar_width": "230px",
    "description": "Find and explain induction heads with nnsight",
    "fixed_sidebar": False,
}
html_static_path = []
