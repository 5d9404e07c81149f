"""The attention view in headless Chromium, on a hand-built pattern whose highlights are known:
real mouse events (hover, click) shade exactly the expected tokens, a click locks the selection
and a second click unlocks it, the direction toggle turns the question round, switching heads
changes the highlight, and the outlines mark the given targets. Also the ``html-view`` docs
directive: it embeds a view in an iframe, and a missing file fails the ``-W`` build.
"""

import json
import os
import time

import pytest

from induction_nnsight.figures.attention_html import attention_fragment, attention_html
from tests.docs.browser import Browser, StaticServer, find_chromium
from tests.docs.helpers import DOCS, sphinx_build

N = 8
TOKENS = ["<bos>", " A", " B", " C", " A", " B", " C", " A"]


def hand_built() -> list:
    """``[head][query][key]``: head 0 puts 0.75 on the previous token and 0.25 on BOS (query 0: 1.0 on
    itself); head 1 puts 0.6 on the token after the earlier copy of the query's token (induction)
    and 0.4 on the query itself where there is one, else 1.0 on itself."""
    prev = [[0.0] * N for _ in range(N)]
    induction = [[0.0] * N for _ in range(N)]
    prev[0][0] = 1.0
    for q in range(1, N):
        prev[q][q - 1] += 0.75
        prev[q][0] += 0.25
    for q in range(N):
        if q >= 4:
            induction[q][q - 2] = 0.6  # period 3: the token after the earlier copy is at q - 3 + 1
            induction[q][q] = 0.4
        else:
            induction[q][q] = 1.0
    return [prev, induction]


TARGETS = {
    "induction target": [[q - 2] if q >= 4 else [] for q in range(N)],
    "previous token": [[q - 1] if q else [] for q in range(N)],
}


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        message = "no chromium on PATH: `apt-get install -y chromium` (Debian's package)"
        if os.environ.get("INDUCTION_NNSIGHT_REQUIRE_CHROMIUM"):  # CI sets it: there a skip is a failure
            pytest.fail(message)
        pytest.skip(message)
    with Browser(find_chromium(), width=1000, height=600) as browser:
        yield browser


@pytest.fixture
def page(browser, tmp_path):
    (tmp_path / "view.html").write_text(
        attention_html(TOKENS, hand_built(), ["L0H0", "L1H1"], targets=TARGETS, title="hand-built", shown=[0]),
        encoding="utf-8",
    )
    with StaticServer(tmp_path) as url:
        browser.errors.clear()
        browser.open(f"{url}/view.html")
        yield browser
    assert not browser.errors, browser.errors


def visible(browser, selector: str) -> list[list[int]]:
    """Per visible panel, the token positions matching ``selector`` (e.g. ``.inv-hl``)."""
    return browser.evaluate(
        "Array.from(document.querySelectorAll('.inv-panel')).filter(p => !p.hidden).map(p =>"
        f" Array.from(p.querySelectorAll('.inv-tok{selector}')).map(t => Number(t.dataset.i)))"
    )


def point(browser, i: int, selector: str = ".inv-panel:not([hidden]) .inv-tok"):
    """The centre of the ``i``-th element matching ``selector``."""
    return browser.evaluate(
        f"(() => {{ const r = document.querySelectorAll({selector!r})[{i}].getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )


def hover(browser, i: int, selector: str = ".inv-panel:not([hidden]) .inv-tok") -> None:
    x, y = point(browser, i, selector)
    browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)


def click(browser, i: int, selector: str = ".inv-panel:not([hidden]) .inv-tok") -> None:
    x, y = point(browser, i, selector)
    browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def test_hover_shades_exactly_the_attended_tokens(page):
    assert visible(page, "") == [list(range(N))]  # one head shown, every token as text
    assert visible(page, ".inv-hl") == [[]]  # nothing before a hover
    hover(page, 5)
    assert visible(page, ".inv-sel") == [[5]]
    assert visible(page, ".inv-hl") == [[0, 4]] and visible(page, ".inv-top") == [[4]]
    shades = page.evaluate(
        "Array.from(document.querySelectorAll('.inv-panel:not([hidden]) .inv-tok'))"
        ".map(t => [Number(t.dataset.w), getComputedStyle(t).backgroundColor])"
    )
    weights = [w for w, _ in shades]
    assert weights == pytest.approx([0.25, 0, 0, 0, 0.75, 0, 0, 0], abs=1e-4)
    assert shades[4][1].replace(" ", "") == "rgba(31,111,235,0.75)" and shades[1][1] == "rgba(0, 0, 0, 0)"
    assert visible(page, ".inv-t1") == [[4]] and visible(page, ".inv-t0") == [[3]]  # previous, induction
    hover(page, 2)
    assert visible(page, ".inv-hl") == [[0, 1]] and visible(page, ".inv-t0") == [[]]


def test_click_locks_and_a_second_click_unlocks(page):
    click(page, 6)
    assert visible(page, ".inv-hl") == [[0, 5]]
    hover(page, 3)  # locked: the hover changes nothing
    assert visible(page, ".inv-hl") == [[0, 5]] and visible(page, ".inv-sel") == [[6]]
    assert "locked" in page.evaluate("document.querySelector('.inv-status').textContent")
    assert page.evaluate("document.querySelector('.inv-attn').classList.contains('inv-locked')")
    click(page, 6)  # unlock
    hover(page, 3)
    assert visible(page, ".inv-hl") == [[0, 2]] and visible(page, ".inv-sel") == [[3]]


