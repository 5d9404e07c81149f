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

# myst_nb reads the Markdown pages (it includes and configures myst_parser, which must not be listed
# beside it) and the executed notebooks, whose committed outputs it renders as they are.
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "plotly_chart",
    "option_table",
    "data_quote",
    "family_matrix",
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
# Notebooks are committed executed (tests/docs re-executes them in the slow tier): the docs build
# renders their outputs and never needs the model.
nb_execution_mode = "off"
# A notebook figure is both Plotly JSON (for notebook front ends) and HTML drawn by the page's plotly.js
# (see _plotly_helpers below): the docs take the HTML. myst-nb renders every type of an
# output before choosing one, and warns on the Plotly JSON it has no renderer for: that warning alone
# is silenced (an output with no usable type still fails: "No mime type available in priority list").
nb_mime_priority_overrides = [("*", "application/vnd.plotly.v1+json", None)]
suppress_warnings = ["mystnb.unknown_mime_type"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

# The PyData theme, as nnsight's own docs use: a top bar, the page's sections on the right, a
# light / dark switch, MyST-NB's output styles built in (both are Executable Books / PyData projects).
# Everything it loads ships inside the package (its fonts included), so the built site renders offline.
html_theme = "pydata_sphinx_theme"
html_title = "induction-nnsight"
html_theme_options = {
    "logo": {"text": "induction-nnsight"},
    "navbar_start": ["navbar-logo"],
    "navbar_center": [],
    "navbar_end": ["theme-switcher"],
    "navbar_persistent": ["search-button-field"],
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"**": ["global-nav"]}  # docs/_templates: every page, not only the current section's
html_context = {"default_mode": "auto"}  # follow the reader's system; the switch in the top bar overrides
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["custom.css"]

# Copy buttons on code blocks. In a block with prompts ("$ ", ">>> ", "... ") only the prompted lines
# are copied, without their prompts (a doctest's output lines are left out); other blocks copy whole.
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
copybutton_exclude = ".linenos"


def _plotly_helpers(app, pagename, templatename, context, doctree) -> None:
    """On pages that draw Plotly figures: _static/fit_titles.js (long chart titles wrap to the
    column), and on pages whose notebook outputs hold a figure also plotly.js itself (the copy the
    chart directive serves from ``_static``; notebooks display figures as HTML that calls the page's
    ``Plotly``, see docs/notebooks/quickstart.ipynb, never a CDN) and _static/notebook_figures.js
    (fits those figures to the content column)."""
    from docutils import nodes
    from plotly_chart import chart_node

    if doctree is None:
        return
    notebook = any("plotly-graph-div" in node.astext() for node in doctree.findall(nodes.raw))
    if notebook:
        app.add_js_file("plotly.min.js", priority=400)
        app.add_js_file("notebook_figures.js", priority=420)
    if notebook or doctree.next_node(chart_node) is not None:
        app.add_js_file("fit_titles.js", priority=405)  # after plotly.js, before anything draws


def setup(app):
    app.connect("html-page-context", _plotly_helpers)
