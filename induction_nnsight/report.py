"""Plain-text tables and machine-readable results."""

from __future__ import annotations

from typing import Any

import torch


def top_heads(scores: torch.Tensor, n: int) -> list[dict[str, Any]]:
    """The ``n`` highest-scoring heads of an ``[n_layers, n_heads]`` table.

    Returns:
        Dicts ``{"layer", "head", "score"}``, best first.
    """
    n_heads = scores.shape[1]
    values, flat = scores.flatten().topk(min(n, scores.numel()))
    return [
        {"layer": int(i) // n_heads, "head": int(i) % n_heads, "score": round(float(v), 6)}
        for v, i in zip(values, flat)
    ]


def heads_table(heads: list[dict[str, Any]], width: int = 30) -> str:
    """A terminal table of heads with score bars."""
    lines = [f"{'rank':>4}  {'head':<8} {'score':>6}"]
    for rank, head in enumerate(heads, 1):
        bar = "#" * round(max(0.0, min(1.0, head["score"])) * width)
        name = f"L{head['layer']}H{head['head']}"
        lines.append(f"{rank:>4}  {name:<8} {head['score']:>6.3f}  {bar}")
    return "\n".join(lines)
