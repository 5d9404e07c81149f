"""Reading a result set's run id back (the tests' side of ``induction_nnsight.app.outputs.stamp``)."""

from __future__ import annotations


def run_id_of(value: dict) -> str | None:
    """The run id of a parsed results file or Plotly figure (None when it has none)."""
    meta = value.get("layout", {}).get("meta") if isinstance(value.get("layout"), dict) else None
    if isinstance(meta, dict) and "run_id" in meta:
        return meta["run_id"]
    return value.get("run_id")
