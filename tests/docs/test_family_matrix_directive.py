"""The ``family-matrix`` directive: one row per family of the test matrix, read from docs/families.json."""

from __future__ import annotations

import json
import sys

from tests.docs.helpers import DOCS
from tests.families import FAMILIES, MATRIX

sys.path.insert(0, str(DOCS / "_ext"))
from family_matrix import COMMANDS, HEADER, matrix_rows


def test_rows_are_the_tested_families_in_order():
    rows = matrix_rows()
    assert [row[0] for row in rows] == list(FAMILIES)
    assert all(len(row) == len(HEADER) for row in rows)


def test_a_command_cell_lists_what_the_json_says(tmp_path):
    families = json.loads(MATRIX.read_text())
    families[0]["commands"] = {"scan": ["eager"]}
    changed = tmp_path / "families.json"
    changed.write_text(json.dumps(families))
    row = matrix_rows(changed)[0]
    assert row[HEADER.index("scan")] == "eager"
    assert all(row[HEADER.index(c)] == "not checked" for c in COMMANDS if c != "scan")
