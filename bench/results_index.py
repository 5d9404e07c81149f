"""The workers' raw results indexed by model, shape and contender (read by the report and the goals)."""

from __future__ import annotations


def index(results: dict) -> dict[str, dict[tuple[int, int], dict[str, dict]]]:
    """``{model: {(batch, seq_len): {contender: merged time + memory entry}}}``."""
    table: dict[str, dict[tuple[int, int], dict[str, dict]]] = {}
    for model, per_model in results["models"].items():
        shapes: dict[tuple[int, int], dict[str, dict]] = {}
        for row in per_model.get("time", {}).get("rows", []):
            shape = (row["batch"], row["seq_len"])
            for name, entry in row["contenders"].items():
                shapes.setdefault(shape, {})[name] = dict(entry, n_tokens=row["n_tokens"])
        for name, mem in per_model.get("memory", {}).items():
            for row in mem.get("rows", []):
                shape = (row["batch"], row["seq_len"])
                entry = shapes.setdefault(shape, {}).setdefault(name, {})
                entry["peak_delta_bytes"] = row["peak_delta_bytes"]
                entry.setdefault("saved_bytes", row["saved_bytes"])
        table[model] = shapes
    return table
