"""The docs tests' shared fixtures: the real docs built once per session, and one visit of every built
page in headless Chromium (at a 1280 px wide viewport), from which the browser tests read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.docs.browser import Browser, StaticServer, find_chromium
from tests.docs.helpers import DOCS, SCREENSHOTS, sphinx_build

VIEWPORT = 1280
# Plotly draws a scatter or bar trace as <g class="trace">, a heatmap as <g class="hm">.
TRACE_SELECTOR = "g.trace, g.hm, g.contour"
OVERFLOW_JS = (Path(__file__).parent / "overflow.js").read_text()

CHARTS_JS = f"""Array.from(document.querySelectorAll('div.plotly-chart')).map(d => ({{
  id: d.id, expected: Number(d.dataset.traces), error: d.dataset.error || null,
  svg: d.querySelectorAll('svg.main-svg').length,
  traces: d.querySelectorAll({TRACE_SELECTOR!r}).length,
  title: (d.querySelector('.gtitle') || {{}}).textContent || '',
  caption: (d.closest('figure').querySelector('figcaption') || {{}}).textContent || ''}}))"""
# Figures in notebook outputs (Plotly's own HTML, drawn by the page's plotly.js).
NOTEBOOK_FIGURES_JS = f"""Array.from(document.querySelectorAll('div.plotly-graph-div')).map(d => ({{
  id: d.id, svg: d.querySelectorAll('svg.main-svg').length,
  traces: d.querySelectorAll({TRACE_SELECTOR!r}).length,
  width: Number((d.querySelector('svg.main-svg') || {{getAttribute: () => 0}}).getAttribute('width')),
  column: d.parentElement.clientWidth,
  title: (d.querySelector('.gtitle') || {{}}).textContent || ''}}))"""
# What the copy button of each code block copies, beside the block's text: each button is clicked, and
# the copy command that clipboard.js then runs on its hidden textarea is caught (no clipboard needed).
COPIES_JS = """(() => {
  const copied = [];
  document.execCommand = command => {
    if (command === 'copy') copied.push(document.activeElement ? document.activeElement.value : null);
    return true;
  };
  return Array.from(document.querySelectorAll('div.highlight button.copybtn')).map(button => {
    copied.length = 0;
    button.click();
    const block = button.closest('div[class*="highlight-"]');
    return {language: block ? (block.className.match(/highlight-(\\w+)/) || [])[1] || '' : '',
            shown: document.querySelector(button.dataset.clipboardTarget).innerText,
            copied: copied.length ? copied[0] : null};
  });
})()"""
ALL_DRAWN_JS = """Array.from(document.querySelectorAll('div.plotly-chart'))
  .every(d => d.dataset.rendered === 'true' || d.dataset.error)
  && Array.from(document.querySelectorAll('div.plotly-graph-div'))
  .every(d => d.querySelector('svg.main-svg') && d.dataset.fitted === 'true')"""


@pytest.fixture(scope="session")
def built_docs(tmp_path_factory) -> Path:
    """``python -m sphinx -W --keep-going -b html docs OUT``, once per session."""
    out = tmp_path_factory.mktemp("docs") / "html"
    result = sphinx_build(DOCS, out)
    assert result.returncode == 0, f"sphinx -W failed:\n{result.stderr}"
    return out


def require_chromium() -> str:
    """Chromium's path, or skip (fail where ``INDUCTION_NNSIGHT_REQUIRE_CHROMIUM`` is set, as in CI)."""
    path = find_chromium()
    if path is None:
        message = "no chromium on PATH: `apt-get install -y chromium` (Debian's package)"
        if os.environ.get("INDUCTION_NNSIGHT_REQUIRE_CHROMIUM"):  # CI sets it: there a skip is a failure
            pytest.fail(message)
        pytest.skip(message)
    return path


def built_pages(html_dir: Path) -> list[str]:
    """Every built page, relative to the site root (``notebooks/quickstart.html`` ...)."""
    return sorted(
        p.relative_to(html_dir).as_posix()
        for p in html_dir.rglob("*.html")
        if not p.relative_to(html_dir).parts[0].startswith(("_", "."))
    )


@pytest.fixture(scope="session")
def site_visit(built_docs) -> dict:
    """Every built page opened once at a 1280 px wide viewport, after its charts have drawn:
    ``{page: {"charts", "notebook_figures", "overflow", "errors"}}`` (and ``"copies"``, what each code
    block's copy button copies, on the quickstart), plus ``"_probe"``: what the
    overflow check reports on a page with an element made too wide on purpose (so it can fail)."""
    chromium = require_chromium()
    visit: dict = {}
    with StaticServer(built_docs) as url, Browser(chromium, width=VIEWPORT) as browser:
        for page in built_pages(built_docs):
            browser.errors.clear()
            browser.open(f"{url}/{page}")
            browser.wait_for(ALL_DRAWN_JS)
            visit[page] = {
                "charts": browser.evaluate(CHARTS_JS),
                "notebook_figures": browser.evaluate(NOTEBOOK_FIGURES_JS),
                "overflow": browser.evaluate(OVERFLOW_JS),
                "errors": list(browser.errors),
            }
            if page == "quickstart.html":
                visit[page]["copies"] = browser.evaluate(COPIES_JS)
            if page == "tutorial.html":
                visit[page]["screenshot"] = browser.screenshot(SCREENSHOTS / "tutorial.png", width=VIEWPORT)
                browser.send("Emulation.clearDeviceMetricsOverride")
        browser.evaluate(
            "(() => { const article = document.querySelector('article') || document.body;"
            " const pre = document.createElement('pre'); pre.textContent = 'x'.repeat(400);"
            " const wrap = document.createElement('div'); wrap.className = 'highlight'; wrap.appendChild(pre);"
            " const wide = document.createElement('div'); wide.id = 'too-wide'; wide.style.width = '2000px';"
            " wide.textContent = 'wide'; article.append(wrap, wide); })()"
        )
        visit["_probe"] = browser.evaluate(OVERFLOW_JS)
    return visit
