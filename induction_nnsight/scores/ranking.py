"""The one way heads are ranked: by score rounded to ``RANK_DECIMALS``, ties by (layer, head).

Float sums differ between machines (BLAS, CPU, thread count) in the last bits,
so two heads whose scores differ by 1e-6 may swap places from one machine to the
next. Ranking on the score rounded to ``RANK_DECIMALS`` decimals and breaking
ties by layer, then head, makes every ranking the same wherever two scores
differ by less than the float noise (except in the rare case where the noise
crosses a rounding boundary; comparisons with committed rankings therefore
still use tolerances).
"""

from __future__ import annotations

import math

import torch

from ..names import head_name

RANK_DECIMALS = 4
"""Decimals a score is rounded to before ranking (scores differ in the 6th between machines)."""


def rank_heads(scores: torch.Tensor, n: int | None = None, descending: bool = True) -> list[tuple[int, int]]:
    """Heads of a ``[n_layers, n_heads]`` table in rank order, NaN (no score) left out.

    Args:
        scores: ``[n_layers, n_heads]``.
        n: How many to return (all when None).
        descending: Highest score first (the default), else lowest first.

    Returns:
        ``(layer, head)`` pairs, best first; equal rounded scores in (layer, head) order.

    Example:
        >>> rank_heads(torch.tensor([[0.5, 0.90000001], [0.9, float("nan")]]))
        [(0, 1), (1, 0), (0, 0)]
    """
    sign = -1.0 if descending else 1.0
    table = scores.detach().double().cpu().tolist()
    keyed = [
        (sign * round(value, RANK_DECIMALS), layer, head)
        for layer, row in enumerate(table)
        for head, value in enumerate(row)
        if not math.isnan(value)
    ]
    return [(layer, head) for _, layer, head in sorted(keyed)[:n]]


def ranked_rows(scores: torch.Tensor, n: int, *others: torch.Tensor) -> list[list]:
    """Rows of a result's table: the ``n`` best heads of ``scores`` by :func:`rank_heads`.

    Args:
        scores: ``[n_layers, n_heads]`` the ranking score.
        n: How many rows.
        others: ``[n_layers, n_heads]`` tables whose values join each row.

    Returns:
        ``[["L{layer}H{head}", score, *other values], ...]`` best first, plain floats.

    Example:
        >>> ranked_rows(torch.tensor([[0.5, 0.25]]), 1)
        [['L0H0', 0.5]]
    """
    return [
        [head_name(layer, head), float(scores[layer, head]), *(float(t[layer, head]) for t in others)]
        for layer, head in rank_heads(scores, n)
    ]
