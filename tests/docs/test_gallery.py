"""The gallery page (docs/gallery.md) shows every chart in charts/ and names every other file there,
so a new chart cannot be forgotten. Reads the page's source: no docs build, well under a second."""

import json
import re

from tests.docs.helpers import CHARTS, DOCS

GALLERY = DOCS / "gallery.md"
# ```{chart} ../charts/NAME.json (or ```{html-view} ../charts/NAME.html) and any charts/NAME named in the text
_CHART = re.compile(r"^```\{(?:chart|html-view)\}\s+\.\./charts/([\w.-]+)\s*$", re.M)
_NAMED = re.compile(r"charts/([\w.-]+\.(?:json|html))")
# a whole report page (explain.html: megabytes, plotly inlined) is linked for download rather than framed
_DOWNLOAD = re.compile(r"\{download\}`[^`<]*<\.\./charts/([\w.-]+\.html)>`")


def is_figure(path) -> bool:
    """Whether a charts/ JSON file is a Plotly figure (a ``data`` list), not a results file."""
    value = json.loads(path.read_text(encoding="utf-8"))
    return isinstance(value, dict) and isinstance(value.get("data"), list)


def gallery_gaps(page: str, files: dict[str, bool]) -> list[str]:
    """What the gallery page lacks: ``files`` maps each charts/ file name to whether it is a figure or a
    view (which the page must embed with the chart or html-view directive); every other file must be
    named on the page."""
    embedded, named = set(_CHART.findall(page)) | set(_DOWNLOAD.findall(page)), set(_NAMED.findall(page))
    gaps = []
    for name, figure in sorted(files.items()):
        if figure and name not in embedded:
            directive = "html-view" if name.endswith(".html") else "chart"
            gaps.append(f"{name}: not embedded (```{{{directive}}} ../charts/{name})")
        elif not figure and name not in named | embedded:
            gaps.append(f"{name}: not named on the page")
    return gaps


def test_gallery_gaps_can_fail():
    page = "```{chart} ../charts/a.json\n\nCaption.\n```\n\nResults: `charts/a_results.json`.\n"
    assert gallery_gaps(page, {"a.json": True, "a_results.json": False}) == []
    assert gallery_gaps(page, {"a.json": True, "b.json": True, "c_results.json": False, "a_results.json": True}) == [
        "a_results.json: not embedded (```{chart} ../charts/a_results.json)",
        "b.json: not embedded (```{chart} ../charts/b.json)",
        "c_results.json: not named on the page",
    ]
    report = "{download}`the report <../charts/r.html>`"
    assert gallery_gaps(report, {"r.html": True}) == [] and gallery_gaps("`charts/r.html`", {"r.html": True})


def test_every_chart_file_is_on_the_gallery_page():
    files = {p.name: is_figure(p) for p in CHARTS.glob("*.json")}
    files.update({p.name: True for p in CHARTS.glob("*.html")})  # interactive views: embedded (html-view)
    assert sum(files.values()) >= 30, f"expected the committed charts in {CHARTS}, found {sorted(files)}"
    gaps = gallery_gaps(GALLERY.read_text(encoding="utf-8"), files)
    assert not gaps, (
        "docs/gallery.md is missing charts/ files (add each with its command and a caption):\n" + "\n".join(gaps)
    )


def test_gallery_is_in_the_toctree():
    trees = (DOCS / "index.md").read_text(encoding="utf-8").split("```{toctree}")[1:]
    assert "gallery" in " ".join(tree.split("```", 1)[0] for tree in trees).split()
