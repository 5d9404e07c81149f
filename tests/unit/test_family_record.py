"""The family matrix's gathering (tests/families.py): merged from test reports whatever their order, compared
only when complete, and a difference from the committed file is reported."""

from __future__ import annotations

import json
import random

from tests.families import COMMANDS, MATRIX, ROUTES, merge, stale


def _entries() -> list[dict]:
    """The entries the committed matrix was made from, one per (family, implementation, command)."""
    found = []
    for row in json.loads(MATRIX.read_text()):
        for command, attns in row["commands"].items():
            for attn in attns:
                found.append(
                    {
                        "family": row["family"],
                        "attn": attn,
                        "command": command,
                        "attention_source": row["attention_source"][attn],
                        **{k: row[k] for k in ("norm", "value_layout", "kv_heads")},
                    }
                )
    return found


def test_the_committed_matrix_is_complete_and_its_entries_rebuild_it_in_any_order():
    entries = _entries()
    assert stale(entries) is None
    random.Random(0).shuffle(entries)
    assert stale(entries) is None
    rows = merge(entries)
    assert all(attn in rows[name]["commands"][c] for name, attn in ROUTES for c in COMMANDS)


def test_a_difference_is_reported_and_a_partial_run_compares_nothing(tmp_path):
    entries = _entries()
    changed = [dict(e, norm="rmsnorm, post-norm") if e["family"] == "Llama" else e for e in entries]
    message = stale(changed)
    assert message is not None and "Llama" in message and "UPDATE_FAMILIES=1" in message
    assert stale([e for e in changed if e["command"] != "estimate"]) is None  # one command missing: no comparison
