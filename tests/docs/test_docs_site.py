"""The real docs: they build with warnings as errors, and in headless Chromium every chart
renders (an SVG with the expected number of traces) with no JavaScript errors.

The browser test saves docs/_build/screenshots/tutorial.png for a person to look at.
"""

import json
import os
import re

import pytest

from tests.docs.browser import Browser, StaticServer, find_chromium
from tests.docs.helpers import DOCS, SCREENSHOTS, sphinx_build

# Plotly draws a scatter or bar trace as <g class="trace">, a heatmap as <g class="hm">.
TRACE_SELECTOR = "g.trace, g.hm, g.contour"


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs") / "html"
    result = sphinx_build(DOCS, out)
    assert result.returncode == 0, f"sphinx -W failed:\n{result.stderr}"
    return out


def chart_pages(html_dir):
    """``{page name: number of charts}`` of the built pages holding charts."""
    pages = {}
    for page in sorted(html_dir.glob("*.html")):
        count = page.read_text().count('class="plotly-chart"')
        if count:
            pages[page.name] = count
    return pages


def test_docs_build_with_warnings_as_errors(built_docs):
    for page in ("index", "install", "quickstart", "tutorial", "api"):
        assert (built_docs / f"{page}.html").is_file()
    api = (built_docs / "api.html").read_text()
    for name in ("induction_nnsight.scores.scan.scan", "induction_nnsight.probes.tokens.repeated_tokens",
                 "induction_nnsight.figures.heads.heatmap_figure"):
        assert f'id="{name}"' in api, f"{name} missing from the API reference"
    assert chart_pages(built_docs).get("tutorial.html") == 2
    assert (built_docs / "add_a_score.html").is_file() and (built_docs / "glossary.html").is_file()


def missing_from_api(api_html: str, package) -> list[str]:
    """Names of ``package.__all__`` with no ``id="<module>.<name>"`` anchor in the built API page,
    ``<module>`` being any loaded module of the package holding that very object (autodoc
    anchors it at the module that defines it)."""
    import sys

    ids = set(re.findall(r'id="([\w.]+)"', api_html))
    modules = {name: module for name, module in list(sys.modules.items())
               if name.startswith(package.__name__ + ".") and module is not None}
    missing = []
    for name in package.__all__:
        value = getattr(package, name)
        homes = [m for m, module in modules.items() if getattr(module, name, None) is value]
        if not any(f"{home}.{name}" in ids for home in homes):
            missing.append(name)
    return missing


def test_missing_from_api_can_fail():
    import types

    import induction_nnsight.scores.scan as scan_module

    package = types.SimpleNamespace(__name__="induction_nnsight", __all__=["scan", "ScanResult"],
                                    scan=scan_module.scan, ScanResult=scan_module.ScanResult)
    page = '<dt id="induction_nnsight.scores.scan.scan"><dt id="induction_nnsight.scores.scan.ScanResult.scan">'
    assert missing_from_api(page, package) == ["ScanResult"]
    assert missing_from_api('<dt id="induction_nnsight.scores.scan.ScanResult">', package) == ["scan"]


def test_every_public_name_is_in_the_api_reference(built_docs):
    import induction_nnsight

    missing = missing_from_api((built_docs / "api.html").read_text(), induction_nnsight)
    assert not missing, f"in induction_nnsight.__all__ but without an anchor in api.html: {missing}"


def test_every_chart_renders_in_headless_chromium(built_docs):
    if find_chromium() is None:
        message = "no chromium on PATH: `apt-get install -y chromium` (Debian's package)"
        if os.environ.get("INDUCTION_NNSIGHT_REQUIRE_CHROMIUM"):  # CI sets it: there a skip is a failure
            pytest.fail(message)
        pytest.skip(message)
    pages = chart_pages(built_docs)
    assert pages, "no page holds a chart"
    with StaticServer(built_docs) as url, Browser(find_chromium()) as browser:
        for page, count in pages.items():
            browser.errors.clear()
            browser.open(f"{url}/{page}")
            browser.wait_for(
                "Array.from(document.querySelectorAll('div.plotly-chart'))"
                ".every(d => d.dataset.rendered === 'true' || d.dataset.error)"
            )
            charts = browser.evaluate(
                "Array.from(document.querySelectorAll('div.plotly-chart')).map(d => ({"
                "id: d.id, expected: Number(d.dataset.traces), error: d.dataset.error || null,"
                "svg: d.querySelectorAll('svg.main-svg').length,"
                f"traces: d.querySelectorAll({json.dumps(TRACE_SELECTOR)}).length,"
                "title: (d.querySelector('.gtitle') || {}).textContent || '',"
                "caption: (d.closest('figure').querySelector('figcaption') || {}).textContent || ''}))"
            )
            assert len(charts) == count, (page, charts)
            for chart in charts:
                where = f"{page} #{chart['id']}"
                assert chart["error"] is None, f"{where}: {chart['error']}"
                assert chart["svg"] >= 1, f"{where}: no SVG drawn"
                assert chart["traces"] == chart["expected"], f"{where}: {chart['traces']} traces drawn, {chart['expected']} expected"
                assert chart["title"].strip(), f"{where}: no title"
                assert chart["caption"].strip(), f"{where}: no caption"
            assert not browser.errors, f"{page}: JavaScript errors: {browser.errors}"
            if page == "tutorial.html":
                shot = browser.screenshot(SCREENSHOTS / "tutorial.png")
                assert shot.stat().st_size > 50_000
                print(f"screenshot of the tutorial: {shot}")
    assert re.search(r"plotly\.min\.js", (built_docs / "tutorial.html").read_text())
