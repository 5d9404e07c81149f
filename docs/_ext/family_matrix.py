"""Sphinx extension: the family matrix, rendered from ``docs/families.json``.

Usage, in MyST Markdown::

    ```{family-matrix}
    ```

``docs/families.json`` is written by ``tests/integration/test_family_matrix.py`` (``UPDATE_FAMILIES=1``) from
what its tests found on each family, and that test fails when the committed file and the results disagree, so
the table cannot drift from the tests. A missing or unreadable file is a Sphinx warning (an error under ``-W``).
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

MATRIX = Path(__file__).resolve().parents[1] / "families.json"
COMMANDS = ("scan", "heads", "ablate", "patch", "circuit", "dual-route", "estimate")
HEADER = ("Family", "Attention source", "Norm", "q/k/v", "Key/value heads", *COMMANDS)


def matrix_rows(path: Path = MATRIX) -> list[tuple[str, ...]]:
    """One row per family: its name, where its pattern is read (per attention implementation), its norm, its
    value layout, its key/value heads, and for each command the implementations it was checked under."""
    rows = []
    for family in json.loads(path.read_text()):
        source = "; ".join(f"{attn}: {call}" for attn, call in family["attention_source"].items())
        checked = [", ".join(family["commands"].get(c, [])) or "not checked" for c in COMMANDS]
        rows.append((family["family"], source, family["norm"], family["value_layout"], family["kv_heads"], *checked))
    return rows


def _row(cells: tuple[str, ...]) -> nodes.row:
    row = nodes.row()
    for text in cells:
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        paragraph += nodes.Text(text)
        entry += paragraph
        row += entry
    return row


class FamilyMatrixDirective(SphinxDirective):
    """``family-matrix``: every tested family and what each command was checked under."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        try:
            rows = matrix_rows()
        except (OSError, ValueError, KeyError) as error:
            logger.warning(f"family-matrix: cannot read {MATRIX} ({error})", location=self.get_location())
            return []
        table = nodes.table(classes=["family-matrix"])
        group = nodes.tgroup(cols=len(HEADER))
        table += group
        for _ in HEADER:
            group += nodes.colspec(colwidth=10)
        head = nodes.thead()
        head += _row(HEADER)
        group += head
        body = nodes.tbody()
        for row in rows:
            body += _row(row)
        group += body
        self.set_source_info(table)
        return [table]


def setup(app):
    app.add_directive("family-matrix", FamilyMatrixDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
