"""Options declared once on the job configs: the parser, the configs and the docs' tables agree."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from induction_nnsight.app.arguments import COMMANDS, build_parser, command_options
from induction_nnsight.app.options import add_options, config_from, config_options, like, no_option, option

DOCS = Path(__file__).resolve().parents[2] / "docs"
REQUIRED = {"attention": ["--prompt", "x"]}  # the one required option


def subparser(name: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[name]


def parser_flags(name: str) -> set[str]:
    """Every option string of subcommand ``name`` (positionals by name), ``-h/--help`` left out."""
    flags = set()
    for action in subparser(name)._actions:
        flags |= set(action.option_strings) if action.option_strings else {action.dest}
    return flags - {"-h", "--help"}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_parser_option_is_declared_once(name):
    names = [o.name for o in command_options(name)]
    assert len(names) == len(set(names)), names
    assert set(names) == parser_flags(name)


@pytest.mark.parametrize("name", [n for n, c in COMMANDS.items() if c.config is not None])
def test_parsed_defaults_build_the_config_defaults(name):
    config = COMMANDS[name].config
    built = config_from(config, build_parser().parse_args([name, *REQUIRED.get(name, [])]))
    expected = config(**{o.dest: o.default for o in config_options(config)})  # cli_default where declared
    if name == "attention":
        expected.prompt = "x"
    assert built == expected
    plain = config()
    differ = {f.name for f in fields(config) if getattr(plain, f.name) != getattr(built, f.name)}
    assert differ <= {"prompt", "top"}, differ  # only the required prompt and heads' shorter CLI list


def test_heads_lists_five_on_the_command_line_and_ten_in_python():
    from induction_nnsight.app.heads_job import HeadsConfig

    assert config_from(HeadsConfig, build_parser().parse_args(["heads"])).top == 5
    assert HeadsConfig().top == 10


def test_help_shows_each_default():
    text = subparser("scan").format_help()
    assert "rows of random tokens (default 10)" in text
    assert "token ids drawn below this (default 10000)" in text
    flat = re.sub(r"-\s+", "-", re.sub(r"\s+", " ", text))  # argparse may wrap the path at a dash
    assert "directory for charts and results (default induction-nnsight-out/<command>)" in flat


def test_ndif_host_implies_remote():
    from induction_nnsight.app.jobs import ScanConfig

    args = build_parser().parse_args(["scan", "--ndif-host", "http://127.0.0.1:1"])
    assert config_from(ScanConfig, args).remote is True
    assert config_from(ScanConfig, build_parser().parse_args(["scan"])).remote is False


def test_inherited_redeclared_and_hidden_options():
    @dataclass
    class Base:
        batch: int = option(10, help="rows", parse=int)
        top: int = option(3, help="listed", parse=int)

    @dataclass
    class Child(Base):
        batch: int = 4  # keeps Base's option, new default
        top: int = no_option(3)

    @dataclass
    class Cousin:
        batch: int = like(Base, "batch", 7, help="other rows")

    assert [(o.name, o.default, o.help_text) for o in config_options(Child)] == [("--batch", 4, "rows (default 4)")]
    assert [(o.name, o.default, o.help_text) for o in config_options(Cousin)] == [
        ("--batch", 7, "other rows (default 7)")
    ]
    parser = argparse.ArgumentParser()
    add_options(parser, Child)
    assert config_from(Child, parser.parse_args(["--batch", "2"])) == Child(batch=2)


def test_docs_show_a_table_for_every_subcommand():
    shown = set()
    for page in DOCS.glob("*.md"):
        shown |= set(re.findall(r"^```\{options\} (\S+)$", page.read_text(), flags=re.M))
    assert shown | {"report"} == set(COMMANDS)  # report takes heads' options
