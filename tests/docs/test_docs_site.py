"""The real docs: they build with warnings as errors, render offline, and in headless Chromium at a
1280 px wide viewport every chart renders (an SVG with the expected number of traces), the notebook's
figures draw within the column, no page is wider than the viewport, and no page has a JavaScript
error. The docs are built once and every page visited once per session (tests/docs/conftest.py).

The browser pass saves docs/_build/screenshots/tutorial.png for a person to look at.

Slow tier: the whole site's build takes about a minute of CPU on its own (autodoc over the package
and the notebook), so it runs with ``-m slow``, once in CI; the small builds of the docs' own
extensions (tests/docs/test_option_tables.py, test_quoted_numbers.py, test_chart_directive.py)
stay in the fast tier.
"""

import re

import pytest

from tests.docs.conftest import built_pages

pytestmark = pytest.mark.slow

# Pages a reader is sent to first: each must exist and fit the viewport (every page is checked).
KEY_PAGES = (
    "tutorial.html",
    "quickstart.html",
    "heads.html",
    "circuit.html",
    "gallery.html",
    "notebooks/quickstart.html",
)


def chart_pages(html_dir):
    """``{page: number of charts}`` of the built pages holding charts (``notebooks/x.html`` for nested ones)."""
    pages = {}
    for page in built_pages(html_dir):
        count = (html_dir / page).read_text().count('class="plotly-chart"')
        if count:
            pages[page] = count
    return pages


def test_docs_build_with_warnings_as_errors(built_docs):
    for page in ("index", "install", "quickstart", "tutorial", "api"):
        assert (built_docs / f"{page}.html").is_file()
    api = (built_docs / "api.html").read_text()
    for name in (
        "induction_nnsight.scores.scan.scan",
        "induction_nnsight.probes.tokens.repeated_tokens",
        "induction_nnsight.figures.heads.heatmap_figure",
    ):
        assert f'id="{name}"' in api, f"{name} missing from the API reference"
    assert chart_pages(built_docs).get("tutorial.html") == 2
    assert (built_docs / "add_a_score.html").is_file() and (built_docs / "glossary.html").is_file()


def missing_from_api(api_html: str, package) -> list[str]:
    """Names of ``package.__all__`` with no ``id="<module>.<name>"`` anchor in the built API page,
    ``<module>`` being any loaded module of the package holding that very object (autodoc
    anchors it at the module that defines it)."""
    import sys

    ids = set(re.findall(r'id="([\w.]+)"', api_html))
    values = {name: getattr(package, name) for name in package.__all__}  # (a lazy name imports its module here)
    modules = {
        name: module
        for name, module in list(sys.modules.items())
        if name.startswith(package.__name__ + ".") and module is not None
    }
    missing = []
    for name, value in values.items():
        homes = [m for m, module in modules.items() if getattr(module, name, None) is value]
        if not any(f"{home}.{name}" in ids for home in homes):
            missing.append(name)
    return missing


def test_missing_from_api_can_fail():
    import types

    import induction_nnsight.scores.scan as scan_module

    package = types.SimpleNamespace(
        __name__="induction_nnsight",
        __all__=["scan", "ScanResult"],
        scan=scan_module.scan,
        ScanResult=scan_module.ScanResult,
    )
    page = '<dt id="induction_nnsight.scores.scan.scan"><dt id="induction_nnsight.scores.scan.ScanResult.scan">'
    assert missing_from_api(page, package) == ["ScanResult"]
    assert missing_from_api('<dt id="induction_nnsight.scores.scan.ScanResult">', package) == ["scan"]


def test_every_public_name_is_in_the_api_reference(built_docs):
    import induction_nnsight

    missing = missing_from_api((built_docs / "api.html").read_text(), induction_nnsight)
    assert not missing, f"in induction_nnsight.__all__ but without an anchor in api.html: {missing}"


