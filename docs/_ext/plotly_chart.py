"""Sphinx extension: embed a Plotly figure JSON (as written by ``fig.to_json()``).

Usage, in MyST Markdown::

    ```{chart} ../charts/loss_by_position.json
    :height: 500

    Mean next-token loss at each position (the caption: the directive's body,
    or a one-line ``:caption:`` option).
    ```

or in reStructuredText ``.. chart:: ../charts/loss_by_position.json``.

The path is relative to the page (``/path`` is relative to the docs source
directory). The figure is validated at build time: a missing file, invalid JSON,
something that is not a figure (no ``data`` list of traces with a ``type``) or a
missing caption is a Sphinx warning, which ``-W`` turns into an error. The JSON
is inlined into the page, and plotly.js is copied from the installed ``plotly``
Python package into ``_static/``, so the built pages render with no network.
Pages without charts do not load plotly.js. Loading this extension also loads its sibling
``html_view`` (the ``html-view`` directive, for self-contained HTML views such as the
interactive attention view).
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"
CHART_JS = "plotly_chart.js"


class chart_node(nodes.figure):
    """A figure holding a Plotly chart: attributes ``figure`` (JSON text), ``n_traces``, ``chart_id``;
    its one child is the caption (rendered as ``<figcaption>`` like any figure's)."""


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the ``plotly`` Python package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the plotly package")
    return path


def _validate_figure(figure: object) -> str | None:
    """Why ``figure`` is not a Plotly figure dict, or None when it is one."""
    if not isinstance(figure, dict):
        return "the JSON is not an object"
    data = figure.get("data")
    if not isinstance(data, list) or not data:
        return 'it has no non-empty "data" list of traces'
    for i, trace in enumerate(data):
        if not isinstance(trace, dict) or not isinstance(trace.get("type"), str):
            return f'trace {i} has no "type"'
    if "layout" in figure and not isinstance(figure["layout"], dict):
        return '"layout" is not an object'
    return None


class ChartDirective(SphinxDirective):
    """``chart``: one Plotly figure JSON file, with a required caption (body or ``:caption:``)."""

    required_arguments = 1
    has_content = True
    option_spec = {
        "caption": directives.unchanged_required,
        "height": directives.positive_int,
    }

    def _warn(self, message: str) -> list[nodes.Node]:
        logger.warning(f"chart {self.arguments[0]!r}: {message}", location=self.get_location(), type="chart")
        return []

    def run(self) -> list[nodes.Node]:
        rel, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        file = Path(path)
        if not file.is_file():
            return self._warn(f"no such file {file} (paths are relative to the page; run scripts/export_charts.py)")
        self.env.note_dependency(str(file))
        try:
            figure = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return self._warn(f"invalid JSON in {file}: {error}")
        problem = _validate_figure(figure)
        if problem:
            return self._warn(f"{file} is not a Plotly figure: {problem}")
        caption = " ".join([self.options.get("caption", "")] + [line.strip() for line in self.content]).strip()
        if not caption:
            return self._warn("every chart needs a caption (the directive's body, or :caption:)")
        if "height" in self.options:
            figure.setdefault("layout", {})["height"] = self.options["height"]

        serial = self.env.new_serialno("plotly-chart")
        chart_id = f"chart-{Path(rel).stem}-{serial}".replace("_", "-").replace(".", "-")
        node = chart_node(
            figure=json.dumps(figure, separators=(",", ":")),
            n_traces=len(figure["data"]),
            chart_id=chart_id,
            source_file=str(file),
        )
        parsed, _ = self.parse_inline(caption, lineno=self.lineno)
        node += nodes.caption(caption, "", *parsed)
        self.set_source_info(node)
        return [node]


def _json_for_script(text: str) -> str:
    """JSON safe inside ``<script type="application/json">``."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def visit_chart_html(self, node: chart_node) -> None:
    chart_id = node["chart_id"]
    self.body.append(self.starttag(node, "figure", CLASS="plotly-chart-figure"))
    self.body.append(
        f'<div class="plotly-chart" id="{chart_id}" data-figure="{chart_id}-data" '
        f'data-traces="{node["n_traces"]}"></div>\n'
        f'<script type="application/json" id="{chart_id}-data">{_json_for_script(node["figure"])}</script>\n'
    )


def depart_chart_html(self, node: chart_node) -> None:
    self.body.append("</figure>\n")


def visit_chart_other(self, node: chart_node) -> None:
    """Non-HTML builders leave charts out (they need a browser)."""
    raise nodes.SkipNode


def on_html_page_context(app, pagename, templatename, context, doctree) -> None:
    """Load plotly.js and the chart loader only on pages that hold a chart."""
    if doctree is not None and doctree.next_node(chart_node) is not None:
        app.add_js_file(PLOTLY_JS, priority=400)
        app.add_js_file(CHART_JS, priority=410)
        app.add_css_file("plotly_chart.css")


def on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util.fileutil import copy_asset_file

    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    copy_asset_file(str(plotly_js_path()), str(static))
    here = Path(__file__).parent / "plotly_chart_static"
    for name in (CHART_JS, "plotly_chart.css"):
        copy_asset_file(str(here / name), str(static))


def setup(app):
    app.add_node(
        chart_node,
        html=(visit_chart_html, depart_chart_html),
        latex=(visit_chart_other, None),
        text=(visit_chart_other, None),
        man=(visit_chart_other, None),
        texinfo=(visit_chart_other, None),
    )
    app.add_directive("chart", ChartDirective)
    app.connect("html-page-context", on_html_page_context)
    app.connect("build-finished", on_build_finished)
    app.setup_extension("html_view")  # its sibling: committed self-contained HTML views (the attention view)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
