"""The ``explain`` report as one self-contained HTML page: plain data and figure JSON in, HTML text out.

Each section is a heading, its sentences (``li.claim``; one stating a claim not resolved also
``.unresolved``), its Plotly charts (drawn from their JSON by Plotly's own script, inlined once) and
optionally a whole HTML page shown in an ``iframe`` (the interactive attention view). Nothing is
fetched: the page reads offline.

>>> page = explain_html("T", [{"heading": "H", "sentences": ["a 1.0 b"], "figures": []}], plotly_js="")
>>> page.startswith("<!DOCTYPE html>") and '<li class="claim">a 1.0 b</li>' in page
True
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

__all__ = ["CLAIM_CLASS", "explain_html"]

CLAIM_CLASS = "claim"
"""Class of the ``li`` holding one generated sentence (what a reader, or a test, reads as a claim)."""

_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.45; color: #222;
       max-width: 1100px; margin: 0 auto; padding: 16px; overflow-wrap: anywhere; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
li.claim { margin: 0.35em 0; }
li.claim.unresolved { color: #666; }
.figure { width: 100%; max-width: 100%; min-height: 380px; margin: 0.8em 0; }
figcaption { font-size: 0.9em; color: #555; }
iframe.view { width: 100%; height: 560px; border: 1px solid #ddd; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: 8px; }
.settings { width: 100%; overflow-x: auto; }
.settings table { border-collapse: collapse; width: 100%; table-layout: fixed; font-size: 0.9em; }
.settings td { border-top: 1px solid #eee; padding: 2px 6px; vertical-align: top; word-break: break-all; }
.settings td:first-child { width: 30%; }
"""

_DRAW = """
document.querySelectorAll("script.explain-figure").forEach(function (data) {
  var spec = JSON.parse(data.textContent), layout = spec.layout || {};
  delete layout.width; layout.autosize = true;
  Plotly.newPlot(data.previousElementSibling, spec.data, layout, {responsive: true, displaylogo: false});
});
"""


def _script_json(text: str) -> str:
    """JSON text safe inside ``<script type="application/json">`` (``<``, ``>``, ``&`` only occur in strings)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sentence(text: str) -> str:
    unresolved = " unresolved" if "not resolved" in text else ""
    return f'<li class="{CLAIM_CLASS}{unresolved}">{html.escape(text)}</li>'


def _section(section: Mapping) -> str:
    parts = [f"<section>\n<h2>{html.escape(section['heading'])}</h2>"]
    if section.get("sentences"):
        parts.append("<ul>\n" + "\n".join(_sentence(s) for s in section["sentences"]) + "\n</ul>")
    for caption, figure in section.get("figures", ()):
        parts.append(
            f'<figure>\n<div class="figure"></div>\n<script type="application/json" class="explain-figure">'
            f"{_script_json(figure)}</script>\n<figcaption>{html.escape(caption)}</figcaption>\n</figure>"
        )
    if section.get("page"):
        caption, page = section["page"]
        parts.append(
            f'<figure>\n<iframe class="view" title="{html.escape(caption)}" srcdoc="{html.escape(page, quote=True)}">'
            f"</iframe>\n<figcaption>{html.escape(caption)}</figcaption>\n</figure>"
        )
    if section.get("text"):
        parts.append(f"<pre>{html.escape(section['text'])}</pre>")
    if section.get("table"):
        rows = "\n".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in section["table"]
        )
        parts.append(f'<div class="settings"><table>\n{rows}\n</table></div>')
    return "\n".join(parts) + "\n</section>"


def explain_html(title: str, sections: Sequence[Mapping], *, subtitle: str = "", plotly_js: str | None = None) -> str:
    """The report page.

    Args:
        title: The page's heading (the model).
        sections: In order, each ``{"heading": str, "sentences": [str], "figures": [(caption, Plotly JSON
            text)]}`` and optionally ``"page": (caption, whole HTML page)`` (shown in an iframe),
            ``"text": str`` (preformatted) and ``"table": [(key, value)]``.
        subtitle: A line under the heading.
        plotly_js: Plotly's script (None: ``plotly.offline.get_plotlyjs()``, inlined; "" for none).

    Returns:
        The page's text (UTF-8), needing no network.
    """
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    body = "\n".join(_section(s) for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n"
        f"<script>{plotly_js}</script>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(subtitle)}</p>\n{body}\n<script>{_DRAW}</script>\n</body>\n</html>\n"
    )