def test_switching_heads_changes_the_highlight(page):
    click(page, 7)
    assert visible(page, ".inv-hl") == [[0, 6]]
    click(page, 1, ".inv-head")  # show L1H1 beside L0H0
    assert visible(page, ".inv-hl") == [[0, 6], [5, 7]]
    click(page, 0, ".inv-head")  # hide L0H0
    assert visible(page, ".inv-hl") == [[5, 7]] and visible(page, ".inv-top") == [[5]]
    titles = page.evaluate(
        "Array.from(document.querySelectorAll('.inv-panel:not([hidden]) .inv-panel-title')).map(t => t.textContent)"
    )
    assert titles == ["L1H1"]


def test_the_toggle_shows_who_attends_to_the_token(page):
    page.evaluate("document.querySelector('.inv-dir button[data-dir=\"to\"]').click()")
    hover(page, 4)  # to token 4: query 5 (0.75 from the previous-token head)
    assert visible(page, ".inv-hl") == [[5]]
    assert visible(page, ".inv-t1") == [[5]]  # query 5's previous token is 4
    hover(page, 0)  # to BOS: from itself and from query 1 (its previous token) 1.0, from the others 0.25
    assert visible(page, ".inv-hl") == [list(range(N))] and visible(page, ".inv-top") == [[0, 1]]


def test_a_fragment_runs_when_a_notebook_inserts_it(browser, tmp_path):
    """As JupyterLab shows ``_repr_html_``: the fragment set as innerHTML of a detached node, each
    script replaced by a fresh one, then the node attached; two outputs on one page stay apart."""
    fragment = attention_fragment(TOKENS, hand_built(), ["L0H0", "L1H1"], shown=[1])
    (tmp_path / "nb.html").write_text("<!DOCTYPE html><html><body></body></html>")
    with StaticServer(tmp_path) as url:
        browser.errors.clear()
        browser.open(f"{url}/nb.html")
        for _ in range(2):
            browser.evaluate(
                f"(() => {{ const host = document.createElement('div'); host.innerHTML = {json.dumps(fragment)};"
                " host.querySelectorAll('script').forEach(old => { const s = document.createElement('script');"
                " s.type = old.type; if (old.className) s.className = old.className; s.textContent = old.textContent;"
                " old.replaceWith(s); }); document.body.appendChild(host); })()"
            )
        assert browser.wait_for("document.querySelectorAll('.inv-attn[data-ready] .inv-panel').length") == 4
        hover(browser, 5)  # the first output's visible panel (L1H1)
        assert visible(browser, ".inv-hl") == [[3, 5], []]  # the second output is untouched
    assert not browser.errors, browser.errors


def test_the_docs_directive_embeds_a_view_and_refuses_a_missing_one(tmp_path, browser):
    src = tmp_path / "src"
    (src / "charts").mkdir(parents=True)
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\nextensions = ['myst_parser', 'plotly_chart']\n"
    )
    (src / "index.md").write_text("# Index\n\n```{html-view} charts/view.html\n:height: 300\n\nA *view*.\n```\n")
    (src / "charts" / "view.html").write_text(attention_html(TOKENS, hand_built(), ["L0H0", "L1H1"]))
    result = sphinx_build(src, tmp_path / "html")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "html" / "index.html").read_text()
    assert '<iframe class="html-view" src="_static/html_views/view.html"' in html and "<em>view</em>" in html
    with StaticServer(tmp_path / "html") as url:
        browser.open(f"{url}/index.html")
        frame = "document.querySelector('iframe.html-view').contentDocument"
        count = browser.wait_for(f"{frame} && {frame}.querySelectorAll('.inv-tok').length")
        assert count == 2 * N  # both heads shown, every token
        fitted = browser.wait_for(
            "(() => { const f = document.querySelector('iframe.html-view');"
            " const h = f.contentDocument.documentElement.getBoundingClientRect().height;"
            " return Math.abs(f.offsetHeight - h - 8) <= 2 && h; })()"
        )
        assert fitted > 100  # the frame grew (or shrank) to its page
    (src / "charts" / "view.html").unlink()
    (src / "index.md").write_text("# Index\n\n```{html-view} charts/view.html\n\nA view.\n```\n")
    failed = sphinx_build(src, tmp_path / "html2")
    assert failed.returncode != 0 and "no such file" in failed.stderr


def test_the_committed_view_runs(browser):
    """The docs' SmolLM2 view: it draws two heads on 21 tokens with no JavaScript error."""
    browser.errors.clear()
    with StaticServer(DOCS.parent / "charts") as url:
        browser.open(f"{url}/attention_view.html")
        assert browser.evaluate("document.querySelectorAll('.inv-panel').length") == 2
        hover(browser, 15)
        time.sleep(0.1)
        assert visible(browser, ".inv-top") == [[6], [14]]  # L18H6: induction target; L16H0: previous token
    assert not browser.errors, browser.errors
