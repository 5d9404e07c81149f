"""Numbers quoted in the README and the docs are what the committed results files say: every README
marker matches its file, every docs ``{result}`` role resolves, and a changed number is caught (by the
checker and by the Sphinx role under -W)."""

from __future__ import annotations

import html
import json
import sys

from tests.docs.helpers import DOCS, ROOT, sphinx_build

sys.path.insert(0, str(DOCS / "_ext"))
from data_quote import check_all, check_markers, check_roles, fill, quote


def results(tmp_path, loss=1.953):
    (tmp_path / "r.json").write_text(json.dumps({"runs": [{"step": 0, "loss": 4.18}, {"step": 2500, "loss": loss}]}))
    return tmp_path


def test_every_readme_and_docs_number_is_what_its_file_says():
    assert check_all(ROOT) == []
    assert "<!-- data:" in (ROOT / "README.md").read_text()  # the README does quote through markers


def test_quote_reads_keys_indices_selectors_and_formats(tmp_path):
    root = results(tmp_path)
    assert quote("r.json:runs.-1.loss:.2f", root) == "1.95"
    assert quote("r.json:runs.step=0.loss", root) == "4.18"
    assert quote("r.json:runs.1.step:,", root) == "2,500"


def test_a_changed_number_is_caught(tmp_path):
    text = "falls from 4.18<!-- data: r.json:runs.0.loss:.2f --> to 1.95<!-- data: r.json:runs.-1.loss:.2f --> nats\n"
    assert check_markers(text, results(tmp_path)) == []
    problems = check_markers(text, results(tmp_path, loss=2.05))  # the results moved, the prose did not
    assert problems == ["line 1: wrote 1.95, r.json:runs.-1.loss:.2f says 2.05"]
    assert check_markers(text.replace("4.18", "4.2"), results(tmp_path))  # the prose moved
    assert check_markers("1.95 <!-- data: r.json:runs.-1.loss:.2f -->", results(tmp_path))  # detached marker
    assert check_markers("x<!-- data: r.json:runs.-1.loss:.2f -->", results(tmp_path))  # no number
    assert check_roles("{result}`r.json:runs.-1.los:.2f`", results(tmp_path))  # a key that does not resolve


def project(tmp_path, body: str):
    src = tmp_path / "src"
    src.mkdir(parents=True)
    conf = f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\nextensions = ['myst_parser', 'data_quote']\n"
    (src / "conf.py").write_text(conf + f"data_quote_root = {str(tmp_path)!r}\n")
    (src / "index.md").write_text(f"# Index\n\n{body}\n")
    return src


def test_the_role_renders_the_value_and_a_bad_key_fails_the_build(tmp_path):
    results(tmp_path)
    out = tmp_path / "html"
    built = sphinx_build(project(tmp_path, "The loss falls to {result}`r.json:runs.-1.loss:.2f` nats."), out)
    assert built.returncode == 0, built.stderr
    assert "The loss falls to 1.95 nats." in html.unescape((out / "index.html").read_text())
    (tmp_path / "b").mkdir()
    results(tmp_path / "b")
    broken = sphinx_build(project(tmp_path / "b", "to {result}`r.json:runs.-1.lost:.2f`"), tmp_path / "b-html")
    assert broken.returncode != 0 and "no key 'lost'" in broken.stderr


def test_fix_rewrites_stale_numbers_and_writes_out_placeholders(tmp_path):
    root = results(tmp_path, loss=2.05)
    readme = "to 1.95<!-- data: r.json:runs.-1.loss:.2f --> from <<r.json:runs.0.loss:.1f>>"
    fixed = fill(readme, readme=True, root=root)
    assert fixed == "to 2.05<!-- data: r.json:runs.-1.loss:.2f --> from 4.2<!-- data: r.json:runs.0.loss:.1f -->"
    assert check_markers(fixed, root) == []
    assert (
        fill("falls to <<r.json:runs.-1.loss:.2f>>", readme=False, root=root)
        == "falls to {result}`r.json:runs.-1.loss:.2f`"
    )