def test_the_site_renders_offline_with_the_theme_and_copy_buttons(built_docs):
    for page in built_pages(built_docs):
        text = (built_docs / page).read_text()
        remote = re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//[^"' >]+""", text)
        assert not remote, f"{page} loads from the network: {remote}"
    index = (built_docs / "index.html").read_text()
    assert "pydata-sphinx-theme" in index or "pydata_sphinx_theme" in index
    assert 'href="gallery.html"' in index and 'href="notebooks/quickstart.html"' in index
    copybutton = (built_docs / "_static" / "copybutton.js").read_text()
    assert r"\\$ |>>> |\\.\\.\\. " in copybutton, "copy buttons must strip $, >>> and ... prompts"
    notebook = (built_docs / "notebooks" / "quickstart.html").read_text()
    assert "_static/plotly.min.js" in notebook and "plotly-graph-div" in notebook


def test_every_chart_renders_in_headless_chromium(built_docs, site_visit):
    pages = chart_pages(built_docs)
    assert pages, "no page holds a chart"
    assert {"tutorial.html", "gallery.html"} <= pages.keys()
    for page, count in pages.items():
        charts = site_visit[page]["charts"]
        assert len(charts) == count, (page, charts)
        for chart in charts:
            where = f"{page} #{chart['id']}"
            assert chart["error"] is None, f"{where}: {chart['error']}"
            assert chart["svg"] >= 1, f"{where}: no SVG drawn"
            assert chart["traces"] == chart["expected"], (
                f"{where}: {chart['traces']} traces drawn, {chart['expected']} expected"
            )
            assert chart["title"].strip(), f"{where}: no title"
            assert chart["caption"].strip(), f"{where}: no caption"
    shot = site_visit["tutorial.html"]["screenshot"]
    assert shot.stat().st_size > 50_000
    print(f"screenshot of the tutorial: {shot}")
    assert re.search(r"plotly\.min\.js", (built_docs / "tutorial.html").read_text())


def test_notebook_figures_draw_within_the_column(site_visit):
    figures = site_visit["notebooks/quickstart.html"]["notebook_figures"]
    assert len(figures) >= 3, figures
    for figure in figures:
        where = f"notebooks/quickstart.html #{figure['id']}"
        assert figure["svg"] >= 1 and figure["traces"] >= 1, f"{where}: not drawn: {figure}"
        assert figure["title"].strip(), f"{where}: no title"
        assert 0 < figure["width"] <= figure["column"] + 1, (
            f"{where}: {figure['width']} px wide in a {figure['column']} px column"
        )


def test_no_javascript_errors_on_any_page(site_visit):
    errors = {page: visit["errors"] for page, visit in site_visit.items() if page != "_probe" and visit["errors"]}
    assert not errors, f"JavaScript errors: {errors}"


def test_no_page_is_wider_than_the_viewport(site_visit):
    probe = site_visit["_probe"]  # the check can fail: a 2000 px div is caught, a long code line is not
    assert any("#too-wide" in w for w in probe["wide"]), probe
    assert not any(w.startswith("pre") for w in probe["wide"]), probe
    assert set(KEY_PAGES) <= site_visit.keys()
    wide = {
        page: visit["overflow"]
        for page, visit in site_visit.items()
        if page != "_probe"
        and (visit["overflow"]["scrollWidth"] > visit["overflow"]["clientWidth"] or visit["overflow"]["wide"])
    }
    assert not wide, f"pages wider than the 1280 px viewport: {wide}"


def test_copy_buttons_copy_code_without_prompts_or_output(site_visit):
    copies = site_visit["quickstart.html"]["copies"]
    pycon = [c for c in copies if c["language"] == "pycon"]
    assert pycon and any(c["language"] == "bash" for c in copies), copies
    for block in pycon:  # shown: ">>> tokens.shape" then "torch.Size([10, 101])"; copied: "tokens.shape"
        assert ">>> " in block["shown"] and block["copied"].strip(), block
        assert not re.search(r"^(>>>|\.\.\.) ", block["copied"], re.M), block
        assert "torch.Size" not in block["copied"] and "\n\n" not in block["copied"], block
    for block in copies:
        if block["language"] == "bash":
            assert block["copied"].strip() == block["shown"].strip(), block
