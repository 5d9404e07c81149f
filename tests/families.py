"""The family matrix's record (``docs/families.json``), gathered from the test reports of every worker.

Each passing test of ``tests/integration/test_family_matrix.py`` attaches what it checked (family,
attention implementation, command, the layout it found) to its report as a user property. The
session's controller (the one process, or xdist's controller over its workers) merges them in
:func:`merge` and, when every route of every command ran, compares the rows with the committed file
(:func:`stale`); ``tests/conftest.py`` fails the session when they differ. Gathering reports rather
than module state makes the check independent of how xdist spreads or orders the tests.

What a row records follows from the code and the pinned dependencies only: the attention source is read
from the installed transformers' own ``forward`` (Falcon calls ``attention_interface`` under transformers
5.25, its own ``softmax``/``scaled_dot_product_attention`` under 5.17 and 5.18), so the ``test`` extra pins
transformers and a machine with another version sees a stale matrix, not a flaky one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MATRIX = Path(__file__).resolve().parents[1] / "docs" / "families.json"
PROPERTY = "family_matrix"
RECORD_TO = "FAMILIES_RECORD_TO"
"""Environment variable: a path where a complete run also writes the matrix it found."""

# family -> (tiny config in tests/conftest.py, attention implementations the family offers, what it exercises)
FAMILIES = {
    "GPT-2": ("gpt2", ("eager", "sdpa"), "learned positions, Conv1D, stacked c_attn"),
    "GPT-J": ("gptj", ("eager", "sdpa"), "partial rotary, parallel attention and MLP"),
    "GPT-NeoX": ("neox", ("eager", "sdpa"), "interleaved query_key_value, partial rotary"),
    "Llama": ("llama", ("eager", "sdpa"), "grouped-query attention, rotary"),
    "Mistral": ("mistral", ("eager", "sdpa"), "sliding window"),
    "Mixtral": ("mixtral", ("eager", "sdpa"), "mixture of experts"),
    "Qwen2": ("qwen2", ("eager", "sdpa"), "q/k/v biases"),
    "Qwen3": ("qwen3", ("eager", "sdpa"), "per-head q/k norms"),
    "Gemma 2": ("gemma2", ("eager",), "post-norm, soft-capping, sliding and global layers"),
    "Gemma 3": ("gemma3", ("eager", "sdpa"), "post-norm, sliding and global layers"),
    "OLMo": ("olmo", ("eager", "sdpa"), "non-parametric LayerNorm"),
    "OLMo-2": ("olmo2", ("eager", "sdpa"), "post-norm without pre-attention norm, q/k norms"),
    "Phi-3": ("phi3", ("eager", "sdpa"), "fused qkv_proj with grouped-query attention"),
    "OPT": ("opt", ("eager", "sdpa"), "learned positions, self_attn_layer_norm"),
    "Falcon (multi-query, ALiBi)": ("falcon", ("eager",), "one key/value head, ALiBi through the attention mask"),
    "Falcon (multi-query, rotary)": ("falcon-rope", ("eager", "sdpa"), "one key/value head, rotary"),
    "Falcon (new decoder, grouped)": ("falcon-new", ("eager", "sdpa"), "key/value groups packed in one projection"),
    "BLOOM (ALiBi)": ("bloom", ("eager",), "its own attention code, interleaved query_key_value"),
    "Llama (nested, renamed projections)": (
        "llama-nested",
        ("eager", "sdpa"),
        "projections one level deeper under other names, found by what they compute",
    ),
    "Llama (fused Wqkv, grouped)": (
        "llama-wqkv",
        ("eager", "sdpa"),
        "one fused Wqkv packing key/value groups, found by what it computes",
    ),
}
ROUTES = [(family, attn) for family, (_, attns, _) in FAMILIES.items() for attn in attns]
COMMANDS = ("scan", "heads", "ablate", "patch", "circuit", "dual-route", "estimate")
"""The commands checked on every route (a matrix column each)."""


def entry(name: str, attn: str, command: str, layout) -> dict:
    """What one passing test found: the family's row fields from its detected layout."""
    pre = layout.pre_attention_norm[0] is not None
    placement = "post-norm" if layout.post_norm else "pre-norm"
    placement += "" if pre else " (no pre-attention norm)"
    return {
        "family": name,
        "attn": attn,
        "command": command,
        "attention_source": layout.attention_call,
        "norm": f"{layout.norm}{' (1 + w)' if layout.norm_offset else ''}, {placement}",
        "value_layout": layout.value_layout,
        "kv_heads": f"{layout.facts.n_kv_heads} of {layout.facts.n_heads}",
    }


def merge(entries: list[dict]) -> dict[str, dict]:
    """``family -> row``: the entries of passing tests merged, implementations sorted (so neither the
    order the tests ran in nor the worker that ran them shows)."""
    rows: dict[str, dict] = {}
    for e in entries:
        row = rows.setdefault(
            e["family"],
            {
                "family": e["family"],
                "config": FAMILIES[e["family"]][0],
                "exercises": FAMILIES[e["family"]][2],
                "attention_source": {},
                "norm": e["norm"],
                "value_layout": e["value_layout"],
                "kv_heads": e["kv_heads"],
                "commands": {},
            },
        )
        row["attention_source"][e["attn"]] = e["attention_source"]
        row["commands"][e["command"]] = sorted({*row["commands"].get(e["command"], []), e["attn"]})
    for row in rows.values():
        row["attention_source"] = dict(sorted(row["attention_source"].items()))
        row["commands"] = {c: row["commands"][c] for c in (*COMMANDS, *sorted(row["commands"])) if c in row["commands"]}
    return rows


def complete(rows: dict[str, dict]) -> bool:
    """Whether every command passed on every route (a partial run, ``-k`` or a failure, compares nothing)."""
    return all(
        attn in rows.get(name, {}).get("commands", {}).get(command, []) for name, attn in ROUTES for command in COMMANDS
    )


def stale(entries: list[dict], path: Path = MATRIX) -> str | None:
    """One line saying how the committed matrix differs from what the tests found; None when it does not
    (or when the matrix did not run in full). ``UPDATE_FAMILIES=1`` rewrites the file instead."""
    rows = merge(entries)
    if not complete(rows):
        return None
    found = [rows[name] for name in FAMILIES]
    if os.environ.get("UPDATE_FAMILIES"):
        path.write_text(json.dumps(found, indent=1) + "\n")
    if os.environ.get(RECORD_TO):  # the route check (tests/integration/test_family_routes.py) reads what a run found
        Path(os.environ[RECORD_TO]).write_text(json.dumps(found, indent=1) + "\n")
    committed = json.loads(path.read_text())
    if committed == found:
        return None
    names = [f["family"] for f in found]
    differ = [c.get("family", "?") for c, f in zip(committed, found) if c != f] or names
    return (
        f"{path.name} is stale (it differs for {', '.join(differ)}): rerun "
        "tests/integration/test_family_matrix.py with UPDATE_FAMILIES=1"
    )
