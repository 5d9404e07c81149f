"""Sphinx extension: embed a committed, self-contained HTML view (such as the interactive
attention view that ``induction-nnsight attention --html`` writes) in a page.

Usage, in MyST Markdown::

    ```{html-view} ../charts/attention_view.html
    :height: 520

    The caption (the directive's body, or a one-line ``:caption:`` option).
    ```

The path is relative to the page (``/path`` is relative to the docs source directory). At
build time the file must exist, be an HTML page (a ``<!DOCTYPE html>`` or ``<html``
start) and load nothing from the network (no ``http://`` or ``https://`` address in a
``src`` or ``href``), and the directive needs a caption; otherwise it is a Sphinx
warning, which ``-W`` turns into an error. The file is copied into ``_static/html_views/``
and shown in an ``<iframe>``, so its script and style stay apart from the theme's; once
loaded, the frame grows to the page's height (``:height:`` is the height before that).
``plotly_chart`` loads this extension, so ``conf.py`` needs no entry for it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri

logger = logging.getLogger(__name__)

STATIC_DIR = "html_views"
DEFAULT_HEIGHT = 480
_REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


class html_view_node(nodes.figure):
    """A figure holding an ``<iframe>``: attributes ``file`` (the name under ``_static/html_views``)
    and ``height``; its one child is the caption."""


def problem_with(text: str) -> str | None:
    """Why ``text`` cannot be embedded as a self-contained page, or None."""
    start = text.lstrip()[:200].lower()
    if not (start.startswith("<!doctype html") or start.startswith("<html")):
        return "it is not an HTML page (no <!DOCTYPE html> or <html> at its start)"
    remote = _REMOTE.search(text)
    if remote:
        return f"it loads from the network ({remote.group(0)!r}...): a view must be self-contained"
    return None


class HtmlViewDirective(SphinxDirective):
    """``html-view``: one self-contained HTML file in an iframe, with a required caption."""

    required_arguments = 1
    has_content = True
    option_spec = {"caption": directives.unchanged_required, "height": directives.positive_int}

    def _warn(self, message: str) -> list[nodes.Node]:
        logger.warning(f"html-view {self.arguments[0]!r}: {message}", location=self.get_location(), type="html-view")
        return []

    def run(self) -> list[nodes.Node]:
        _, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        file = Path(path)
        if not file.is_file():
            return self._warn(
                f"no such file {file} (paths are relative to the page; "
                "write it with `induction-nnsight attention --html`)"
            )
        self.env.note_dependency(str(file))
        try:
            problem = problem_with(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            problem = f"it is not UTF-8 text ({error})"
        if problem:
            return self._warn(f"{file}: {problem}")
        caption = " ".join([self.options.get("caption", "")] + [line.strip() for line in self.content]).strip()
        if not caption:
            return self._warn("every view needs a caption (the directive's body, or :caption:)")
        files = getattr(self.env, "html_view_files", {})
        self.env.html_view_files = files
        files.setdefault(self.env.docname, {})[file.name] = str(file)
        node = html_view_node(file=file.name, height=self.options.get("height", DEFAULT_HEIGHT))
        parsed, _ = self.parse_inline(caption, lineno=self.lineno)
        node += nodes.caption(caption, "", *parsed)
        self.set_source_info(node)
        return [node]


def visit_html_view(self, node: html_view_node) -> None:
    page = self.builder.get_target_uri(self.builder.current_docname)
    src = relative_uri(page, f"_static/{STATIC_DIR}/{node['file']}")
    title = self.attval(node.children[0].astext()) if node.children else "view"
    self.body.append(self.starttag(node, "figure", CLASS="html-view-figure"))
    fit = (
        "try{this.style.height=Math.ceil(this.contentDocument.documentElement.getBoundingClientRect().height+8)"
        "+'px'}catch(e){}"
    )  # the page's own height (a cross-origin file:// frame keeps :height:)
    self.body.append(
        f'<iframe class="html-view" src="{src}" title="{title}" loading="lazy" onload="{fit}" '
        f'style="width: 100%; height: {node["height"]}px; border: 0;"></iframe>\n'
    )


def depart_html_view(self, node: html_view_node) -> None:
    self.body.append("</figure>\n")


def skip(self, node: html_view_node) -> None:
    """Non-HTML builders leave views out (they need a browser)."""
    raise nodes.SkipNode


def purge(app, env, docname) -> None:
    getattr(env, "html_view_files", {}).pop(docname, None)


def merge(app, env, docnames, other) -> None:
    files = getattr(env, "html_view_files", {})
    env.html_view_files = files
    for docname in docnames:
        if docname in getattr(other, "html_view_files", {}):
            files[docname] = other.html_view_files[docname]


def copy_views(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / STATIC_DIR
    for views in getattr(app.env, "html_view_files", {}).values():
        for name, source in views.items():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / name)


def setup(app):
    app.add_node(
        html_view_node,
        html=(visit_html_view, depart_html_view),
        latex=(skip, None),
        text=(skip, None),
        man=(skip, None),
        texinfo=(skip, None),
    )
    app.add_directive("html-view", HtmlViewDirective)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("build-finished", copy_views)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
