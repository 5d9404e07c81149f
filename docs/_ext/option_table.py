"""Sphinx extension: a subcommand's option table, generated from its job config.

Usage, in MyST Markdown::

    ```{options} scan
    ```

or in reStructuredText ``.. options:: scan``. The table lists every option of
``induction-nnsight scan`` (flag, type, default, help) from
:func:`induction_nnsight.app.arguments.command_options`, the list the argument parser is built
from, so the docs cannot drift from ``--help``. An unknown subcommand is a Sphinx warning
(an error under ``-W``).
"""

from __future__ import annotations

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

HEADER = ("Option", "Type", "Default", "What it does")


def option_rows(command: str) -> list[tuple[str, str, str, str]]:
    """``(flag, type, default, help)`` of every option of subcommand ``command``, in ``--help``'s order.

    Raises:
        KeyError: For an unknown subcommand.
    """
    from induction_nnsight.app.arguments import command_options

    rows = []
    for opt in command_options(command):
        kind = "flag" if opt.switch else opt.type_name
        if opt.choices:
            kind = " | ".join(opt.choices)
        text = opt.help() if callable(opt.help) else opt.help
        default = "required" if opt.required else opt.shown_default() or ""
        rows.append((opt.name, kind, default, text))
    return rows


def _cell(text: str, literal: bool = False) -> nodes.entry:
    paragraph = nodes.paragraph()
    paragraph += nodes.literal(text, text) if literal and text else nodes.Text(text)
    entry = nodes.entry()
    entry += paragraph
    return entry


def _row(cells: tuple[str, ...], literal: tuple[bool, ...]) -> nodes.row:
    row = nodes.row()
    for text, code in zip(cells, literal):
        row += _cell(text, code)
    return row


class OptionsDirective(SphinxDirective):
    """``options``: the option table of one ``induction-nnsight`` subcommand."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        command = self.arguments[0]
        try:
            rows = option_rows(command)
        except KeyError:
            from induction_nnsight.app.arguments import COMMANDS

            logger.warning(
                f"options {command!r}: no such subcommand (pass one of {', '.join(COMMANDS)})",
                location=self.get_location(),
                type="options",
            )
            return []
        table = nodes.table(classes=["option-table"])
        group = nodes.tgroup(cols=len(HEADER))
        table += group
        for width in (22, 14, 16, 48):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += _row(HEADER, (False,) * 4)
        group += head
        body = nodes.tbody()
        for row in rows:
            body += _row(row, (True, False, True, False))
        group += body
        self.set_source_info(table)
        return [table]


def setup(app):
    app.add_directive("options", OptionsDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
