"""``explain.html`` in headless Chromium at 1280 px: every chart drawn by the inlined Plotly, the attention
view running in its frame, no script error, and nothing wider than the viewport (no horizontal scroll)."""

from __future__ import annotations

import pytest

from induction_nnsight.app.cli import main
from tests.docs.browser import Browser, StaticServer
from tests.docs.conftest import OVERFLOW_JS, VIEWPORT, require_chromium
from tests.integration.test_explain import TINY

DRAWN_JS = """Array.from(document.querySelectorAll('div.figure'))
  .map(d => d.querySelectorAll('svg.main-svg').length > 0)"""
VIEW_JS = """(() => { const f = document.querySelector('iframe.view');
  return f && f.contentDocument && f.contentDocument.querySelectorAll('.inv-tok').length; })()"""


@pytest.fixture(scope="module")
def report(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain-page")
    assert main(["explain", "--model", str(tiny_dir("gpt2")), *TINY, "--out", str(out)]) == 0
    return out


def test_the_report_draws_offline_without_overflow(report):
    with Browser(require_chromium(), width=VIEWPORT, height=900) as browser, StaticServer(report) as url:
        browser.open(f"{url}/explain.html")
        drawn = browser.wait_for(f"(() => {{ const d = {DRAWN_JS}; return d.length && d.every(x => x) && d; }})()")
        assert len(drawn) >= 5
        assert browser.wait_for(VIEW_JS) > 0  # the attention view's tokens, drawn by its own inlined script
        found = browser.evaluate(OVERFLOW_JS)
        assert found["scrollWidth"] <= found["clientWidth"], found
        assert not found["wide"], found["wide"]
        assert not browser.errors, browser.errors
