"""The ``options`` directive: a subcommand's table lists every option of its parser, under -W."""

from __future__ import annotations

import html
import sys

import pytest

from induction_nnsight.app.arguments import COMMANDS
from tests.docs.helpers import DOCS, sphinx_build
from tests.unit.test_options import parser_flags

sys.path.insert(0, str(DOCS / "_ext"))
from option_table import option_rows

CONF = f"""
import sys
sys.path.insert(0, {str(DOCS / "_ext")!r})
extensions = ["myst_parser", "option_table"]
"""


@pytest.mark.parametrize("name", list(COMMANDS))
def test_table_rows_are_the_parser_options(name):
    rows = option_rows(name)
    assert {flag for flag, *_ in rows} == parser_flags(name)
    assert all(help_text for *_, help_text in rows)


def test_table_defaults_are_the_parser_defaults():
    rows = {flag: default for flag, _, default, _ in option_rows("ablate")}
    assert rows["--batch"] == "8" and rows["--seq-len"] == "30" and rows["--max-tokens"] == "4096"
    assert {flag: default for flag, _, default, _ in option_rows("heads")}["--top"] == "5"


def project(tmp_path, body: str):
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text(f"# Index\n\n{body}")
    return src


def test_directive_renders_every_option(tmp_path):
    out = tmp_path / "html"
    result = sphinx_build(project(tmp_path, "```{options} scan\n```\n"), out)
    assert result.returncode == 0, result.stderr
    page = html.unescape((out / "index.html").read_text())
    for flag in parser_flags("scan"):
        assert f">{flag}<" in page, flag
    assert "rows of random tokens" in page


def test_unknown_subcommand_fails_the_build(tmp_path):
    result = sphinx_build(project(tmp_path, "```{options} bogus\n```\n"), tmp_path / "html")
    assert result.returncode != 0
    assert "no such subcommand" in result.stderr
